//! Bonds accumulate: B'_ij = B_ij + S_i·w_ij (i bonds to those it ranks), and
//! β_ij = B'_ij / Σ_k B'_kj is i's share of all bonds in j.
//!
//! Column sums Σ_k B'_kj are taken at a scale per column j, fixed by that
//! column's largest bond ([`fixed::shift_for_max`]), and β uses the same
//! truncated terms in its numerator as in its denominator: Σ_k β_kj is 1 to
//! the rounding of one division, whether bonds are 10^12 base units or 10^-3.
//!
//! Both inputs are sorted by `(holder, peer)` = `(src, dst)`, so the update is
//! one merge of two sorted lists.

use super::fixed;
use super::{Bonds, Edges};

/// B' = B + diag(S)·W, merged in sorted order; zero bonds are dropped.
pub fn accumulate(prev: &Bonds, stake: &[u64], edges: &Edges) -> Bonds {
    let mut out = Bonds {
        holder: Vec::with_capacity(prev.len().max(edges.len())),
        peer: Vec::with_capacity(prev.len().max(edges.len())),
        bond: Vec::with_capacity(prev.len().max(edges.len())),
    };
    let (mut a, mut b) = (0usize, 0usize);
    let push = |out: &mut Bonds, h: u32, p: u32, v: f64| {
        if v > 0.0 {
            out.holder.push(h);
            out.peer.push(p);
            out.bond.push(v);
        }
    };
    while a < prev.len() || b < edges.len() {
        let ka = (a < prev.len()).then(|| (prev.holder[a], prev.peer[a]));
        let kb = (b < edges.len()).then(|| (edges.src[b], edges.dst[b]));
        match (ka, kb) {
            (Some(x), Some(y)) if x == y => {
                let add = stake[y.0 as usize] as f64 * edges.weight[b];
                push(&mut out, x.0, x.1, prev.bond[a] + add);
                a += 1;
                b += 1;
            }
            (Some(x), Some(y)) if x < y => {
                push(&mut out, x.0, x.1, prev.bond[a]);
                a += 1;
            }
            (Some(x), None) => {
                push(&mut out, x.0, x.1, prev.bond[a]);
                a += 1;
            }
            (_, Some(y)) => {
                push(
                    &mut out,
                    y.0,
                    y.1,
                    stake[y.0 as usize] as f64 * edges.weight[b],
                );
                b += 1;
            }
            (None, None) => unreachable!("loop condition"),
        }
    }
    out
}

/// Per peer j, the scale of its column: [`fixed::shift_for_max`] of its largest bond.
pub fn column_shifts(n: usize, bonds: &Bonds, threads: usize) -> Vec<i32> {
    fixed::scatter_max_bits(n, &bonds.peer, threads, |e| bonds.bond[e])
        .into_iter()
        .map(fixed::shift_for_max)
        .collect()
}

/// Σ_k B'_kj per peer j, exact over terms ⌊B'_kj · 2^shift_j⌋.
pub fn column_sums(n: usize, bonds: &Bonds, shifts: &[i32], threads: usize) -> Vec<u128> {
    fixed::scatter_u128(n, &bonds.peer, threads, |e| {
        fixed::scale_fx(bonds.bond[e], shifts[bonds.peer[e] as usize])
    })
}

/// β_ij for bond e, from the same fixed-point terms as its column sum.
#[inline]
pub fn share(bond: f64, shift: i32, column: u128) -> f64 {
    if column == 0 {
        return 0.0;
    }
    (fixed::scale_fx(bond, shift) as f64 / column as f64).min(1.0)
}
