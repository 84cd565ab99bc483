//! Small networks worked out by hand, then properties over random networks.
#![allow(clippy::needless_range_loop, clippy::type_complexity)]

use super::bonds::closed_form;
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

/// Segments where every holder starts afresh this epoch from bonds `prev`.
fn fresh(prev: &Bonds, stake: &[u64], e: &super::Rows) -> Segments {
    let n = stake.len();
    Segments::from_bonds(prev, n).advance(1, stake, e, &vec![true; n])
}

/// An epoch's output and its bonds B' (the segments' closed form).
struct Ran {
    out: Output,
    bonds: Bonds,
}

impl std::ops::Deref for Ran {
    type Target = Output;
    fn deref(&self) -> &Output {
        &self.out
    }
}

/// SPEC 5.2 as first written (`step` peg): the hand-worked numbers below.
fn run(stake: &[u64], e: &Edges, b: &Bonds, k: u32) -> Ran {
    run_with(&Params::legacy(), stake, e, b, k)
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

/// Stakes across the whole u64 range: dust, powers of two, anything.
fn any_stake() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..10,
        0u64..1_000_000_000_000,
        (0u32..64).prop_map(|b| 1u64 << b),
        (0u32..64).prop_map(|b| (1u64 << b) - 1),
        any::<u64>(),
    ]
}

