//! Dividends D_i = Σ_j β_ij·I_j: i earns from those it bonded to, in
//! proportion to its share of their bonds.

use super::fixed::{self, UNIT_FRAC};
use super::Bonds;

/// D from the new bonds and the incentive.
pub fn dividends(n: usize, bonds: &Bonds, incentive: &[f64], threads: usize) -> Vec<f64> {
    let col = super::bonds::column_sums(n, bonds, threads);
    fixed::scatter_sum(n, &bonds.holder, threads, UNIT_FRAC, |e| {
        let j = bonds.peer[e] as usize;
        if col[j] > 0.0 && incentive[j] > 0.0 {
            (bonds.bond[e] / col[j]).min(1.0) * incentive[j]
        } else {
            0.0
        }
    })
    .into_iter()
    .map(|d| d.min(1.0))
    .collect()
}
