//! Small networks worked out by hand, then properties over random networks.
#![allow(clippy::needless_range_loop, clippy::type_complexity)]

use super::*;
use faceblock_schemas::Params;
use proptest::prelude::*;

fn sigma(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn edges(rows: &[(u32, u32, f64)]) -> Edges {
    let mut r = rows.to_vec();
    r.sort_by_key(|a| (a.0, a.1));
    Edges {
        src: r.iter().map(|x| x.0).collect(),
        dst: r.iter().map(|x| x.1).collect(),
        weight: r.iter().map(|x| x.2).collect(),
    }
}

fn run(stake: &[u64], e: &Edges, b: &Bonds, k: u32) -> Output {
    let p = Params::default();
    compute(
        &Input {
            params: &p,
            k,
            stake,
            edges: e,
            bonds: b,
        },
        1,
    )
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

/// Three peers, stake 100/100/200; rows 0→{1:1}, 1→{0:.5,2:.5}, 2→{0:.5,1:.5}.
#[test]
fn three_peers_by_hand() {
    let e = edges(&[
        (0, 1, 1.0),
        (1, 0, 0.5),
        (1, 2, 0.5),
        (2, 0, 0.5),
        (2, 1, 0.5),
    ]);
    let o = run(&[100, 100, 200], &e, &Bonds::default(), 1);
    // ŝ = [.25, .25, .5]
    assert_eq!(o.stake_hat, vec![0.25, 0.25, 0.5]);
    // r0 = .25·.5 + .5·.5, r1 = .25·1 + .5·.5, r2 = .25·.5
    close(o.rank[0], 0.375);
    close(o.rank[1], 0.5);
    close(o.rank[2], 0.125);
    // t0 = ŝ1+ŝ2, t1 = ŝ0+ŝ2, t2 = ŝ1
    close(o.trust[0], 0.75);
    close(o.trust[1], 0.75);
    close(o.trust[2], 0.25);
    let (c_hi, c_lo) = (sigma(2.5), sigma(-2.5));
    close(o.consensus[0], c_hi);
    close(o.consensus[2], c_lo);
    let rc = [0.375 * c_hi, 0.5 * c_hi, 0.125 * c_lo];
    let s: f64 = rc.iter().sum();
    let inc: Vec<f64> = rc.iter().map(|v| v / s).collect();
    for j in 0..3 {
        close(o.incentive[j], inc[j]);
    }
    // B' = S·W: B01=100, B10=50, B12=50, B20=100, B21=100.
    assert_eq!(o.bonds.holder, vec![0, 1, 1, 2, 2]);
    assert_eq!(o.bonds.peer, vec![1, 0, 2, 0, 1]);
    assert_eq!(o.bonds.bond, vec![100.0, 50.0, 50.0, 100.0, 100.0]);
    // β10 = 50/150, β20 = 100/150, β01 = β21 = 1/2, β12 = 1.
    let d = [
        0.5 * inc[1],
        inc[0] / 3.0 + inc[2],
        2.0 * inc[0] / 3.0 + 0.5 * inc[1],
    ];
    for i in 0..3 {
        close(o.dividends[i], d[i]);
    }
    let tau = 1e9;
    for i in 0..3 {
        let exact = tau * (0.5 * d[i] + 0.5 * inc[i]);
        assert!((o.emission[i] as f64 - exact).abs() <= 1.0, "{i}");
        assert_eq!(o.stake_after[i], [100, 100, 200][i] + o.emission[i]);
    }
    assert_eq!(o.emission.iter().sum::<u64>(), 1_000_000_000);
    let loss = -(0.375 * (c_hi - 0.5) + 0.5 * (c_hi - 0.5) + 0.125 * (c_lo - 0.5));
    close(o.loss, loss);
    assert!(o.loss < 0.0);
    assert_eq!(o.k_next, 1);
}

/// Bonds carry over: previous bonds add to this epoch's S·W.
#[test]
fn bonds_accumulate_across_epochs() {
    let e = edges(&[(0, 1, 1.0), (1, 0, 1.0)]);
    let prev = Bonds {
        holder: vec![0, 1],
        peer: vec![1, 1],
        bond: vec![10.0, 30.0],
    };
    let o = run(&[100, 300], &e, &prev, 1);
    // B01 = 10 + 100, B10 = 300, B11 = 30 carried.
    assert_eq!(o.bonds.holder, vec![0, 1, 1]);
    assert_eq!(o.bonds.peer, vec![1, 0, 1]);
    assert_eq!(o.bonds.bond, vec![110.0, 300.0, 30.0]);
    // β01 = 110/140, β11 = 30/140, β10 = 1.
    let d0 = 110.0 / 140.0 * o.incentive[1];
    close(o.dividends[0], d0);
    close(
        o.dividends[1],
        o.incentive[0] + 30.0 / 140.0 * o.incentive[1],
    );
}

/// A disjoint cabal (20 % of stake, voting only for itself) loses stake share.
#[test]
fn disjoint_cabal_loses_share() {
    let mut rows = vec![];
    for i in 0..4u32 {
        for j in 0..4u32 {
            if i != j {
                rows.push((i, j, 1.0 / 3.0));
            }
        }
    }
    rows.push((4, 5, 1.0));
    rows.push((5, 4, 1.0));
    let e = edges(&rows);
    let stake = [200, 200, 200, 200, 100, 100];
    let o = run(&stake, &e, &Bonds::default(), 1);
    // Honest trust .6 → c = σ(1); cabal trust .1 → c = σ(−4).
    close(o.consensus[0], sigma(1.0));
    close(o.consensus[4], sigma(-4.0));
    let cabal_em: u64 = o.emission[4] + o.emission[5];
    let cabal_share_before = 0.2;
    let cabal_share_after =
        (o.stake_after[4] + o.stake_after[5]) as f64 / o.stake_after.iter().sum::<u64>() as f64;
    assert!(cabal_share_after < cabal_share_before);
    assert!((cabal_em as f64) < 0.05 * 1e9, "cabal got {cabal_em}");
    assert!(o.loss < 0.0);
}

/// A zero-stake peer's row moves nothing; it can still earn incentive.
#[test]
fn zero_stake_peer() {
    let e = edges(&[(0, 1, 1.0), (2, 0, 1.0)]);
    let o = run(&[100, 100, 0], &e, &Bonds::default(), 1);
    assert_eq!(
        o.rank[0], 0.0,
        "peer 2 has no stake, so its vote for 0 counts 0"
    );
    assert_eq!(o.trust[0], 0.0);
    close(o.rank[1], 0.5);
    close(o.incentive[1], 1.0);
    // Peer 2 bonded nothing (0 stake): no bond row, no dividends.
    assert!(!o.bonds.holder.contains(&2));
    assert_eq!(o.dividends[2], 0.0);
    // All of it goes to peer 1 (incentive) and peer 0 (its bonds in 1).
    assert_eq!(o.emission, vec![500_000_000, 500_000_000, 0]);
}

/// No weights at all: nothing minted, k unchanged.
#[test]
fn no_weights_mints_nothing() {
    let o = run(&[5, 7, 9], &Edges::default(), &Bonds::default(), 3);
    assert_eq!(o.emission, vec![0, 0, 0]);
    assert_eq!(o.stake_after, vec![5, 7, 9]);
    assert_eq!(o.loss, 0.0);
    assert_eq!(o.k_next, 3);
    assert!(o.incentive.iter().all(|v| *v == 0.0));
}

/// A positive loss raises k by peg_step, capped at k_max.
#[test]
fn peg_rises_after_positive_loss() {
    // Peer 0 (30 %) votes for 1; peer 2 (70 %) sets no row: 1 is ranked by a minority.
    let e = edges(&[(0, 1, 1.0)]);
    let o = run(&[30, 0, 70], &e, &Bonds::default(), 4);
    close(o.rank[1], 0.3);
    close(o.consensus[1], sigma(-2.0));
    close(o.loss, -0.3 * (sigma(-2.0) - 0.5));
    assert!(o.loss > 0.0);
    assert_eq!(o.k_next, 5);
    assert_eq!(peg::next_k(1024, 0.1, 1, 1024), 1024);
    assert_eq!(peg::next_k(7, -0.1, 1, 1024), 7);
    assert_eq!(peg::next_k(7, 0.0, 1, 1024), 7);
}

/// Remainder units go to the largest fractional parts, lower uid on ties.
#[test]
fn apportion_remainder() {
    // Three equal shares of 10: 3 each, one unit left, to uid 0.
    assert_eq!(emission::apportion(&[1.0, 1.0, 1.0], 10), vec![4, 3, 3]);
    // Shares .5/.3/.2 of 7: exact 3.5, 2.1, 1.4 → 3,2,1 + 1 to the largest (.5).
    assert_eq!(emission::apportion(&[0.5, 0.3, 0.2], 7), vec![4, 2, 1]);
    assert_eq!(emission::apportion(&[0.0, 0.0], 7), vec![0, 0]);
}

fn network() -> impl Strategy<Value = (Vec<u64>, Vec<(u32, u32, f64)>, Vec<(u32, u32, f64)>)> {
    (2usize..12).prop_flat_map(|n| {
        (
            proptest::collection::vec(0u64..1_000_000_000_000, n),
            proptest::collection::vec((0..n as u32, 0..n as u32, 0.001f64..10.0), 0..60),
            proptest::collection::vec((0..n as u32, 0..n as u32, 0.0f64..1e12), 0..30),
        )
    })
}

fn normalise(n: usize, raw: &[(u32, u32, f64)]) -> Edges {
    let mut m = std::collections::BTreeMap::new();
    for (s, d, w) in raw {
        if s != d {
            m.insert((*s, *d), *w);
        }
    }
    let mut sums = vec![0.0; n];
    for ((s, _), w) in &m {
        sums[*s as usize] += w;
    }
    edges(
        &m.iter()
            .map(|((s, d), w)| (*s, *d, w / sums[*s as usize]))
            .collect::<Vec<_>>(),
    )
}

fn bonds_of(raw: &[(u32, u32, f64)]) -> Bonds {
    let m: std::collections::BTreeMap<_, _> = raw
        .iter()
        .filter(|x| x.2 > 0.0)
        .map(|(h, p, b)| ((*h, *p), *b))
        .collect();
    Bonds {
        holder: m.keys().map(|k| k.0).collect(),
        peer: m.keys().map(|k| k.1).collect(),
        bond: m.values().copied().collect(),
    }
}

proptest! {
    #[test]
    fn invariants_hold((stake, rows, prev) in network()) {
        let n = stake.len();
        let e = normalise(n, &rows);
        let b = bonds_of(&prev);
        let p = Params::default();
        let input = Input { params: &p, k: 1, stake: &stake, edges: &e, bonds: &b };
        let o = compute(&input, 1);
        let total: u64 = o.emission.iter().sum();
        prop_assert!(total == p.emission_per_epoch || total == 0, "emitted {}", total);
        let inc: f64 = o.incentive.iter().sum();
        prop_assert!(total == 0 || (inc - 1.0).abs() < 1e-9);
        prop_assert!(total > 0 || inc == 0.0);
        for v in [&o.rank, &o.trust, &o.consensus, &o.incentive, &o.dividends, &o.stake_share] {
            for x in v.iter() {
                prop_assert!((0.0..=1.0).contains(x), "{} out of [0,1]", x);
            }
        }
        let div: f64 = o.dividends.iter().sum();
        prop_assert!(div == 0.0 || (div - 1.0).abs() < 1e-9, "ΣD = {}", div);
        for i in 0..n {
            prop_assert!(o.stake_after[i] >= stake[i]);
        }
        // Same bits whatever the thread count.
        let o8 = compute(&input, 8);
        prop_assert_eq!(&o, &o8);
    }
}
