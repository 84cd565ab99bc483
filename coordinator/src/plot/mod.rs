//! `faceblock plot`: PNG charts of the committed ledger, a file per chart, each
//! with the plotted series beside it as CSV (same base name), so a reader can
//! check exactly what was drawn.
//!
//! - [`stake`]: stake share per peer over epochs (`stake_share.png`);
//! - [`rank`]: rank against consensus at the last epoch (`rank_consensus.png`);
//! - [`peg`]: loss and k over epochs (`peg.png`);
//! - [`fisher`]: Fisher rank against weight received (`fisher_weight.png`).
//!
//! The data comes through the same SQL path as `faceblock sql` (committed
//! epochs only). A market of any size stays readable: the [`TOP`] peers by
//! stake at the last plotted epoch are named, with one colour each in every
//! chart, and the rest are grouped as "others".

pub mod canvas;
pub mod fisher;
pub mod peg;
pub mod rank;
pub mod series;
pub mod stake;

pub use series::{grouped, series_name, Csv, Data, EpochRow, PeerEpoch, TOP};

use std::collections::HashMap;
use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use faceblock_schemas::Store;

use crate::sql;

/// Plot errors: each says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(Box<crate::Error>),
    /// Nothing is committed yet.
    #[error(
        "the ledger has no committed epoch yet: close one with `faceblock epoch run`, then plot"
    )]
    NoEpochs,
    /// `--from`/`--to` select no committed epoch.
    #[error("no committed epoch in {from}..={to}: the ledger holds epochs {first}..={last}; change --from/--to")]
    EmptyRange {
        /// Asked first epoch.
        from: u64,
        /// Asked last epoch.
        to: u64,
        /// First committed epoch.
        first: u64,
        /// Last committed epoch.
        last: u64,
    },
    /// `--from` after `--to`.
    #[error("--from {from} is after --to {to}: give a range with from <= to")]
    Reversed {
        /// Asked first epoch.
        from: u64,
        /// Asked last epoch.
        to: u64,
    },
    /// An image size charts can't be drawn at.
    #[error("image size {width}x{height} is out of range: use 480..=8000 by 320..=8000 pixels")]
    Size {
        /// Width asked.
        width: u32,
        /// Height asked.
        height: u32,
    },
    /// The embedded font did not load (a broken build).
    #[error("the embedded chart font is unreadable: rebuild faceblock")]
    Font,
    /// Drawing a chart failed.
    #[error("cannot draw {chart}: {detail}")]
    Draw {
        /// The chart's file name.
        chart: String,
        /// What failed.
        detail: String,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: {source}; check that the --out folder is writable")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::Error> for PlotError {
    fn from(e: crate::Error) -> Self {
        PlotError::Ledger(Box::new(e))
    }
}

/// What to plot, where.
#[derive(Debug, Clone)]
pub struct Options {
    /// Folder to write into (created).
    pub out: PathBuf,
    /// First epoch (default: the first committed).
    pub from: Option<u64>,
    /// Last epoch (default: the last committed).
    pub to: Option<u64>,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> crate::Result<&'a arrow::array::ArrayRef> {
    b.column_by_name(name)
        .ok_or_else(|| crate::Error::Corrupt(format!("a chart query lost its column '{name}'")))
}

fn col_i64(b: &RecordBatch, name: &str) -> crate::Result<Vec<i64>> {
    let c = arrow::compute::cast(column(b, name)?, &DataType::Int64)?;
    let a = c.as_primitive::<Int64Type>();
    Ok((0..a.len())
        .map(|i| if a.is_null(i) { 0 } else { a.value(i) })
        .collect())
}

fn col_f64(b: &RecordBatch, name: &str) -> crate::Result<Vec<f64>> {
    let c = arrow::compute::cast(column(b, name)?, &DataType::Float64)?;
    let a = c.as_primitive::<Float64Type>();
    Ok((0..a.len())
        .map(|i| if a.is_null(i) { 0.0 } else { a.value(i) })
        .collect())
}

