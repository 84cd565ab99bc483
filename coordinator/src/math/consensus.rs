//! Consensus c_j = 1 / (1 + exp(−ρ (t_j − κ))): a peer trusted by less than κ
//! of the stake is scaled down sharply. `exp` is `libm`'s, portable to the bit.

/// c = σ(ρ(t − κ)).
pub fn consensus(trust: &[f64], rho: f64, kappa: f64) -> Vec<f64> {
    trust
        .iter()
        .map(|t| 1.0 / (1.0 + libm::exp(-rho * (t - kappa))))
        .collect()
}
