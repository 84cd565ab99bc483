//! Order-independent sums (SPEC 8): each f64 term is converted to an i128
//! fixed-point integer (truncated at 2^-FRAC) and the integers are added, so
//! any split of the work over threads gives the same bits.

use rayon::prelude::*;

/// Fractional bits for quantities that sum to at most about 1 (shares, ranks):
/// every term then converts through a native f64→i64 instruction.
pub const UNIT_FRAC: i32 = 62;
/// Fractional bits for quantities in stake units (bonds): terms below 2^47
/// units take the fast path, larger ones the exact i128 conversion.
pub const STAKE_FRAC: i32 = 16;

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
    let threads = threads.max(1);
    let m = key.len();
    if threads == 1 {
        let mut acc = vec![0i128; n];
        for (e, k) in key.iter().enumerate() {
            acc[*k as usize] += to_fx(value(e), frac);
        }
        return acc;
    }
    let chunk = m.div_ceil(threads);
    (0..threads)
        .into_par_iter()
        .map(|t| {
            let lo = (t * chunk).min(m);
            let hi = ((t + 1) * chunk).min(m);
            let mut acc = vec![0i128; n];
            for e in lo..hi {
                acc[key[e] as usize] += to_fx(value(e), frac);
            }
            acc
        })
        .reduce(
            || vec![0i128; n],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

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
