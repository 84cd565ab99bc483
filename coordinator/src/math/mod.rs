//! The epoch arithmetic of SPEC 5.2, one module per quantity, run over sparse
//! edges (rows in force as `(src, dst, weight)` sorted by `(src, dst)`): never an
//! n×n matrix.
//!
//! Every sum goes through [`fixed`]: terms become integers (stake-weighted
//! terms exactly, from the bits of the weight; others at a scale chosen per
//! sum so no stake distribution loses them) and are added as integers, so a
//! result is identical to the last bit whatever the number of threads or
//! partitions (SPEC 8). `exp` is `libm`'s, which is portable.
//!
//! [`compute`] runs the whole section in the order the SPEC writes it.

pub mod block;
pub mod bonds;
pub mod clip;
pub mod consensus;
pub mod dense;
pub mod dividends;
pub mod emission;
pub mod fixed;
pub mod incentive;
pub mod peg;
pub mod plans;
pub mod rank;
pub mod trust;
pub mod udf;

pub use block::{Alloc, Block};
pub use bonds::{Entries, Segments};
use faceblock_schemas::{Consensus, Params};

/// A column of the epoch's edges or bond entries: an Arrow buffer, so that
/// the plans' tables, the ledger builders and the epoch cache share one copy
/// (tens of millions of entries) instead of each making its own.
pub type Column<T> = arrow::buffer::ScalarBuffer<T>;

/// Rows in force in index space (index = position of the uid in the sorted
/// registry), sorted by `(src, dst)`, each row normalised to sum to 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Edges {
    /// Row owner (the peer setting the weight).
    pub src: Column<u32>,
    /// Peer being weighted.
    pub dst: Column<u32>,
    /// Normalised weight `w_ij`.
    pub weight: Column<f64>,
}

impl Edges {
    /// Edges from owned columns (no copy).
    pub fn new(src: Vec<u32>, dst: Vec<u32>, weight: Vec<f64>) -> Self {
        Self {
            src: src.into(),
            dst: dst.into(),
            weight: weight.into(),
        }
    }
}

impl Edges {
    /// Number of edges.
    pub fn len(&self) -> usize {
        self.src.len()
    }

    /// True when no row is in force.
    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }

    /// Edges `lo..hi`, sharing the buffers.
    pub fn slice(&self, lo: usize, hi: usize) -> Edges {
        Edges {
            src: self.src.slice(lo, hi - lo),
            dst: self.dst.slice(lo, hi - lo),
            weight: self.weight.slice(lo, hi - lo),
        }
    }
}

/// Rows in force as pieces laid end to end, sorted by `(src, dst)` across
/// them, no row split between two. An epoch in which few peers sent a new
/// row keeps the others' rows where they were, as slices of the previous
/// epoch's buffers (the epoch cache's mapped pages), instead of copying
/// 25.6 M entries into fresh memory; only the new rows are written.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// The pieces.
    pub parts: Vec<Edges>,
}

impl From<Edges> for Rows {
    fn from(e: Edges) -> Rows {
        Rows { parts: vec![e] }
    }
}

/// Equal when the rows laid end to end are, however they are cut.
impl PartialEq for Rows {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && *self.entries() == *other.entries()
    }
}

impl Rows {
    /// Number of edges.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Edges::len).sum()
    }

    /// True when no row is in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows as one piece: shared when they are one already, copied
    /// otherwise (the loops, median clipping, tests).
    pub fn entries(&self) -> std::borrow::Cow<'_, Edges> {
        use std::borrow::Cow;
        match self.parts.as_slice() {
            [] => Cow::Owned(Edges::default()),
            [one] => Cow::Borrowed(one),
            parts => Cow::Owned(Edges {
                src: cat(parts, |p| &p.src),
                dst: cat(parts, |p| &p.dst),
                weight: cat(parts, |p| &p.weight),
            }),
        }
    }

    /// Each peer's row: its piece and entries.
    pub(crate) fn locate(&self, n: usize) -> Vec<Loc> {
        locate(self.parts.iter().map(|p| &p.src), n)
    }

    /// The `(dst, weight)` of the row at `l`.
    pub(crate) fn row(&self, l: Loc) -> (&[u32], &[f64]) {
        match self.parts.get(l.part) {
            Some(p) if l.hi > l.lo => (&p.dst[l.lo..l.hi], &p.weight[l.lo..l.hi]),
            _ => (&[], &[]),
        }
    }
}

/// One column of pieces laid end to end, copied.
pub(crate) fn cat<P, T: arrow::datatypes::ArrowNativeType>(
    parts: &[P],
    column: impl Fn(&P) -> &Column<T>,
) -> Column<T> {
    parts
        .iter()
        .flat_map(|p| column(p).iter().copied())
        .collect()
}

