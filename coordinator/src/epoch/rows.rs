//! Rows in force (SPEC 5.1): an accepted row replaces the peer's previous
//! one; otherwise the previous row stays (until `weights_ttl` runs out); a
//! peer with no row has an all-zero row. With `rows_meet_k`, a carried row
//! must also still set the current k entries, or it leaves force (reported
//! in [`InForce::below_k`], recorded as a `below_k` rejection).

use crate::ingest::AcceptedRow;
use crate::math::{Alloc, Column, Edges, Kept, Loc, Rows};
use crate::registry::Registry;
use crate::Result;

/// Rows in force and the epoch each was submitted in, by index.
#[derive(Debug, Default)]
pub struct InForce {
    /// Sorted by (src, dst); rows carried unchanged are slices of the
    /// previous epoch's.
    pub edges: Rows,
    /// Epoch of each peer's row, by index (`None`: no row).
    pub weights_epoch: Vec<Option<u64>>,
    /// Number of peers with a nonempty row.
    pub rows: usize,
    /// Carried rows withdrawn for setting fewer than k entries: (uid, epoch
    /// of the row, entries it sets).
    pub below_k: Vec<(u32, u64, usize)>,
}

/// Merges the rows in force at e−1 (`carried`, by index, in any number of
/// pieces) with this epoch's accepted rows. Peers that joined this epoch
/// have indices past `carried`'s. With `meet_k`, carried rows shorter than
/// it leave force.
#[allow(clippy::too_many_arguments)]
pub fn in_force(
    registry: &Registry,
    epoch: u64,
    ttl: u64,
    carried: &Rows,
    carried_epoch: &[Option<u64>],
    accepted: &[AcceptedRow],
    meet_k: Option<u32>,
    alloc: Alloc<'_>,
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
        alloc,
    )
}

/// [`in_force`] in `parts` ranges of peers, side by side: a first pass picks
/// each peer's row and counts the new rows' entries, a second writes those
/// into one new piece (every entry written once, into memory touched once).
/// Carried rows stay where they are: runs of them are slices of `carried`'s
/// pieces.
#[allow(clippy::too_many_arguments)]
pub(crate) fn in_force_in(
    registry: &Registry,
    epoch: u64,
    ttl: u64,
    carried: &Rows,
    carried_epoch: &[Option<u64>],
    accepted: &[AcceptedRow],
    meet_k: Option<u32>,
    parts: usize,
    alloc: Alloc<'_>,
) -> Result<InForce> {
    use crate::math::bonds::carve;
    use rayon::prelude::*;
    let n = registry.len();
    let mut new_rows: Vec<Option<&AcceptedRow>> = vec![None; n];
    for r in accepted {
        new_rows[r.src as usize] = Some(r);
    }
    let at = carried.locate(n);
    let plans: Vec<Part> = (0..parts)
        .into_par_iter()
        .map(|p| {
            let (lo, hi) = (n * p / parts, n * (p + 1) / parts);
            let mut part = Part {
                lo,
                ..Part::default()
            };
            for (i, new_row) in new_rows.iter().enumerate().take(hi).skip(lo) {
                let (we, take) = pick(
                    registry,
                    i,
                    *new_row,
                    epoch,
                    ttl,
                    carried_epoch,
                    at[i],
                    meet_k,
                    &mut part.below_k,
                );
                part.weights_epoch.push(we);
                let (len, new) = match take {
                    Take::New(r) => (r.dst.len(), r.dst.len()),
                    Take::Carried(l) => (l.hi - l.lo, 0),
                    Take::Nothing => (0, 0),
                };
                part.rows += usize::from(len > 0);
                part.count += new;
                part.take.push(take);
            }
            part
        })
        .collect();
    let counts: Vec<usize> = plans.iter().map(|p| p.count).collect();
    let total: usize = counts.iter().sum();
    let mut block = alloc(total);
    let ([src, dst], floats) = block.columns();
    let [weight]: [&mut [f64]; 1] = floats.try_into().expect("a rows block holds weight");
    plans
        .par_iter()
        .zip(carve(src, &counts))
        .zip(carve(dst, &counts))
        .zip(carve(weight, &counts))
        .for_each(|(((part, s), d), w)| {
            let mut at = 0;
            for (k, take) in part.take.iter().enumerate() {
                let Take::New(r) = take else { continue };
                let to = at + r.dst.len();
                s[at..to].fill((part.lo + k) as u32);
                d[at..to].copy_from_slice(&r.dst);
                w[at..to].copy_from_slice(&r.weight);
                at = to;
            }
        });
    let ([src, dst], floats) = block.freeze();
    let [weight] = <[Column<f64>; 1]>::try_from(floats).expect("weight");
    let fresh = Edges { src, dst, weight };
    // Carried rows stay slices of `carried`; new rows are slices of `fresh`.
    let kept = plans.iter().flat_map(|p| &p.take).map(|take| match take {
        Take::New(r) => Kept::New(r.dst.len()),
        Take::Carried(l) => Kept::Old(*l),
        Take::Nothing => Kept::New(0),
    });
    let pieces = crate::math::lay_out(kept, &carried.parts, &fresh, total, |p, lo, hi| {
        p.slice(lo, hi)
    });
    Ok(InForce {
        edges: Rows { parts: pieces },
        weights_epoch: plans
            .iter()
            .flat_map(|d| d.weights_epoch.iter().copied())
            .collect(),
        rows: plans.iter().map(|d| d.rows).sum(),
        below_k: plans.into_iter().flat_map(|d| d.below_k).collect(),
    })
}

