//! Incentive I_j = r_j c_j / Σ_k r_k c_k (0 for all if the sum is 0).
//!
//! The denominator is summed at a scale taken from its largest term, so a
//! network whose ranks are all tiny still pays out.

use super::fixed;

/// I from rank and consensus.
pub fn incentive(rank: &[f64], consensus: &[f64]) -> Vec<f64> {
    let rc: Vec<f64> = rank.iter().zip(consensus).map(|(r, c)| r * c).collect();
    let total = fixed::scaled_sum(&rc);
    if total <= 0.0 {
        return vec![0.0; rc.len()];
    }
    rc.into_iter().map(|v| (v / total).min(1.0)).collect()
}
