//! Dividends D_i = Σ_j β_ij·I_j: i earns from those it bonded to, in
//! proportion to its share of their bonds. Σ_i D_i is 1 (or 0), so an
//! absolute scale of 2^-62 loses nothing that matters.

use super::fixed::{self, UNIT_FRAC};
use super::Bonds;

/// D from the new bonds and the incentive.
pub fn dividends(n: usize, bonds: &Bonds, incentive: &[f64], threads: usize) -> Vec<f64> {
    let shifts = super::bonds::column_shifts(n, bonds, threads);
    let col: Vec<f64> = super::bonds::column_sums(n, bonds, &shifts, threads)
        .into_iter()
        .map(fixed::to_f64)
        .collect();
    fixed::scatter_sum(n, &bonds.holder, threads, UNIT_FRAC, |e| {
        let j = bonds.peer[e] as usize;
        if incentive[j] > 0.0 {
            super::bonds::share(bonds.bond[e], shifts[j], col[j]) * incentive[j]
        } else {
            0.0
        }
    })
    .into_iter()
    .map(|d| d.min(1.0))
    .collect()
}
