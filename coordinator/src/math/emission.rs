//! ΔS_i = bond_share·D_i + (1 − bond_share)·I_i and its apportionment:
//! E_i = floor(τ ΔS_i), the remainder one unit each to the largest fractional
//! parts (ties: lower uid first).
//!
//! ΔS is taken to 2^-60 fixed point and apportioned in u128 integer
//! arithmetic against its own exact total, so Σ E is exactly τ whenever any
//! incentive flowed, and 0 otherwise, with no floating-point drift.

/// Fractional bits of ΔS for apportionment: τ < 2^63 times 2^60 fits u128.
const DELTA_FRAC: i32 = 60;

/// ΔS from dividends and incentive.
pub fn stake_delta(dividends: &[f64], incentive: &[f64], bond_share: f64) -> Vec<f64> {
    dividends
        .iter()
        .zip(incentive)
        .map(|(d, i)| bond_share * d + (1.0 - bond_share) * i)
        .collect()
}

/// Largest-remainder apportionment of τ in proportion to ΔS.
pub fn apportion(delta: &[f64], tau: u64) -> Vec<u64> {
    let q: Vec<u128> = delta
        .iter()
        .map(|d| super::fixed::to_fx(d.max(0.0), DELTA_FRAC).max(0) as u128)
        .collect();
    let total: u128 = q.iter().sum();
    if total == 0 || tau == 0 {
        return vec![0; delta.len()];
    }
    let tau = tau as u128;
    let mut em = Vec::with_capacity(q.len());
    let mut frac = Vec::with_capacity(q.len());
    for qi in &q {
        let x = tau * qi;
        em.push((x / total) as u64);
        frac.push(x % total);
    }
    let given: u128 = em.iter().map(|e| *e as u128).sum();
    let rest = (tau - given) as usize;
    if rest > 0 {
        let mut order: Vec<usize> = (0..q.len()).collect();
        // Largest fractional part first; index order (= uid order) breaks ties.
        order.sort_unstable_by(|a, b| frac[*b].cmp(&frac[*a]).then(a.cmp(b)));
        for i in order.into_iter().take(rest) {
            em[i] += 1;
        }
    }
    em
}
