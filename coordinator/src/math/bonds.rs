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
use super::{Alloc, Block, Bonds, Column, Kept, Loc, Rows};

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

/// One piece of the bond entries: columns of equal length, sorted by
/// `(holder, peer)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entries {
    /// Holder i.
    pub holder: Column<u32>,
    /// Peer j.
    pub peer: Column<u32>,
    /// B_ij(e0): the bond after the segment's first epoch.
    pub bond: Column<f64>,
    /// w_ij of the row in force through the segment (0 if none).
    pub weight: Column<f64>,
}

impl Entries {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.holder.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.holder.is_empty()
    }

    /// Entries `lo..hi`, sharing the buffers.
    pub fn slice(&self, lo: usize, hi: usize) -> Entries {
        Entries {
            holder: self.holder.slice(lo, hi - lo),
            peer: self.peer.slice(lo, hi - lo),
            bond: self.bond.slice(lo, hi - lo),
            weight: self.weight.slice(lo, hi - lo),
        }
    }
}

/// Bonds of every holder as segments, in index space: the entries sorted by
/// `(holder, peer)`, and per holder the segment's start and stake sum.
///
/// The entries are pieces laid end to end, and no holder's entries are split
/// between two. An epoch in which few rows changed keeps most holders'
/// segments as they were: their pieces share the previous epoch's buffers
/// (often the epoch cache's mapped pages) instead of copying 25.6 M entries
/// into fresh memory, which cost most of a second a 1 % epoch.
#[derive(Debug, Clone, Default)]
pub struct Segments {
    /// The entries, in pieces.
    pub parts: Vec<Entries>,
    /// Per holder: the epoch its segment started.
    pub start: Vec<u64>,
    /// Per holder: Σ S_i over the segment's epochs after its first (0 in
    /// the first; at most 2^63 − 1).
    pub stake: Vec<u64>,
}

/// Equal when the entries laid end to end are, however they are cut.
impl PartialEq for Segments {
    fn eq(&self, other: &Self) -> bool {
        self.start == other.start
            && self.stake == other.stake
            && self.len() == other.len()
            && *self.entries() == *other.entries()
    }
}

impl Segments {
    /// Segments of one piece of entries.
    pub fn of(entries: Entries, start: Vec<u64>, stake: Vec<u64>) -> Segments {
        Segments {
            parts: vec![entries],
            start,
            stake,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Entries::len).sum()
    }

