//! Bonds accumulate: B'_ij = B_ij + S_i·w_ij (i bonds to those it ranks), and
//! β_ij = B'_ij / Σ_k B'_kj is i's share of all bonds in j.
//!
//! Both inputs are sorted by `(holder, peer)` = `(src, dst)`, so the update is
//! one merge of two sorted lists.

use super::fixed::{self, STAKE_FRAC};
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

/// Σ_k B'_kj per peer j (fixed point, in stake units).
pub fn column_sums(n: usize, bonds: &Bonds, threads: usize) -> Vec<f64> {
    fixed::scatter_sum(n, &bonds.peer, threads, STAKE_FRAC, |e| bonds.bond[e])
}
