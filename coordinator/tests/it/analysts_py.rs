//! The analysts' Python side, run the way analysts run it: Polars, DuckDB and
//! pandas read every ledger table exactly as `faceblock sql` shows it, through
//! the README's own snippets (`notebooks/check_readers.py`), an epoch missing
//! from `epochs` stays hidden in all of them, and `notebooks/market.ipynb`
//! executes without a cell error against a ledger the local market wrote.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use faceblock_coordinator::epoch;
use faceblock_coordinator::ledger::commit::Claim;
use faceblock_coordinator::ledger::{tables, Ledger};
use faceblock_schemas::{NetworkFile, Store};

use super::common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python that has `notebooks/requirements.txt`: `FACEBLOCK_ANALYSTS_PYTHON`,
/// else a virtualenv under `~/.cache/faceblock/venv-analysts`.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Ok(p) = std::env::var("FACEBLOCK_ANALYSTS_PYTHON") {
            return PathBuf::from(p);
        }
        let reqs = repo().join("notebooks/requirements.txt");
        pinned_venv(
            "venv-analysts",
            &["-r".as_ref(), reqs.as_os_str()],
            &[&reqs],
        )
    })
    .clone()
}

/// Runs a script of `notebooks/` with the analysts' Python, FACEBLOCK_STORE set.
fn notebooks_py(what: &str, args: &[&OsStr], store: &Path) -> Output {
    let t = Instant::now();
    let out = Command::new(python())
        .args(args)
        .env("FACEBLOCK_STORE", store)
        .output()
        .expect("python runs");
    eprintln!("{what}: {:.1} s", t.elapsed().as_secs_f64());
    out
}

