//! `faceblock simulate`: every published scenario runs a few epochs through
//! the real epoch and ledger; the default mechanism makes a disjoint cabal
//! lose share where the original one lets it grow; the frontier runs its
//! jobs in parallel; bad files are clear errors. The full runs are benchmarks.

use std::path::{Path, PathBuf};

use faceblock_coordinator::simulate::{self, frontier, EpochStats, Group, Scenario};

use super::common::*;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/scenarios")
}

fn run(s: &Scenario) -> Vec<EpochStats> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = simulate::private_memory_store(&s.name).unwrap();
        simulate::run::run(s, &store, 2, |_| {}).await.unwrap()
    })
}

fn check_invariants(name: &str, stats: &[EpochStats], tau: u64) {
    for e in stats {
        let total: f64 = e.groups.iter().map(|g| g.share).sum();
        assert!(
            (total - 1.0).abs() < 1e-9,
            "{name} epoch {}: shares sum to {total}",
            e.epoch
        );
        let minted: u64 = e.groups.iter().map(|g| g.emission).sum();
        assert_eq!(minted, e.emission, "{name} epoch {}", e.epoch);
        assert!(
            e.emission == tau || e.emission == 0,
            "{name}: minted {}",
            e.emission
        );
    }
}

/// Every scenario file behind a figure, cut to 3 epochs: it loads, runs,
/// keeps the invariants, and the first one gives the same numbers twice.
#[test]
fn every_scenario_runs_a_few_epochs() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("frontier")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    for (i, f) in files.iter().enumerate() {
        let mut s = Scenario::load(f).unwrap();
        assert_eq!(
            s.epochs,
            200,
            "{}: published runs are 200 epochs",
            f.display()
        );
        s.epochs = 3;
        let stats = run(&s);
        assert_eq!(stats.len(), 3);
        check_invariants(&s.name, &stats, s.params.emission_per_epoch);
        if i == 0 {
            assert_eq!(run(&s), stats, "{}: same seed, same run", s.name);
        }
        if s.market.copiers > 0 {
            let c = |e: usize| stats[e].group(Group::Copier).emission;
            assert_eq!(c(0), 0, "copiers have nothing to copy at epoch 0");
            assert!(
                c(2) > 0,
                "copiers earn dividends once their copy is in force"
            );
        }
    }
}

/// A 45 % cabal against honest rows of k = 2, peg from k = 2: with rows in
/// force held to k (the default) its 9-weight rows leave force at k = 10,
/// it earns nothing after and its share falls below where it started; with
/// the original rule (rows stay in force) it keeps growing. Through the
/// binary, on a local store, so the ledger can be asked afterwards.
#[test]
fn default_mechanism_makes_a_disjoint_cabal_lose() {
    let dir = tempfile::tempdir().unwrap();
    let run_cli = |meet_k: bool| {
        let file = dir.path().join(format!("c{meet_k}.toml"));
        std::fs::write(
            &file,
            format!(
                "epochs = 20\n[market]\ncabal_stake = 0.45\nhonest_k = 2\n\
                 [params]\nk_initial = 2\nrows_meet_k = {meet_k}\n"
            ),
        )
        .unwrap();
        let store = dir.path().join(format!("store{meet_k}"));
        let csv = dir.path().join(format!("c{meet_k}.csv"));
        let out = fb(
            store.to_str().unwrap(),
            &[
                "simulate",
                file.to_str().unwrap(),
                "--out",
                csv.to_str().unwrap(),
            ],
        )
        .ok();
        assert!(out.stdout.contains("epoch   19"), "{}", out.stdout);
        let text = std::fs::read_to_string(&csv).unwrap();
        let rows: Vec<Vec<String>> = text
            .lines()
            .map(|l| l.split(',').map(String::from).collect())
            .collect();
        assert_eq!(rows[0][7], "cabal_share");
        assert_eq!(rows.len(), 21);
        (store, rows)
    };
    let share = |rows: &[Vec<String>], e: usize| rows[e + 1][7].parse::<f64>().unwrap();
    let (store, rows) = run_cli(true);
    let peak = (0..20).map(|e| share(&rows, e)).fold(0.0, f64::max);
    assert!(
        peak > 0.45,
        "sparse honest rows let the cabal grow first: {peak}"
    );
    assert!(
        share(&rows, 19) < 0.45,
        "default: cabal ends at {}",
        share(&rows, 19)
    );
    assert_eq!(
        rows[20][11], "0",
        "the cabal earns nothing once its rows are out"
    );
    let below = fb(
        store.to_str().unwrap(),
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM rejections WHERE reason = 'below_k'",
        ],
    )
    .ok();
    let n: u64 = below.stdout.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(
        n >= 10,
        "every cabal row leaves force as below_k: {}",
        below.stdout
    );
    let (_, old) = run_cli(false);
    assert!(
        share(&old, 19) > 0.5,
        "original rule: cabal grows to {}",
        share(&old, 19)
    );
}

