//! Trust t_j = Σ_i ŝ_i·[w_ij > 0] (Tᵀŝ): the stake that set any weight on j,
//! summed exactly in base units and divided by ΣS once.

use super::fixed;
use super::rank::total_stake;
use super::Edges;

/// Σ_i S_i·[w_ij > 0] per j, exact.
pub fn trust_stake(n: usize, stake: &[u64], edges: &Edges, threads: usize) -> Vec<u128> {
    fixed::scatter_u128(n, &edges.dst, threads, |e| {
        if edges.weight[e] > 0.0 {
            stake[edges.src[e] as usize] as u128
        } else {
            0
        }
    })
}

/// Trusting stake as a share of `total` (one rounding each, then a division).
pub fn share(v: u128, total: u128) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (v as f64 / total as f64).min(1.0)
}

/// t = Tᵀŝ over the sparse edges.
pub fn trust(n: usize, stake: &[u64], edges: &Edges, threads: usize) -> Vec<f64> {
    let total = total_stake(stake);
    trust_stake(n, stake, edges, threads)
        .into_iter()
        .map(|v| share(v, total))
        .collect()
}
