//! Rows in force (SPEC 5.1): an accepted row replaces the peer's previous
//! one; otherwise the previous row stays (until `weights_ttl` runs out); a
//! peer with no row has an all-zero row. With `rows_meet_k`, a carried row
//! must also still set the current k entries, or it leaves force (reported
//! in [`InForce::below_k`], recorded as a `below_k` rejection).

use crate::ingest::AcceptedRow;
use crate::math::Edges;
use crate::registry::Registry;
use crate::Result;

/// Rows in force and the epoch each was submitted in, by index.
#[derive(Debug, Default)]
pub struct InForce {
    /// Sorted by (src, dst).
    pub edges: Edges,
    /// Epoch of each peer's row, by index (`None`: no row).
    pub weights_epoch: Vec<Option<u64>>,
    /// Number of peers with a nonempty row.
    pub rows: usize,
    /// Carried rows withdrawn for setting fewer than k entries: (uid, epoch
    /// of the row, entries it sets).
    pub below_k: Vec<(u32, u64, usize)>,
}

/// Merges the rows in force at e−1 (`carried`, by index) with this epoch's
/// accepted rows. Peers that joined this epoch have indices past `carried`'s.
/// With `meet_k`, carried rows shorter than it leave force.
#[allow(clippy::too_many_arguments)]
pub fn in_force(
    registry: &Registry,
    epoch: u64,
    ttl: u64,
    carried: &Edges,
    carried_epoch: &[Option<u64>],
    accepted: &[AcceptedRow],
    meet_k: Option<u32>,
) -> Result<InForce> {
    let n = registry.len();
    let parts = (rayon::current_num_threads() * 4).clamp(1, n.div_ceil(4096).max(1));
    in_force_in(
        registry,
        epoch,
        ttl,
        carried,
        carried_epoch,
        accepted,
        meet_k,
        parts,
    )
}

/// [`in_force`] in `parts` ranges of peers, merged side by side and laid
/// end to end.
#[allow(clippy::too_many_arguments)]
pub(crate) fn in_force_in(
    registry: &Registry,
    epoch: u64,
    ttl: u64,
    carried: &Edges,
    carried_epoch: &[Option<u64>],
    accepted: &[AcceptedRow],
    meet_k: Option<u32>,
    parts: usize,
) -> Result<InForce> {
    use rayon::prelude::*;
    let n = registry.len();
    let mut new_rows: Vec<Option<&AcceptedRow>> = vec![None; n];
    for r in accepted {
        new_rows[r.src as usize] = Some(r);
    }
    let done: Vec<Part> = (0..parts)
        .into_par_iter()
        .map(|p| {
            let (lo, hi) = (n * p / parts, n * (p + 1) / parts);
            let mut part = Part::default();
            let (si, di, w) = (&carried.src, &carried.dst, &carried.weight);
            let mut c = si.partition_point(|s| (*s as usize) < lo);
            for (i, new_row) in new_rows.iter().enumerate().take(hi).skip(lo) {
                let start = c;
                while c < si.len() && si[c] as usize == i {
                    c += 1;
                }
                if let Some(r) = new_row {
                    part.weights_epoch.push(Some(epoch));
                    if !r.dst.is_empty() {
                        part.rows += 1;
                    }
                    part.src.extend(std::iter::repeat_n(i as u32, r.dst.len()));
                    part.dst.extend_from_slice(&r.dst);
                    part.weight.extend_from_slice(&r.weight);
                    continue;
                }
                let Some(we) = carried_epoch.get(i).copied().flatten() else {
                    part.weights_epoch.push(None);
                    continue;
                };
                if ttl > 0 && epoch.saturating_sub(we) >= ttl {
                    part.weights_epoch.push(None);
                    continue;
                }
                if meet_k.is_some_and(|k| c - start < k as usize) && c > start {
                    part.below_k.push((registry.peers()[i].uid, we, c - start));
                    part.weights_epoch.push(None);
                    continue;
                }
                part.weights_epoch.push(Some(we));
                if c > start {
                    part.rows += 1;
                }
                part.src.extend_from_slice(&si[start..c]);
                part.dst.extend_from_slice(&di[start..c]);
                part.weight.extend_from_slice(&w[start..c]);
            }
            part
        })
        .collect();
    use crate::math::bonds::gather;
    Ok(InForce {
        edges: Edges::new(
            gather(done.iter().map(|d| &d.src[..]).collect()),
            gather(done.iter().map(|d| &d.dst[..]).collect()),
            gather(done.iter().map(|d| &d.weight[..]).collect()),
        ),
        weights_epoch: done
            .iter()
            .flat_map(|d| d.weights_epoch.iter().copied())
            .collect(),
        rows: done.iter().map(|d| d.rows).sum(),
        below_k: done.into_iter().flat_map(|d| d.below_k).collect(),
    })
}

/// One range of peers' rows in force.
#[derive(Default)]
struct Part {
    src: Vec<u32>,
    dst: Vec<u32>,
    weight: Vec<f64>,
    weights_epoch: Vec<Option<u64>>,
    rows: usize,
    below_k: Vec<(u32, u64, usize)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Source;
    use crate::registry::Peer;
    use faceblock_schemas::PublicKey;

    /// Peers merged in ranges side by side: the same rows in force, the
    /// same epochs, counts and withdrawals as in one pass.
    #[test]
    fn any_split_gives_the_same_rows_in_force() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let n = 50u32;
        let registry = Registry::new(
            (0..n)
                .map(|uid| Peer {
                    uid: uid * 2,
                    public_key: PublicKey([uid as u8; 32]),
                    modality: "TEXT".into(),
                    registered_epoch: 0,
                })
                .collect(),
        );
        // Peers 40.. joined this epoch: no carried row.
        let (mut src, mut dst, mut weight) = (vec![], vec![], vec![]);
        let mut carried_epoch = vec![];
        for i in 0..40u32 {
            let len = rng.gen_range(0..5);
            carried_epoch.push((len > 0 || rng.gen_bool(0.5)).then(|| rng.gen_range(0..9)));
            for j in 0..len {
                src.push(i);
                dst.push((i + 1 + j) % n);
                weight.push(rng.gen());
            }
        }
        let carried = Edges::new(src, dst, weight);
        let accepted: Vec<AcceptedRow> = (0..n)
            .filter(|_| rng.gen_bool(0.3))
            .map(|i| AcceptedRow {
                src: i,
                dst: vec![(i + 3) % n],
                weight: vec![1.0],
                source: Source::Explicit,
            })
            .collect();
        let run = |parts| {
            in_force_in(
                &registry,
                9,
                5,
                &carried,
                &carried_epoch,
                &accepted,
                Some(2),
                parts,
            )
            .unwrap()
        };
        let whole = run(1);
        assert!(!whole.below_k.is_empty(), "the case withdraws short rows");
        assert!(whole.weights_epoch.iter().any(|e| e.is_none()));
        for parts in [2, 7, 50, 80] {
            let split = run(parts);
            assert_eq!(split.edges, whole.edges, "{parts} ranges");
            assert_eq!(split.weights_epoch, whole.weights_epoch, "{parts} ranges");
            assert_eq!(split.rows, whole.rows, "{parts} ranges");
            assert_eq!(split.below_k, whole.below_k, "{parts} ranges");
        }
    }
}