    /// True when no holder has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries as one piece: shared when they are one already, copied
    /// otherwise (tests, the loops, readers that want plain columns).
    pub fn entries(&self) -> std::borrow::Cow<'_, Entries> {
        use std::borrow::Cow;
        match self.parts.as_slice() {
            [] => Cow::Owned(Entries::default()),
            [one] => Cow::Borrowed(one),
            parts => Cow::Owned(Entries {
                holder: super::cat(parts, |p| &p.holder),
                peer: super::cat(parts, |p| &p.peer),
                bond: super::cat(parts, |p| &p.bond),
                weight: super::cat(parts, |p| &p.weight),
            }),
        }
    }

    /// Segments that hold `bonds` as they are and no row, as if each holder's
    /// segment had just begun (for tests and for starting from bonds computed
    /// elsewhere).
    pub fn from_bonds(bonds: &Bonds, n: usize) -> Segments {
        Segments::of(
            Entries {
                holder: bonds.holder.clone().into(),
                peer: bonds.peer.clone().into(),
                bond: bonds.bond.clone().into(),
                weight: vec![0.0; bonds.len()].into(),
            },
            vec![0; n],
            vec![0; n],
        )
    }

    /// B' in closed form; zero bonds are dropped.
    pub fn bonds(&self) -> Bonds {
        let mut out = Bonds::default();
        for p in &self.parts {
            for e in 0..p.len() {
                let h = p.holder[e];
                let v = closed_form(p.bond[e], p.weight[e], self.stake[h as usize]);
                if v > 0.0 {
                    out.holder.push(h);
                    out.peer.push(p.peer[e]);
                    out.bond.push(v);
                }
            }
        }
        out
    }

    /// Each holder's piece and entries.
    pub(crate) fn locate(&self, n: usize) -> Vec<Loc> {
        super::locate(
            self.parts.iter().map(|p| &p.holder),
            n.max(self.start.len()),
        )
    }

    /// This epoch's segments from the previous epoch's: a holder goes on
    /// while its row in `edges` is the one its segment holds, bit for bit,
    /// it is not `due` a checkpoint and its stake sum stays within Int64;
    /// otherwise (or when it is new) it starts a segment at `epoch` from its
    /// bonds after the previous epoch and the row in force. `edges` are the
    /// rows in force, `stake` the stake before this epoch, both by index.
    pub fn advance(&self, epoch: u64, stake: &[u64], edges: &Rows, due: &[bool]) -> Segments {
        let alloc: Alloc = &|n| Block::in_memory(n, 2);
        self.advance_into(epoch, stake, edges, due, (alloc, false))
    }

    /// [`Segments::advance`], the new segments' entries laid out in the
    /// block `alloc` gives (two Float64 columns: bond, weight). With
    /// `compact`, the entries of segments that go on are copied there too
    /// (the same segments, in one piece): pieces accumulate as segments
    /// restart between them, one batch each in the plans, and copying them
    /// here, on every core, is cheaper than the epoch cache copying them
    /// afterwards.
    pub fn advance_into(
        &self,
        epoch: u64,
        stake: &[u64],
        edges: &Rows,
        due: &[bool],
        (alloc, compact): (Alloc<'_>, bool),
    ) -> Segments {
        let parts = (rayon::current_num_threads() * 4).clamp(1, stake.len().div_ceil(4096).max(1));
        self.advance_in(epoch, stake, edges, due, parts, (alloc, compact))
    }

    /// [`Segments::advance`] in `parts` ranges of holders: they are
    /// independent, so the ranges run side by side. A first pass decides
    /// each holder's fate and counts the entries of the segments that start;
    /// a second writes those into one new piece (each entry written once,
    /// into memory touched once: fresh pages cost about 1 s per GB on the
    /// project's machine). Holders whose segments go on keep their entries
    /// where they are, as slices of the previous pieces.
    pub(crate) fn advance_in(
        &self,
        epoch: u64,
        stake: &[u64],
        edges: &Rows,
        due: &[bool],
        parts: usize,
        (alloc, compact): (Alloc<'_>, bool),
    ) -> Segments {
        use rayon::prelude::*;
        let n = stake.len();
        let locs = self.locate(n);
        let rows = edges.locate(n);
        let plans: Vec<Plan> = (0..parts)
            .into_par_iter()
            .map(|p| {
                self.plan_range(
                    epoch,
                    stake,
                    edges,
                    due,
                    (&locs, &rows),
                    (n * p / parts, n * (p + 1) / parts),
                    compact,
                )
            })
            .collect();
        let counts: Vec<usize> = plans.iter().map(|p| p.count).collect();
        let total: usize = counts.iter().sum();
        let mut block = alloc(total);
        let ([holder, peer], floats) = block.columns();
        let [bond, weight]: [&mut [f64]; 2] = floats.try_into().expect("bond and weight");
        plans
            .par_iter()
            .zip(carve(holder, &counts))
            .zip(carve(peer, &counts))
            .zip(carve(bond, &counts))
            .zip(carve(weight, &counts))
            .for_each(|((((plan, h), p), b), w)| {
                let mut out = Out {
                    holder: h,
                    peer: p,
                    bond: b,
                    weight: w,
                    at: 0,
                };
                self.write_range(plan, stake, edges, &mut out);
                debug_assert_eq!(out.at, plan.count);
            });
        let ([holder, peer], floats) = block.freeze();
        let [bond, weight] = <[Column<f64>; 2]>::try_from(floats).expect("bond and weight");
        let fresh = Entries {
            holder,
            peer,
            bond,
            weight,
        };
        // Holders that go on stay slices of the previous pieces; new
        // segments are slices of `fresh`.
        let kept = plans.iter().flat_map(|p| &p.fate).map(|fate| match *fate {
            Fate::GoesOn(l) => Kept::Old(l),
            Fate::Moves(l) => Kept::New(l.hi - l.lo),
            Fate::Starts { written, .. } => Kept::New(written),
        });
        let pieces = super::lay_out(kept, &self.parts, &fresh, total, |p, lo, hi| {
            p.slice(lo, hi)
        });
        Segments {
            parts: pieces,
            start: plans.iter().flat_map(|d| d.start.iter().copied()).collect(),
            stake: plans.iter().flat_map(|d| d.stake.iter().copied()).collect(),
        }
    }

    /// The first pass over holders `lo..hi`: who goes on, who starts a new
    /// segment, and how many entries the new segments hold.
    #[allow(clippy::too_many_arguments)]
    fn plan_range(
        &self,
        epoch: u64,
        stake: &[u64],
        edges: &Rows,
        due: &[bool],
        (locs, rows): (&[Loc], &[Loc]),
        (lo, hi): (usize, usize),
        compact: bool,
    ) -> Plan {
        let mut plan = Plan {
            lo,
            fate: Vec::with_capacity(hi - lo),
            start: Vec::with_capacity(hi - lo),
            stake: Vec::with_capacity(hi - lo),
            count: 0,
        };
        for (i, &s) in stake.iter().enumerate().take(hi).skip(lo) {
            let (seg, row) = (locs[i], rows[i]);
            let known = i < self.start.len();
            let sum = known
                .then(|| self.stake[i].checked_add(s))
                .flatten()
                .filter(|s| *s <= i64::MAX as u64);
            let goes_on = sum.is_some()
                && !due.get(i).copied().unwrap_or(false)
                && self.holds_row(seg, edges.row(row));
            if let (true, Some(sum)) = (goes_on, sum) {
                if compact {
                    plan.count += seg.hi - seg.lo;
                    plan.fate.push(Fate::Moves(seg));
                } else {
                    plan.fate.push(Fate::GoesOn(seg));
                }
                plan.start.push(self.start[i]);
                plan.stake.push(sum);
                continue;
            }
            let held = if known { self.stake[i] } else { 0 };
            let mut fate = Fate::Starts {
                held,
                seg,
                row,
                written: 0,
            };
            let mut written = 0;
            self.start_segment(&fate, s, edges, |_, _, _| written += 1);
            if let Fate::Starts { written: w, .. } = &mut fate {
                *w = written;
            }
            plan.count += written;
            plan.fate.push(fate);
            plan.start.push(epoch);
            plan.stake.push(0);
        }
        plan
    }

    /// The second pass: the entries of a range's new segments.
    fn write_range(&self, plan: &Plan, stake: &[u64], edges: &Rows, out: &mut Out<'_>) {
        for (k, fate) in plan.fate.iter().enumerate() {
            let h = (plan.lo + k) as u32;
            if let Fate::Moves(l) = *fate {
                // A segment with no entries may name no piece at all.
                let Some(p) = self.parts.get(l.part).filter(|_| l.hi > l.lo) else {
                    continue;
                };
                let to = out.at + (l.hi - l.lo);
                out.holder[out.at..to].fill(h);
                out.peer[out.at..to].copy_from_slice(&p.peer[l.lo..l.hi]);
                out.bond[out.at..to].copy_from_slice(&p.bond[l.lo..l.hi]);
                out.weight[out.at..to].copy_from_slice(&p.weight[l.lo..l.hi]);
                out.at = to;
            }
            if let Fate::Starts { .. } = fate {
                self.start_segment(fate, stake[h as usize], edges, |peer, bond, weight| {
                    out.holder[out.at] = h;
                    out.peer[out.at] = peer;
                    out.bond[out.at] = bond;
                    out.weight[out.at] = weight;
                    out.at += 1;
                })
            }
        }
    }

    /// A new segment's entries, `(peer, bond, weight)` in peer order: the
    /// bonds held so far merged with the row in force, after this epoch's
    /// step of the recurrence with stake `s`. Entries with no bond and no
    /// weight are left out.
    fn start_segment(
        &self,
        fate: &Fate,
        s: u64,
        edges: &Rows,
        mut emit: impl FnMut(u32, f64, f64),
    ) {
        let Fate::Starts { held, seg, row, .. } = *fate else {
            return;
        };
        let (a0, a) = (seg.lo, seg.hi);
        let (dst, w) = edges.row(row);
        let (b0, b) = (0, dst.len());
        let old = self.parts.get(seg.part);
        let (peers, bonds, weights): (&[u32], &[f64], &[f64]) = match old {
            Some(p) if a > a0 => (&p.peer, &p.bond, &p.weight),
            _ => (&[], &[], &[]),
        };
        let (mut x, mut y) = (a0, b0);
        while x < a || y < b {
            let px = (x < a).then(|| peers[x]);
            let py = (y < b).then(|| dst[y]);
            let before = |x: usize| closed_form(bonds[x], weights[x], held);
            let (peer, prev, weight) = match (px, py) {
                (Some(p), Some(q)) if p == q => {
                    x += 1;
                    y += 1;
                    (p, before(x - 1), w[y - 1])
                }
                (Some(p), q) if q.is_none_or(|q| p < q) => {
                    x += 1;
                    (p, before(x - 1), 0.0)
                }
                (_, Some(q)) => {
                    y += 1;
                    (q, 0.0, w[y - 1])
                }
                (_, None) => unreachable!("loop condition"),
            };
            let bond = closed_form(prev, weight, s);
            if bond > 0.0 || weight != 0.0 {
                emit(peer, bond, weight);
            }
        }
    }

    fn holds_row(&self, seg: Loc, (dst, w): (&[u32], &[f64])) -> bool {
        let (peer, weight): (&[u32], &[f64]) = match self.parts.get(seg.part) {
            Some(p) if seg.hi > seg.lo => (&p.peer[seg.lo..seg.hi], &p.weight[seg.lo..seg.hi]),
            _ => (&[], &[]),
        };
        let mine = peer
            .iter()
            .zip(weight)
            .filter(|(_, w)| **w != 0.0)
            .map(|(p, w)| (*p, w.to_bits()));
        let theirs = dst
            .iter()
            .zip(w)
            .filter(|(_, w)| **w != 0.0)
            .map(|(d, w)| (*d, w.to_bits()));
        mine.eq(theirs)
    }
}

/// What happens to one holder's segment this epoch.
enum Fate {
    /// It goes on: its entries, where they are, as they are.
    GoesOn(Loc),
    /// It goes on, its entries copied as they are into the new piece: the
    /// pieces are laid end to end again (see [`Segments::advance_into`]).
    Moves(Loc),
    /// A new one starts from the previous segment's entries `seg` (their
    /// stake sum `held`) and the row in force at `row`; it has `written`
    /// entries.
    Starts {
        held: u64,
        seg: Loc,
        row: Loc,
        written: usize,
    },
}

/// One range of holders, planned: each holder's fate, start and stake sum,
/// and how many entries its new segments hold.
struct Plan {
    lo: usize,
    fate: Vec<Fate>,
    start: Vec<u64>,
    stake: Vec<u64>,
    count: usize,
}

/// A range's place in the new piece, and how far it has written.
struct Out<'a> {
    holder: &'a mut [u32],
    peer: &'a mut [u32],
    bond: &'a mut [f64],
    weight: &'a mut [f64],
    at: usize,
}

/// Cuts `buf` into consecutive slices of `counts[p]` entries, one per part,
/// so that parts running side by side each write their own.
pub fn carve<'a, T>(mut buf: &'a mut [T], counts: &[usize]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(counts.len());
    for c in counts {
        let (here, tail) = buf.split_at_mut(*c);
        out.push(here);
        buf = tail;
    }
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

/// β_ij for bond e, from the same fixed-point terms as its column sum
/// (`column`: that exact sum rounded once to f64, [`fixed::to_f64`]).
#[inline]
pub fn share(bond: f64, shift: i32, column: f64) -> f64 {
    if column == 0.0 {
        return 0.0;
    }
    (fixed::to_f64(fixed::scale_fx(bond, shift)) / column).min(1.0)
}
