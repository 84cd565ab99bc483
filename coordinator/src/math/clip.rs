//! Median clipping (`consensus = "median_clip"`): each weight w_ij is clipped
//! at its column's stake-weighted κ-quantile c_j = the largest w such that the
//! peers setting w_ij ≥ w hold at least κ of all stake (0 when no weight in
//! the column has that much support), and ranks, trust and bonds are then
//! taken over min(w_ij, c_j).
//!
//! The quantile is exact: with a column's edges sorted by weight, largest
//! first (ties by src), c_j is the weight of the first edge at which the
//! running sum of stake (an exact integer) reaches ⌈κ·ΣS⌉ (an exact integer
//! from the bits of κ). Every later edge has a weight no larger, every
//! earlier one too little support, so no order of summation can change it.

use super::rank::total_stake;
use super::Edges;

/// ⌈κ·total⌉, exactly: the stake a weight needs behind it (κ ≤ 0: 0).
pub fn support_needed(total: u128, kappa: f64) -> u128 {
    if kappa.is_nan() || kappa <= 0.0 || total == 0 {
        return 0;
    }
    if !kappa.is_finite() {
        return u128::MAX;
    }
    let bits = kappa.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp == 0 {
        (frac as u128, -1074)
    } else {
        ((frac | (1u64 << 52)) as u128, exp - 1075)
    };
    // κ·T = m·T·2^e, with m·T exact in u128 for T < 2^75.
    let Some(p) = m.checked_mul(total) else {
        return u128::MAX;
    };
    if e >= 0 {
        if e >= 128 || p.leading_zeros() < e as u32 {
            u128::MAX
        } else {
            p << e
        }
    } else if -e >= 128 {
        u128::from(p > 0)
    } else {
        let sh = -e as u32;
        (p >> sh) + u128::from(p & ((1u128 << sh) - 1) != 0)
    }
}

/// c_j for every peer j (0 where no weight has κ of the stake behind it).
pub fn levels(n: usize, stake: &[u64], edges: &Edges, kappa: f64) -> Vec<f64> {
    let need = support_needed(total_stake(stake), kappa);
    let mut order: Vec<usize> = (0..edges.len())
        .filter(|e| edges.weight[*e] > 0.0)
        .collect();
    // By column, then weight from the largest (f64 ≥ 0 orders as its bits), then src.
    order.sort_unstable_by(|a, b| {
        (edges.dst[*a], edges.weight[*b].to_bits(), edges.src[*a]).cmp(&(
            edges.dst[*b],
            edges.weight[*a].to_bits(),
            edges.src[*b],
        ))
    });
    let mut out = vec![0.0; n];
    let mut cum = 0u128;
    let mut col = u32::MAX;
    let mut done = false;
    for e in order {
        let j = edges.dst[e];
        if j != col {
            (col, cum, done) = (j, 0, false);
        }
        if done {
            continue;
        }
        cum += stake[edges.src[e] as usize] as u128;
        if cum >= need {
            out[j as usize] = edges.weight[e];
            done = true;
        }
    }
    out
}

/// min(w_ij, c_j), keeping only the entries that stay positive (in the same order).
pub fn apply(edges: &Edges, levels: &[f64]) -> Edges {
    let (mut src, mut dst, mut weight) = (vec![], vec![], vec![]);
    for e in 0..edges.len() {
        let w = edges.weight[e].min(levels[edges.dst[e] as usize]);
        if w > 0.0 {
            src.push(edges.src[e]);
            dst.push(edges.dst[e]);
            weight.push(w);
        }
    }
    Edges::new(src, dst, weight)
}

/// The factor that multiplies rank in incentive and loss under median
/// clipping: 1 where the column kept any weight, else 0.
pub fn factor(levels: &[f64]) -> Vec<f64> {
    levels
        .iter()
        .map(|c| if *c > 0.0 { 1.0 } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_needed_is_the_exact_ceiling() {
        assert_eq!(support_needed(10, 0.5), 5);
        assert_eq!(support_needed(11, 0.5), 6);
        assert_eq!(support_needed(100, 1.0), 100);
        // 0.1 is 0x3FB999999999999A, a bit above 1/10: ⌈0.1·10⌉ = 2.
        assert_eq!(support_needed(10, 0.1), 2);
        assert_eq!(support_needed(0, 0.5), 0);
        assert_eq!(support_needed(7, 0.0), 0);
        assert_eq!(
            support_needed(u64::MAX as u128, 0.5),
            (u64::MAX as u128).div_ceil(2)
        );
    }
}