/// Reads what the charts need for `from..=to` through `faceblock sql`'s path.
pub async fn load(
    store: &Store,
    from: Option<u64>,
    to: Option<u64>,
    partitions: usize,
) -> Result<Data, PlotError> {
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(PlotError::Reversed { from, to });
        }
    }
    let q = |s: String| async move { sql::run(store, &s, partitions).await };
    let span =
        q("SELECT MIN(epoch) AS a, MAX(epoch) AS b, COUNT(*) AS n FROM epochs".into()).await?;
    let Some(b) = span.iter().find(|b| b.num_rows() > 0) else {
        return Err(PlotError::NoEpochs);
    };
    if col_i64(b, "n")?[0] == 0 {
        return Err(PlotError::NoEpochs);
    }
    let (first_c, last_c) = (col_i64(b, "a")?[0] as u64, col_i64(b, "b")?[0] as u64);
    let (lo, hi) = (from.unwrap_or(first_c), to.unwrap_or(last_c));
    let range = format!("epoch BETWEEN {lo} AND {}", hi.min(i64::MAX as u64));

    let mut epochs = Vec::new();
    for b in q(format!(
        "SELECT epoch, loss, k, k_next FROM epochs WHERE {range} ORDER BY epoch"
    ))
    .await?
    {
        let (e, l, k, kn) = (
            col_i64(&b, "epoch")?,
            col_f64(&b, "loss")?,
            col_i64(&b, "k")?,
            col_i64(&b, "k_next")?,
        );
        for i in 0..e.len() {
            epochs.push(EpochRow {
                epoch: e[i] as u64,
                loss: l[i],
                k: k[i],
                k_next: kn[i],
            });
        }
    }
    let (Some(first), Some(last)) = (epochs.first(), epochs.last()) else {
        return Err(PlotError::EmptyRange {
            from: lo,
            to: hi,
            first: first_c,
            last: last_c,
        });
    };
    let (first, last) = (first.epoch, last.epoch);

    // Weight received at epoch e, over the rows in force at e.
    let mut received: HashMap<(u64, u64), f64> = HashMap::new();
    for b in q(format!(
        "SELECT epoch, dst, SUM(weight) AS received \
         FROM weights_in_force WHERE {range} GROUP BY epoch, dst"
    ))
    .await?
    {
        let (e, d, r) = (
            col_i64(&b, "epoch")?,
            col_i64(&b, "dst")?,
            col_f64(&b, "received")?,
        );
        for i in 0..e.len() {
            received.insert((e[i] as u64, d[i] as u64), r[i]);
        }
    }

    let mut peers = Vec::new();
    for b in q(format!(
        "SELECT epoch, uid, stake, stake_share, rank, consensus, fisher_rank \
         FROM state WHERE {range} ORDER BY epoch, uid"
    ))
    .await?
    {
        let (e, u, st, sh, r, c, f) = (
            col_i64(&b, "epoch")?,
            col_i64(&b, "uid")?,
            col_i64(&b, "stake")?,
            col_f64(&b, "stake_share")?,
            col_f64(&b, "rank")?,
            col_f64(&b, "consensus")?,
            col_f64(&b, "fisher_rank")?,
        );
        for i in 0..e.len() {
            let key = (e[i] as u64, u[i] as u64);
            peers.push(PeerEpoch {
                epoch: key.0,
                uid: key.1,
                stake: st[i],
                stake_share: sh[i],
                rank: r[i],
                consensus: c[i],
                fisher_rank: f[i],
                weight_received: received.get(&key).copied().unwrap_or(0.0),
            });
        }
    }
    let mut at_last: Vec<&PeerEpoch> = peers.iter().filter(|p| p.epoch == last).collect();
    at_last.sort_by(|a, b| b.stake.cmp(&a.stake).then(a.uid.cmp(&b.uid)));
    let named = at_last.iter().take(TOP).map(|p| p.uid).collect();
    Ok(Data {
        first,
        last,
        epochs,
        peers,
        named,
    })
}

/// Draws every chart into `opts.out`; returns the files written (PNG, CSV).
pub async fn plot(
    store: &Store,
    opts: &Options,
    partitions: usize,
) -> Result<Vec<PathBuf>, PlotError> {
    if !(480..=8000).contains(&opts.width) || !(320..=8000).contains(&opts.height) {
        return Err(PlotError::Size {
            width: opts.width,
            height: opts.height,
        });
    }
    canvas::fonts()?;
    let data = load(store, opts.from, opts.to, partitions).await?;
    std::fs::create_dir_all(&opts.out).map_err(|e| PlotError::Write {
        path: opts.out.clone(),
        source: e,
    })?;
    let mut written = Vec::new();
    type Chart = (
        &'static str,
        fn(&Data) -> Csv,
        fn(&Data, &mut canvas::Canvas) -> Result<(), PlotError>,
    );
    let charts: [Chart; 4] = [
        ("stake_share", stake::csv, stake::draw),
        ("rank_consensus", rank::csv, rank::draw),
        ("peg", peg::csv, peg::draw),
        ("fisher_weight", fisher::csv, fisher::draw),
    ];
    for (name, csv, draw) in charts {
        let mut c = canvas::Canvas::new(opts.width, opts.height);
        draw(&data, &mut c)?;
        let png = opts.out.join(format!("{name}.png"));
        c.save(&png)?;
        written.push(png);
        let path = opts.out.join(format!("{name}.csv"));
        csv(&data).write(&path)?;
        written.push(path);
        tracing::info!(chart = name, "drew");
    }
    Ok(written)
}
