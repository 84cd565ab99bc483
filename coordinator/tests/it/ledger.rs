//! A ledger that grows with what changed: rows written once, bonds in closed
//! form with checkpoints, and the views that answer both at every epoch.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::common::*;

fn f(s: &str) -> f64 {
    s.parse().unwrap()
}

fn n(s: &str) -> u64 {
    s.parse().unwrap()
}

/// Five peers over eight epochs: rows change (peer 1 at epoch 2), are
/// resubmitted unchanged (peer 0 at 3), expire (`weights_ttl = 5`: peers 2,
/// 3, 4 at 5) and come back (peer 3 at 6), and checkpoints fall due (uid u at
/// epoch u). Every epoch verifies; `weights_in_force` is the rows in force,
/// and `bonds_in_force` is what the previous full-snapshot code computed,
/// B' = B + S·w epoch by epoch in f64, to 1e-12.
#[test]
fn closed_form_bonds_match_the_recurrence_through_changes_expiry_and_checkpoints() {
    let net = Net::new(
        5,
        &[1_000_000, 2_000_000, 3_000_000, 500_000, 700_000],
        "weights_ttl = 5\npeg_step = 0\n",
    );
    let plan: [&[(usize, &str)]; 8] = [
        &[
            (0, "1=1,2=2"),
            (1, "0=1,3=1"),
            (2, "0=3,4=1"),
            (3, "1=1,2=1"),
            (4, "0=1,1=5"),
        ],
        &[],
        &[(1, "2=1,4=3")],
        &[(0, "1=1,2=2")],
        &[],
        &[],
        &[(3, "0=2,4=1")],
        &[],
    ];
    for (epoch, rows) in plan.iter().enumerate() {
        for (i, row) in *rows {
            net.set(*i, row);
        }
        net.fb(&["epoch", "run"]).ok();
        net.fb(&["epoch", "verify", "--epoch", &epoch.to_string()])
            .ok();
    }
    let state = net.sql_csv(
        "SELECT epoch, uid, stake_before, weights_epoch, bonds_epoch FROM state ORDER BY epoch, uid",
    );
    let at = |e: u64, u: u64| {
        state
            .iter()
            .find(|r| n(&r[0]) == e && n(&r[1]) == u)
            .unwrap()
            .clone()
    };
    // Weights written once: epoch 1 wrote no row, epoch 2 only peer 1's.
    let written =
        net.sql_csv("SELECT epoch, count(DISTINCT src) FROM weights GROUP BY epoch ORDER BY epoch");
    assert_eq!(
        written,
        [["0", "5"], ["2", "1"], ["3", "1"], ["6", "1"]]
            .iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );
    // The unchanged resubmission keeps uid 0's segment; a checkpoint starts
    // uid 4's at epoch 4 with its row unchanged; expiry starts uid 2's at 5.
    assert_eq!(at(3, 0)[3..], ["3".to_string(), "0".into()]);
    assert_eq!(at(4, 4)[3..], ["0".to_string(), "4".into()]);
    assert_eq!(at(5, 2)[3..], [String::new(), "5".into()]);
    assert_eq!(at(7, 3)[3..], ["6".to_string(), "6".into()]);

    // Rows in force per epoch, from the view.
    let mut force: BTreeMap<u64, Vec<(u64, u64, f64)>> = BTreeMap::new();
    for r in net.sql_csv(
        "SELECT epoch, src, dst, weight, weights_epoch FROM weights_in_force ORDER BY epoch, src, dst",
    ) {
        force
            .entry(n(&r[0]))
            .or_default()
            .push((n(&r[1]), n(&r[2]), f(&r[3])));
    }
    assert_eq!(force[&4].len(), 10, "every row in force at epoch 4");
    assert!(
        force[&5].iter().all(|(s, _, _)| *s < 2),
        "rows of epoch 0 expired at 5"
    );
    assert_eq!(force[&6].len(), 6);

    // The recurrence of the full-snapshot code, from the ledger's own inputs.
    let mut bonds: BTreeMap<(u64, u64), f64> = BTreeMap::new();
    let got = net.sql_csv(
        "SELECT epoch, holder, peer, bond FROM bonds_in_force ORDER BY epoch, holder, peer",
    );
    for e in 0..8u64 {
        for (s, d, w) in force.get(&e).into_iter().flatten() {
            let stake = n(&at(e, *s)[2]);
            *bonds.entry((*s, *d)).or_default() += stake as f64 * w;
        }
        bonds.retain(|_, b| *b > 0.0);
        let view: Vec<(u64, u64, f64)> = got
            .iter()
            .filter(|r| n(&r[0]) == e)
            .map(|r| (n(&r[1]), n(&r[2]), f(&r[3])))
            .collect();
        let want: Vec<(u64, u64, f64)> = bonds.iter().map(|(k, b)| (k.0, k.1, *b)).collect();
        assert_eq!(view.len(), want.len(), "epoch {e}: {view:?} vs {want:?}");
        for (v, w) in view.iter().zip(&want) {
            assert_eq!((v.0, v.1), (w.0, w.1), "epoch {e}");
            assert!(
                (v.2 - w.2).abs() <= 1e-12 * w.2,
                "epoch {e}: bond {v:?} vs {w:?}"
            );
        }
    }
    // The view gives the epoch's own B' to the bit: the closed form of the
    // segments the next epoch starts from.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = faceblock_schemas::Store::open(&net.store).unwrap();
        let file = faceblock_schemas::NetworkFile::load(&store).await.unwrap();
        let ledger = faceblock_coordinator::ledger::Ledger::new(store);
        for e in 0..8u64 {
            let prev = faceblock_coordinator::epoch::previous::load(&file, &ledger, e + 1, 2, None)
                .await
                .unwrap();
            let uid = |i: u32| prev.registry.peers()[i as usize].uid as u64;
            let b = prev.segments.bonds();
            let mine: Vec<(u64, u64, u64)> = (0..b.len())
                .map(|x| (uid(b.holder[x]), uid(b.peer[x]), b.bond[x].to_bits()))
                .collect();
            let view: Vec<(u64, u64, u64)> = got
                .iter()
                .filter(|r| n(&r[0]) == e)
                .map(|r| (n(&r[1]), n(&r[2]), f(&r[3]).to_bits()))
                .collect();
            assert_eq!(mine, view, "epoch {e}");
        }
        // The runs left epoch 7's hand-over in the local cache (common.rs
        // sets FACEBLOCK_CACHE): it is what the ledger gives, entry for entry.
        use faceblock_coordinator::epoch::{cache::EpochCache, previous};
        let cache = EpochCache::new(
            &std::env::temp_dir().join("faceblock-tests-epoch-cache"),
            ledger.store().url().as_str(),
        );
        let read = previous::load(&file, &ledger, 8, 2, None).await.unwrap();
        let n = read.registry.len();
        assert!(
            cache.load(7, &read.prev_digest, n).is_some(),
            "epoch 7 cached"
        );
        let cached = previous::load(&file, &ledger, 8, 2, Some(&cache))
            .await
            .unwrap();
        assert_eq!(cached.rows, read.rows);
        assert_eq!(cached.segments, read.segments);
        assert_eq!(cached.stake, read.stake);
        assert!(
            cache.load(7, "not-the-digest", n).is_none(),
            "another digest misses"
        );
    });
    // Fewer bond rows than a snapshot per epoch would hold.
    let stored = net.sql_csv("SELECT count(*) FROM bonds");
    assert!(
        n(&stored[0][0]) < got.len() as u64,
        "{stored:?} vs {}",
        got.len()
    );
}

fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_bytes(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

fn bench(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_faceblock-bench"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bytes the ledger grows by in one `epoch run`.
fn epoch_bytes(store: &Path) -> u64 {
    let before = dir_bytes(&store.join("ledger"));
    fb(store.to_str().unwrap(), &["epoch", "run"]).ok();
    dir_bytes(&store.join("ledger")) - before
}

/// 1,000 peers × 256 weights (the row width): an epoch where 1 % of
/// peers resubmit writes under 5 % of the bytes of one where every peer does
/// (a full snapshot). `state` is written whole every epoch (one row per
/// peer, about 75 bytes), so the ratio falls with the row width: at 32
/// weights a row that floor alone is about 9 % of a full epoch.
#[test]
fn an_epoch_where_one_percent_change_writes_under_five_percent() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("net");
    let s = store.to_str().unwrap();
    let gen = |epoch: &str, share: &str| {
        bench(&[
            "generate",
            "--peers",
            "1000",
            "--weights",
            "256",
            "--store",
            s,
            "--epoch",
            epoch,
            "--share",
            share,
        ])
    };
    gen("0", "1");
    fb(s, &["epoch", "run"]).ok();
    gen("1", "1");
    let full = epoch_bytes(&store);
    gen("2", "0.01");
    let few = epoch_bytes(&store);
    eprintln!(
        "ledger bytes per epoch: every peer resubmits {full}, 1 % resubmit {few} ({:.2} %)",
        100.0 * few as f64 / full as f64
    );
    assert!(
        (few as f64) < 0.05 * full as f64,
        "1 % resubmit wrote {few} bytes, every peer {full}"
    );
    fb(s, &["epoch", "verify", "--epoch", "2"]).ok();
}

/// The ledger session reads Parquet file lists, not Delta scans, and a
/// filter on `epoch` prunes whole files: the plan for one epoch names only
/// that epoch's files.
#[test]
fn ledger_tables_are_parquet_file_lists_pruned_by_epoch() {
    let net = Net::new(3, &[100], "");
    for _ in 0..3 {
        net.set(0, "1=1,2=1");
        net.fb(&["epoch", "run"]).ok();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let plan = rt.block_on(async {
        let store = faceblock_schemas::Store::open(&net.store).unwrap();
        let ledger = faceblock_coordinator::ledger::Ledger::new(store);
        let ctx = ledger.session(Some(2), 2).await.unwrap();
        let df = ctx
            .sql("SELECT src, dst, weight FROM weights WHERE epoch = 1")
            .await
            .unwrap();
        let rows: usize = df
            .clone()
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 2);
        let plan = df.create_physical_plan().await.unwrap();
        let text = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        text
    });
    assert!(plan.contains("DataSourceExec"), "{plan}");
    assert!(plan.contains("file_type=parquet"), "{plan}");
    assert!(plan.contains("epoch=1/"), "{plan}");
    for other in ["epoch=0/", "epoch=2/"] {
        assert!(!plan.contains(other), "{other} is read:\n{plan}");
    }
    assert!(!plan.to_lowercase().contains("delta"), "{plan}");
}

/// Epochs in which a few peers send new rows, run with the epoch cache: each
/// entry writes only what changed and names the rest in an earlier epoch's
/// files, and every epoch commits the digest a run without the cache
/// commits; the last entry reads back as the ledger does.
#[test]
fn a_growing_epoch_cache_changes_no_digest() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let stores = [dir.path().join("cached"), dir.path().join("plain")];
    let gen = |store: &Path, epoch: u64, share: &str| {
        bench(&[
            "generate",
            "--peers",
            "300",
            "--weights",
            "64",
            "--store",
            store.to_str().unwrap(),
            "--epoch",
            &epoch.to_string(),
            "--share",
            share,
        ])
    };
    let digests = |store: &Path| {
        fb(
            store.to_str().unwrap(),
            &[
                "sql",
                "--format",
                "csv",
                "SELECT epoch, digest FROM epochs ORDER BY epoch",
            ],
        )
        .ok()
        .stdout
    };
    let mut older_files_named = 0;
    for e in 0..7u64 {
        let share = if e < 2 { "1" } else { "0.02" };
        for (s, arg) in stores.iter().zip([cache.to_str().unwrap(), "off"]) {
            gen(s, e, share);
            fb(s.to_str().unwrap(), &["epoch", "run", "--cache", arg]).ok();
        }
        if e >= 2 {
            let entry = std::fs::read_dir(&cache).unwrap().next().unwrap().unwrap();
            let names: Vec<String> = std::fs::read_dir(entry.path())
                .unwrap()
                .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            let lists: Vec<&String> = names.iter().filter(|n| n.ends_with(".list")).collect();
            assert_eq!(lists.len(), 1, "{names:?}");
            assert!(lists[0].starts_with(&format!("{e}-")), "{names:?}");
            older_files_named += names
                .iter()
                .filter(|n| {
                    n.ends_with(".cols")
                        && !n.starts_with(&format!("{e}-"))
                        && !n.starts_with("spare-")
                })
                .count();
        }
    }
    assert!(
        older_files_named > 0,
        "no entry named an earlier epoch's files"
    );
    let (a, b) = (digests(&stores[0]), digests(&stores[1]));
    assert_eq!(a.lines().count(), 8, "{a}");
    assert_eq!(a, b);
    // The last entry holds what the ledger holds, entry for entry.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use faceblock_coordinator::epoch::{cache::EpochCache, previous};
        let store = faceblock_schemas::Store::open(stores[0].to_str().unwrap()).unwrap();
        let file = faceblock_schemas::NetworkFile::load(&store).await.unwrap();
        let ledger = faceblock_coordinator::ledger::Ledger::new(store);
        let c = EpochCache::new(&cache, ledger.store().url().as_str());
        let read = previous::load(&file, &ledger, 7, 2, None).await.unwrap();
        let cached = previous::load(&file, &ledger, 7, 2, Some(&c))
            .await
            .unwrap();
        assert!(cached.rows.parts.len() > 1, "the entry is in runs");
        assert_eq!(cached.rows, read.rows);
        assert_eq!(cached.segments, read.segments);
    });
    fb(
        stores[0].to_str().unwrap(),
        &["epoch", "verify", "--epoch", "6"],
    )
    .ok();
}
