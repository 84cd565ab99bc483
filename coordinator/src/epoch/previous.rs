//! The state an epoch starts from: genesis for epoch 0, else what the ledger
//! committed for epoch e−1 (read through DataFusion), handed over in index
//! space (the position of a uid in the sorted registry).
//!
//! Rows in force and bond segments are read from the partitions they were
//! written in, named by `state.weights_epoch` and `state.bonds_epoch`: the
//! `epoch IN (…)` filter keeps the scan to those partitions.

use std::collections::BTreeSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use faceblock_schemas::{NetworkFile, PublicKey};

use crate::ledger::Ledger;
use crate::math::{Edges, Rows, Segments};
use crate::registry::{Peer, Registry};
use crate::{Error, Result};

/// Genesis digest: what epoch 0 chains onto.
pub const GENESIS_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// State after epoch e−1, by index in `registry`.
#[derive(Debug, Default)]
pub struct Previous {
    /// Peers registered by epoch e−1.
    pub registry: Registry,
    /// Stake after epoch e−1, by index.
    pub stake: Vec<u64>,
    /// Epoch of each peer's row in force at e−1, by index.
    pub weights_epoch: Vec<Option<u64>>,
    /// Rows in force at e−1, sorted by `(src, dst)` (pieces, as the epoch
    /// cache hands them over).
    pub rows: Rows,
    /// Bond segments at e−1 (none before epoch 0).
    pub segments: Segments,
    /// k in force for the epoch being run.
    pub k: u32,
    /// Digest of epoch e−1.
    pub prev_digest: String,
    /// The epoch cache's files `rows` and `segments` were read from, if
    /// they were (the next entry names what it keeps of them).
    pub cached: super::cache::Sources,
}

fn col_i64(b: &RecordBatch, i: usize) -> &arrow::array::Int64Array {
    b.column(i).as_primitive::<Int64Type>()
}

fn uid(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Corrupt(format!("uid {v} out of range")))
}

/// Loads the state epoch `epoch` starts from.
pub async fn load(
    net: &NetworkFile,
    ledger: &Ledger,
    epoch: u64,
    partitions: usize,
    cache: Option<&super::cache::EpochCache>,
) -> Result<Previous> {
    if epoch == 0 {
        let mut peers = Vec::new();
        for g in &net.genesis.peers {
            peers.push(Peer {
                uid: g.uid,
                public_key: PublicKey::from_hex(&g.public_key)?,
                modality: faceblock_schemas::schema::MODALITY_TEXT.into(),
                registered_epoch: 0,
            });
        }
        let registry = Registry::new(peers);
        let mut stake = vec![0; registry.len()];
        for g in &net.genesis.peers {
            if let Some(i) = registry.index(g.uid) {
                stake[i as usize] = g.stake;
            }
        }
        return Ok(Previous {
            weights_epoch: vec![None; registry.len()],
            registry,
            stake,
            k: net.params.k_initial,
            prev_digest: GENESIS_DIGEST.into(),
            ..Default::default()
        });
    }
    let e = epoch - 1;
    // The big tables (`weights`, `bonds`) are opened only when the cache
    // does not hold what epoch e handed on.
    let ctx = ledger
        .session_of(&["epochs", "registry", "state"], Some(e), partitions)
        .await?;
    let row = crate::ledger::epochs::read(&ctx, e).await?;

    let mut peers = Vec::new();
    for b in Ledger::query(
        &ctx,
        "SELECT uid, public_key, modality, registered_epoch FROM registry",
    )
    .await?
    {
        let keys = crate::ledger::string_col(&b, 1)?;
        let modality = crate::ledger::string_col(&b, 2)?;
        for i in 0..b.num_rows() {
            peers.push(Peer {
                uid: uid(col_i64(&b, 0).value(i))?,
                public_key: PublicKey::from_registry_hex(keys.value(i))?,
                modality: modality.value(i).to_string(),
                registered_epoch: col_i64(&b, 3).value(i) as u64,
            });
        }
    }
    let registry = Registry::new(peers);
    let n = registry.len();
    // uid → index for every ledger row (a table lookup: uids are dense).
    let index = |v: i64| -> Result<usize> {
        u32::try_from(v)
            .ok()
            .and_then(|u| registry.index(u))
            .map(|i| i as usize)
            .ok_or_else(|| Error::Corrupt(format!("epoch {e} names unregistered uid {v}")))
    };
    let mut p = Previous {
        stake: vec![0; n],
        weights_epoch: vec![None; n],
        segments: Segments {
            start: vec![e; n],
            stake: vec![0; n],
            ..Default::default()
        },
        k: row.k_next,
        prev_digest: row.digest,
        ..Default::default()
    };
    for b in Ledger::query(
        &ctx,
        &format!(
            "SELECT uid, stake, weights_epoch, bonds_epoch, bond_stake FROM state WHERE epoch = {e}"
        ),
    )
    .await?
    {
        let we = col_i64(&b, 2);
        for r in 0..b.num_rows() {
            let i = index(col_i64(&b, 0).value(r))?;
            p.stake[i] = col_i64(&b, 1).value(r) as u64;
            p.weights_epoch[i] = we.is_valid(r).then(|| we.value(r) as u64);
            p.segments.start[i] = col_i64(&b, 3).value(r) as u64;
            p.segments.stake[i] = col_i64(&b, 4).value(r) as u64;
        }
    }

    if let Some(c) = cache.and_then(|c| c.load(e, &p.prev_digest, n)) {
        tracing::debug!(
            epoch = e,
            "previous epoch's rows and bond segments from the cache"
        );
        p.rows = c.rows;
        p.segments.parts = c.segments.parts;
        p.cached = c.from;
        p.registry = registry;
        return Ok(p);
    }

    let ctx = ledger
        .session_of(&["weights", "bonds"], Some(e), partitions)
        .await?;
    // Rows in force: each peer's row from the partition of its weights_epoch.
    let w = entries(
        &ctx,
        "SELECT src, dst, weight, epoch FROM weights",
        &p.weights_epoch,
        &index,
    )
    .await?;
    let w = w.sorted(n);
    p.rows = Edges::new(w.owner, w.peer, w.a).into();

    // Bond segments: each holder's entries from the partition of its bonds_epoch.
    let starts: Vec<Option<u64>> = p.segments.start.iter().map(|s| Some(*s)).collect();
    let b = entries(
        &ctx,
        "SELECT holder, peer, bond, weight, epoch FROM bonds",
        &starts,
        &index,
    )
    .await?
    .sorted(n);
    p.segments.parts = vec![crate::math::Entries {
        holder: b.owner.into(),
        peer: b.peer.into(),
        bond: b.a.into(),
        weight: b.b.into(),
    }];
    p.registry = registry;
    Ok(p)
}

