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
    let (si, di, w) = (&carried.src, &carried.dst, &carried.weight);
    let mut new_rows: Vec<Option<&AcceptedRow>> = vec![None; n];
    for r in accepted {
        new_rows[r.src as usize] = Some(r);
    }
    let mut out = InForce {
        weights_epoch: vec![None; n],
        ..Default::default()
    };
    let cap = si.len() + accepted.iter().map(|r| r.dst.len()).sum::<usize>();
    let mut src: Vec<u32> = Vec::with_capacity(cap);
    let mut dst: Vec<u32> = Vec::with_capacity(cap);
    let mut weight: Vec<f64> = Vec::with_capacity(cap);
    let mut c = 0usize;
    for (i, new_row) in new_rows.iter().enumerate() {
        let start = c;
        while c < si.len() && si[c] as usize == i {
            c += 1;
        }
        if let Some(r) = new_row {
            out.weights_epoch[i] = Some(epoch);
            if !r.dst.is_empty() {
                out.rows += 1;
            }
            src.extend(std::iter::repeat_n(i as u32, r.dst.len()));
            dst.extend_from_slice(&r.dst);
            weight.extend_from_slice(&r.weight);
            continue;
        }
        let Some(we) = carried_epoch.get(i).copied().flatten() else {
            continue;
        };
        if ttl > 0 && epoch.saturating_sub(we) >= ttl {
            continue;
        }
        if meet_k.is_some_and(|k| c - start < k as usize) && c > start {
            out.below_k.push((registry.peers()[i].uid, we, c - start));
            continue;
        }
        out.weights_epoch[i] = Some(we);
        if c > start {
            out.rows += 1;
        }
        src.extend_from_slice(&si[start..c]);
        dst.extend_from_slice(&di[start..c]);
        weight.extend_from_slice(&w[start..c]);
    }
    out.edges = Edges::new(src, dst, weight);
    Ok(out)
}
