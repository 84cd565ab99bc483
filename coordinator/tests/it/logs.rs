//! Logs for machines: `--log-format json` (or `FACEBLOCK_LOG_FORMAT=json`)
//! writes one JSON object per stderr line, nothing else; text stays the
//! default; `--help` of both binaries documents the exit codes.

use crate::common::{fb, peer, peer_bin, run_env, Net};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every line of `stderr` as a JSON log object with the fields a collector keys on.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    assert!(!stderr.trim().is_empty(), "no log lines");
    stderr
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\nstderr:\n{stderr}"));
            assert!(v["timestamp"].is_string(), "{l}");
            assert!(v["level"].is_string(), "{l}");
            assert!(v["target"].is_string(), "{l}");
            assert!(v["fields"].is_object(), "{l}");
            // Some libraries log fields only; ours always say something.
            if v["target"].as_str().unwrap().starts_with("faceblock") {
                assert!(v["fields"]["message"].is_string(), "{l}");
            }
            v
        })
        .collect()
}

#[test]
fn epoch_run_logs_json_lines_only() {
    let net = Net::new(3, &[100, 200, 300], "");
    net.set(0, "1=1,2=1");
    net.set(1, "2=1");
    net.set(2, "0=1");
    let r = run_env(
        &crate::common::faceblock(),
        &net.store,
        &env(&[("FACEBLOCK_LOG", "info")]),
        &["--log-format", "json", "epoch", "run"],
    )
    .ok();
    assert!(r.stdout.contains("epoch 0 committed"), "{}", r.stdout);
    let lines = json_lines(&r.stderr);
    assert!(lines
        .iter()
        .all(|v| v["level"] == "INFO" || v["level"] == "WARN"));
    assert!(
        lines.iter().any(|v| v["target"]
            .as_str()
            .unwrap()
            .starts_with("faceblock_coordinator")),
        "the coordinator's own logs are there"
    );

    // The environment variable does the same, and an error is a JSON line too.
    let r = run_env(
        &crate::common::faceblock(),
        &net.store,
        &env(&[("FACEBLOCK_LOG_FORMAT", "json")]),
        &["epoch", "verify", "--epoch", "7"],
    );
    assert_eq!(r.code, 1);
    let lines = json_lines(&r.stderr);
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert_eq!(last["fields"]["exit_code"], 1);
    assert!(last["fields"]["message"]
        .as_str()
        .unwrap()
        .contains("not committed"));

    // Text by default: plain lines, no colour codes when piped.
    let r = run_env(
        &crate::common::faceblock(),
        &net.store,
        &env(&[("FACEBLOCK_LOG", "info")]),
        &["epoch", "run"],
    )
    .ok();
    assert!(r.stdout.contains("epoch 1 committed"), "{}", r.stdout);
    assert!(r.stderr.contains("epoch committed"), "{}", r.stderr);
    assert!(
        !r.stderr.contains('\u{1b}'),
        "no ANSI escapes: {:?}",
        r.stderr
    );
    assert!(
        r.stderr.lines().all(|l| !l.starts_with('{')),
        "{}",
        r.stderr
    );
}

#[test]
fn peer_logs_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_env(
        &peer_bin(),
        "",
        &[],
        &[
            "--log-format",
            "json",
            "register",
            "--key",
            dir.path().join("none.key").to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1);
    let lines = json_lines(&r.stderr);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["level"], "ERROR");
    assert_eq!(lines[0]["target"], "faceblock_peer");
    let r = peer("", &["--log-format", "yaml", "keygen"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn help_documents_exit_codes() {
    let h = fb("", &["--help"]).ok().stdout;
    assert!(h.contains("Exit codes:"), "{h}");
    for code in ["  0 ", "  1 ", "  2 ", "  3 ", "  75 "] {
        assert!(
            h.contains(code),
            "faceblock --help lacks exit code {code:?}:\n{h}"
        );
    }
    assert!(h.contains("--log-format"), "{h}");
    let h = peer("", &["--help"]).ok().stdout;
    assert!(h.contains("Exit codes:"), "{h}");
    for code in ["  0 ", "  1 ", "  2 "] {
        assert!(
            h.contains(code),
            "faceblock-peer --help lacks exit code {code:?}:\n{h}"
        );
    }
    assert!(h.contains("--log-format"), "{h}");
}
