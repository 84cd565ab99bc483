//! Order-independent sums (SPEC 8): each term is converted to an integer in
//! fixed point and the integers are added, so any split of the work over
//! threads or partitions gives the same bits.
//!
//! Two kinds of scale:
//! - an absolute one ([`UNIT_FRAC`]) for quantities whose total is known to be
//!   1 or 0 (dividends), where a term below 2^-62 cannot matter;
//! - a scale chosen per sum from its own data, for quantities that may all be
//!   tiny (ranks of a network whose only rows come from dust stake, bond
//!   columns of peers with a few base units): [`stake_shift`] fixes the scale
//!   of stake-weighted sums from the exact total stake, [`shift_for_max`] the
//!   scale of a column from its largest term (a maximum does not depend on
//!   order either). Terms are then taken to an integer exactly from their
//!   bits ([`mul_fx`], [`scale_fx`]), never through a rounding product.

use rayon::prelude::*;

/// Fractional bits for quantities that sum to at most about 1 (shares, ranks):
/// every term then converts through a native f64→i64 instruction.
pub const UNIT_FRAC: i32 = 62;

/// The largest value a per-sum scale lets one term reach: 2^62, so that up to
/// 2^32 terms (every edge a `u32` index can name) sum below 2^94 in a `u128`.
pub const TERM_BITS: i32 = 62;

/// ⌊s · w · 2^shift⌋, exactly, from the bits of `w` (negative, NaN or
/// infinite `w` counts as 0; a result past `u128` saturates). The product of
/// a u64 and a 53-bit mantissa is exact in u128, so no term loses more than
/// the truncation of its last fractional bit at the chosen scale.
#[inline(always)]
pub fn mul_fx(s: u64, w: f64, shift: i32) -> u128 {
    if w.is_nan() || w <= 0.0 || w.is_infinite() || s == 0 {
        return 0;
    }
    let bits = w.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let p = s as u128 * m as u128;
    let sh = e + shift;
    if sh >= 0 {
        if sh >= 128 || p.leading_zeros() < sh as u32 {
            u128::MAX
        } else {
            p << sh
        }
    } else if sh <= -128 {
        0
    } else {
        p >> (-sh)
    }
}

/// ⌊x · 2^shift⌋ exactly (x ≤ 0 or not finite: 0).
///
/// Where 2^shift is a normal double and the result fits a u64 (every term
/// of a per-sum scale, every dividend term), x · 2^shift is exact in f64 (a
/// product by a power of two rounds only below 2^-1022, where the floor is
/// 0 either way) and the truncating conversion is the floor: the same
/// integer as [`mul_fx`]'s, without its 128-bit shifts.
#[inline(always)]
pub fn scale_fx(x: f64, shift: i32) -> u128 {
    if (-1022..=1023).contains(&shift) {
        let v = x * pow2(shift);
        // False for NaN and for +∞, which take the exact path below.
        if v < 18_446_744_073_709_551_616.0 {
            return if v > 0.0 { v as u64 as u128 } else { 0 };
        }
    }
    mul_fx(1, x, shift)
}

