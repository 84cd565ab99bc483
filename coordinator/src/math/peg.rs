//! The loss peg: L = −Σ_j r_j (c_j − 0.5) is negative when inflation flows to
//! the majority; after an epoch with L > 0 every row must set more weights:
//! k_{e+1} = min(k_e + peg_step, k_max). The sum is taken at a scale from
//! its largest term, so its sign holds however small the ranks are.

use super::fixed;

/// L from rank and consensus.
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