/// Which row is in force for peer `i`: this epoch's, the carried one
/// (at `carried` among the previous rows), or none; and the epoch of
/// that row. A carried row below k is withdrawn and noted in `below_k`.
#[allow(clippy::too_many_arguments)]
fn pick<'a>(
    registry: &Registry,
    i: usize,
    new_row: Option<&'a AcceptedRow>,
    epoch: u64,
    ttl: u64,
    carried_epoch: &[Option<u64>],
    carried: Loc,
    meet_k: Option<u32>,
    below_k: &mut Vec<(u32, u64, usize)>,
) -> (Option<u64>, Take<'a>) {
    if let Some(r) = new_row {
        return (Some(epoch), Take::New(r));
    }
    let Some(we) = carried_epoch.get(i).copied().flatten() else {
        return (None, Take::Nothing);
    };
    if ttl > 0 && epoch.saturating_sub(we) >= ttl {
        return (None, Take::Nothing);
    }
    let set = carried.hi - carried.lo;
    if meet_k.is_some_and(|k| set < k as usize) && set > 0 {
        below_k.push((registry.peers()[i].uid, we, set));
        return (None, Take::Nothing);
    }
    (Some(we), Take::Carried(carried))
}

/// A peer's row in force.
enum Take<'a> {
    /// This epoch's accepted row.
    New(&'a AcceptedRow),
    /// These entries of the carried rows.
    Carried(Loc),
    /// None.
    Nothing,
}

/// One range of peers, planned.
#[derive(Default)]
struct Part<'a> {
    lo: usize,
    take: Vec<Take<'a>>,
    weights_epoch: Vec<Option<u64>>,
    rows: usize,
    count: usize,
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
        let one = Edges::new(src, dst, weight);
        // The same rows cut into pieces at row boundaries, as a cache entry
        // written in parts hands them over.
        let cuts =
            [0, 7, 8, 31, one.len()].map(|c| one.src.partition_point(|s| *s < c.min(40) as u32));
        let cut = Rows {
            parts: cuts.windows(2).map(|w| one.slice(w[0], w[1])).collect(),
        };
        assert_eq!(cut.parts.len(), 4);
        let accepted: Vec<AcceptedRow> = (0..n)
            .filter(|_| rng.gen_bool(0.3))
            .map(|i| AcceptedRow {
                src: i,
                dst: vec![(i + 3) % n],
                weight: vec![1.0],
                source: Source::Explicit,
            })
            .collect();
        let carried = Rows::from(one.clone());
        let run_on = |carried: &Rows, parts| {
            in_force_in(
                &registry,
                9,
                5,
                carried,
                &carried_epoch,
                &accepted,
                Some(2),
                parts,
                &|n| crate::math::Block::in_memory(n, 1),
            )
            .unwrap()
        };
        let run = |parts| run_on(&carried, parts);
        let whole = run(1);
        assert!(!whole.below_k.is_empty(), "the case withdraws short rows");
        // Carried rows stay where they were: pieces that are slices of
        // `carried`, between pieces of the new rows.
        let at = one.src.as_ptr() as usize;
        let shared = |p: &Edges| (at..at + 4 * one.len()).contains(&(p.src.as_ptr() as usize));
        assert!(whole.edges.parts.iter().any(shared));
        assert!(!whole.edges.parts.iter().all(shared));
        assert!(whole.weights_epoch.iter().any(|e| e.is_none()));
        for parts in [2, 7, 50, 80] {
            let split = run(parts);
            assert_eq!(split.edges, whole.edges, "{parts} ranges");
            assert_eq!(split.weights_epoch, whole.weights_epoch, "{parts} ranges");
            assert_eq!(split.rows, whole.rows, "{parts} ranges");
            assert_eq!(split.below_k, whole.below_k, "{parts} ranges");
            // Carried rows in pieces: the same, and still not copied.
            let pieces = run_on(&cut, parts);
            assert_eq!(pieces.edges, whole.edges, "{parts} ranges, pieces");
            assert_eq!(pieces.weights_epoch, whole.weights_epoch);
            assert_eq!(pieces.below_k, whole.below_k);
            assert!(pieces.edges.parts.iter().any(shared));
        }
    }
}
