//! The loss peg: L = −Σ_j r_j (c_j − 0.5) is negative when inflation flows to
//! the majority; after an epoch with L > 0 every row must set more weights:
//! k_{e+1} = min(k_e + peg_step, k_max) (rule `step`; `double` adds
//! max(k_e, peg_step) instead; the `*_capped` rules never raise k past the
//! number of ranked peers minus one, nor, once two or more peers are
//! majority-trusted, past their number minus one). The factor f_j is the consensus c_j under
//! `sigmoid` and 1 for a column that kept support under `median_clip`, so
//! there L ≤ 0 always: clipping already pays only majority-backed peers. The sum is taken at a scale from
//! its largest term, so its sign holds however small the ranks are.

use faceblock_schemas::PegRule;

use super::fixed;

/// L from rank and the consensus factor.
pub fn loss(rank: &[f64], consensus: &[f64]) -> f64 {
    let terms: Vec<f64> = rank
        .iter()
        .zip(consensus)
        .map(|(r, c)| r * (c - 0.5))
        .collect();
    -fixed::scaled_sum(&terms)
}

/// k for the next epoch.
pub fn next_k(k: u32, loss: f64, step: u32, k_max: u32) -> u32 {
    if loss > 0.0 {
        k.saturating_add(step).min(k_max)
    } else {
        k
    }
}

/// The peers the `*_capped` rules count this epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranked {
    /// Peers with a positive rank.
    pub any: u32,
    /// Peers trusted by at least κ of the stake (t_j ≥ κ).
    pub majority: u32,
}

impl Ranked {
    /// Counts them.
    pub fn count(rank: &[f64], trust: &[f64], kappa: f64) -> Self {
        Self {
            any: rank.iter().filter(|r| **r > 0.0).count() as u32,
            majority: trust.iter().filter(|t| **t >= kappa).count() as u32,
        }
    }

    /// The highest k the capped rules may ask for: R − 1, R the ranked
    /// peers, and once at least two peers have majority trust, at most their
    /// number − 1 (a cabal that pads its rows onto honest peers keeps
    /// everyone ranked, but only the honest peers are majority-trusted).
    pub fn cap(self) -> u32 {
        let any = self.any.saturating_sub(1);
        if self.majority >= 2 {
            any.min(self.majority - 1)
        } else {
            any
        }
    }
}

/// k for the next epoch under `rule`; `ranked` bounds the `*_capped` rules.
/// `step = 0` turns the peg off whatever the rule.
pub fn next_k_by(rule: PegRule, k: u32, loss: f64, step: u32, k_max: u32, ranked: Ranked) -> u32 {
    if step == 0 {
        return k;
    }
    let cap = |next: u32| next.min(ranked.cap().max(k));
    match rule {
        PegRule::Step => next_k(k, loss, step, k_max),
        PegRule::Double => next_k(k, loss, step.max(k), k_max),
        PegRule::StepCapped => cap(next_k(k, loss, step, k_max)),
        PegRule::DoubleCapped => cap(next_k(k, loss, step.max(k), k_max)),
    }
}
