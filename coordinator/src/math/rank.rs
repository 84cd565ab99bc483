//! Normalised stake ŝ_i = S_i / ΣS and rank r_j = Σ_i ŝ_i·w_ij (R = Wᵀŝ).

use super::fixed::{self, UNIT_FRAC};
use super::Edges;

/// ŝ = S / ΣS (all zero when no stake exists); ΣS is exact in u128.
pub fn normalised_stake(stake: &[u64]) -> Vec<f64> {
    let total: u128 = stake.iter().map(|s| *s as u128).sum();
    if total == 0 {
        return vec![0.0; stake.len()];
    }
    let t = total as f64;
    stake.iter().map(|s| *s as f64 / t).collect()
}

/// r = Wᵀŝ over the sparse edges.
pub fn rank(n: usize, stake_hat: &[f64], edges: &Edges, threads: usize) -> Vec<f64> {
    fixed::scatter_sum(n, &edges.dst, threads, UNIT_FRAC, |e| {
        stake_hat[edges.src[e] as usize] * edges.weight[e]
    })
}
