//! Trust t_j = Σ_i ŝ_i·[w_ij > 0]: the stake that set any weight on j. It is
//! computed in the same pass as rank ([`super::rank::rank_and_trust`]); this
//! module holds the standalone form for readers and tests.

use super::Edges;

/// t = Tᵀŝ.
pub fn trust(n: usize, stake_hat: &[f64], edges: &Edges, threads: usize) -> Vec<f64> {
    super::rank::rank_and_trust(n, stake_hat, edges, threads).1
}
