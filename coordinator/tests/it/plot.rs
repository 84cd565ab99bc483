//! `faceblock plot`: every chart is a valid PNG of the asked size, and the
//! series written beside it (CSV) equal what `faceblock sql` answers for the
//! same question; a 100-peer market keeps its legend to the top peers and
//! "others"; ranges and empty ledgers give clear errors.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use crate::analysts::{sql, store, Table};
use crate::common::{fb, Net};

const CHARTS: [&str; 4] = ["stake_share", "rank_consensus", "peg", "fisher_weight"];

/// Checks the PNG signature and IHDR, decodes the image and returns its
/// number of distinct colours.
fn check_png(path: &Path, width: u32, height: u32) -> usize {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((w, h), (width, height), "{}", path.display());
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (width, height));
    let px = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(px)
        .map(|c| c.to_vec())
        .collect::<HashSet<_>>()
        .len()
}

fn read_csv(path: &Path) -> Table {
    Table::parse(&std::fs::read_to_string(path).unwrap())
}

fn plot(store: &str, dir: &Path, extra: &[&str]) -> crate::common::Run {
    let mut args = vec!["plot", "--out", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    fb(store, &args)
}

#[test]
fn market_charts_are_pngs_of_the_sql_answers() {
    let dir = tempfile::tempdir().unwrap();
    let out = plot(&store(), dir.path(), &["--width", "900", "--height", "600"]).ok();
    for c in CHARTS {
        for ext in ["png", "csv"] {
            let p = dir.path().join(format!("{c}.{ext}"));
            assert!(
                out.stdout.contains(&p.display().to_string()),
                "{}",
                out.stdout
            );
        }
        let colours = check_png(&dir.path().join(format!("{c}.png")), 900, 600);
        assert!(
            colours > 20,
            "{c}.png has {colours} colours: axes, text, series"
        );
    }

    // Stake share: one series per peer (3 peers: no "others"), in legend
    // order (stake at the last epoch, largest first), epochs ascending.
    let t = read_csv(&dir.path().join("stake_share.csv"));
    let want = sql("SELECT epoch, uid, stake_share FROM state");
    assert_eq!(t.rows.len(), want.rows.len());
    let mut drawn = BTreeMap::new();
    for i in 0..t.rows.len() {
        drawn.insert(
            (t.rows[i]["series"].clone(), t.i(i, "epoch")),
            t.f(i, "stake_share"),
        );
    }
    for i in 0..want.rows.len() {
        let key = (format!("uid {}", want.rows[i]["uid"]), want.i(i, "epoch"));
        assert_eq!(drawn.get(&key), Some(&want.f(i, "stake_share")), "{key:?}");
    }
    let order = sql("SELECT uid FROM state WHERE epoch = (SELECT MAX(epoch) FROM epochs) ORDER BY stake DESC, uid");
    let named: Vec<String> = (0..order.rows.len())
        .map(|i| format!("uid {}", order.rows[i]["uid"]))
        .collect();
    let mut seen: Vec<String> = Vec::new();
    for r in &t.rows {
        if !seen.contains(&r["series"]) {
            seen.push(r["series"].clone());
        }
    }
    assert_eq!(seen, named, "legend order");

    // Rank against consensus at the last epoch.
    let t = read_csv(&dir.path().join("rank_consensus.csv"));
    let want = sql("SELECT epoch, uid, rank, consensus FROM state WHERE epoch = (SELECT MAX(epoch) FROM epochs) ORDER BY uid");
    assert_eq!(t.rows.len(), want.rows.len());
    for i in 0..want.rows.len() {
        for c in ["epoch", "uid"] {
            assert_eq!(t.i(i, c), want.i(i, c));
        }
        for c in ["rank", "consensus"] {
            assert_eq!(t.f(i, c), want.f(i, c), "{c}");
        }
    }

    // The peg.
    let t = read_csv(&dir.path().join("peg.csv"));
    let want = sql("SELECT epoch, loss, k, k_next FROM epochs ORDER BY epoch");
    assert_eq!(t.rows.len(), want.rows.len());
    assert!(t.rows.len() >= 3);
    for i in 0..want.rows.len() {
        for c in ["epoch", "k", "k_next"] {
            assert_eq!(t.i(i, c), want.i(i, c));
        }
        assert_eq!(t.f(i, "loss"), want.f(i, "loss"));
    }

    // Fisher rank against the weight the rows in force give each peer.
    let t = read_csv(&dir.path().join("fisher_weight.csv"));
    let want = sql("WITH force AS (\
           SELECT f.epoch, w.dst, w.weight FROM state f \
           JOIN weights w ON w.src = f.uid AND w.epoch = f.weights_epoch) \
         SELECT s.epoch, s.uid, s.fisher_rank, COALESCE(SUM(force.weight), 0) AS received \
         FROM state s LEFT JOIN force ON force.epoch = s.epoch AND force.dst = s.uid \
         GROUP BY s.epoch, s.uid, s.fisher_rank ORDER BY s.epoch, s.uid");
    assert_eq!(t.rows.len(), want.rows.len());
    let mut any_weight = false;
    for i in 0..want.rows.len() {
        assert_eq!(t.i(i, "epoch"), want.i(i, "epoch"));
        assert_eq!(t.i(i, "uid"), want.i(i, "uid"));
        assert_eq!(t.f(i, "fisher_rank"), want.f(i, "fisher_rank"));
        assert!((t.f(i, "weight_received") - want.f(i, "received")).abs() < 1e-12);
        any_weight |= t.f(i, "weight_received") > 0.0;
    }
    assert!(any_weight, "the market's peers weight each other");
}

#[test]
fn ranges_and_empty_ledgers() {
    let dir = tempfile::tempdir().unwrap();
    plot(&store(), dir.path(), &["--from", "1", "--to", "1"]).ok();
    let t = read_csv(&dir.path().join("stake_share.csv"));
    assert!(!t.rows.is_empty());
    assert!((0..t.rows.len()).all(|i| t.i(i, "epoch") == 1));
    let t = read_csv(&dir.path().join("peg.csv"));
    assert_eq!(t.rows.len(), 1);
    assert_eq!(t.i(0, "epoch"), 1);
    let t = read_csv(&dir.path().join("rank_consensus.csv"));
    assert!((0..t.rows.len()).all(|i| t.i(i, "epoch") == 1));
    check_png(&dir.path().join("peg.png"), 1200, 700);

    let r = plot(&store(), dir.path(), &["--from", "50", "--to", "60"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no committed epoch in 50..=60"),
        "{}",
        r.stderr
    );
    let r = plot(&store(), dir.path(), &["--from", "2", "--to", "1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("--from 2 is after --to 1"),
        "{}",
        r.stderr
    );

    let net = Net::new(2, &[1, 1], "");
    let r = plot(&net.store, &net.dir.path().join("charts"), &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no committed epoch yet"), "{}", r.stderr);
    assert!(!net.dir.path().join("charts/stake_share.png").exists());
}

#[test]
fn a_hundred_peers_keep_a_short_legend() {
    let stakes: Vec<u64> = (1..=100).map(|i| 1_000 * i).collect();
    let net = Net::new(100, &stakes, "");
    for i in 0..30usize {
        net.set(
            i,
            &format!("{}=1,{}=2", (i * 7 + 1) % 100, (i * 13 + 5) % 100),
        );
    }
    for _ in 0..3 {
        net.fb(&["epoch", "run"]).ok();
    }
    let dir = tempfile::tempdir().unwrap();
    plot(&net.store, dir.path(), &[]).ok();
    for c in CHARTS {
        check_png(&dir.path().join(format!("{c}.png")), 1200, 700);
    }
    let t = read_csv(&dir.path().join("stake_share.csv"));
    let series: BTreeSet<&str> = t.rows.iter().map(|r| r["series"].as_str()).collect();
    assert!(series.len() <= 9, "{series:?}");
    assert!(series.contains("others"));

    // The named peers are the top 8 by stake at the last epoch, and "others"
    // holds the rest of the stake.
    let top = net.sql_csv("SELECT uid FROM state WHERE epoch = 2 ORDER BY stake DESC, uid LIMIT 8");
    let want: BTreeSet<String> = top.iter().map(|r| format!("uid {}", r[0])).collect();
    let named: BTreeSet<String> = series
        .iter()
        .filter(|s| **s != "others")
        .map(|s| s.to_string())
        .collect();
    assert_eq!(named, want);
    let mut per_epoch: BTreeMap<i64, f64> = BTreeMap::new();
    for i in 0..t.rows.len() {
        *per_epoch.entry(t.i(i, "epoch")).or_default() += t.f(i, "stake_share");
    }
    assert_eq!(per_epoch.len(), 3);
    for (e, sum) in per_epoch {
        assert!((sum - 1.0).abs() < 1e-9, "epoch {e}: {sum}");
    }
    for c in ["rank_consensus", "fisher_weight"] {
        let t = read_csv(&dir.path().join(format!("{c}.csv")));
        let s: BTreeSet<&str> = t.rows.iter().map(|r| r["series"].as_str()).collect();
        assert!(s.len() <= 9, "{c}: {s:?}");
    }
    let t = read_csv(&dir.path().join("rank_consensus.csv"));
    assert_eq!(t.rows.len(), 100, "every peer is a point");
}