/// Where one owner's entries are in this epoch's pieces.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kept {
    /// Where they were: at this place of the previous pieces.
    Old(Loc),
    /// The next this many entries of the new piece.
    New(usize),
}

/// This epoch's pieces in owner order, from each owner's [`Kept`]: a run of
/// owners kept side by side in one previous piece is one slice of it, a run
/// of new ones one slice of `fresh` (which holds `fresh_len` entries, in
/// owner order). `slice(p, lo, hi)` shares `p`'s buffers.
pub(crate) fn lay_out<P>(
    owners: impl IntoIterator<Item = Kept>,
    old: &[P],
    fresh: &P,
    fresh_len: usize,
    slice: impl Fn(&P, usize, usize) -> P,
) -> Vec<P> {
    let mut pieces = vec![];
    let mut run: Option<(Option<usize>, usize, usize)> = None;
    let mut fresh_at = 0;
    let mut close = |run: (Option<usize>, usize, usize)| {
        pieces.push(match run {
            (Some(part), lo, hi) => slice(&old[part], lo, hi),
            (None, lo, hi) => slice(fresh, lo, hi),
        })
    };
    for kept in owners {
        // (the previous piece, or none for `fresh`; entries lo..hi)
        let next = match kept {
            Kept::Old(l) if l.hi > l.lo => (Some(l.part), l.lo, l.hi),
            Kept::New(len) if len > 0 => {
                fresh_at += len;
                (None, fresh_at - len, fresh_at)
            }
            _ => continue,
        };
        run = match run {
            Some((p, lo, hi)) if p == next.0 && hi == next.1 => Some((p, lo, next.2)),
            done => {
                done.map(&mut close);
                Some(next)
            }
        };
    }
    run.map(&mut close);
    debug_assert_eq!(fresh_at, fresh_len);
    pieces
}

/// Where one owner's entries are: piece `part`, entries `lo..hi` of it
/// (empty for an owner with none).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Loc {
    pub part: usize,
    pub lo: usize,
    pub hi: usize,
}

/// Each owner's place among pieces sorted by owner (`owners`: each piece's
/// owner column), from one pass over them; owners past `n` are left out.
pub(crate) fn locate<'a>(owners: impl Iterator<Item = &'a Column<u32>>, n: usize) -> Vec<Loc> {
    let mut at = vec![Loc::default(); n];
    for (part, h) in owners.enumerate() {
        let mut lo = 0;
        while lo < h.len() {
            let i = h[lo];
            // A row is short: a scan beats a binary search over the rest of
            // a 25.6 M-entry column (a cache miss per step).
            let hi = h[lo..]
                .iter()
                .position(|x| *x != i)
                .map_or(h.len(), |k| lo + k);
            if let Some(l) = at.get_mut(i as usize) {
                *l = Loc { part, lo, hi };
            }
            lo = hi;
        }
    }
    at
}

/// Sparse bonds `B_ij` (holder i, peer j), sorted by `(holder, peer)`, nonzero only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bonds {
    /// Holder i.
    pub holder: Vec<u32>,
    /// Peer j bonded to.
    pub peer: Vec<u32>,
    /// Bond size in stake units (real).
    pub bond: Vec<f64>,
}

impl Bonds {
    /// Number of nonzero bonds.
    pub fn len(&self) -> usize {
        self.holder.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.holder.is_empty()
    }
}

/// Everything one epoch's arithmetic reads.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The network's parameters.
    pub params: &'a Params,
    /// k in force this epoch.
    pub k: u32,
    /// Stake before the epoch, by index.
    pub stake: &'a [u64],
    /// Rows in force.
    pub edges: &'a Rows,
    /// This epoch's bond segments ([`Segments::advance`] from the previous
    /// epoch's): B' is their closed form.
    pub segments: &'a Segments,
}

/// Everything one epoch's arithmetic produces, by index.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// ŝ: normalised stake before the epoch.
    pub stake_hat: Vec<f64>,
    /// r = Wᵀŝ.
    pub rank: Vec<f64>,
    /// t = Tᵀŝ.
    pub trust: Vec<f64>,
    /// c = σ(ρ(t − κ)); under `median_clip`, the clip level c_j (the
    /// column's stake-weighted κ-quantile).
    pub consensus: Vec<f64>,
    /// I.
    pub incentive: Vec<f64>,
    /// D.
    pub dividends: Vec<f64>,
    /// E: base units minted to each peer.
    pub emission: Vec<u64>,
    /// S + E.
    pub stake_after: Vec<u64>,
    /// Stake share after the epoch.
    pub stake_share: Vec<f64>,
    /// L.
    pub loss: f64,
    /// k for the next epoch.
    pub k_next: u32,
}

