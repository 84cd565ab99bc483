//! Test oracle: SPEC 5.2 as it was computed before the per-sum scales (ranks
//! at an absolute 2^-62, bond columns at 2^-16 of a base unit). Exact enough
//! when every stake is at least 10^5, which is where the new arithmetic must
//! agree with it.
#![allow(clippy::needless_range_loop)]

use super::fixed::{self, UNIT_FRAC};
use super::{consensus, emission, peg, rank, Bonds, Input, Output};

const STAKE_FRAC: i32 = 16;

/// The previous `compute`, from the previous epoch's bonds `prev` (it ignores
/// `input.segments`).
pub fn compute(input: &Input<'_>, prev: &Bonds) -> (Output, Bonds) {
    let n = input.stake.len();
    let p = input.params;
    let e = &*input.edges.entries();
    let stake_hat = rank::normalised_stake(input.stake);
    let rank = fixed::scatter_sum(n, &e.dst, 1, UNIT_FRAC, |x| {
        stake_hat[e.src[x] as usize] * e.weight[x]
    });
    let trust = fixed::scatter_sum(n, &e.dst, 1, UNIT_FRAC, |x| {
        if e.weight[x] > 0.0 {
            stake_hat[e.src[x] as usize]
        } else {
            0.0
        }
    });
    let consensus = consensus::consensus(&trust, p.rho, p.kappa);
    let rc: Vec<f64> = rank.iter().zip(&consensus).map(|(r, c)| r * c).collect();
    let total = fixed::sum(&rc, UNIT_FRAC);
    let incentive: Vec<f64> = if total <= 0.0 {
        vec![0.0; n]
    } else {
        rc.iter().map(|v| (v / total).min(1.0)).collect()
    };
    let b: Bonds = accumulate(prev, input.stake, e);
    let col = fixed::scatter_sum(n, &b.peer, 1, STAKE_FRAC, |x| b.bond[x]);
    let dividends: Vec<f64> = fixed::scatter_sum(n, &b.holder, 1, UNIT_FRAC, |x| {
        let j = b.peer[x] as usize;
        if col[j] > 0.0 && incentive[j] > 0.0 {
            (b.bond[x] / col[j]).min(1.0) * incentive[j]
        } else {
            0.0
        }
    })
    .into_iter()
    .map(|d| d.min(1.0))
    .collect();
    let delta = emission::stake_delta(&dividends, &incentive, p.bond_share);
    let em = emission::apportion(&delta, p.emission_per_epoch);
    let stake_after: Vec<u64> = input
        .stake
        .iter()
        .zip(&em)
        .map(|(s, x)| s.saturating_add(*x))
        .collect();
    let terms: Vec<f64> = rank
        .iter()
        .zip(&consensus)
        .map(|(r, c)| r * (c - 0.5))
        .collect();
    let loss = -fixed::sum(&terms, UNIT_FRAC);
    let out = Output {
        stake_hat,
        stake_share: rank::normalised_stake(&stake_after),
        rank,
        trust,
        consensus,
        incentive,
        dividends,
        emission: em,
        stake_after,
        loss,
        k_next: peg::next_k(input.k, loss, p.peg_step, p.k_max),
    };
    (out, b)
}

/// B' = B + diag(S)·W, merged in sorted order, in f64 epoch by epoch; zero
/// bonds are dropped.
fn accumulate(prev: &Bonds, stake: &[u64], edges: &super::Edges) -> Bonds {
    let mut out = Bonds::default();
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
        let add = |b: usize| stake[edges.src[b] as usize] as f64 * edges.weight[b];
        match (ka, kb) {
            (Some(x), Some(y)) if x == y => {
                push(&mut out, x.0, x.1, prev.bond[a] + add(b));
                a += 1;
                b += 1;
            }
            (Some(x), y) if y.is_none_or(|y| x < y) => {
                push(&mut out, x.0, x.1, prev.bond[a]);
                a += 1;
            }
            (_, Some(y)) => {
                push(&mut out, y.0, y.1, add(b));
                b += 1;
            }
            (_, None) => unreachable!("loop condition"),
        }
    }
    out
}
