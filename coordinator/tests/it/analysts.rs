//! The analysts' ready queries (`pipelines/sql/analysts/*.sql`) run as an
//! analyst runs them, `faceblock sql --file Q.sql --format csv`, against a
//! ledger the local market wrote; each answer is checked for a property it
//! must have. Also every output format, `--file`, standard input and
//! `--out` Parquet.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common::{command, faceblock, fb, market_ledger};

/// A CSV answer: header and rows of named cells.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<BTreeMap<String, String>>,
}

impl Table {
    pub fn parse(text: &str) -> Table {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
        let rows = r
            .records()
            .map(|rec| {
                let rec = rec.unwrap();
                header
                    .iter()
                    .cloned()
                    .zip(rec.iter().map(str::to_string))
                    .collect()
            })
            .collect();
        Table { header, rows }
    }

    pub fn f(&self, i: usize, col: &str) -> f64 {
        let v = &self.rows[i][col];
        v.parse()
            .unwrap_or_else(|_| panic!("{col} = {v:?} is not a number"))
    }

    pub fn i(&self, i: usize, col: &str) -> i64 {
        let v = &self.rows[i][col];
        v.parse()
            .unwrap_or_else(|_| panic!("{col} = {v:?} is not an integer"))
    }
}

pub fn store() -> String {
    market_ledger().display().to_string()
}

/// `faceblock sql --format csv QUERY` on the market ledger.
pub fn sql(q: &str) -> Table {
    Table::parse(&fb(&store(), &["sql", "--format", "csv", q]).ok().stdout)
}

fn analysts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipelines/sql/analysts")
}

fn run_file(path: &Path) -> Table {
    let out = fb(
        &store(),
        &["sql", "--file", path.to_str().unwrap(), "--format", "csv"],
    )
    .ok();
    Table::parse(&out.stdout)
}

const EPS: f64 = 1e-9;

fn stake_share(t: &Table) {
    /// Per epoch: sum of shares, total stake, and each peer's (stake, share).
    type Epoch = (f64, i64, Vec<(i64, f64)>);
    let mut by_epoch: BTreeMap<i64, Epoch> = BTreeMap::new();
    for i in 0..t.rows.len() {
        let e = by_epoch.entry(t.i(i, "epoch")).or_default();
        e.0 += t.f(i, "stake_share");
        e.1 += t.i(i, "stake");
        e.2.push((t.i(i, "stake"), t.f(i, "stake_share")));
    }
    let epochs = sql("SELECT epoch FROM epochs ORDER BY epoch");
    assert_eq!(by_epoch.len(), epochs.rows.len(), "one group per epoch");
    for (epoch, (sum, total, peers)) in &by_epoch {
        assert!(
            (sum - 1.0).abs() < EPS,
            "epoch {epoch}: shares sum to {sum}"
        );
        for (stake, share) in peers {
            assert!((*stake as f64 / *total as f64 - share).abs() < EPS);
        }
    }
}

fn top_earners(t: &Table) {
    assert!(!t.rows.is_empty());
    let (first, last) = (t.i(0, "first_epoch"), t.i(0, "last_epoch"));
    let mut minted = 0i64;
    for i in 0..t.rows.len() {
        if i > 0 {
            assert!(t.i(i - 1, "earned") >= t.i(i, "earned"), "largest first");
        }
        minted += t.i(i, "earned");
        // What a peer earned over the range is what its stake grew by.
        let uid = t.i(i, "uid");
        let grew = sql(&format!(
            "SELECT MAX(stake) - MIN(stake_before) AS g FROM state \
             WHERE uid = {uid} AND epoch BETWEEN {first} AND {last}"
        ));
        assert_eq!(grew.i(0, "g"), t.i(i, "earned"), "uid {uid}");
    }
    let e = sql(&format!(
        "SELECT SUM(emission) AS m FROM epochs WHERE epoch BETWEEN {first} AND {last}"
    ));
    assert_eq!(minted, e.i(0, "m"), "emission of the range");
    assert!(minted > 0, "the market minted stake");
    let shares: f64 = (0..t.rows.len()).map(|i| t.f(i, "share_of_minted")).sum();
    assert!((shares - 1.0).abs() < EPS);
}

fn rows_in_force(t: &Table) {
    let last = sql("SELECT MAX(epoch) AS e, MAX(rows_in_force) AS r FROM epochs WHERE epoch = (SELECT MAX(epoch) FROM epochs)");
    let mut per_src: BTreeMap<i64, f64> = BTreeMap::new();
    for i in 0..t.rows.len() {
        assert_eq!(t.i(i, "epoch"), last.i(0, "e"));
        assert!(t.i(i, "submitted_epoch") <= t.i(i, "epoch"));
        assert_ne!(t.i(i, "src"), t.i(i, "dst"), "no self weight by default");
        assert!(t.f(i, "weight") > 0.0);
        *per_src.entry(t.i(i, "src")).or_default() += t.f(i, "weight");
    }
    assert_eq!(per_src.len() as i64, last.i(0, "r"), "rows_in_force");
    for (src, sum) in per_src {
        assert!((sum - 1.0).abs() < EPS, "row of {src} sums to {sum}");
    }
}

