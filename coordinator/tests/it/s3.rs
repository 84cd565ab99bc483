//! Every command on `s3://` against a real S3-compatible server over HTTP on
//! loopback; conditional PUTs, races, SIGKILL crashes and store faults.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use faceblock_schemas::Store;

use super::common::*;
use super::s3server::{S3Server, BUCKET};

fn s3_net(s3: &S3Server, prefix: &str, n: usize, via_proxy: bool) -> Net {
    let dir = tempfile::tempdir().unwrap();
    Net::on(
        dir,
        format!("s3://{BUCKET}/{prefix}"),
        s3.env(via_proxy),
        n,
        &[100, 200, 300, 400],
        "",
    )
}

fn s3_store(s3: &S3Server, prefix: &str) -> Store {
    let opts = s3.options(false);
    let o: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Store::open_with(&format!("s3://{BUCKET}/{prefix}"), &o).unwrap()
}

#[test]
fn conditional_put_has_exactly_one_winner() {
    let s3 = S3Server::start();
    let store = Arc::new(s3_store(&s3, "race"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rounds = 30;
    let writers = 8;
    rt.block_on(async {
        for r in 0..rounds {
            let key = format!("claims/key-{r}");
            let mut tasks = Vec::new();
            for w in 0..writers {
                let s = store.clone();
                let key = key.clone();
                tasks.push(tokio::spawn(async move {
                    s.put_if_absent(&key, Bytes::from(format!("writer {w}")))
                        .await
                        .unwrap()
                }));
            }
            let mut winners = 0;
            for t in tasks {
                winners += t.await.unwrap() as usize;
            }
            assert_eq!(winners, 1, "round {r}: {winners} writers won");
        }
    });
}

#[test]
fn whole_flow_on_s3() {
    let s3 = S3Server::start();
    let net = s3_net(&s3, "flow/net", 4, false);
    net.set(0, "1=1,2=1");
    net.set(1, "0=1,3=2");
    net.set(2, "0=1,1=1");
    let newkey = net.dir.path().join("new.key");
    peer("", &["keygen", "--out", newkey.to_str().unwrap()]).ok();
    net.peer(&["register", "--key", newkey.to_str().unwrap()])
        .ok();
    let r = net.fb(&["epoch", "run"]).ok();
    assert!(r.stdout.contains("epoch 0 committed"), "{}", r.stdout);
    net.peer(&[
        "weights",
        "--key",
        newkey.to_str().unwrap(),
        "--set",
        "0=1,1=1",
    ])
    .ok();
    let r = net.fb(&["epoch", "run"]).ok();
    assert!(r.stdout.contains("epoch 1 committed"), "{}", r.stdout);
    net.fb(&["epoch", "verify", "--epoch", "0"]).ok();
    net.fb(&["epoch", "verify", "--epoch", "1"]).ok();
    assert_eq!(
        net.sql_csv("SELECT count(*), sum(emission) FROM state WHERE epoch = 1"),
        vec![vec!["5".to_string(), "1000000000".into()]]
    );
    assert_eq!(
        net.sql_csv("SELECT DISTINCT src FROM weights WHERE epoch = 1 AND src = 4"),
        vec![vec!["4".to_string()]]
    );
    let s = net.fb(&["status"]).ok();
    assert!(s.stdout.contains("open epoch 2"), "{}", s.stdout);
    let again = net.fb(&["epoch", "run", "--epoch", "1"]).ok();
    assert!(again.stdout.contains("already committed"));
}

#[test]
fn racing_coordinators_on_s3_commit_once() {
    let s3 = S3Server::start();
    for trial in 0..3 {
        let net = s3_net(&s3, &format!("race/net{trial}"), 4, false);
        for i in 0..4 {
            net.set(i, &format!("{}=1,{}=2", (i + 1) % 4, (i + 2) % 4));
        }
        let outs: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        command(&faceblock(), &net.store, &net.env, &["epoch", "run"])
                            .output()
                            .unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut ok = 0;
        for o in &outs {
            let c = o.status.code().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(c == 0 || c == 75, "exit {c}: {err}");
            ok += (c == 0) as usize;
        }
        assert!(ok >= 1);
        assert_eq!(
            net.sql_csv("SELECT count(*) FROM epochs"),
            vec![vec!["1".to_string()]]
        );
        assert_eq!(
            net.sql_csv("SELECT count(*) FROM weights"),
            vec![vec!["8".to_string()]]
        );
        net.fb(&["epoch", "verify", "--epoch", "0"]).ok();
    }
}

/// Kills `epoch run` with SIGKILL at random moments; the rerun must reach the
/// digest of an uninterrupted run, and `epochs` never shows half an epoch.
fn crash_trials(
    trials: usize,
    max_delay_ms: u64,
    make: &dyn Fn(usize) -> (Net, Net),
) -> (usize, usize, Duration) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut killed_mid_run = 0;
    let mut finished_claims = 0;
    let mut slowest = Duration::ZERO;
    for t in 0..trials {
        let (reference, victim) = make(t);
        let want = digest_of(&reference.fb(&["epoch", "run"]).ok().stdout);
        let mut child = command(&faceblock(), &victim.store, &victim.env, &["epoch", "run"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(rng.gen_range(0..max_delay_ms));
        std::thread::sleep(delay);
        let exited = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        if !exited {
            killed_mid_run += 1;
        }
        // Through `epochs`, an epoch is all there or not there.
        let seen = victim.sql_csv("SELECT count(*) FROM epochs");
        if seen == vec![vec!["1".to_string()]] {
            assert_eq!(
                victim.sql_csv("SELECT count(*) FROM state"),
                reference.sql_csv("SELECT count(*) FROM state")
            );
            assert_eq!(
                victim.sql_csv("SELECT count(*) FROM weights"),
                reference.sql_csv("SELECT count(*) FROM weights")
            );
        } else {
            assert_eq!(
                victim.sql_csv("SELECT count(*) FROM state"),
                vec![vec!["0".to_string()]]
            );
        }
        let t0 = Instant::now();
        let r = victim.fb(&["epoch", "run", "--epoch", "0"]).ok();
        slowest = slowest.max(t0.elapsed());
        if r.stdout.contains("interrupted") {
            finished_claims += 1;
        }
        let got = victim.sql_csv("SELECT digest FROM epochs WHERE epoch = 0");
        assert_eq!(got, vec![vec![want.clone()]], "trial {t}: {}", r.stdout);
        assert_eq!(
            victim.sql_csv("SELECT count(*) FROM epochs"),
            vec![vec!["1".to_string()]]
        );
        victim.fb(&["epoch", "verify", "--epoch", "0"]).ok();
    }
    (killed_mid_run, finished_claims, slowest)
}

/// A store URL and the environment its commands need.
type StoreAndEnv = (String, Vec<(String, String)>);

/// Two identical networks (same keys, same rows): one to run cleanly, one to crash.
fn twin_nets(make_store: &dyn Fn(&str) -> StoreAndEnv, tag: &str) -> (Net, Net) {
    let a = {
        let (store, env) = make_store(&format!("{tag}-ref"));
        Net::on(
            tempfile::tempdir().unwrap(),
            store,
            env,
            5,
            &[100, 200, 300, 400, 500],
            "",
        )
    };
    let (store, env) = make_store(&format!("{tag}-victim"));
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<_> = (0..5)
        .map(|i| {
            let p = dir.path().join(format!("peer{i}.key"));
            std::fs::copy(&a.keys[i], &p).unwrap();
            p
        })
        .collect();
    init(&store, &env, a.dir.path());
    let b = Net {
        dir,
        store,
        keys,
        env,
    };
    for i in 0..5 {
        let row: Vec<String> = (0..5)
            .filter(|j| *j != i)
            .map(|j| format!("{j}={}", (i + 2 * j) % 4 + 1))
            .collect();
        a.set(i, &row.join(","));
        b.set(i, &row.join(","));
    }
    (a, b)
}

#[test]
fn sigkill_during_epoch_run_local_directory() {
    let root = tempfile::tempdir().unwrap();
    let make = |t: usize| {
        twin_nets(
            &|name| (root.path().join(name).display().to_string(), vec![]),
            &format!("t{t}"),
        )
    };
    // A local run takes about 300 ms: kill within that window.
    let (killed, finished, slowest) = crash_trials(20, 300, &make);
    eprintln!("local: 20 trials, {killed} killed mid-run, {finished} finished from a claim, slowest recovery {slowest:?}");
    assert!(killed > 0, "no trial interrupted a run");
}

#[test]
fn sigkill_during_epoch_run_s3() {
    let s3 = S3Server::start();
    let make = |t: usize| {
        twin_nets(
            &|name| (format!("s3://{BUCKET}/crash/{name}"), s3.env(false)),
            &format!("t{t}"),
        )
    };
    let (killed, finished, slowest) = crash_trials(20, 1500, &make);
    eprintln!("s3: 20 trials, {killed} killed mid-run, {finished} finished from a claim, slowest recovery {slowest:?}");
    assert!(killed > 0, "no trial interrupted a run");
}

#[test]
fn transient_store_faults_are_retried() {
    let s3 = S3Server::start();
    let net = s3_net(&s3, "faults/net", 4, true);
    s3.faults("error_rate=0.15&drop_rate=0.05&seed=3");
    for i in 0..4 {
        net.set(i, &format!("{}=1,{}=1", (i + 1) % 4, (i + 3) % 4));
    }
    let t = Instant::now();
    let r = net.fb(&["epoch", "run"]).ok();
    assert!(r.stdout.contains("epoch 0 committed"), "{}", r.stdout);
    eprintln!(
        "faulty store: epoch committed in {:.1} s; proxy counts {}",
        t.elapsed().as_secs_f64(),
        s3.counts()
    );
    s3.faults("delay_ms=300");
    net.set(0, "1=1,2=1");
    s3.faults("");
    net.fb(&["epoch", "verify", "--epoch", "0"]).ok();
    let counts = s3.counts();
    assert!(
        !counts.contains("\"errors\": 0,"),
        "no faults were injected: {counts}"
    );
}

#[test]
fn a_store_that_stays_down_fails_cleanly_and_commits_nothing() {
    let s3 = S3Server::start();
    let mut net = s3_net(&s3, "down/net", 3, true);
    net.env
        .push(("FACEBLOCK_RETRY_TIMEOUT_SECS".into(), "3".into()));
    net.set(0, "1=1,2=1");
    s3.faults("down=1");
    let t = Instant::now();
    let r = net.fb(&["epoch", "run"]);
    let took = t.elapsed();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("store error"), "{}", r.stderr);
    assert!(took < Duration::from_secs(60), "gave up after {took:?}");
    let p = net.peer(&["weights", "--key", net.key(1), "--set", "0=1,2=1"]);
    assert_eq!(p.code, 1, "{}", p.stderr);
    eprintln!(
        "store down: epoch run gave up after {:.1} s",
        took.as_secs_f64()
    );
    s3.faults("");
    assert!(net.sql_csv("SELECT epoch FROM epochs").is_empty());
    let r = net.fb(&["epoch", "run"]).ok();
    assert!(r.stdout.contains("epoch 0 committed"), "{}", r.stdout);
}
