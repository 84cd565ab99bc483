//! Per-peer credentials on a server that enforces IAM (issue 12): the
//! policies `faceblock policy` prints are attached to one user per peer and
//! one for the coordinator on moto, a market epoch runs with each binary
//! under its own credentials, and one peer's attempts on another's objects
//! are refused.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use faceblock_schemas::layout::{self, Authored};
use faceblock_schemas::{Error, Store};

use super::common::*;
use super::s3server::{S3Server, BUCKET};

const PREFIX: &str = "shared/net";
const PARAMS: &str = "seq_len = 16\nout_dim = 16\n";

fn policy(args: &[&str]) -> String {
    let mut a = vec!["policy"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--bucket", BUCKET, "--prefix", PREFIX]);
    let r = fb("", &a).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("a policy is JSON");
    assert_eq!(v["Version"], "2012-10-17");
    r.stdout
}

/// A store as one user sees it.
fn store_as(s3: &S3Server, key: &(String, String)) -> Store {
    let env = s3.env_as(key);
    let opts: Vec<(String, String)> = env
        .into_iter()
        .map(|(k, v)| (k.to_lowercase(), v))
        .collect();
    let o: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Store::open_with(&format!("s3://{BUCKET}/{PREFIX}"), &o).unwrap()
}

/// Whether a request was refused: HTTP 403, or for a delete S3's
/// DeleteObjects answer `AccessDenied` for the key (any other failure fails
/// the test).
fn refused<T: std::fmt::Debug>(r: faceblock_schemas::Result<T>, what: &str) -> bool {
    match r {
        Err(Error::AccessDenied { op, source, .. }) => {
            let s = source.to_string();
            let why = if op == "deleting" {
                "(code: AccessDenied)"
            } else {
                "403 Forbidden"
            };
            assert!(s.contains(why), "{what}: {s}");
            true
        }
        other => {
            assert!(other.is_ok(), "{what}: {other:?}");
            false
        }
    }
}

#[test]
fn a_peer_can_touch_only_its_own_objects() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("s3://{BUCKET}/{PREFIX}");
    // Three genesis peers (0 and 1 learn; 2 only sets weights) and a newcomer.
    let mut keys: Vec<PathBuf> = Vec::new();
    let mut pks = Vec::new();
    for i in 0..4 {
        let key = dir.path().join(format!("peer{i}.key"));
        let r = peer("", &["keygen", "--out", key.to_str().unwrap()]).ok();
        pks.push(r.stdout.trim().to_string());
        keys.push(key);
    }
    let mut genesis = String::from("uid,public_key,stake\n");
    for (i, pk) in pks.iter().take(3).enumerate() {
        genesis.push_str(&format!("{i},{pk},1000000000\n"));
    }
    std::fs::write(dir.path().join("genesis.csv"), genesis).unwrap();
    std::fs::write(dir.path().join("params.toml"), PARAMS).unwrap();

    let mut users = vec![("coordinator".to_string(), policy(&["coordinator"]))];
    for i in 0..3 {
        users.push((
            format!("peer{i}"),
            policy(&["peer", "--uid", &i.to_string()]),
        ));
    }
    users.push((
        "newcomer".to_string(),
        policy(&["peer", "--public-key", &pks[3]]),
    ));
    let (s3, creds) = S3Server::start_with_users(&users);
    let env = |who: &str| s3.env_as(&creds[who]);
    let (a, b) = (0usize, 1usize);
    let peer_env = |i: usize| env(&format!("peer{i}"));

    init(&store_url, &env("coordinator"), dir.path());
    let p = |i: usize, args: &[&str]| run_env(&peer_bin(), &store_url, &peer_env(i), args).ok();
    let key = |i: usize| keys[i].to_str().unwrap().to_string();
    run_env(
        &peer_bin(),
        &store_url,
        &env("newcomer"),
        &["register", "--key", &key(3)],
    )
    .ok();

    // Epoch 0: peers 0 and 1 learn through the bucket; 2 sets its row by hand.
    let data: Vec<PathBuf> = (0..2)
        .map(|i| {
            let d = dir.path().join(format!("data{i}"));
            let style = ["arithmetic", "prose"][i];
            peer(
                "",
                &[
                    "text",
                    "--out",
                    d.to_str().unwrap(),
                    "--style",
                    style,
                    "--seed",
                    &i.to_string(),
                    "--bytes",
                    "20000",
                ],
            )
            .ok();
            d
        })
        .collect();
    for phase in ["query", "answer", "learn"] {
        for i in [a, b] {
            let (k, d) = (key(i), data[i].to_str().unwrap().to_string());
            p(
                i,
                &[
                    "step",
                    "--phase",
                    phase,
                    "--key",
                    &k,
                    "--data",
                    &d,
                    "--batch",
                    "16",
                    "--local-steps",
                    "4",
                ],
            );
        }
    }
    p(2, &["weights", "--key", &key(2), "--set", "0=1,1=1"]);

    // Peer A against peer B's objects (and the coordinator's), before the run.
    let coord = store_as(&s3, &creds["coordinator"]);
    let mallory = store_as(&s3, &creds[&format!("peer{a}")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut targets: Vec<(&str, String, String)> = Vec::new(); // (kind, existing, new)
    for kind in Authored::ALL {
        let existing = kind.path(0, b as u32, a as u32, &pks[3]);
        let fresh = kind.path(5, b as u32, a as u32, &pks[b]);
        targets.push((kind.name(), existing, fresh));
    }
    targets.push((
        "uid_marker",
        layout::uid_marker(&pks[2]),
        layout::uid_marker(&pks[b]),
    ));
    targets.push(("network", layout::PARAMS.into(), layout::HEAD.into()));
    targets.push((
        "ledger",
        "ledger/epochs/_delta_log/00000000000000000000.json".into(),
        layout::epoch_claim(0),
    ));
    let mut refusals: BTreeMap<&str, usize> = BTreeMap::new();
    let mut before = HashMap::new();
    rt.block_on(async {
        for (kind, existing, fresh) in &targets {
            if *kind == "uid_marker" {
                continue; // written by the coordinator's run; checked below
            }
            let bytes = coord.get_opt(existing).await.unwrap();
            assert!(
                bytes.is_some(),
                "{kind}: {existing} should exist before the attack"
            );
            before.insert(existing.clone(), bytes);
            let junk = Bytes::from_static(b"garbage");
            let n = refusals.entry(kind).or_default();
            *n += refused(mallory.put(existing, junk.clone()).await, existing) as usize;
            *n += refused(mallory.delete(existing).await, existing) as usize;
            *n += refused(mallory.put(fresh, junk.clone()).await, fresh) as usize;
            // A key that would make B's object a folder on stores with folders.
            let nested = format!("{existing}/{}", layout::weights(0, a as u32));
            *n += refused(mallory.put(&nested, junk).await, &nested) as usize;
        }
        // What A needs still works: its own objects, the answers to its
        // queries, the network files and the ledger's Delta log.
        let log = "ledger/epochs/_delta_log/00000000000000000000.json";
        assert!(mallory.get(log).await.is_ok(), "a peer reads the ledger");
        assert!(mallory.get(layout::PARAMS).await.is_ok());
        assert!(mallory
            .get(&layout::activations(0, a as u32, b as u32))
            .await
            .is_ok());
        // B's metrics and its row are none of A's business.
        assert!(refused(
            mallory.get(&layout::metrics(0, b as u32)).await,
            "read metrics"
        ));
    });

    let run = run_env(
        &faceblock(),
        &store_url,
        &env("coordinator"),
        &["epoch", "run"],
    )
    .ok();
    assert!(run.stdout.contains("epoch 0 committed"), "{}", run.stdout);

    rt.block_on(async {
        // After the run: the uid marker the coordinator wrote is its alone.
        let marker = layout::uid_marker(&pks[3]);
        assert!(coord.get_opt(&marker).await.unwrap().is_some());
        let n = refusals.entry("uid_marker").or_default();
        *n += refused(
            mallory.put(&marker, Bytes::from_static(b"{}")).await,
            &marker,
        ) as usize;
        *n += refused(mallory.delete(&marker).await, &marker) as usize;
        for (k, bytes) in &before {
            assert_eq!(&coord.get_opt(k).await.unwrap(), bytes, "{k} changed");
        }
    });
    println!("refused attempts of peer {a} by object kind: {refusals:?}");
    for (kind, _, _) in &targets {
        let want = if *kind == "uid_marker" { 2 } else { 4 };
        assert_eq!(refusals.get(kind), Some(&want), "{kind}: {refusals:?}");
    }

    // B's row and answers count: accepted, nothing of B's rejected.
    // The CSV lines of a query, header first.
    let sql = |q: &str| -> Vec<String> {
        run_env(
            &faceblock(),
            &store_url,
            &env("coordinator"),
            &["sql", "--format", "csv", q],
        )
        .ok()
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
    };
    let b_row = sql(&format!(
        "SELECT dst FROM weights WHERE epoch = 0 AND src = {b} ORDER BY dst"
    ));
    assert!(b_row.len() >= 3, "B's row is in force: {b_row:?}");
    let rejected = sql("SELECT count(*) FROM rejections WHERE epoch = 0");
    assert_eq!(rejected[1], "0", "nothing rejected: {rejected:?}");
    let joined = sql(&format!(
        "SELECT uid FROM registry WHERE public_key = '{}'",
        pks[3]
    ));
    assert_eq!(joined[1..], ["3"], "the newcomer joined: {joined:?}");
    // A peer reads the ledger with its own credentials.
    let as_a = run_env(
        &faceblock(),
        &store_url,
        &peer_env(a),
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) FROM state WHERE epoch = 0",
        ],
    )
    .ok();
    assert_eq!(
        as_a.stdout.split_whitespace().last(),
        Some("4"),
        "{}",
        as_a.stdout
    );

    // A's own epoch-0 row copied into epoch 1: its own name, so the policy
    // lets it through; the coordinator rejects it as a replay.
    rt.block_on(async {
        let mine = mallory.get(&layout::weights(0, a as u32)).await.unwrap();
        mallory
            .put(&layout::weights(1, a as u32), mine)
            .await
            .unwrap();
    });
    run_env(
        &faceblock(),
        &store_url,
        &env("coordinator"),
        &["epoch", "run"],
    )
    .ok();
    let replay = sql("SELECT uid, reason FROM rejections WHERE epoch = 1");
    assert_eq!(replay[1..], [format!("{a},wrong_epoch")], "{replay:?}");
    // Rewriting its own input of a committed epoch changes no result, but
    // `verify` of that epoch then names the object that changed.
    rt.block_on(async {
        let mine = mallory.get(&layout::weights(0, a as u32)).await.unwrap();
        let mut changed = mine.to_vec();
        changed.extend_from_slice(b" ");
        let path = layout::weights(0, a as u32);
        mallory.put(&path, changed.into()).await.unwrap();
    });
    let v = run_env(
        &faceblock(),
        &store_url,
        &env("coordinator"),
        &["epoch", "verify", "--epoch", "0"],
    );
    assert_eq!(v.code, 3, "{}", v.stderr);
    assert!(
        v.stderr.contains(&layout::weights(0, a as u32)),
        "{}",
        v.stderr
    );

    // The peer binary under someone else's credentials: refused at once, with what to check.
    let t = Instant::now();
    let r = run_env(
        &peer_bin(),
        &store_url,
        &peer_env(b),
        &["weights", "--key", &key(a), "--set", "1=1"],
    );
    let took = t.elapsed();
    assert_ne!(r.code, 0);
    let want = format!(
        "access denied writing s3://{BUCKET}/{PREFIX}/{}: check this peer's credentials and policy",
        layout::weights(2, a as u32)
    );
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}: a 403 is not retried"
    );
    println!("policy test took {:?}", started.elapsed());
}

#[test]
fn no_credentials_is_said_without_asking_the_metadata_endpoint() {
    let t = Instant::now();
    let mut c = command(&faceblock(), "s3://bucket/x", &[], &["status"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no S3 credentials found for s3://bucket/x"),
        "{err}"
    );
    assert!(
        err.contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(!err.contains("169.254.169.254/latest"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn policy_command_prints_each_role() {
    let peer = policy(&["peer", "--uid", "3"]);
    assert!(
        peer.contains(&format!(
            "arn:aws:s3:::{BUCKET}/{PREFIX}/exchange/epoch=*/gradients/query=3/uid=*.parquet"
        )),
        "{peer}"
    );
    assert!(!peer.contains("Delete"), "{peer}");
    let coordinator = policy(&["coordinator"]);
    assert!(
        coordinator.contains(&format!("{BUCKET}/{PREFIX}/ledger/*")),
        "{coordinator}"
    );
    let r = fb("", &["policy", "peer", "--bucket", BUCKET]);
    assert_eq!(
        r.code, 2,
        "a peer policy needs --uid or --public-key: {}",
        r.stderr
    );
}