fn network() -> impl Strategy<Value = (Vec<u64>, Vec<(u32, u32, f64)>, Vec<(u32, u32, f64)>)> {
    (2usize..12).prop_flat_map(|n| {
        (
            proptest::collection::vec(any_stake(), n),
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
        let b = fresh(&bonds_of(&prev), &stake, &e.clone().into());
        let p = Params::default();
        let input = Input { params: &p, k: 1, stake: &stake, edges: &e.clone().into(), segments: &b };
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
        prop_assert!(total == 0 || (div - 1.0).abs() < 1e-9, "ΣD = {}", div);
        prop_assert!(total > 0 || div == 0.0, "ΣD = {} with nothing minted", div);
        // Any staked peer's row earns someone incentive, so τ is minted.
        let staked_row = (0..e.len()).any(|x| stake[e.src[x] as usize] > 0 && e.weight[x] > 0.0);
        prop_assert_eq!(total > 0, staked_row, "minted {} (a staked row: {})", total, staked_row);
        for i in 0..n {
            prop_assert!(o.stake_after[i] >= stake[i]);
        }
        // Same bits whatever the thread count.
        let o8 = compute(&input, 8);
        prop_assert_eq!(&o, &o8);
    }
}

/// Bond columns of dust stake: genesis [1, 1, 1], rows 0→{1:1, 2:2},
/// 1→{0:1, 2:2}, 2→{0:1, 1:2}. ΔS = [5/18, 1/3, 7/18] exactly, so τ = 10^9
/// is [277777777.8, 333333333.3, 388888888.9] → [277777778, 333333333, 388888889].
/// (A 2^-16 column sum minted [277778202, 333333333, 388888465].)
#[test]
fn dust_bond_columns_pay_exactly() {
    let raw = [
        (0, 1, 1.0),
        (0, 2, 2.0),
        (1, 0, 1.0),
        (1, 2, 2.0),
        (2, 0, 1.0),
        (2, 1, 2.0),
    ];
    let e = normalise(3, &raw);
    let o = run(&[1, 1, 1], &e, &Bonds::default(), 1);
    assert_eq!(o.emission, vec![277_777_778, 333_333_333, 388_888_889]);
    let div: f64 = o.dividends.iter().sum();
    assert!((div - 1.0).abs() < 1e-15, "ΣD = {div}");
    for d in &o.dividends {
        close(*d, 1.0 / 3.0);
    }
}

/// Ranks of dust stake beside a whale: stakes [2^62 − 2^31, 1, 5], only uid 1
/// sets {0:1, 2:1}. r_0 = r_2 = 2^-63 / (1 + 3·2^-62) (below a 2^-62 absolute
/// scale), I = [.5, 0, .5], D_1 = 1, so τ = 10^9 is [2.5e8, 5e8, 2.5e8].
#[test]
fn dust_ranks_still_mint() {
    let e = normalise(3, &[(1, 0, 1.0), (1, 2, 1.0)]);
    let stake = [(1u64 << 62) - (1 << 31), 1, 5];
    let o = run(&stake, &e, &Bonds::default(), 1);
    assert_eq!(o.emission, vec![250_000_000, 500_000_000, 250_000_000]);
    let t = ((1u128 << 62) - (1 << 31) + 6) as f64;
    assert_eq!(o.trust[0], 1.0 / t);
    assert!((o.rank[0] - 0.5 / t).abs() <= 1e-15 * o.rank[0]);
    assert_eq!(o.incentive, vec![0.5, 0.0, 0.5]);
    assert_eq!(o.dividends, vec![0.0, 1.0, 0.0]);
    assert!(o.loss > 0.0, "a rank from a minority: L > 0");
}

/// Rows in force of a random network over epochs: each epoch about a third
/// of peers submit a new row, one in twenty loses its row (as `weights_ttl`
/// would), the rest keep theirs.
struct Rows {
    n: usize,
    rows: std::collections::BTreeMap<u32, Vec<(u32, f64)>>,
}

impl Rows {
    fn step(&mut self, rng: &mut rand::rngs::StdRng, epoch: u64, wide: usize) -> Edges {
        use rand::Rng;
        let n = self.n as u32;
        for i in 0..n {
            if epoch == 0 || rng.gen_bool(0.33) {
                let row = (0..rng.gen_range(1..wide) as u32)
                    .map(|x| ((i + 1 + x * 3) % n, rng.gen_range(0.01..5.0)))
                    .filter(|(d, _)| *d != i)
                    .collect();
                self.rows.insert(i, row);
            } else if rng.gen_bool(0.05) {
                self.rows.remove(&i);
            }
        }
        let raw: Vec<(u32, u32, f64)> = self
            .rows
            .iter()
            .flat_map(|(s, r)| r.iter().map(move |(d, w)| (*s, *d, *w)))
            .collect();
        normalise(self.n, &raw)
    }
}

/// A segment goes on while its row is unchanged and starts afresh when the
/// row changes, expires or a checkpoint is due; the closed form is the
/// recurrence B' = B + S·w.
#[test]
fn segments_start_on_change_expiry_and_checkpoint() {
    let e1 = edges(&[(0, 1, 1.0), (1, 0, 0.5), (1, 2, 0.5)]);
    let stake = [100u64, 10, 7];
    let s0 = Segments::default().advance(0, &stake, &e1.clone().into(), &[]);
    assert_eq!(s0.start, vec![0, 0, 0]);
    assert_eq!(s0.stake, vec![0, 0, 0]);
    assert_eq!(
        s0.entries().bond,
        vec![100.0, 5.0, 5.0],
        "the bonds after epoch 0"
    );
    assert_eq!(s0.bonds().bond, vec![100.0, 5.0, 5.0]);
    // Same rows: every segment goes on, stake sums grow.
    let s1 = s0.advance(1, &stake, &e1.clone().into(), &[]);
    assert_eq!(s1.start, vec![0, 0, 0]);
    assert_eq!(s1.stake, vec![100, 10, 7]);
    assert_eq!(s1.bonds().bond, vec![200.0, 10.0, 10.0]);
    // Peer 0's row changes, peer 1 is due a checkpoint, peer 2 goes on.
    let e2 = edges(&[(0, 2, 1.0), (1, 0, 0.5), (1, 2, 0.5)]);
    let s2 = s1.advance(2, &stake, &e2.clone().into(), &[false, true, false]);
    assert_eq!(s2.start, vec![2, 2, 0]);
    assert_eq!(s2.stake, vec![0, 0, 14]);
    let e2 = s2.entries();
    assert_eq!(e2.holder, vec![0, 0, 1, 1]);
    assert_eq!(e2.bond, vec![200.0, 100.0, 15.0, 15.0]);
    assert_eq!(e2.weight, vec![0.0, 1.0, 0.5, 0.5]);
    assert_eq!(s2.bonds().bond, vec![200.0, 100.0, 15.0, 15.0]);
    // Peer 1's row expires: its bonds stay, nothing is added; a new peer 3.
    let e3 = edges(&[(0, 2, 1.0)]);
    let s3 = s2.advance(3, &[100, 10, 7, 5], &e3.clone().into(), &[]);
    assert_eq!(s3.start, vec![2, 3, 0, 3]);
    assert_eq!(s3.bonds().bond, vec![200.0, 200.0, 15.0, 15.0]);
    // A stake sum past 2^63 − 1 starts a segment instead: 100 + 2·(2^62 − 1) does.
    let big = [u64::MAX / 4, 0, 0, 0];
    let s4 = s3.advance(4, &big, &e3.clone().into(), &[]);
    assert_eq!(s4.start[0], 2);
    let s5 = s4.advance(5, &big, &e3.clone().into(), &[]);
    assert_eq!((s5.start[0], s5.stake[0]), (5, 0));
    let (e4, e5) = (s4.entries(), s5.entries());
    let before = closed_form(e4.bond[1], e4.weight[1], s4.stake[0]);
    assert_eq!(e5.bond[1], closed_form(before, 1.0, u64::MAX / 4));
    let s6 = s5.advance(6, &big, &e3.clone().into(), &[]);
    assert_eq!((s6.start[0], s6.stake[0]), (5, u64::MAX / 4));
}

/// Where every stake is at least 10^5, the per-sum scales and bonds in
/// closed form agree with the previous arithmetic (absolute 2^-62 and 2^-16
/// scales, bonds summed epoch by epoch) within 1e-12, epoch after epoch, with
/// stake, rows and bonds carried over, rows changing and expiring, and
/// checkpoints crossed.
#[test]
fn agrees_with_previous_arithmetic_over_many_epochs() {
    use rand::{Rng, SeedableRng};
    let p = Params::legacy();
    for seed in 0..6u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = rng.gen_range(3..40usize);
        let mut stake: Vec<u64> = (0..n)
            .map(|_| rng.gen_range(100_000..1_000_000_000_000))
            .collect();
        let mut rows = Rows {
            n,
            rows: Default::default(),
        };
        let (mut old_stake, mut segments, mut old_bonds) =
            (stake.clone(), Segments::default(), Bonds::default());
        let mut k = 1;
        for epoch in 0..25u64 {
            let e: super::Rows = rows.step(&mut rng, epoch, n.min(6)).into();
            let due: Vec<bool> = (0..n)
                .map(|i| (epoch + i as u64).is_multiple_of(8))
                .collect();
            segments = segments.advance(epoch, &stake, &e, &due);
            let input = Input {
                params: &p,
                k,
                stake: &stake,
                edges: &e,
                segments: &segments,
            };
            let new = compute(&input, 2);
            let new_bonds = segments.bonds();
            let (old, old_new_bonds) = legacy::compute(
                &Input {
                    stake: &old_stake,
                    ..input
                },
                &old_bonds,
            );
            for (a, b) in [
                (&new.rank, &old.rank),
                (&new.trust, &old.trust),
                (&new.consensus, &old.consensus),
                (&new.incentive, &old.incentive),
                (&new.dividends, &old.dividends),
                (&new.stake_share, &old.stake_share),
            ] {
                for (x, y) in a.iter().zip(b.iter()) {
                    assert!(
                        (x - y).abs() < 1e-12,
                        "seed {seed} epoch {epoch}: {x} vs {y}"
                    );
                }
            }
            assert!((new.loss - old.loss).abs() < 1e-12);
            assert_eq!(new.k_next, old.k_next);
            for (x, y) in new.emission.iter().zip(&old.emission) {
                assert!(
                    x.abs_diff(*y) <= 1,
                    "seed {seed} epoch {epoch}: emission {x} vs {y}"
                );
            }
            assert_eq!(new_bonds.holder, old_new_bonds.holder);
            assert_eq!(new_bonds.peer, old_new_bonds.peer);
            for (x, y) in new_bonds.bond.iter().zip(&old_new_bonds.bond) {
                assert!((x - y).abs() <= 1e-12 * y.abs(), "bond {x} vs {y}");
            }
            stake = new.stake_after;
            old_stake = old.stake_after;
            old_bonds = old_new_bonds;
            k = new.k_next;
        }
    }
}

/// The plans against the loops: the same bits, at 1, 2 and 8 partitions.
fn plans_match_loops(stake: &[u64], e: &Edges, b: &Bonds, k: u32) {
    plans_match_loops_with(&Params::default(), stake, e, b, k)
}

fn plans_match_loops_with(p: &Params, stake: &[u64], e: &Edges, b: &Bonds, k: u32) {
    let p = p.clone();
    let e = &super::Rows::from(e.clone());
    let segments = fresh(b, stake, &super::bond_edges(&p, stake, e));
    let input = Input {
        params: &p,
        k,
        stake,
        edges: e,
        segments: &segments,
    };
    let want = compute(&input, 1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for parts in [1, 2, 8] {
        let got = rt.block_on(plans::compute(&input, parts)).unwrap();
        assert_eq!(got, want, "{parts} partitions, {:?}", p.consensus);
        let bonds = rt
            .block_on(async {
                let ctx = plans::session(parts);
                plans::register_inputs(&ctx, &input, parts).await?;
                plans::bonds(&ctx).await
            })
            .unwrap();
        assert_eq!(bonds, segments.bonds(), "B' by the view `new_bonds`");
    }
}

#[test]
fn plans_give_the_loops_bits_on_the_hand_worked_networks() {
    let raw = [
        (0, 1, 1.0),
        (0, 2, 2.0),
        (1, 0, 1.0),
        (1, 2, 2.0),
        (2, 0, 1.0),
        (2, 1, 2.0),
    ];
    plans_match_loops(&[1, 1, 1], &normalise(3, &raw), &Bonds::default(), 1);
    let dust = normalise(3, &[(1, 0, 1.0), (1, 2, 1.0)]);
    plans_match_loops(
        &[(1u64 << 62) - (1 << 31), 1, 5],
        &dust,
        &Bonds::default(),
        1,
    );
    plans_match_loops(&[5, 7, 9], &Edges::default(), &Bonds::default(), 3);
    let carried = Bonds {
        holder: vec![0, 1],
        peer: vec![1, 1],
        bond: vec![10.0, 30.0],
    };
    plans_match_loops(
        &[100, 300],
        &edges(&[(0, 1, 1.0), (1, 0, 1.0)]),
        &carried,
        1,
    );
}

/// Many epochs of a random network, stake, rows and bond segments carried:
/// the plans' state is the loops' state to the bit, so the digests are the
/// same at any partition count.
#[test]
fn plans_give_the_loops_bits_over_many_epochs() {
    many_epochs(&Params::default());
}

/// The same under median clipping, the doubling peg and a κ other than ½.
#[test]
fn median_clip_plans_give_the_loops_bits_over_many_epochs() {
    many_epochs(&median_clip());
    many_epochs(&Params {
        kappa: 0.3,
        peg_rule: faceblock_schemas::PegRule::DoubleCapped,
        ..median_clip()
    });
}

fn median_clip() -> Params {
    Params {
        consensus: faceblock_schemas::Consensus::MedianClip,
        ..Params::default()
    }
}

fn many_epochs(p: &Params) {
    use rand::{Rng, SeedableRng};
    let p = p.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let n = 60;
    let mut stake: Vec<u64> = (0..n)
        .map(|i| {
            if i % 7 == 0 {
                rng.gen_range(0..5)
            } else {
                rng.gen()
            }
        })
        .collect();
    stake.iter_mut().for_each(|s| *s >>= 8);
    let mut rows = Rows {
        n,
        rows: Default::default(),
    };
    let mut segments = Segments::default();
    let mut k = 1;
    let mut pieces = 0;
    let mem: super::Alloc = &|n| super::Block::in_memory(n, 2);
    for epoch in 0..8u64 {
        let e: super::Rows = rows.step(&mut rng, epoch, 6).into();
        let due: Vec<bool> = (0..n)
            .map(|i| (epoch + i as u64).is_multiple_of(3))
            .collect();
        let bond_edges = super::bond_edges(&p, &stake, &e);
        let whole = segments.advance_in(epoch, &stake, &bond_edges, &due, 1, (mem, false));
        // Holders advanced in ranges side by side: the same segments.
        for parts in [2, 7, 60, 100] {
            let split = segments.advance_in(epoch, &stake, &bond_edges, &due, parts, (mem, false));
            assert_eq!(split, whole, "epoch {epoch}, {parts} ranges");
        }
        // Pieces laid end to end advance as the same entries in one piece.
        let one = Segments::of(
            segments.entries().into_owned(),
            segments.start.clone(),
            segments.stake.clone(),
        );
        assert_eq!(
            one.advance_in(epoch, &stake, &bond_edges, &due, 3, (mem, false)),
            whole,
            "epoch {epoch}: {} pieces against one",
            segments.parts.len()
        );
        // Compacted: the same segments, in one piece.
        let compacted = segments.advance_in(epoch, &stake, &bond_edges, &due, 7, (mem, true));
        assert_eq!(compacted, whole, "epoch {epoch}: compacted");
        assert!(compacted.parts.len() <= 1, "epoch {epoch}: one piece");
        pieces = pieces.max(whole.parts.len());
        segments = whole;
        let input = Input {
            params: &p,
            k,
            stake: &stake,
            edges: &e,
            segments: &segments,
        };
        let want = compute(&input, 2);
        for parts in [1, 2, 8] {
            let got = rt.block_on(plans::compute(&input, parts)).unwrap();
            assert_eq!(got, want, "epoch {epoch}, {parts} partitions");
        }
        stake = want.stake_after;
        k = want.k_next;
    }
    // Under median_clip the clipped rows move with stake: every segment
    // restarts each epoch, in one new piece.
    if p.consensus == faceblock_schemas::Consensus::Sigmoid {
        assert!(pieces > 1, "some epoch kept segments as pieces");
    }
}

/// A holder whose row is unchanged keeps its entries where they were: the
/// new segments share the previous buffers, and only the changed holder's
/// entries are new.
#[test]
fn segments_that_go_on_are_shared_not_copied() {
    let stake = vec![10u64, 20, 30];
    let row = |w: f64| -> super::Rows {
        Edges::new(
            vec![0, 0, 1, 2],
            vec![1, 2, 0, 0],
            vec![w, 1.0 - w, 1.0, 1.0],
        )
        .into()
    };
    let none = [false; 3];
    let s0 = Segments::default().advance(0, &stake, &row(0.5), &none);
    assert_eq!(s0.parts.len(), 1, "every segment starts at genesis");
    let s1 = s0.advance(1, &stake, &row(0.5), &none);
    assert_eq!(s1.parts.len(), 1);
    assert_eq!(
        s1.parts[0].holder.as_ptr(),
        s0.parts[0].holder.as_ptr(),
        "nothing changed: the same buffers"
    );
    // Holder 0 sets a new row: holders 1 and 2 stay where they were.
    let s2 = s1.advance(2, &stake, &row(0.25), &none);
    assert_eq!(s2.start, vec![2, 0, 0]);
    assert_eq!(s2.parts.len(), 2);
    assert_eq!(
        s2.parts[1].holder.as_ptr() as usize,
        s0.parts[0].holder.as_ptr() as usize + 2 * std::mem::size_of::<u32>(),
        "holders 1 and 2: a slice of the epoch-0 buffer"
    );
    assert_eq!(s2.entries().holder, vec![0, 0, 1, 2]);
    assert_eq!(s2.entries().weight, vec![0.25, 0.75, 1.0, 1.0]);
}

fn run_with(p: &Params, stake: &[u64], e: &Edges, b: &Bonds, k: u32) -> Ran {
    let e = &super::Rows::from(e.clone());
    let segments = fresh(b, stake, &super::bond_edges(p, stake, e));
    let out = compute(
        &Input {
            params: p,
            k,
            stake,
            edges: e,
            segments: &segments,
        },
        1,
    );
    Ran {
        out,
        bonds: segments.bonds(),
    }
}

/// Median clipping by hand. Stake [40, 30, 20, 10] (ΣS = 100, κ = ½: a
/// weight needs ⌈50⌉ of stake at or above it). Rows 0→{1:.5, 2:.5},
/// 1→{0:.6, 2:.4}, 2→{0:.2, 1:.8}, 3→{2:1}.
/// - column 0: .6 (S 30, running 30), .2 (S 20, running 50 ≥ 50) → c_0 = .2
/// - column 1: .8 (20), .5 (40 → 60) → c_1 = .5
/// - column 2: 1 (10), .5 (40 → 50) → c_2 = .5; column 3: no weight → 0
///
/// Clipped: 0→{1:.5, 2:.5}, 1→{0:.2, 2:.4}, 2→{0:.2, 1:.5}, 3→{2:.5}.
/// r = ŝᵀW' with ŝ = [.4, .3, .2, .1]: r_0 = .3·.2 + .2·.2 = .10,
/// r_1 = .4·.5 + .2·.5 = .30, r_2 = .4·.5 + .3·.4 + .1·.5 = .37, r_3 = 0;
/// I = r / .77 (no σ); t = [.5, .6, .8, 0]; L = −½ Σ r = −.385.
/// Bonds S·W': B01 = B02 = 20, B10 = 6, B12 = 12, B20 = 4, B21 = 10, B32 = 5;
/// columns 10, 30, 37, so D_0 = 20/30·I_1 + 20/37·I_2, D_1 = 6/10·I_0 + 12/37·I_2,
/// D_2 = 4/10·I_0 + 10/30·I_1, D_3 = 5/37·I_2.
#[test]
fn median_clip_by_hand() {
    let e = edges(&[
        (0, 1, 0.5),
        (0, 2, 0.5),
        (1, 0, 0.6),
        (1, 2, 0.4),
        (2, 0, 0.2),
        (2, 1, 0.8),
        (3, 2, 1.0),
    ]);
    let stake = [40, 30, 20, 10];
    let p = median_clip();
    let o = run_with(&p, &stake, &e, &Bonds::default(), 1);
    assert_eq!(o.consensus, vec![0.2, 0.5, 0.5, 0.0]);
    let r = [0.10, 0.30, 0.37, 0.0];
    for j in 0..4 {
        close(o.rank[j], r[j]);
    }
    for (j, t) in [0.5, 0.6, 0.8, 0.0].iter().enumerate() {
        close(o.trust[j], *t);
    }
    let inc: Vec<f64> = r.iter().map(|v| v / 0.77).collect();
    for j in 0..4 {
        close(o.incentive[j], inc[j]);
    }
    assert_eq!(o.bonds.holder, vec![0, 0, 1, 1, 2, 2, 3]);
    assert_eq!(o.bonds.peer, vec![1, 2, 0, 2, 0, 1, 2]);
    let want = [20.0, 20.0, 6.0, 12.0, 4.0, 10.0, 5.0];
    for (b, w) in o.bonds.bond.iter().zip(want) {
        close(*b, w);
    }
    let d = [
        20.0 / 30.0 * inc[1] + 20.0 / 37.0 * inc[2],
        0.6 * inc[0] + 12.0 / 37.0 * inc[2],
        0.4 * inc[0] + inc[1] / 3.0,
        5.0 / 37.0 * inc[2],
    ];
    for i in 0..4 {
        close(o.dividends[i], d[i]);
    }
    close(o.loss, -0.385);
    assert_eq!(o.k_next, 1);
    assert_eq!(o.emission.iter().sum::<u64>(), 1_000_000_000);
    plans_match_loops_with(&p, &stake, &e, &Bonds::default(), 1);
    // The sigmoid on the same rows pays column 3 nothing too, but clips nothing.
    let s = run(&stake, &e, &Bonds::default(), 1);
    close(s.rank[0], 0.3 * 0.6 + 0.2 * 0.2);
}

/// Two honest peers (26 + 25 of 100) and a disjoint cabal (25 + 24), each
/// side weighting only itself: no column has 50 of stake behind it, so every
/// weight is clipped to 0 and nothing is minted (the market freezes), where
/// the sigmoid pays both sides.
#[test]
fn median_clip_freezes_two_minorities() {
    let e = edges(&[(0, 1, 1.0), (1, 0, 1.0), (2, 3, 1.0), (3, 2, 1.0)]);
    let stake = [26, 25, 25, 24];
    let p = median_clip();
    let o = run_with(&p, &stake, &e, &Bonds::default(), 1);
    assert_eq!(o.consensus, vec![0.0; 4]);
    assert_eq!(o.emission, vec![0; 4]);
    assert!(o.bonds.is_empty());
    assert_eq!(o.loss, 0.0);
    plans_match_loops_with(&p, &stake, &e, &Bonds::default(), 1);
    // Ties at the crossing: peers 0 and 1 both weight 2 with .5 (S 26, 25):
    // 51 ≥ 50 at the second, so c_2 = .5, whichever comes first.
    let e = edges(&[(0, 2, 0.5), (0, 3, 0.5), (1, 2, 0.5), (1, 3, 0.5)]);
    let o = run_with(&p, &stake, &e, &Bonds::default(), 1);
    assert_eq!(o.consensus, vec![0.0, 0.0, 0.5, 0.5]);
    assert_eq!(o.incentive, vec![0.0, 0.0, 0.5, 0.5]);
    plans_match_loops_with(&p, &stake, &e, &Bonds::default(), 1);
}

/// The doubling peg: k 3 → 6 after a positive loss, capped at k_max, and
/// from k = 0 it moves by peg_step.
#[test]
fn double_peg_rule() {
    use faceblock_schemas::PegRule::{Double, DoubleCapped, Step, StepCapped};
    let r = |any, majority| peg::Ranked { any, majority };
    assert_eq!(peg::next_k_by(Double, 3, 0.1, 1, 1024, r(30, 0)), 6);
    assert_eq!(peg::next_k_by(Double, 0, 0.1, 1, 1024, r(30, 0)), 1);
    // peg_step = 0 is no peg, whatever the rule.
    assert_eq!(peg::next_k_by(Double, 3, 0.1, 0, 1024, r(30, 0)), 3);
    assert_eq!(peg::next_k_by(DoubleCapped, 3, 0.1, 0, 1024, r(30, 0)), 3);
    assert_eq!(peg::next_k_by(Double, 600, 0.1, 1, 1024, r(3000, 0)), 1024);
    assert_eq!(peg::next_k_by(Double, 3, -0.1, 1, 1024, r(30, 0)), 3);
    assert_eq!(peg::next_k_by(Step, 3, 0.1, 2, 1024, r(30, 0)), 5);
    // Capped: 20 ranked peers let k reach 19, not 32; the cap never lowers k.
    assert_eq!(peg::next_k_by(DoubleCapped, 16, 0.1, 1, 1024, r(20, 0)), 19);
    assert_eq!(peg::next_k_by(DoubleCapped, 4, 0.1, 1, 1024, r(20, 0)), 8);
    assert_eq!(peg::next_k_by(StepCapped, 19, 0.1, 1, 1024, r(20, 0)), 19);
    assert_eq!(peg::next_k_by(StepCapped, 25, 0.1, 1, 1024, r(20, 0)), 25);
    assert_eq!(peg::next_k_by(StepCapped, 7, 0.1, 1, 1024, r(20, 0)), 8);
    // 30 ranked, 20 of them majority-trusted: the cap is 19; one such peer
    // alone does not cap.
    assert_eq!(
        peg::next_k_by(DoubleCapped, 16, 0.1, 1, 1024, r(30, 20)),
        19
    );
    assert_eq!(peg::next_k_by(DoubleCapped, 16, 0.1, 1, 1024, r(30, 1)), 29);
    // Through compute: the peg network of `peg_rises_after_positive_loss`.
    let p = Params {
        peg_rule: Double,
        ..Params::default()
    };
    let o = run_with(
        &p,
        &[30, 0, 70],
        &edges(&[(0, 1, 1.0)]),
        &Bonds::default(),
        4,
    );
    assert_eq!(o.k_next, 8);
    // Capped, the same network ranks one peer (uid 1): k stays at 4.
    let p = Params {
        peg_rule: DoubleCapped,
        ..Params::default()
    };
    let e = edges(&[(0, 1, 1.0)]);
    let o = run_with(&p, &[30, 0, 70], &e, &Bonds::default(), 4);
    assert!(o.loss > 0.0);
    assert_eq!(o.k_next, 4);
    plans_match_loops_with(&p, &[30, 0, 70], &e, &Bonds::default(), 4);
}