/// Entries of a table in index space, one or two float columns.
#[derive(Debug, Default)]
struct Entries {
    owner: Vec<u32>,
    peer: Vec<u32>,
    a: Vec<f64>,
    b: Vec<f64>,
}

impl Entries {
    /// Sorted by `(owner, peer)`. Each owner's entries come from one file,
    /// written sorted, so a stable counting sort by owner (n buckets) does
    /// nearly all the work; an owner whose entries arrived out of order (a
    /// file read in parallel ranges) is sorted on its own.
    fn sorted(self, n: usize) -> Entries {
        let m = self.owner.len();
        let key = |x: usize| ((self.owner[x] as u64) << 32) | self.peer[x] as u64;
        if (1..m).all(|x| key(x - 1) <= key(x)) {
            return self;
        }
        let mut start = vec![0usize; n + 1];
        for o in &self.owner {
            start[*o as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut next = start.clone();
        let mut perm = vec![0u32; m];
        for (x, o) in self.owner.iter().enumerate() {
            perm[next[*o as usize]] = x as u32;
            next[*o as usize] += 1;
        }
        for i in 0..n {
            let run = &mut perm[start[i]..start[i + 1]];
            if !run
                .windows(2)
                .all(|w| self.peer[w[0] as usize] <= self.peer[w[1] as usize])
            {
                run.sort_unstable_by_key(|x| self.peer[*x as usize]);
            }
        }
        let u32s = |v: &[u32]| perm.iter().map(|x| v[*x as usize]).collect();
        let f64s = |v: &[f64]| perm.iter().map(|x| v[*x as usize]).collect();
        Entries {
            owner: u32s(&self.owner),
            peer: u32s(&self.peer),
            a: f64s(&self.a),
            b: if self.b.is_empty() {
                vec![]
            } else {
                f64s(&self.b)
            },
        }
    }
}

/// The rows of `select` (owner, peer, one or two floats, epoch) written at the
/// epoch `at[owner]` names, in index space.
async fn entries(
    ctx: &datafusion::prelude::SessionContext,
    select: &str,
    at: &[Option<u64>],
    index: &dyn Fn(i64) -> Result<usize>,
) -> Result<Entries> {
    let epochs: BTreeSet<u64> = at.iter().flatten().copied().collect();
    let mut out = Entries::default();
    if epochs.is_empty() {
        return Ok(out);
    }
    let list: Vec<String> = epochs.iter().map(|e| e.to_string()).collect();
    let sql = format!("{select} WHERE epoch IN ({})", list.join(", "));
    for b in Ledger::query(ctx, &sql).await? {
        let owner = col_i64(&b, 0);
        let peer = col_i64(&b, 1);
        // owner, peer, one or two floats, epoch
        let floats = b.num_columns() - 3;
        let x = b.column(2).as_primitive::<Float64Type>();
        let y = (floats == 2).then(|| b.column(3).as_primitive::<Float64Type>());
        let epoch = col_i64(&b, 2 + floats);
        for r in 0..b.num_rows() {
            let o = index(owner.value(r))?;
            if at[o] != Some(epoch.value(r) as u64) {
                continue;
            }
            out.owner.push(o as u32);
            out.peer.push(index(peer.value(r))? as u32);
            out.a.push(x.value(r));
            if let Some(y) = y {
                out.b.push(y.value(r));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Entries;

    /// Owners' runs in any order, one run out of order inside: sorted as a
    /// full sort would.
    #[test]
    fn entries_sort_by_owner_then_peer() {
        let e = Entries {
            owner: vec![2, 2, 0, 0, 0, 1, 2],
            peer: vec![1, 5, 3, 1, 2, 0, 7],
            a: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            b: vec![],
        };
        let s = e.sorted(3);
        assert_eq!(s.owner, vec![0, 0, 0, 1, 2, 2, 2]);
        assert_eq!(s.peer, vec![1, 2, 3, 0, 1, 5, 7]);
        assert_eq!(s.a, vec![3.0, 4.0, 2.0, 5.0, 0.0, 1.0, 6.0]);
        assert!(s.b.is_empty());
    }
}
