//! Normalised stake ŝ_i = S_i / ΣS and rank r_j = Σ_i ŝ_i·w_ij (R = Wᵀŝ).
//!
//! The sum is taken in stake units, Σ_i S_i·w_ij, each term exact to
//! 2^-[`stake_shift`] of a base unit, and divided by ΣS once: a rank is never
//! lost to a fixed absolute scale, however small the stake behind it.

use super::fixed::{self, stake_shift};
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

/// ΣS, exact.
pub fn total_stake(stake: &[u64]) -> u128 {
    stake.iter().map(|s| *s as u128).sum()
}

/// Σ_i S_i·w_ij per j in fixed point at [`stake_shift`]`(ΣS)`.
pub fn rank_fx(n: usize, stake: &[u64], edges: &Edges, threads: usize) -> Vec<u128> {
    let shift = stake_shift(total_stake(stake));
    fixed::scatter_u128(n, &edges.dst, threads, |e| {
        fixed::mul_fx(stake[edges.src[e] as usize], edges.weight[e], shift)
    })
}

/// A stake-unit fixed-point sum (at [`stake_shift`]`(total)`) as a share of `total`.
pub fn share(v: u128, total: u128) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let r = libm::scalbn(v as f64 / total as f64, -stake_shift(total));
    r.min(1.0)
}

/// r = Wᵀŝ over the sparse edges.
pub fn rank(n: usize, stake: &[u64], edges: &Edges, threads: usize) -> Vec<f64> {
    let total = total_stake(stake);
    rank_fx(n, stake, edges, threads)
        .into_iter()
        .map(|v| share(v, total))
        .collect()
}