/// With k = 10 from the start, a cabal of 10 (rows of 9) is rejected unless it pads.
#[test]
fn padding_cabal_meets_k() {
    for (pads, rows) in [(false, 20), (true, 30)] {
        let s = Scenario::from_toml(
            &format!("epochs = 1\n[market]\ncabal_pads = {pads}\n[params]\nk_initial = 10\n"),
            "pad",
        )
        .unwrap();
        let stats = run(&s);
        assert_eq!(stats[0].rows_in_force, rows, "pads = {pads}");
        assert_eq!(stats[0].rejections, 30 - rows, "pads = {pads}");
    }
}

#[test]
fn bad_scenario_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "epochs = 3\n[market]\ncabal_stak = 0.3\n").unwrap();
    let r = fb("", &["simulate", f.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("cabal_stak") && r.stderr.contains("bad.toml"),
        "{}",
        r.stderr
    );
    std::fs::write(&f, "epochs = 3\n[params]\nconsensus = \"median\"\n").unwrap();
    let r = fb("", &["simulate", f.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("median_clip"), "{}", r.stderr);
    let r = fb("", &["simulate", "/nonexistent/s.toml"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cannot read"), "{}", r.stderr);
    std::fs::write(&f, "epochs = 2\ncheckpoints = [1]\n[variant.a]\nlabel = \"a\"\n[[table]]\ntitle = \"t\"\nvariants = [\"b\"]\ncabal_stakes = [0.1]\nhonest_k = [2]\n").unwrap();
    let r = fb("", &["simulate", "--frontier", f.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unknown variant 'b'"), "{}", r.stderr);
}

/// A tiny frontier through the binary: parallel jobs, one CSV per scenario,
/// the Markdown table; and the published frontier specs expand to valid jobs.
#[test]
fn frontier_runs_jobs_in_parallel() {
    for f in ["frontier.toml", "frontier-seeds.toml"] {
        let spec = frontier::Spec::load(&scenarios_dir().join(f)).unwrap();
        assert!(spec.jobs().unwrap().len() >= 50, "{f}");
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("tiny.toml");
    std::fs::write(
        &f,
        "epochs = 2\ncheckpoints = [1, 2]\n[market]\nhonest = 4\ncabal = 2\n\
         [variant.a]\nlabel = \"sig\"\nparams = { peg_step = 0, rows_meet_k = false }\n\
         [variant.b]\nlabel = \"clip\"\nparams = { consensus = \"median_clip\" }\n\
         [[table]]\ntitle = \"Tiny\"\nvariants = [\"a\", \"b\"]\ncabal_stakes = [0.1, 0.3]\nhonest_k = [2]\n",
    )
    .unwrap();
    let out = dir.path().join("csv");
    let report = dir.path().join("tiny.md");
    // The tiny frontier into `out`, with a report; `more` appended.
    let frontier = |report: &std::path::Path, more: &[&str]| {
        let mut args = vec![
            "simulate",
            "--frontier",
            f.to_str().unwrap(),
            "--jobs",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ];
        args.extend_from_slice(more);
        fb("", &args)
    };
    let r = frontier(&report, &[]).ok();
    assert!(
        r.stderr.contains("4 scenarios of 2 epochs, 2 at a time"),
        "{}",
        r.stderr
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("### Tiny"), "{md}");
    assert!(
        md.contains("| sig | 2 |") && md.contains("| clip | 2 |"),
        "{md}"
    );
    assert!(md.contains("largest s that loses"), "{md}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 4);
    assert!(r.stdout.contains(&md), "{}", r.stdout);

    // A stopped frontier resumes: one CSV lost, one cut short; the two kept
    // are not run again and the report is the same.
    let lost = out.join("t0-a-k2-s10-seed1.csv");
    let cut = out.join("t0-b-k2-s30-seed1.csv");
    let kept = out.join("t0-a-k2-s30-seed1.csv");
    std::fs::remove_file(&lost).unwrap();
    let text = std::fs::read_to_string(&cut).unwrap();
    std::fs::write(&cut, text.lines().take(2).collect::<Vec<_>>().join("\n")).unwrap();
    let before = std::fs::metadata(&kept).unwrap().modified().unwrap();
    let again = dir.path().join("again.md");
    let r = frontier(&again, &["--resume"]).ok();
    assert!(
        r.stderr.contains("(2 kept from") && r.stderr.contains("2 to run)"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("2 scenarios run in"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), md);
    assert_eq!(
        std::fs::metadata(&kept).unwrap().modified().unwrap(),
        before
    );
    assert!(std::fs::read_to_string(&lost).unwrap().lines().count() == 3);

    // A file that is not a simulate CSV is an error, not a silent rerun.
    std::fs::write(&kept, "uid,stake\n1,2\n").unwrap();
    let r = frontier(&dir.path().join("bad.md"), &["--resume"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("t0-a-k2-s30-seed1.csv:1") && r.stderr.contains("header differs"),
        "{}",
        r.stderr
    );
    // --resume without --out says what it needs.
    let r = fb(
        "",
        &["simulate", "--frontier", f.to_str().unwrap(), "--resume"],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--out"), "{}", r.stderr);
}
