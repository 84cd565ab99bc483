//! What the charts draw, in memory: the ledger rows they use, the named
//! peers, the grouping of the rest as "others", and the CSV written beside
//! each chart.

use std::collections::BTreeMap;
use std::path::Path;

use super::{canvas, PlotError};

/// Peers named in the charts; the rest are grouped as "others".
pub const TOP: usize = 8;

/// One row of `state` that a chart uses.
#[derive(Debug, Clone)]
pub struct PeerEpoch {
    /// Epoch.
    pub epoch: u64,
    /// Peer.
    pub uid: u64,
    /// Stake after the epoch.
    pub stake: i64,
    /// Share of all stake.
    pub stake_share: f64,
    /// Rank.
    pub rank: f64,
    /// Consensus.
    pub consensus: f64,
    /// Fisher rank.
    pub fisher_rank: f64,
    /// Sum of the normalised weights of the rows in force that name this peer.
    pub weight_received: f64,
}

/// One row of `epochs` that a chart uses.
#[derive(Debug, Clone)]
pub struct EpochRow {
    /// Epoch.
    pub epoch: u64,
    /// Loss.
    pub loss: f64,
    /// k rows had to meet.
    pub k: i64,
    /// k of the next epoch.
    pub k_next: i64,
}

/// Everything the charts draw, read once.
#[derive(Debug, Clone)]
pub struct Data {
    /// First plotted epoch.
    pub first: u64,
    /// Last plotted epoch.
    pub last: u64,
    /// `epochs` rows in range, by epoch.
    pub epochs: Vec<EpochRow>,
    /// `state` rows in range, by (epoch, uid).
    pub peers: Vec<PeerEpoch>,
    /// Named peers, largest stake at `last` first (ties: lower uid).
    pub named: Vec<u64>,
}

impl Data {
    /// The colour and series name of a peer: its own if named, else "others".
    pub fn series(&self, uid: u64) -> (plotters::style::RGBColor, String) {
        match self.named.iter().position(|u| *u == uid) {
            Some(i) => (canvas::PALETTE[i], series_name(uid)),
            None => (canvas::OTHERS, canvas::OTHERS_NAME.to_string()),
        }
    }

    /// Whether any peer is grouped as "others".
    pub fn has_others(&self) -> bool {
        self.peers.iter().any(|p| !self.named.contains(&p.uid))
    }

    /// Legend entries: the named peers, then "others" when there are any.
    pub fn legend(&self, mark: canvas::Mark) -> Vec<canvas::Entry> {
        let mut v: Vec<canvas::Entry> = self
            .named
            .iter()
            .map(|u| {
                let (color, name) = self.series(*u);
                canvas::Entry { color, name, mark }
            })
            .collect();
        if self.has_others() {
            let n = self
                .peers
                .iter()
                .filter(|p| p.epoch == self.last && !self.named.contains(&p.uid))
                .count();
            v.push(canvas::Entry {
                color: canvas::OTHERS,
                name: format!("{} ({n} peers)", canvas::OTHERS_NAME),
                mark,
            });
        }
        v
    }
}

/// A peer's series name in charts and CSV.
pub fn series_name(uid: u64) -> String {
    format!("uid {uid}")
}

/// A plotted series as CSV: a header and rows of cells.
#[derive(Debug, Clone, Default)]
pub struct Csv {
    /// Column names.
    pub header: Vec<&'static str>,
    /// Rows, already formatted (floats as Rust prints them: shortest exact).
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    /// Writes the CSV file.
    pub fn write(&self, path: &Path) -> Result<(), PlotError> {
        let mut s = self.header.join(",");
        s.push('\n');
        for r in &self.rows {
            s.push_str(&r.join(","));
            s.push('\n');
        }
        std::fs::write(path, s).map_err(|e| PlotError::Write {
            path: path.to_path_buf(),
            source: e,
        })
    }
}

/// Groups per-epoch values into one series per named peer plus "others"
/// (the sum of the rest), in legend order.
pub fn grouped(data: &Data, value: impl Fn(&PeerEpoch) -> f64) -> Vec<(String, Vec<(u64, f64)>)> {
    let mut named: BTreeMap<usize, Vec<(u64, f64)>> = BTreeMap::new();
    let mut others: BTreeMap<u64, f64> = BTreeMap::new();
    for p in &data.peers {
        match data.named.iter().position(|u| *u == p.uid) {
            Some(i) => named.entry(i).or_default().push((p.epoch, value(p))),
            None => *others.entry(p.epoch).or_default() += value(p),
        }
    }
    let mut out: Vec<(String, Vec<(u64, f64)>)> = named
        .into_iter()
        .map(|(i, pts)| (series_name(data.named[i]), pts))
        .collect();
    if !others.is_empty() {
        out.push((
            canvas::OTHERS_NAME.to_string(),
            others.into_iter().collect(),
        ));
    }
    out
}