#[track_caller]
fn succeeded(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `notebooks/check_readers.py` on a store, with the snippets of `readme`
/// (the repository's README when `None`).
fn run_check(store: &Path, hidden: Option<u64>, readme: Option<&Path>) -> Output {
    let script = repo().join("notebooks/check_readers.py");
    let mut args: Vec<OsString> = vec![script.into(), store.into(), faceblock().into()];
    if let Some(e) = hidden {
        args.push("--hidden-epoch".into());
        args.push(e.to_string().into());
    }
    if let Some(r) = readme {
        args.push("--readme".into());
        args.push(r.into());
    }
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    notebooks_py("reader check", &refs, store)
}

fn check_readers(store: &Path, hidden: Option<u64>) -> String {
    succeeded("reader check", run_check(store, hidden, None))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&src, &dst);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

#[test]
fn polars_duckdb_and_pandas_read_every_table_as_faceblock_sql_does() {
    let store = market_ledger();
    let report = check_readers(store, None);
    eprint!("{report}");
    for table in [
        "state",
        "weights",
        "bonds",
        "fisher",
        "epochs",
        "rejections",
        "registry",
        "metrics",
        "inputs",
        "weights_in_force",
        "bonds_in_force",
    ] {
        assert!(
            report.contains(&format!("{table}: ")),
            "the check skipped {table}:\n{report}"
        );
    }
    // The market ran 3 epochs: all of them are compared.
    assert!(
        report.contains("epochs: 3 rows, epochs [0, 1, 2]"),
        "{report}"
    );
}

/// A coordinator that died after committing every table of epoch 3 but
/// `epochs`, made by the coordinator's own commit path stopped where a crash
/// would stop it (as in `recovery.rs`); epoch 3 carries a rejected
/// submission so `rejections` has a row to hide too.
#[test]
fn an_epoch_missing_from_epochs_is_hidden_by_the_join_in_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("market");
    copy_dir(market_ledger(), &store_dir);
    let url = store_dir.display().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open(&url).unwrap();
    rt.block_on(async {
        let net = NetworkFile::load(&store).await.unwrap();
        let ledger = Ledger::new(store.clone());
        assert_eq!(ledger.last_committed().await.unwrap(), Some(2));
        store
            .put(
                &weights_path(3, 0),
                bytes::Bytes::from_static(b"not parquet"),
            )
            .await
            .unwrap();
        let mut p = epoch::prepare(&store, &net, &ledger, 3, 2, None, None)
            .await
            .unwrap();
        let epochs_row = p.row.batch(&p.digest, "test", 0).unwrap();
        let mut claim = Claim {
            epoch: 3,
            run: "died-before-epochs".into(),
            digest: p.digest.clone(),
            tables: Default::default(),
        };
        for (name, b) in std::mem::take(&mut p.tables) {
            claim
                .tables
                .insert(name.into(), ledger.stage(name, b).await.unwrap());
        }
        claim.tables.insert(
            "epochs".into(),
            ledger.stage("epochs", epochs_row).await.unwrap(),
        );
        ledger.put_claim(&claim).await.unwrap();
        // Commit every table in the coordinator's order, then "crash" before `epochs`.
        for name in tables::TABLES.iter().filter(|&&t| t != "epochs") {
            let adds = claim.tables.get(*name).cloned().unwrap_or_default();
            ledger.commit_table(name, 3, adds).await.unwrap();
        }
    });
    let report = check_readers(&store_dir, Some(3));
    eprint!("{report}");
    for table in ["state", "rejections"] {
        assert!(
            report.lines().any(|l| l.starts_with(&format!("{table}: "))
                && l.contains("plain reads show epoch 3, joined reads hide it")),
            "{table} should have rows of epoch 3 that only the join hides:\n{report}"
        );
    }
    // The check can fail: README snippets without the join show epoch 3.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for (reader, join, without) in [
        (
            "polars read_delta",
            r#"pl.read_delta(f"{store}/ledger/{table}").join(committed, on="epoch", how="semi")"#,
            r#"pl.read_delta(f"{store}/ledger/{table}")"#,
        ),
        (
            "duckdb",
            " WHERE epoch IN (SELECT epoch FROM committed)",
            "",
        ),
        (
            "pandas",
            r#"df[df["epoch"].isin(committed)].reset_index(drop=True)"#,
            "df",
        ),
    ] {
        assert!(
            readme.contains(join),
            "the README's {reader} join is no longer `{join}`: update this test"
        );
        let variant = dir
            .path()
            .join(format!("README-{}.md", reader.replace(' ', "-")));
        std::fs::write(&variant, readme.replace(join, without)).unwrap();
        let out = run_check(&store_dir, Some(3), Some(&variant));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(&format!(": {reader} read ")),
            "without its join, {reader} should show epoch 3 and fail the check:\n{err}"
        );
    }
    // The next run finishes the epoch; then every reader shows it.
    let out = fb(&url, &["epoch", "run"]).ok();
    assert!(
        out.stdout.contains("finished an interrupted run"),
        "{}",
        out.stdout
    );
    let report = check_readers(&store_dir, None);
    assert!(
        report.contains("epochs: 4 rows, epochs [0, 1, 2, 3]"),
        "{report}"
    );
    // The notebook on a ledger that has a rejection (the market's has none).
    let said = run_notebook(&store_dir);
    assert!(said.contains("5 charts"), "{said}");
}

/// Executes `notebooks/market.ipynb` on a store; returns what the runner printed.
fn run_notebook(store: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let executed = dir.path().join("market.executed.ipynb");
    let script = repo().join("notebooks/run_notebook.py");
    let nb = repo().join("notebooks/market.ipynb");
    let out = notebooks_py(
        "notebook",
        &[
            script.as_os_str(),
            nb.as_os_str(),
            OsStr::new("--out"),
            executed.as_os_str(),
        ],
        store,
    );
    let said = succeeded("notebook", out);
    eprint!("{said}");
    said
}

#[test]
fn the_analysts_notebook_runs_against_a_market_ledger() {
    let said = run_notebook(market_ledger());
    // One chart per topic: stake, ranks and consensus, the peg, rejections, Fisher.
    assert!(said.contains("5 charts"), "{said}");
}
