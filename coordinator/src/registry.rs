//! The registered peers of an epoch: uid ↔ index ↔ public key.

use std::collections::HashMap;

use faceblock_schemas::PublicKey;

/// One registered peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Short name.
    pub uid: u32,
    /// Identity.
    pub public_key: PublicKey,
    /// Modality (TEXT).
    pub modality: String,
    /// Epoch of registration (0 for genesis).
    pub registered_epoch: u64,
}

/// uid → index. Uids are handed out in order, so they are nearly always
/// dense: a table then answers each of the epoch's tens of millions of
/// lookups (every weight names a uid) without hashing.
#[derive(Debug, Clone)]
enum UidIndex {
    /// `slots[uid - first]`, `u32::MAX` where no peer has that uid.
    Dense { first: u32, slots: Vec<u32> },
    /// Uids spread too thin for a table.
    Sparse(HashMap<u32, u32>),
}

impl Default for UidIndex {
    fn default() -> Self {
        Self::Dense {
            first: 0,
            slots: vec![],
        }
    }
}

impl UidIndex {
    /// From peers sorted by uid.
    fn new(peers: &[Peer]) -> Self {
        let (Some(lo), Some(hi)) = (peers.first(), peers.last()) else {
            return Self::default();
        };
        let span = (hi.uid - lo.uid) as usize + 1;
        if span > 4 * peers.len() + 1024 {
            return Self::Sparse(
                peers
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.uid, i as u32))
                    .collect(),
            );
        }
        let mut slots = vec![u32::MAX; span];
        for (i, p) in peers.iter().enumerate() {
            slots[(p.uid - lo.uid) as usize] = i as u32;
        }
        Self::Dense {
            first: lo.uid,
            slots,
        }
    }

    fn get(&self, uid: u32) -> Option<u32> {
        match self {
            Self::Dense { first, slots } => uid
                .checked_sub(*first)
                .and_then(|o| slots.get(o as usize))
                .copied()
                .filter(|i| *i != u32::MAX),
            Self::Sparse(m) => m.get(&uid).copied(),
        }
    }
}

/// Registered peers sorted by uid; the position is the peer's index in the
/// epoch arithmetic.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    peers: Vec<Peer>,
    by_uid: UidIndex,
    by_key: HashMap<PublicKey, u32>,
}

impl Registry {
    /// Builds the index from peers in any order.
    pub fn new(mut peers: Vec<Peer>) -> Self {
        peers.sort_by_key(|p| p.uid);
        let by_uid = UidIndex::new(&peers);
        let by_key = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.public_key, i as u32))
            .collect();
        Self {
            peers,
            by_uid,
            by_key,
        }
    }

    /// Peers, by index.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when no peer is registered.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Index of a uid.
    pub fn index(&self, uid: u32) -> Option<u32> {
        self.by_uid.get(uid)
    }

    /// Index of a public key.
    pub fn index_of_key(&self, key: &PublicKey) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// The next free uid; `None` once `u32::MAX` is taken, so the counter
    /// refuses instead of wrapping onto uid 0.
    pub fn next_uid(&self) -> Option<u32> {
        match self.peers.last() {
            Some(p) => p.uid.checked_add(1),
            None => Some(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32) -> Peer {
        Peer {
            uid,
            public_key: PublicKey([uid as u8; 32]),
            modality: "TEXT".into(),
            registered_epoch: 0,
        }
    }

    #[test]
    fn the_uid_counter_refuses_instead_of_wrapping() {
        assert_eq!(Registry::default().next_uid(), Some(0));
        assert_eq!(Registry::new(vec![peer(0), peer(7)]).next_uid(), Some(8));
        assert_eq!(
            Registry::new(vec![peer(3), peer(u32::MAX)]).next_uid(),
            None
        );
    }

    /// Dense (a table) or sparse (a map), every uid finds its index, and
    /// uids in gaps, below the first and past the last find none.
    #[test]
    fn uids_dense_or_sparse_find_their_index() {
        let dense = Registry::new(vec![peer(9), peer(5), peer(7)]);
        assert!(matches!(dense.by_uid, UidIndex::Dense { .. }));
        let sparse = Registry::new(vec![peer(5), peer(7), peer(4_000_000_000)]);
        assert!(matches!(sparse.by_uid, UidIndex::Sparse(_)));
        for (r, uids) in [(&dense, [5, 7, 9]), (&sparse, [5, 7, 4_000_000_000])] {
            for (i, uid) in uids.iter().enumerate() {
                assert_eq!(r.index(*uid), Some(i as u32));
            }
            for miss in [0, 4, 6, 8, 10, u32::MAX] {
                assert_eq!(r.index(miss), None, "uid {miss}");
            }
        }
        assert_eq!(Registry::default().index(0), None);
    }
}
