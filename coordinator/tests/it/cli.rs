//! The whole flow through the two binaries on a temporary directory.

use super::common::*;

#[test]
fn init_weights_register_run_verify_sql_status() {
    let net = Net::new(4, &[100, 100, 100, 100], "");
    // Peers 0..2 rank each other; peer 3 lists itself too (dropped).
    net.set(0, "1=0.5,2=0.5");
    net.set(1, "0=1,2=1");
    net.set(2, "0=3,1=1");
    net.set(3, "3=5,0=1");
    // A newcomer asks to join.
    let newkey = net.dir.path().join("new.key");
    peer("", &["keygen", "--out", newkey.to_str().unwrap()]).ok();
    peer(&net.store, &["register", "--key", newkey.to_str().unwrap()]).ok();
    // Before it is registered it can't submit.
    let r = peer(
        &net.store,
        &["weights", "--key", newkey.to_str().unwrap(), "--set", "0=1"],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not registered"), "{}", r.stderr);

    let out = fb(&net.store, &["epoch", "run", "--timings"]).ok();
    assert!(out.stdout.contains("epoch 0 committed"), "{}", out.stdout);
    assert!(out.stdout.contains("emission 1000000000"), "{}", out.stdout);
    assert!(out.stdout.contains("timings: list"), "{}", out.stdout);
    let d0 = digest_of(out.stdout.lines().next().unwrap());

    // Exactly τ minted, stake never falls; the newcomer has uid 4 and stake 0.
    let rows = net.sql_csv(
        "SELECT uid, stake_before, stake, emission FROM state WHERE epoch = 0 ORDER BY uid",
    );
    assert_eq!(rows.len(), 5);
    let minted: i64 = rows.iter().map(|r| r[3].parse::<i64>().unwrap()).sum();
    assert_eq!(minted, 1_000_000_000);
    for r in &rows {
        assert!(r[2].parse::<i64>().unwrap() >= r[1].parse::<i64>().unwrap());
    }
    assert_eq!(rows[4][0], "4");
    assert_eq!(rows[4][2], "0");
    let reg = net.sql_csv("SELECT uid, registered_epoch FROM registry WHERE uid = 4");
    assert_eq!(reg, vec![vec!["4".to_string(), "0".to_string()]]);
    // Self weight dropped, rows normalised.
    let w3 = net.sql_csv("SELECT dst, weight FROM weights WHERE epoch = 0 AND src = 3");
    assert_eq!(w3, vec![vec!["0".to_string(), "1.0".to_string()]]);
    let w2 =
        net.sql_csv("SELECT dst, weight FROM weights WHERE epoch = 0 AND src = 2 ORDER BY dst");
    assert_eq!(w2[0][1], "0.75");
    assert_eq!(w2[1][1], "0.25");

    // Epoch 1: the newcomer submits; peer 2 does not (its row carries over).
    peer(
        &net.store,
        &[
            "weights",
            "--key",
            newkey.to_str().unwrap(),
            "--set",
            "0=1,1=1",
        ],
    )
    .ok();
    net.set(0, "1=1");
    let out1 = fb(&net.store, &["epoch", "run"]).ok();
    assert!(out1.stdout.contains("epoch 1 committed"), "{}", out1.stdout);
    let carried = net.sql_csv("SELECT weights_epoch FROM state WHERE epoch = 1 AND uid = 2");
    assert_eq!(carried, vec![vec!["0".to_string()]]);
    let w2e1 = net.sql_csv(
        "SELECT dst, weight FROM weights_in_force WHERE epoch = 1 AND src = 2 ORDER BY dst",
    );
    assert_eq!(w2e1, w2, "peer 2's row stays in force unchanged");
    // The ledger grows with what changed: epoch 1 wrote the new rows only.
    let written = net.sql_csv("SELECT DISTINCT src FROM weights WHERE epoch = 1 ORDER BY src");
    assert_eq!(written, vec![vec!["0".to_string()], vec!["4".to_string()]]);
    let w0e1 = net.sql_csv("SELECT dst FROM weights_in_force WHERE epoch = 1 AND src = 0");
    assert_eq!(
        w0e1,
        vec![vec!["1".to_string()]],
        "peer 0's new row replaced the old one"
    );

    // Digest chain and recomputation.
    let chain = net.sql_csv("SELECT prev_digest, digest FROM epochs ORDER BY epoch");
    assert_eq!(chain[0][1], d0);
    assert_eq!(chain[1][0], d0);
    fb(&net.store, &["epoch", "verify", "--epoch", "0"]).ok();
    let v = fb(&net.store, &["epoch", "verify", "--epoch", "1"]).ok();
    assert!(v.stdout.contains("verified"), "{}", v.stdout);

    // Rerunning a committed epoch says so and exits 0.
    let again = fb(&net.store, &["epoch", "run", "--epoch", "0"]).ok();
    assert!(
        again.stdout.contains("already committed"),
        "{}",
        again.stdout
    );
    assert_eq!(
        net.sql_csv("SELECT count(*) FROM epochs WHERE epoch = 0"),
        vec![vec!["1".to_string()]]
    );

    // Output formats and status.
    let j = fb(
        &net.store,
        &[
            "sql",
            "--format",
            "json",
            "SELECT epoch, emission FROM epochs ORDER BY epoch",
        ],
    )
    .ok();
    assert!(j.stdout.contains("\"emission\":1000000000"), "{}", j.stdout);
    let t = fb(&net.store, &["sql", "SELECT count(*) AS n FROM registry"]).ok();
    assert!(t.stdout.contains("| 5 "), "{}", t.stdout);
    let s = fb(&net.store, &["status"]).ok();
    assert!(s.stdout.contains("open epoch 2"), "{}", s.stdout);
    assert!(s.stdout.contains("top 10 peers"), "{}", s.stdout);
}

#[test]
fn an_epoch_without_weights_mints_nothing() {
    let net = Net::new(3, &[10, 20, 30], "");
    let out = fb(&net.store, &["epoch", "run"]).ok();
    assert!(out.stdout.contains("emission 0,"), "{}", out.stdout);
    let rows = net.sql_csv("SELECT stake FROM state WHERE epoch = 0 ORDER BY uid");
    assert_eq!(
        rows,
        vec![vec!["10".to_string()], vec!["20".into()], vec!["30".into()]]
    );
    assert_eq!(
        net.sql_csv("SELECT k, k_next FROM epochs"),
        vec![vec!["1".to_string(), "1".into()]]
    );
}

#[test]
fn operator_mistakes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().display().to_string();
    let r = fb(&empty, &["epoch", "run"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("faceblock init"), "{}", r.stderr);
    let r = fb("ftp://nowhere/x", &["status"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unsupported scheme"), "{}", r.stderr);
    let r = fb("", &["status"]);
    assert!(r.stderr.contains("FACEBLOCK_STORE"), "{}", r.stderr);
    let r = fb(&empty, &["init", "--genesis", "/no/such/genesis.csv"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("cannot read genesis file"),
        "{}",
        r.stderr
    );

    let net = Net::new(2, &[1, 1], "");
    let r = fb(&net.store, &["epoch", "verify", "--epoch", "0"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not committed"), "{}", r.stderr);
    let r = fb(&net.store, &["epoch", "run", "--epoch", "3"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("open epoch is 0"), "{}", r.stderr);
    let r = fb(&net.store, &["sql", "SELECT nope FROM state"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    let bad_params = net.dir.path().join("bad.toml");
    std::fs::write(&bad_params, "rhoo = 1").unwrap();
    let r = fb(
        &empty,
        &[
            "init",
            "--params",
            bad_params.to_str().unwrap(),
            "--genesis",
            "x.csv",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("rhoo"), "{}", r.stderr);
    // A second init with another genesis on the same store is refused.
    let g = net.dir.path().join("other.csv");
    let pk = faceblock_schemas::Keypair::from_seed([3; 32])
        .public()
        .to_hex();
    std::fs::write(&g, format!("uid,public_key,stake\n0,{pk},5\n")).unwrap();
    let r = fb(&net.store, &["init", "--genesis", g.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already holds network"), "{}", r.stderr);
    // Peer side: a missing key file says how to make one.
    let r = peer(
        &net.store,
        &["weights", "--key", "/no/such.key", "--set", "1=1"],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("keygen"), "{}", r.stderr);
    let r = peer(
        &net.store,
        &["weights", "--key", net.key(0), "--set", "1:1"],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("uid=weight"), "{}", r.stderr);
}

/// Digests are identical at 1, 2 and 8 partitions, at genesis and at a later
/// epoch with rows and bonds carried over, with dust stake beside large
/// stake (the per-sum fixed-point scales), and `verify` agrees at 3.
#[test]
fn same_digest_with_one_and_many_partitions() {
    let net = Net::new(6, &[1, 2, 5, 1 << 40, 13, (1 << 61) + 17], "");
    for i in 0..6 {
        let row: Vec<String> = (0..6)
            .filter(|j| *j != i)
            .map(|j| format!("{j}={}", (i * 7 + j * 3) % 5 + 1))
            .collect();
        net.set(i, &row.join(","));
    }
    let copies: Vec<String> = ["p2", "p8"]
        .iter()
        .map(|name| net.dir.path().join(name).to_str().unwrap().to_string())
        .collect();
    let cp = |from: &str, to: &str| {
        let status = std::process::Command::new("cp")
            .args(["-r", from, to])
            .status()
            .unwrap();
        assert!(status.success());
    };
    for c in &copies {
        cp(&net.store, c);
    }
    let stores = [net.store.as_str(), copies[0].as_str(), copies[1].as_str()];
    let run_all = || -> Vec<String> {
        stores
            .iter()
            .zip(["1", "2", "8"])
            .map(|(s, p)| digest_of(&fb(s, &["--partitions", p, "epoch", "run"]).ok().stdout))
            .collect()
    };
    let d0 = run_all();
    assert_eq!(d0[0], d0[1]);
    assert_eq!(d0[0], d0[2]);
    // Epoch 1: peers 0 and 5 resubmit, the others' rows and every bond carry over.
    net.set(0, "1=1,5=2");
    net.set(5, "0=1,2=1,3=4");
    for c in &copies {
        cp(
            &format!("{}/submissions/epoch=1", net.store),
            &format!("{c}/submissions/"),
        );
    }
    let d1 = run_all();
    assert_ne!(d1[0], d0[0]);
    assert_eq!(d1[0], d1[1]);
    assert_eq!(d1[0], d1[2]);
    for e in ["0", "1"] {
        fb(
            stores[2],
            &["--partitions", "3", "epoch", "verify", "--epoch", e],
        )
        .ok();
    }
}

/// `epoch run --cache DIR` leaves the newest epoch's hand-over there (the
/// next run takes it; `ledger.rs` checks it is what the ledger holds), and
/// `--cache off` writes none. Both ledgers verify.
#[test]
fn epoch_cache_folder_and_off() {
    let net = Net::new(3, &[100, 200, 300], "");
    let cache = net.dir.path().join("cache");
    let arg = cache.display().to_string();
    for e in 0..2 {
        net.set(0, "1=1,2=1");
        net.set(1, "0=1,2=3");
        net.fb(&["epoch", "run", "--cache", &arg]).ok();
        net.fb(&["epoch", "verify", "--epoch", &e.to_string()]).ok();
    }
    let files: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Epoch 1's list, and only the data files it names: its own, laid out
    // as the rows were merged, and epoch 0's where segments went on.
    let lists: Vec<&String> = files.iter().filter(|f| f.ends_with(".list")).collect();
    assert_eq!(lists.len(), 1, "{files:?}");
    assert!(lists[0].starts_with("1-"), "{files:?}");
    let dir = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let list = std::fs::read_to_string(dir.join(lists[0])).unwrap();
    assert!(files
        .iter()
        .any(|f| f.starts_with("1-") && f.ends_with(".cols")));
    // Files no list names any more are kept as spares for the next epoch.
    for f in files
        .iter()
        .filter(|f| f.ends_with(".cols") && !f.starts_with("spare-"))
    {
        let (stem, part) = f.trim_end_matches(".cols").rsplit_once('.').unwrap();
        assert!(
            list.contains(&format!("{part} {stem} ")),
            "{f} unnamed: {list}"
        );
    }

    // `off` wins over FACEBLOCK_CACHE, which common.rs sets for every command.
    let other = Net::new(3, &[100, 200, 300], "");
    other.set(0, "1=1");
    let run = other.fb(&["epoch", "run", "--cache", "off"]).ok();
    assert!(run.stdout.contains("epoch 0 committed"), "{}", run.stdout);
    let url = faceblock_schemas::Store::open(&other.store)
        .unwrap()
        .url()
        .to_string();
    let would = faceblock_coordinator::epoch::cache::EpochCache::new(
        &std::env::temp_dir().join("faceblock-tests-epoch-cache"),
        &url,
    );
    assert!(!would.dir().exists(), "{}", would.dir().display());
    other.fb(&["epoch", "run"]).ok();
    assert!(
        would.dir().exists(),
        "without --cache, FACEBLOCK_CACHE is used"
    );
    let help = other.fb(&["epoch", "run", "--help"]).ok();
    assert!(help.stdout.contains("--cache <DIR|off>"), "{}", help.stdout);
}
