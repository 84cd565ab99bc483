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

/// Registered peers sorted by uid; the position is the peer's index in the
/// epoch arithmetic.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    peers: Vec<Peer>,
    by_uid: HashMap<u32, u32>,
    by_key: HashMap<PublicKey, u32>,
}

impl Registry {
    /// Builds the index from peers in any order.
    pub fn new(mut peers: Vec<Peer>) -> Self {
        peers.sort_by_key(|p| p.uid);
        let by_uid = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.uid, i as u32))
            .collect();
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
        self.by_uid.get(&uid).copied()
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
}
