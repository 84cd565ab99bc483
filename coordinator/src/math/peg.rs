//! The loss peg: L = −Σ_j r_j (c_j − 0.5) is negative when inflation flows to
//! the majority; after an epoch with L > 0 every row must set more weights:
//! k_{e+1} = min(k_e + peg_step, k_max) (rule `step`; `double` adds
//! max(k_e, peg_step) instead; the `*_capped` rules never raise k past the
//! number of ranked peers minus one). The factor f_j is the consensus c_j under
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

/// k for the next epoch under `rule`; `ranked` is the number of peers with
/// a positive rank this epoch (the cap of the `*_capped` rules).
pub fn next_k_by(rule: PegRule, k: u32, loss: f64, step: u32, k_max: u32, ranked: u32) -> u32 {
    let cap = |next: u32| next.min(ranked.saturating_sub(1).max(k));
    match rule {
        PegRule::Step => next_k(k, loss, step, k_max),
        PegRule::Double => next_k(k, loss, step.max(k), k_max),
        PegRule::StepCapped => cap(next_k(k, loss, step, k_max)),
        PegRule::DoubleCapped => cap(next_k(k, loss, step.max(k), k_max)),
    }
}
