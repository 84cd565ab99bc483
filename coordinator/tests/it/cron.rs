//! The cron wrapper (`pipelines/cron/faceblock-epoch.sh`) as cron runs it: two
//! at once commit one epoch and the second exits "busy"; the coordinator's
//! exit code passes through; the log gets timestamped (or JSON) lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::common::*;

fn wrapper_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipelines/cron/faceblock-epoch.sh")
}

/// The wrapper on `store`, logging to `log`, stdin closed as under cron.
fn wrapper(store: &str, log: &Path) -> Command {
    let mut c = Command::new("bash");
    c.arg(wrapper_path())
        .env("FACEBLOCK_STORE", store)
        .env("FACEBLOCK_BIN", faceblock())
        .env("FACEBLOCK_CRON_LOG", log)
        .env_remove("FACEBLOCK_CRON_LOCK")
        .env_remove("FACEBLOCK_CRON_HOLD")
        .env_remove("FACEBLOCK_LOG_FORMAT")
        .env_remove("FACEBLOCK_PARTITIONS")
        .stdin(Stdio::null());
    c
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every line starts with a UTC timestamp like 2026-01-01T00:00:00.000000Z.
fn assert_timestamped(log: &str) {
    for l in log.lines() {
        let ts = l.split(' ').next().unwrap_or("");
        assert!(
            ts.len() == 27 && ts.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
            "log line without a timestamp: {l:?}"
        );
    }
}

#[test]
fn two_wrappers_at_once_commit_once_and_the_second_is_busy() {
    let t = Instant::now();
    let net = Net::new(3, &[10, 20, 30], "");
    net.set(0, "1=1,2=1");
    net.set(1, "0=1");
    let dir = net.dir.path();
    let log = dir.join("cron/epoch.log");
    let ready = dir.join("holding");
    let go = dir.join("go");
    // The first holds the lock until told to go on: the second starts while
    // the first provably holds it, whatever the machine's speed.
    let hold = format!(
        "touch '{}'; while [ ! -e '{}' ]; do sleep 0.05; done",
        ready.display(),
        go.display()
    );
    let mut first = wrapper(&net.store, &log)
        .env("FACEBLOCK_CRON_HOLD", hold)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        if let Ok(Some(s)) = first.try_wait() {
            panic!(
                "the first wrapper exited early ({s}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the first wrapper never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = wrapper(&net.store, &log).output().expect("bash runs");
    assert_eq!(
        code(&second),
        75,
        "the second exits busy: {}{}",
        text(&second.stdout),
        text(&second.stderr)
    );
    assert!(
        second.stdout.is_empty() && second.stderr.is_empty(),
        "busy is quiet under cron (no terminal): {}{}",
        text(&second.stdout),
        text(&second.stderr)
    );
    assert!(
        net.sql_csv("SELECT epoch FROM epochs").is_empty(),
        "nothing committed while the first waits"
    );
    std::fs::write(&go, "").unwrap();
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        code(&first),
        0,
        "the first commits: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        net.sql_csv("SELECT epoch FROM epochs"),
        vec![vec!["0".to_string()]]
    );
    fb(&net.store, &["epoch", "verify", "--epoch", "0"]).ok();

    let log = std::fs::read_to_string(&log).unwrap();
    assert_timestamped(&log);
    let busy: Vec<&str> = log.lines().filter(|l| l.contains(" busy: ")).collect();
    assert_eq!(busy.len(), 1, "one busy line:\n{log}");
    assert!(busy[0].contains("this run did nothing (exit 75)"), "{log}");
    let pid = first_pid(&log);
    assert!(
        busy[0].contains(&format!("(pid {pid})")),
        "busy names the holder {pid}:\n{log}"
    );
    assert_eq!(log.matches("epoch 0 committed").count(), 1, "{log}");
    assert!(log.lines().any(|l| l.ends_with("exit 0: done")), "{log}");
    eprintln!("cron race: {:.1} s", t.elapsed().as_secs_f64());
}

/// The pid the first wrapper logged in its start line.
fn first_pid(log: &str) -> String {
    let start = log
        .lines()
        .find(|l| l.contains(" start: "))
        .expect("a start line");
    start
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("start line names the pid")
        .to_string()
}

#[test]
fn the_wrapper_passes_the_coordinators_exit_code_through() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("epoch.log");
    // An unusable store: the coordinator's error (exit 1) is cron's error.
    let o = wrapper("bogus://nowhere", &log).output().unwrap();
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("error:"),
        "the coordinator's message is shown for cron's mail: {err}"
    );
    assert!(
        err.contains(&log.display().to_string()),
        "and where the log is: {err}"
    );
    // A usage error (exit 2) passes through as 2.
    let o = wrapper("bogus://nowhere", &log)
        .arg("--no-such-option")
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    let text_log = std::fs::read_to_string(&log).unwrap();
    assert_timestamped(&text_log);
    assert!(
        text_log.lines().any(|l| l.ends_with("exit 1: failed")),
        "{text_log}"
    );
    assert!(
        text_log.lines().any(|l| l.ends_with("exit 2: usage error")),
        "{text_log}"
    );

    // JSON mode: every line of the log is one JSON object, the coordinator's too.
    let json_log = dir.path().join("epoch.jsonl");
    let o = wrapper("bogus://nowhere", &json_log)
        .env("FACEBLOCK_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    let lines = std::fs::read_to_string(&json_log).unwrap();
    assert!(lines.lines().count() >= 3, "{lines}");
    for l in lines.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
        assert!(v["fields"]["message"].is_string(), "{l}");
    }
    assert!(lines.contains("exit 1: failed"), "{lines}");
}