fn bonds(t: &Table) {
    let last = sql("SELECT MAX(epoch) AS e FROM epochs");
    let mut per_peer: BTreeMap<i64, f64> = BTreeMap::new();
    for i in 0..t.rows.len() {
        assert_eq!(t.i(i, "epoch"), last.i(0, "e"));
        assert!(t.f(i, "bond") > 0.0);
        if i > 0 {
            assert!(t.f(i, "bond") <= t.f(i - 1, "bond"), "largest first");
        }
        *per_peer.entry(t.i(i, "peer")).or_default() += t.f(i, "share_of_peer");
    }
    for (peer, sum) in per_peer {
        assert!((sum - 1.0).abs() < EPS, "shares in {peer} sum to {sum}");
    }
}

fn consensus_trust(t: &Table) {
    assert!(!t.rows.is_empty());
    // Default rho = 10, kappa = 0.5 (the market sets only the tensor shape).
    for i in 0..t.rows.len() {
        for c in ["trust", "consensus", "rank", "incentive"] {
            let v = t.f(i, c);
            assert!((0.0..=1.0).contains(&v), "{c} = {v}");
        }
        let want = 1.0 / (1.0 + (-10.0 * (t.f(i, "trust") - 0.5)).exp());
        assert!((t.f(i, "consensus") - want).abs() < 1e-12);
    }
}

fn peg(t: &Table) {
    assert!(t.rows.len() >= 2);
    for i in 0..t.rows.len() {
        let (k, next) = (t.i(i, "k"), t.i(i, "k_next"));
        let want = if t.f(i, "loss") > 0.0 {
            (k + 1).min(1024)
        } else {
            k
        };
        assert_eq!(next, want, "epoch {}", t.i(i, "epoch"));
        if i > 0 {
            assert_eq!(t.i(i, "epoch"), t.i(i - 1, "epoch") + 1);
            assert_eq!(k, t.i(i - 1, "k_next"), "k follows k_next");
        }
    }
}

fn fisher_divergence(t: &Table) {
    assert!(!t.rows.is_empty(), "peers submit rows and are measured");
    let direct = sql("SELECT COUNT(*) AS n FROM state WHERE fisher_divergence IS NOT NULL");
    let mut n = 0;
    for i in 0..t.rows.len() {
        let (mean, max) = (t.f(i, "mean_divergence"), t.f(i, "max_divergence"));
        assert!((0.0..=1.0).contains(&mean) && (0.0..=1.0).contains(&max));
        assert!(mean <= max + EPS);
        if i > 0 {
            assert!(
                t.f(i - 1, "mean_divergence") >= mean,
                "most divergent first"
            );
        }
        n += t.i(i, "epochs");
    }
    assert_eq!(n, direct.i(0, "n"));
}

#[test]
fn every_analyst_query_answers_what_it_says() {
    let checks: BTreeMap<&str, fn(&Table)> = BTreeMap::from([
        ("stake_share.sql", stake_share as fn(&Table)),
        ("top_earners.sql", top_earners),
        ("rows_in_force.sql", rows_in_force),
        ("bonds.sql", bonds),
        ("consensus_trust.sql", consensus_trust),
        ("peg.sql", peg),
        ("fisher_divergence.sql", fisher_divergence),
    ]);
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(analysts_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap_or("");
        assert!(
            first.starts_with("-- ") && first.len() > 20,
            "{name} must start with a one-line `--` comment saying what it answers"
        );
        let check = checks
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} has no check in tests/it/analysts.rs"));
        let t = run_file(&path);
        assert!(!t.rows.is_empty(), "{name} answered nothing");
        check(&t);
        seen.push(name);
    }
    assert_eq!(
        seen.len(),
        checks.len(),
        "every check has its file: {seen:?}"
    );
}

const Q: &str = "SELECT epoch, uid, stake, stake_share FROM state ORDER BY epoch, uid";

