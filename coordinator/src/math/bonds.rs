//! Bonds accumulate: B'_ij = B_ij + S_i·w_ij (i bonds to those it ranks), and
//! β_ij = B'_ij / Σ_k B'_kj is i's share of all bonds in j.
//!
//! Bonds are kept in closed form, so the ledger grows with what changed. Per
//! holder i, a *segment* starts at epoch e0 whenever i's row in force changes
//! (a new row, or its expiry), when i is due a checkpoint, or when its stake
//! sum would leave the Int64 range. It records the bonds after e0 and the row
//! in force; while it lasts,
//!
//! ```text
//! B_ij(e0) = B_ij(e0 − 1) + w_ij · S_i(e0)                (the recurrence, once)
//! B_ij(e)  = B_ij(e0) + w_ij · Σ_{t = e0+1..e} S_i(t)     (e > e0)
//! ```
//!
//! which is SPEC 5.2's recurrence B' = B + S·w summed in real arithmetic. In
//! floating point both lines are evaluated one way only, by [`closed_form`]:
//! the stake sum exactly as an integer, one conversion to f64 (round to
//! nearest), one multiply, one add. The loops here, the plan `bonds.sql` and
//! the ledger view `bonds_in_force` all use that order, so they give the same
//! bits.
//!
//! Column sums Σ_k B'_kj are taken at a scale per column j, fixed by that
//! column's largest bond ([`fixed::shift_for_max`]), and β uses the same
//! truncated terms in its numerator as in its denominator: Σ_k β_kj is 1 to
//! the rounding of one division, whether bonds are 10^12 base units or 10^-3.

use super::fixed;
use super::{Bonds, Column, Edges};

/// Every holder starts a new segment at least once per this many epochs (at
/// the epochs where `epoch % CHECKPOINT_EPOCHS == uid % CHECKPOINT_EPOCHS`),
/// so a reader of bonds at epoch e needs only `bonds` partitions in
/// `(e − 64, e]`, and each epoch rewrites about 1/64 of the bonds, spread
/// evenly rather than all at once.
pub const CHECKPOINT_EPOCHS: u64 = 64;

/// Whether the holder with this uid is due a checkpoint at `epoch`.
pub fn checkpoint_due(epoch: u64, uid: u32) -> bool {
    epoch % CHECKPOINT_EPOCHS == uid as u64 % CHECKPOINT_EPOCHS
}

/// The closed form, the only way a bond is evaluated:
/// `bond + weight · (stake as f64)`, with `stake` an exact integer sum of the
/// holder's stake.
#[inline]
pub fn closed_form(bond: f64, weight: f64, stake: u64) -> f64 {
    bond + weight * stake as f64
}

/// Bonds of every holder as segments, in index space: the entries sorted by
/// `(holder, peer)`, and per holder the segment's start and stake sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segments {
    /// Holder i.
    pub holder: Column<u32>,
    /// Peer j.
    pub peer: Column<u32>,
    /// B_ij(e0): the bond after the segment's first epoch.
    pub bond: Column<f64>,
    /// w_ij of the row in force through the segment (0 if none).
    pub weight: Column<f64>,
    /// Per holder: the epoch its segment started.
    pub start: Vec<u64>,
    /// Per holder: Σ S_i over the segment's epochs after its first (0 in
    /// the first; at most 2^63 − 1).
    pub stake: Vec<u64>,
}

