//! Trust t_j = Σ_i ŝ_i·[w_ij > 0] (Tᵀŝ): the stake that set any weight on j.

use super::fixed::{self, UNIT_FRAC};
use super::Edges;

/// t = Tᵀŝ over the sparse edges.
pub fn trust(n: usize, stake_hat: &[f64], edges: &Edges, threads: usize) -> Vec<f64> {
    fixed::scatter_sum(n, &edges.dst, threads, UNIT_FRAC, |e| {
        if edges.weight[e] > 0.0 {
            stake_hat[edges.src[e] as usize]
        } else {
            0.0
        }
    })
}