/// Sorts `(key, value)` columns by key with a permutation; stable and cheap
/// when the input is already sorted (the usual case: ledger files are written sorted).
pub fn sort_triples(src: Vec<u32>, dst: Vec<u32>, w: Vec<f64>) -> (Vec<u32>, Vec<u32>, Vec<f64>) {
    let sorted = src
        .windows(2)
        .zip(dst.windows(2))
        .all(|(s, d)| (s[0], d[0]) <= (s[1], d[1]));
    if sorted {
        return (src, dst, w);
    }
    let mut perm: Vec<u32> = (0..src.len() as u32).collect();
    perm.sort_unstable_by_key(|i| ((src[*i as usize] as u64) << 32) | dst[*i as usize] as u64);
    (
        perm.iter().map(|i| src[*i as usize]).collect(),
        perm.iter().map(|i| dst[*i as usize]).collect(),
        perm.iter().map(|i| w[*i as usize]).collect(),
    )
}

/// The rows bonds accumulate on: the rows in force, or under median clipping
/// the clipped rows (so a weight above its column's consensus buys no extra
/// bond). Clipped weights move with stake, so under median clipping a
/// holder's bond segment restarts whenever its clipped row changes.
pub fn bond_edges<'a>(
    params: &Params,
    stake: &[u64],
    edges: &'a Rows,
) -> std::borrow::Cow<'a, Rows> {
    match params.consensus {
        Consensus::Sigmoid => std::borrow::Cow::Borrowed(edges),
        Consensus::MedianClip => {
            let edges = edges.entries();
            let levels = clip::levels(stake.len(), stake, &edges, params.kappa);
            std::borrow::Cow::Owned(clip::apply(&edges, &levels).into())
        }
    }
}

/// Runs SPEC 5.2 on `threads` worker threads (results do not depend on it).
///
/// Under `median_clip` the rows are clipped first ([`clip`]) and everything
/// after reads the clipped rows; the factor that scales rank in incentive
/// and loss is then 1 for a column that kept support, not σ.
pub fn compute(input: &Input<'_>, threads: usize) -> Output {
    let n = input.stake.len();
    let p = input.params;
    let clipped;
    let whole = input.edges.entries();
    let (edges, levels) = match p.consensus {
        Consensus::Sigmoid => (&*whole, None),
        Consensus::MedianClip => {
            let levels = clip::levels(n, input.stake, &whole, p.kappa);
            clipped = clip::apply(&whole, &levels);
            (&clipped, Some(levels))
        }
    };
    let rank = rank::rank(n, input.stake, edges, threads);
    let trust = trust::trust(n, input.stake, edges, threads);
    let (consensus, factor) = match levels {
        None => {
            let c = consensus::consensus(&trust, p.rho, p.kappa);
            (c.clone(), c)
        }
        Some(levels) => {
            let f = clip::factor(&levels);
            (levels, f)
        }
    };
    let incentive = incentive::incentive(&rank, &factor);
    let dividends = dividends::dividends(n, &input.segments.bonds(), &incentive, threads);
    let loss = peg::loss(&rank, &factor);
    Output::settle(input, rank, trust, consensus, incentive, dividends, loss)
}

impl Output {
    /// The end of SPEC 5.2 that the plans and the loops (their oracle) share:
    /// emission by largest remainder, the new stake and its shares, the peg.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn settle(
        input: &Input<'_>,
        rank: Vec<f64>,
        trust: Vec<f64>,
        consensus: Vec<f64>,
        incentive: Vec<f64>,
        dividends: Vec<f64>,
        loss: f64,
    ) -> Output {
        let p = input.params;
        let ranked = peg::Ranked::count(&rank, &trust, p.kappa);
        let delta = emission::stake_delta(&dividends, &incentive, p.bond_share);
        let emission = emission::apportion(&delta, p.emission_per_epoch);
        let stake_after: Vec<u64> = input
            .stake
            .iter()
            .zip(&emission)
            .map(|(s, e)| s.saturating_add(*e))
            .collect();
        Output {
            stake_hat: rank::normalised_stake(input.stake),
            stake_share: rank::normalised_stake(&stake_after),
            rank,
            trust,
            consensus,
            incentive,
            dividends,
            emission,
            stake_after,
            k_next: peg::next_k_by(p.peg_rule, input.k, loss, p.peg_step, p.k_max, ranked),
            loss,
        }
    }
}

#[cfg(test)]
mod legacy;
#[cfg(test)]
mod tests;
