//! Exactly once, all or nothing: a run that died after claiming is finished by
//! the next one with the same digest; racing runs commit once.

use faceblock_coordinator::epoch::{self, Outcome, RunOptions};
use faceblock_coordinator::ledger::commit::Claim;
use faceblock_coordinator::ledger::Ledger;
use faceblock_schemas::{NetworkFile, Store};

use super::common::*;

#[test]
fn a_run_that_died_after_claiming_is_finished_by_the_next() {
    let net = Net::new(3, &[10, 20, 30], "");
    net.set(0, "1=1,2=1");
    net.set(1, "0=1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open(&net.store).unwrap();
    let digest = rt.block_on(async {
        let n = NetworkFile::load(&store).await.unwrap();
        let ledger = Ledger::new(store.clone());
        let mut p = epoch::prepare(&store, &n, &ledger, 0, 2, None, None)
            .await
            .unwrap();
        p.tables
            .push(("epochs", p.row.batch(&p.digest, "test", 0).unwrap().into()));
        let mut claim = Claim {
            epoch: 0,
            run: "dead-run".into(),
            digest: p.digest.clone(),
            tables: Default::default(),
        };
        for (name, b) in std::mem::take(&mut p.tables) {
            claim
                .tables
                .insert(name.into(), ledger.stage(name, b).await.unwrap());
        }
        ledger.put_claim(&claim).await.unwrap();
        // Commit only the first two tables, then "crash".
        for name in ["registry", "state"] {
            ledger
                .commit_table(name, 0, claim.tables[name].clone())
                .await
                .unwrap();
        }
        p.digest
    });
    // Nothing visible through epochs yet.
    assert!(net.sql_csv("SELECT epoch FROM epochs").is_empty());
    let out = fb(&net.store, &["epoch", "run"]).ok();
    assert!(
        out.stdout.contains("finished an interrupted run"),
        "{}",
        out.stdout
    );
    assert_eq!(digest_of(&out.stdout), digest);
    assert_eq!(
        net.sql_csv("SELECT count(*) FROM state"),
        vec![vec!["3".to_string()]]
    );
    fb(&net.store, &["epoch", "verify", "--epoch", "0"]).ok();
    // A further run goes on to epoch 1.
    let out = fb(&net.store, &["epoch", "run"]).ok();
    assert!(out.stdout.contains("epoch 1 committed"), "{}", out.stdout);
}

#[test]
fn racing_coordinators_commit_once() {
    let net = Net::new(4, &[10, 20, 30, 40], "");
    for i in 0..4 {
        net.set(i, &format!("{}=1,{}=2", (i + 1) % 4, (i + 2) % 4));
    }
    let spawn = || {
        std::process::Command::new(faceblock())
            .args(["epoch", "run"])
            .env("FACEBLOCK_STORE", &net.store)
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    let codes = [a.status.code().unwrap(), b.status.code().unwrap()];
    for (o, c) in [(&a, codes[0]), (&b, codes[1])] {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(c == 0 || c == 75, "exit {c}: {err}");
        if c == 75 {
            assert!(err.contains("claimed by another coordinator"), "{err}");
        }
    }
    assert_eq!(
        net.sql_csv("SELECT count(*) FROM epochs"),
        vec![vec!["1".to_string()]]
    );
    assert_eq!(
        net.sql_csv("SELECT count(*) FROM state"),
        vec![vec!["4".to_string()]]
    );
    assert_eq!(
        net.sql_csv("SELECT count(*) FROM weights"),
        vec![vec!["8".to_string()]]
    );
    fb(&net.store, &["epoch", "verify", "--epoch", "0"]).ok();
}

#[test]
fn run_outcome_for_committed_epoch() {
    let net = Net::new(2, &[1, 1], "");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open(&net.store).unwrap();
    rt.block_on(async {
        let o = epoch::run(
            &store,
            &RunOptions {
                epoch: None,
                partitions: 2,
                cache: None,
            },
        )
        .await
        .unwrap();
        assert!(matches!(o, Outcome::Committed { .. }));
        let o = epoch::run(
            &store,
            &RunOptions {
                epoch: Some(0),
                partitions: 2,
                cache: None,
            },
        )
        .await
        .unwrap();
        assert!(matches!(o, Outcome::AlreadyCommitted { epoch: 0 }));
    });
}