impl Segments {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.holder.len()
    }

    /// True when no holder has an entry.
    pub fn is_empty(&self) -> bool {
        self.holder.is_empty()
    }

    /// Segments that hold `bonds` as they are and no row, as if each holder's
    /// segment had just begun (for tests and for starting from bonds computed
    /// elsewhere).
    pub fn from_bonds(bonds: &Bonds, n: usize) -> Segments {
        Segments {
            holder: bonds.holder.clone().into(),
            peer: bonds.peer.clone().into(),
            bond: bonds.bond.clone().into(),
            weight: vec![0.0; bonds.len()].into(),
            start: vec![0; n],
            stake: vec![0; n],
        }
    }

    /// B' in closed form; zero bonds are dropped.
    pub fn bonds(&self) -> Bonds {
        let mut out = Bonds::default();
        for e in 0..self.len() {
            let h = self.holder[e];
            let v = closed_form(self.bond[e], self.weight[e], self.stake[h as usize]);
            if v > 0.0 {
                out.holder.push(h);
                out.peer.push(self.peer[e]);
                out.bond.push(v);
            }
        }
        out
    }

    /// This epoch's segments from the previous epoch's: a holder goes on
    /// while its row in `edges` is the one its segment holds, bit for bit,
    /// it is not `due` a checkpoint and its stake sum stays within Int64;
    /// otherwise (or when it is new) it starts a segment at `epoch` from its
    /// bonds after the previous epoch and the row in force. `edges` are the
    /// rows in force, `stake` the stake before this epoch, both by index.
    pub fn advance(&self, epoch: u64, stake: &[u64], edges: &Edges, due: &[bool]) -> Segments {
        let parts = (rayon::current_num_threads() * 4).clamp(1, stake.len().div_ceil(4096).max(1));
        self.advance_in(epoch, stake, edges, due, parts)
    }

    /// [`Segments::advance`] in `parts` ranges of holders: they are
    /// independent, so the ranges run side by side and their entries are
    /// laid end to end.
    pub(crate) fn advance_in(
        &self,
        epoch: u64,
        stake: &[u64],
        edges: &Edges,
        due: &[bool],
        parts: usize,
    ) -> Segments {
        use rayon::prelude::*;
        let n = stake.len();
        let bounds: Vec<(usize, usize)> = (0..parts)
            .map(|p| (n * p / parts, n * (p + 1) / parts))
            .collect();
        let done: Vec<Part> = bounds
            .into_par_iter()
            .map(|(lo, hi)| self.advance_range(epoch, stake, edges, due, lo, hi))
            .collect();
        Segments {
            holder: gather(done.iter().map(|d| &d.holder[..]).collect()).into(),
            peer: gather(done.iter().map(|d| &d.peer[..]).collect()).into(),
            bond: gather(done.iter().map(|d| &d.bond[..]).collect()).into(),
            weight: gather(done.iter().map(|d| &d.weight[..]).collect()).into(),
            start: done.iter().flat_map(|d| d.start.iter().copied()).collect(),
            stake: done.iter().flat_map(|d| d.stake.iter().copied()).collect(),
        }
    }

    /// [`Segments::advance`] for holders `lo..hi`.
    fn advance_range(
        &self,
        epoch: u64,
        stake: &[u64],
        edges: &Edges,
        due: &[bool],
        lo: usize,
        hi: usize,
    ) -> Part {
        let lo_h = lo as u32;
        let mut a = self.holder.partition_point(|h| *h < lo_h);
        let mut b = edges.src.partition_point(|s| *s < lo_h);
        let a_end = self.holder.partition_point(|h| (*h as usize) < hi);
        let b_end = edges.src.partition_point(|s| (*s as usize) < hi);
        let cap = (a_end - a).max(b_end - b);
        let mut holders: Vec<u32> = Vec::with_capacity(cap);
        let mut peers: Vec<u32> = Vec::with_capacity(cap);
        let mut bonds: Vec<f64> = Vec::with_capacity(cap);
        let mut weights: Vec<f64> = Vec::with_capacity(cap);
        let mut starts = Vec::with_capacity(hi - lo);
        let mut sums = Vec::with_capacity(hi - lo);
        for (i, &s) in stake.iter().enumerate().take(hi).skip(lo) {
            let h = i as u32;
            let a0 = a;
            while a < a_end && self.holder[a] == h {
                a += 1;
            }
            let b0 = b;
            while b < b_end && edges.src[b] == h {
                b += 1;
            }
            let known = i < self.start.len();
            let sum = known
                .then(|| self.stake[i].checked_add(s))
                .flatten()
                .filter(|s| *s <= i64::MAX as u64);
            let goes_on = sum.is_some()
                && !due.get(i).copied().unwrap_or(false)
                && self.holds_row(a0..a, edges, b0..b);
            if let (true, Some(sum)) = (goes_on, sum) {
                holders.extend_from_slice(&self.holder[a0..a]);
                peers.extend_from_slice(&self.peer[a0..a]);
                bonds.extend_from_slice(&self.bond[a0..a]);
                weights.extend_from_slice(&self.weight[a0..a]);
                starts.push(self.start[i]);
                sums.push(sum);
                continue;
            }
            // A new segment: merge the bonds held so far with the row in force,
            // and take this epoch's step of the recurrence.
            let held = if known { self.stake[i] } else { 0 };
            let (mut x, mut y) = (a0, b0);
            while x < a || y < b {
                let px = (x < a).then(|| self.peer[x]);
                let py = (y < b).then(|| edges.dst[y]);
                let before = |x: usize| closed_form(self.bond[x], self.weight[x], held);
                let (peer, prev, weight) = match (px, py) {
                    (Some(p), Some(q)) if p == q => {
                        x += 1;
                        y += 1;
                        (p, before(x - 1), edges.weight[y - 1])
                    }
                    (Some(p), q) if q.is_none_or(|q| p < q) => {
                        x += 1;
                        (p, before(x - 1), 0.0)
                    }
                    (_, Some(q)) => {
                        y += 1;
                        (q, 0.0, edges.weight[y - 1])
                    }
                    (_, None) => unreachable!("loop condition"),
                };
                let bond = closed_form(prev, weight, s);
                if bond > 0.0 || weight != 0.0 {
                    holders.push(h);
                    peers.push(peer);
                    bonds.push(bond);
                    weights.push(weight);
                }
            }
            starts.push(epoch);
            sums.push(0);
        }
        Part {
            holder: holders,
            peer: peers,
            bond: bonds,
            weight: weights,
            start: starts,
            stake: sums,
        }
    }

    fn holds_row(
        &self,
        seg: std::ops::Range<usize>,
        edges: &Edges,
        row: std::ops::Range<usize>,
    ) -> bool {
        let mine = seg
            .filter(|e| self.weight[*e] != 0.0)
            .map(|e| (self.peer[e], self.weight[e].to_bits()));
        let theirs = row
            .filter(|e| edges.weight[*e] != 0.0)
            .map(|e| (edges.dst[e], edges.weight[e].to_bits()));
        mine.eq(theirs)
    }
}

