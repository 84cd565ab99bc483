//! The Airflow DAGs (`pipelines/airflow/dags/`) run by Airflow 3 itself:
//! `pipelines/airflow/test_dags.py` drives `dag.test()` on a fresh
//! AIRFLOW_HOME against the binaries built here, on a local network, on S3
//! (the lost race) and on the demo network.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use super::common::*;
use super::s3server::{S3Server, BUCKET};

fn airflow_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipelines/airflow")
}

/// A virtualenv with Airflow pinned by `pipelines/airflow/constraints.txt`,
/// at `~/.cache/faceblock/venv-airflow`.
fn airflow_python() -> PathBuf {
    let dir = airflow_dir();
    let (req, cons) = (dir.join("requirements.txt"), dir.join("constraints.txt"));
    pinned_venv(
        "venv-airflow",
        &[
            "-r".as_ref(),
            req.as_os_str(),
            "-c".as_ref(),
            cons.as_os_str(),
        ],
        &[&req, &cons],
    )
}

/// Four peers with weight rows for the open epoch 0.
fn with_rows(net: Net) -> Net {
    for i in 0..4 {
        net.set(i, &format!("{}=1,{}=2", (i + 1) % 4, (i + 2) % 4));
    }
    net
}

#[test]
fn airflow_dags_close_verify_rerun_skip_a_lost_race_and_run_the_demo() {
    let py = airflow_python();
    let local = with_rows(Net::new(4, &[10, 20, 30, 40], ""));
    let s3 = S3Server::start();
    let s3_net = with_rows(Net::on(
        tempfile::tempdir().unwrap(),
        format!("s3://{BUCKET}/airflow-race"),
        s3.env(false),
        4,
        &[10, 20, 30, 40],
        "",
    ));
    let demo = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let out = Command::new(&py)
        .arg(airflow_dir().join("test_dags.py"))
        .arg("--faceblock")
        .arg(faceblock())
        .arg("--peer")
        .arg(peer_bin())
        .args(["--store", &local.store, "--s3-store", &s3_net.store])
        .args(["--s3-endpoint", &format!("http://127.0.0.1:{}", s3.port)])
        .arg("--demo-dir")
        .arg(demo.path().join("demo"))
        .envs(s3.env(false))
        .env_remove("FACEBLOCK_STORE")
        .env_remove("FACEBLOCK_PARTITIONS")
        .env_remove("FACEBLOCK_LOG_FORMAT")
        .env_remove("AIRFLOW_HOME")
        .output()
        .expect("the Airflow venv's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cases: Vec<&str> = stdout.lines().filter(|l| l.starts_with("case ")).collect();
    assert!(
        out.status.success(),
        "test_dags.py failed:\n{stdout}\n--- stderr (tail) ---\n{}",
        tail(&stderr, 200)
    );
    assert_eq!(
        cases.iter().filter(|l| l.contains(": ok (")).count(),
        5,
        "five cases passed:\n{stdout}"
    );
    eprintln!(
        "Airflow DAG test: {:.1} s\n{}",
        t.elapsed().as_secs_f64(),
        cases.join("\n")
    );
    // The ledger as the analysts see it, checked here too.
    assert_eq!(
        local.sql_csv("SELECT epoch FROM epochs ORDER BY epoch"),
        vec![vec!["0".to_string()], vec!["1".to_string()]]
    );
    assert_eq!(
        s3_net.sql_csv("SELECT count(*) FROM epochs"),
        vec![vec!["1".to_string()]]
    );
    fb(
        demo.path().join("demo/net").to_str().unwrap(),
        &["epoch", "verify", "--epoch", "0"],
    )
    .ok();
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