#[test]
fn every_format_gives_the_same_answer() {
    let csv = sql(Q);
    assert_eq!(csv.header, ["epoch", "uid", "stake", "stake_share"]);
    assert!(csv.rows.len() >= 9);

    let json = fb(&store(), &["sql", "--format", "json", Q]).ok().stdout;
    let json: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(json.len(), csv.rows.len());
    for (i, o) in json.iter().enumerate() {
        assert_eq!(o["uid"].as_i64().unwrap(), csv.i(i, "uid"));
        assert_eq!(o["stake"].as_i64().unwrap(), csv.i(i, "stake"));
        assert_eq!(o["stake_share"].as_f64().unwrap(), csv.f(i, "stake_share"));
    }

    let table = fb(&store(), &["sql", Q]).ok().stdout;
    let lines: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(
        lines.len(),
        csv.rows.len() + 1,
        "header and one line per row"
    );
    assert!(lines[0].contains("stake_share"));

    // An empty answer keeps its shape.
    let empty = fb(
        &store(),
        &[
            "sql",
            "--format",
            "csv",
            "SELECT uid, stake FROM state WHERE epoch < 0",
        ],
    )
    .ok();
    assert_eq!(empty.stdout.trim(), "uid,stake");
    let empty = fb(
        &store(),
        &[
            "sql",
            "--format",
            "json",
            "SELECT uid FROM state WHERE epoch < 0",
        ],
    )
    .ok();
    assert_eq!(empty.stdout.trim(), "[]");
}

#[test]
fn queries_from_a_file_and_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.sql");
    std::fs::write(&file, format!("-- a comment first\n{Q};\n")).unwrap();
    let want = fb(&store(), &["sql", "--format", "csv", Q]).ok().stdout;
    let from_file = fb(
        &store(),
        &["sql", "--format", "csv", "--file", file.to_str().unwrap()],
    )
    .ok()
    .stdout;
    assert_eq!(from_file, want);

    for args in [
        vec!["sql", "--format", "csv", "-"],
        vec!["sql", "--format", "csv", "--file", "-"],
    ] {
        let mut child = command(&faceblock(), &store(), &[], &args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(Q.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{args:?}");
    }

    // Mistakes: a missing file, an empty query, both a query and a file.
    let r = fb(&store(), &["sql", "--file", "/no/such/q.sql"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("cannot read the query file /no/such/q.sql"),
        "{}",
        r.stderr
    );
    let r = fb(&store(), &["sql", "  "]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("the query is empty"), "{}", r.stderr);
    let r = fb(&store(), &["sql", "--file", file.to_str().unwrap(), Q]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn parquet_goes_to_a_file_that_reads_back() {
    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::{DataType, Float64Type, Int64Type};

    let r = fb(&store(), &["sql", "--format", "parquet", Q]);
    assert_eq!(r.code, 2, "parquet without --out is a usage error");
    assert!(r.stderr.contains("--out FILE"), "{}", r.stderr);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stake.parquet");
    let q = "SELECT epoch, uid, stake, stake_share, CAST(uid AS VARCHAR) AS name FROM state ORDER BY epoch, uid";
    let r = fb(
        &store(),
        &[
            "sql",
            "--format",
            "parquet",
            "--out",
            out.to_str().unwrap(),
            q,
        ],
    )
    .ok();
    assert!(r.stdout.is_empty(), "nothing binary on stdout");
    let csv = sql(q);
    assert!(
        r.stderr.contains(&format!("wrote {} rows", csv.rows.len())),
        "{}",
        r.stderr
    );

    let file = std::fs::File::open(&out).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let b = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(b.num_rows(), csv.rows.len());
    assert_eq!(
        b.schema().field(4).data_type(),
        &DataType::Utf8,
        "plain strings"
    );
    let uid = b.column(1).as_primitive::<Int64Type>();
    let stake = b.column(2).as_primitive::<Int64Type>();
    let share = b.column(3).as_primitive::<Float64Type>();
    let name = b.column(4).as_string::<i32>();
    for i in 0..b.num_rows() {
        assert_eq!(uid.value(i), csv.i(i, "uid"));
        assert_eq!(stake.value(i), csv.i(i, "stake"));
        assert_eq!(share.value(i), csv.f(i, "stake_share"));
        assert_eq!(name.value(i), csv.rows[i]["name"]);
    }

    // --out works for text formats too.
    let out_csv = dir.path().join("stake.csv");
    fb(
        &store(),
        &[
            "sql",
            "--format",
            "csv",
            "--out",
            out_csv.to_str().unwrap(),
            q,
        ],
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(&out_csv).unwrap(),
        fb(&store(), &["sql", "--format", "csv", q]).ok().stdout
    );
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::Read;
    // `faceblock sql ... | head -1`: far more output than a pipe buffers.
    let mut child = command(
        &faceblock(),
        &store(),
        &[],
        &["sql", "--format", "csv", "SELECT value FROM range(2000000)"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is closed here, as `head` closes it.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert!(String::from_utf8_lossy(&first).starts_with("value\n"));
}