/// The binary exponent E of a finite x > 0 with 2^E ≤ x < 2^(E+1)
/// (subnormals count as −1023: the scale stays exact for them too).
#[inline]
pub fn exponent(x: f64) -> i32 {
    ((x.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// The scale for a sum whose largest term is `max`: every term is then below
/// 2^[`TERM_BITS`] and the largest has [`TERM_BITS`] significant bits.
#[inline]
pub fn shift_for_max(max: f64) -> i32 {
    if max > 0.0 && max.is_finite() {
        TERM_BITS - 1 - exponent(max)
    } else {
        0
    }
}

/// The scale of stake-weighted sums Σ_i S_i·x_i with every x_i in [0, 1]:
/// they are at most the total stake T, so with `shift = 126 − bitlen(T)`
/// every sum stays below 2^126 (a Decimal128(38, 0) holds it) and the
/// smallest stake still counts with at least 30 fractional bits (T < 2^96).
#[inline]
pub fn stake_shift(total: u128) -> i32 {
    126 - (128 - total.leading_zeros() as i32)
}

/// 2^-shift · v as f64 (one rounding of `v`, then an exact power-of-two scale).
#[inline]
pub fn unscale(v: u128, shift: i32) -> f64 {
    libm::scalbn(to_f64(v), -shift)
}

/// `v as f64` (round to nearest, ties to even), through the u64 conversion
/// when `v` fits: the same value, without the software u128 routine, for
/// the terms below 2^62 that most sums hold.
#[inline]
pub fn to_f64(v: u128) -> f64 {
    if v >> 64 == 0 {
        v as u64 as f64
    } else {
        v as f64
    }
}

/// Σ values with a scale taken from the largest |value|: exact up to
/// 2^-[`TERM_BITS`] of it per term, whatever the values' magnitude, and
/// order-independent (the maximum and integer sums do not depend on order).
pub fn scaled_sum(values: &[f64]) -> f64 {
    let max = values.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let shift = shift_for_max(max);
    let total: i128 = values
        .iter()
        .map(|v| {
            let q = scale_fx(v.abs(), shift) as i128;
            if *v < 0.0 {
                -q
            } else {
                q
            }
        })
        .sum();
    let t = libm::scalbn(total.unsigned_abs() as f64, -shift);
    if total < 0 {
        -t
    } else {
        t
    }
}

/// f64 → fixed point with `frac` fractional bits; scaling by a power of two is
/// exact, the cast truncates toward zero and saturates. Values that fit i64
/// use the hardware conversion (f64→i128 is a slow software routine); both
/// paths give the same integer.
#[inline]
pub fn to_fx(x: f64, frac: i32) -> i128 {
    let v = x * pow2(frac);
    if v.abs() < 9.2e18 {
        v as i64 as i128
    } else {
        v as i128
    }
}

/// Fixed point → f64 (one rounding to nearest).
#[inline]
pub fn from_fx(v: i128, frac: i32) -> f64 {
    v as f64 / pow2(frac)
}

#[inline]
fn pow2(frac: i32) -> f64 {
    f64::from_bits(((1023 + frac) as u64) << 52)
}

/// Σ values, order-independent.
pub fn sum(values: &[f64], frac: i32) -> f64 {
    from_fx(values.iter().map(|v| to_fx(*v, frac)).sum(), frac)
}

/// Scatter-adds `value(e)` into `out[key[e]]` for every edge e, in fixed point,
/// over `threads` threads; returns the sums as f64.
pub fn scatter_sum<F>(n: usize, key: &[u32], threads: usize, frac: i32, value: F) -> Vec<f64>
where
    F: Fn(usize) -> f64 + Sync,
{
    let acc = scatter_fx(n, key, threads, frac, value);
    acc.into_iter().map(|v| from_fx(v, frac)).collect()
}

/// Like [`scatter_sum`] but returns the raw fixed-point sums.
pub fn scatter_fx<F>(n: usize, key: &[u32], threads: usize, frac: i32, value: F) -> Vec<i128>
where
    F: Fn(usize) -> f64 + Sync,
{
    scatter(
        n,
        key,
        threads,
        0i128,
        |e| to_fx(value(e), frac),
        |a, b| *a += b,
    )
}

/// Scatter-adds integer terms `value(e)` into `out[key[e]]` (exact, so any
/// split over threads gives the same sums).
pub fn scatter_u128<F>(n: usize, key: &[u32], threads: usize, value: F) -> Vec<u128>
where
    F: Fn(usize) -> u128 + Sync,
{
    scatter(n, key, threads, 0u128, value, |a, b| *a += b)
}

/// Per key, the largest `value(e)` (0 where none): for f64 ≥ 0 the largest
/// bit pattern is the largest value.
pub fn scatter_max_bits<F>(n: usize, key: &[u32], threads: usize, value: F) -> Vec<f64>
where
    F: Fn(usize) -> f64 + Sync,
{
    scatter(
        n,
        key,
        threads,
        0u64,
        |e| value(e).max(0.0).to_bits(),
        |a, b| *a = (*a).max(b),
    )
    .into_iter()
    .map(f64::from_bits)
    .collect()
}

/// Folds `value(e)` into `out[key[e]]` with an associative, commutative
/// `combine`, over `threads` threads.
fn scatter<T, V, C>(n: usize, key: &[u32], threads: usize, zero: T, value: V, combine: C) -> Vec<T>
where
    T: Copy + Send + Sync,
    V: Fn(usize) -> T + Sync,
    C: Fn(&mut T, T) + Sync,
{
    let threads = threads.max(1);
    let m = key.len();
    if threads == 1 {
        let mut acc = vec![zero; n];
        for (e, k) in key.iter().enumerate() {
            combine(&mut acc[*k as usize], value(e));
        }
        return acc;
    }
    let chunk = m.div_ceil(threads);
    (0..threads)
        .into_par_iter()
        .map(|t| {
            let lo = (t * chunk).min(m);
            let hi = ((t + 1) * chunk).min(m);
            let mut acc = vec![zero; n];
            for e in lo..hi {
                combine(&mut acc[key[e] as usize], value(e));
            }
            acc
        })
        .reduce(
            || vec![zero; n],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    combine(x, y);
                }
                a
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_fx_is_exact() {
        // 3 · 0.5 · 2^4 = 24; 1 · 2^-63 · 2^64 = 2; truncation toward zero.
        assert_eq!(mul_fx(3, 0.5, 4), 24);
        assert_eq!(mul_fx(1, 2f64.powi(-63), 64), 2);
        assert_eq!(mul_fx(1, 1.0 / 3.0, 2), 1);
        // u64::MAX · (1 − 2^-53) · 2^10: exact product, no f64 rounding.
        let w = 1.0 - 2f64.powi(-53);
        let exact = (u64::MAX as u128 * ((1u128 << 53) - 1)) >> 43;
        assert_eq!(mul_fx(u64::MAX, w, 10), exact);
        assert_eq!(mul_fx(5, -1.0, 3), 0);
        assert_eq!(mul_fx(5, f64::NAN, 3), 0);
        assert_eq!(scale_fx(f64::MIN_POSITIVE / 4.0, 1100), 1u128 << 76);
    }

    /// `scale_fx`'s floating-point path gives `mul_fx`'s integer for every
    /// double and scale: across the whole exponent range, at the edges of
    /// the shortcut (2^64, the smallest normal scale) and for values that
    /// are not positive numbers.
    #[test]
    fn scale_fx_is_mul_fx() {
        let edge = [
            0.0,
            -0.0,
            -1.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE / 4.0,
            f64::from_bits(1),
            f64::MAX,
            1.0,
            1.0 - f64::EPSILON / 2.0,
            2f64.powi(63),
            2f64.powi(64),
            2f64.powi(64) * (1.0 - f64::EPSILON / 2.0),
        ];
        let shifts = [
            -1100, -1075, -1074, -1023, -1022, -1021, -64, -1, 0, 1, 11, 62, 63, 64, 1000, 1022,
            1023, 1024, 1100,
        ];
        for &x in &edge {
            for &sh in &shifts {
                assert_eq!(scale_fx(x, sh), mul_fx(1, x, sh), "x = {x:e}, shift = {sh}");
            }
        }
        proptest::proptest!(|(bits in proptest::prelude::any::<u64>(), sh in -1200i32..1200)| {
            let x = f64::from_bits(bits);
            proptest::prop_assert_eq!(scale_fx(x, sh), mul_fx(1, x, sh));
            // The same value rescaled to the edge of u64, where the shortcut ends.
            if x.is_finite() && x > 0.0 {
                let near = 63 - exponent(x);
                for s in [near - 1, near, near + 1] {
                    proptest::prop_assert_eq!(scale_fx(x, s), mul_fx(1, x, s));
                }
            }
        });
    }

    #[test]
    fn scaled_sum_keeps_tiny_sums() {
        let v = [1e-300, 2e-300, -0.5e-300];
        assert!((scaled_sum(&v) - 2.5e-300).abs() < 1e-314);
        let mut r = v;
        r.reverse();
        assert_eq!(scaled_sum(&v).to_bits(), scaled_sum(&r).to_bits());
        assert_eq!(scaled_sum(&[]), 0.0);
        assert_eq!(stake_shift(1), 125);
        assert_eq!(stake_shift((1u128 << 63) - 1), 63);
    }

    #[test]
    fn round_trip_and_order_independence() {
        assert_eq!(from_fx(to_fx(0.375, UNIT_FRAC), UNIT_FRAC), 0.375);
        let v: Vec<f64> = (0..1000).map(|i| 1.0 / (i as f64 + 3.0)).collect();
        let mut r = v.clone();
        r.reverse();
        assert_eq!(sum(&v, UNIT_FRAC).to_bits(), sum(&r, UNIT_FRAC).to_bits());
    }

    #[test]
    fn scatter_is_thread_independent() {
        let n = 97;
        let key: Vec<u32> = (0..200_000u32).map(|i| (i * 7919) % n).collect();
        let f = |e: usize| ((e % 13) as f64 + 0.1) / 17.0;
        let a = scatter_sum(n as usize, &key, 1, UNIT_FRAC, f);
        let b = scatter_sum(n as usize, &key, 8, UNIT_FRAC, f);
        assert_eq!(a, b);
    }
}