/// One range of holders' segments, before they are laid end to end.
struct Part {
    holder: Vec<u32>,
    peer: Vec<u32>,
    bond: Vec<f64>,
    weight: Vec<f64>,
    start: Vec<u64>,
    stake: Vec<u64>,
}

/// Pieces laid end to end, copied side by side into one buffer.
pub fn gather<T: Copy + Default + Send + Sync>(pieces: Vec<&[T]>) -> Vec<T> {
    use rayon::prelude::*;
    let total = pieces.iter().map(|p| p.len()).sum();
    let mut out = vec![T::default(); total];
    let mut slots = Vec::with_capacity(pieces.len());
    let mut rest = &mut out[..];
    for p in &pieces {
        let (here, tail) = rest.split_at_mut(p.len());
        slots.push(here);
        rest = tail;
    }
    slots
        .into_par_iter()
        .zip(pieces)
        .for_each(|(to, from)| to.copy_from_slice(from));
    out
}

/// Per peer j, the scale of its column: [`fixed::shift_for_max`] of its largest bond.
pub fn column_shifts(n: usize, bonds: &Bonds, threads: usize) -> Vec<i32> {
    fixed::scatter_max_bits(n, &bonds.peer, threads, |e| bonds.bond[e])
        .into_iter()
        .map(fixed::shift_for_max)
        .collect()
}

/// Σ_k B'_kj per peer j, exact over terms ⌊B'_kj · 2^shift_j⌋.
pub fn column_sums(n: usize, bonds: &Bonds, shifts: &[i32], threads: usize) -> Vec<u128> {
    fixed::scatter_u128(n, &bonds.peer, threads, |e| {
        fixed::scale_fx(bonds.bond[e], shifts[bonds.peer[e] as usize])
    })
}

/// β_ij for bond e, from the same fixed-point terms as its column sum.
#[inline]
pub fn share(bond: f64, shift: i32, column: u128) -> f64 {
    if column == 0 {
        return 0.0;
    }
    (fixed::scale_fx(bond, shift) as f64 / column as f64).min(1.0)
}
