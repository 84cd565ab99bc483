//! Runs a scenario through the real epoch: a signed network and signed weight
//! files written into a store as peers would write them, `epoch run` to close
//! each epoch, and the ledger read back in SQL for the copiers and the report.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use faceblock_schemas::signing;
use faceblock_schemas::{layout, Genesis, GenesisPeer, Keypair, NetworkFile, Store};
use tracing::Instrument;

use super::agents::Agents;
use super::scenario::{Group, Scenario};
use crate::epoch::{self, Outcome, RunOptions};
use crate::ledger::Ledger;
use crate::{Error, Result};

/// Totals of one group of peers in one epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GroupStats {
    /// Stake share after the epoch.
    pub share: f64,
    /// Base units minted to the group.
    pub emission: u64,
    /// Stake before the epoch.
    pub stake_before: u64,
    /// Σ dividends (a share of the bond half of emission).
    pub dividends: f64,
    /// Σ incentive.
    pub incentive: f64,
}

impl GroupStats {
    /// Emission per unit of stake held before the epoch.
    pub fn yield_(&self) -> f64 {
        if self.stake_before == 0 {
            0.0
        } else {
            self.emission as f64 / self.stake_before as f64
        }
    }
}

/// One closed epoch of a simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochStats {
    /// The epoch.
    pub epoch: u64,
    /// k in force.
    pub k: u32,
    /// k after it.
    pub k_next: u32,
    /// L.
    pub loss: f64,
    /// Base units minted.
    pub emission: u64,
    /// Peers with a row in force.
    pub rows_in_force: u64,
    /// Rejections recorded this epoch (submissions and rows withdrawn below k).
    pub rejections: u64,
    /// By group: honest, cabal, noise, copiers.
    pub groups: [GroupStats; 4],
}

impl EpochStats {
    /// The group's totals.
    pub fn group(&self, g: Group) -> &GroupStats {
        &self.groups[g as usize]
    }

    /// The CSV header of [`EpochStats::csv_row`].
    pub const CSV_HEADER: &'static str = "epoch,k,k_next,loss,emission,rows_in_force,rejections,\
cabal_share,honest_share,noise_share,copier_share,\
cabal_emission,honest_emission,noise_emission,copier_emission,\
honest_yield,cabal_yield,copier_yield,honest_dividends,copier_dividends";

    /// One CSV line (no newline).
    pub fn csv_row(&self) -> String {
        let g = |x: Group| self.group(x);
        use Group::*;
        format!(
            "{},{},{},{:.9},{},{},{},{:.6},{:.6},{:.6},{:.6},{},{},{},{},{:.9},{:.9},{:.9},{:.6},{:.6}",
            self.epoch,
            self.k,
            self.k_next,
            self.loss,
            self.emission,
            self.rows_in_force,
            self.rejections,
            g(Cabal).share,
            g(Honest).share,
            g(Noise).share,
            g(Copier).share,
            g(Cabal).emission,
            g(Honest).emission,
            g(Noise).emission,
            g(Copier).emission,
            g(Honest).yield_(),
            g(Cabal).yield_(),
            g(Copier).yield_(),
            g(Honest).dividends,
            g(Copier).dividends,
        )
    }
}

/// Epochs between Delta checkpoints of every ledger table. Without them each
/// table load replays every commit, so a 200-epoch run would slow down
/// epoch after epoch; a checkpoint changes no value any reader sees.
pub const CHECKPOINT_EVERY: u64 = 10;

async fn checkpoint(ledger: &Ledger) -> Result<()> {
    for name in crate::ledger::tables::TABLES {
        let t = ledger.table(name).await?;
        deltalake::checkpoints::create_checkpoint(&t, None)
            .await
            .map_err(|source| Error::Ledger {
                table: name.to_string(),
                source,
            })?;
    }
    Ok(())
}

fn key_seed(seed: u64, uid: u32) -> [u8; 32] {
    let mut s = [0x5au8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..12].copy_from_slice(&uid.to_le_bytes());
    s
}

/// A fresh in-memory store of its own (freed when dropped), for one run.
pub fn private_memory_store(name: &str) -> Result<Store> {
    let url = url::Url::parse(&format!(
        "memory://simulate/{name}-{}/",
        uuid::Uuid::new_v4()
    ))
    .map_err(|e| Error::Scenario(format!("bad store name {name}: {e}")))?;
    Ok(Store::from_parts(
        url,
        Arc::new(object_store::memory::InMemory::new()),
    )?)
}

/// Runs `scenario` on `store` (empty), calling `each` after every epoch.
pub async fn run(
    scenario: &Scenario,
    store: &Store,
    partitions: usize,
    mut each: impl FnMut(&EpochStats),
) -> Result<Vec<EpochStats>> {
    let span = tracing::info_span!("simulate", scenario = %scenario.name);
    async {
        let m = &scenario.market;
        let n = m.peers();
        let keys: Vec<Keypair> = (0..n)
            .map(|u| Keypair::from_seed(key_seed(scenario.seed, u)))
            .collect();
        let genesis = Genesis {
            peers: (0..n)
                .map(|u| GenesisPeer {
                    uid: u,
                    public_key: keys[u as usize].public().to_hex(),
                    stake: m.stake(u),
                })
                .collect(),
        };
        if store.get_opt(layout::PARAMS).await?.is_some() {
            return Err(Error::Scenario(format!(
                "{} already holds a network: simulate needs an empty store",
                store.url()
            )));
        }
        let net = crate::init::init(store, scenario.params.clone(), genesis).await?;
        let agents = Agents::new(m, scenario.seed);
        let ledger = Ledger::new(store.clone());
        let mut k = scenario.params.k_initial;
        let mut consensus: Vec<f64> = vec![];
        let mut out = Vec::with_capacity(scenario.epochs as usize);
        for e in 0..scenario.epochs {
            write_rows(store, &net, &keys, &agents, e, k, &consensus).await?;
            let row = match epoch::run_on(
                &ledger,
                &RunOptions {
                    epoch: Some(e),
                    partitions,
                    cache: None,
                },
            )
            .await?
            {
                Outcome::Committed { row, .. } => row,
                _ => {
                    return Err(Error::Epoch(format!(
                        "epoch {e} was committed by someone else during the simulation"
                    )))
                }
            };
            let (stats, inc) = read_epoch(&ledger, e, partitions, scenario).await?;
            let stats = EpochStats {
                epoch: e,
                k: row.k,
                k_next: row.k_next,
                loss: row.loss,
                emission: row.emission,
                rows_in_force: row.rows_in_force,
                ..stats
            };
            k = row.k_next;
            consensus = inc;
            if (e + 1) % CHECKPOINT_EVERY == 0 {
                checkpoint(&ledger).await?;
            }
            each(&stats);
            out.push(stats);
        }
        Ok(out)
    }
    .instrument(span)
    .await
}

async fn write_rows(
    store: &Store,
    net: &NetworkFile,
    keys: &[Keypair],
    agents: &Agents,
    epoch: u64,
    k: u32,
    consensus: &[f64],
) -> Result<()> {
    let id = net.id();
    for (u, key) in keys.iter().enumerate() {
        let u = u as u32;
        let (dst, w) = agents.row(u, epoch, k, consensus);
        if dst.is_empty() {
            continue;
        }
        let (path, bytes) = signing::signed_weights(key, id, epoch, u, &dst, &w)?;
        store.put(&path, bytes).await?;
    }
    Ok(())
}

/// Per-group totals of epoch `e` and its incentive by uid, from the ledger.
async fn read_epoch(
    ledger: &Ledger,
    e: u64,
    partitions: usize,
    scenario: &Scenario,
) -> Result<(EpochStats, Vec<f64>)> {
    // Only the two tables read, not a whole ledger session.
    let ctx = ledger
        .session_of(&["state", "rejections"], Some(e), partitions)
        .await?;
    let m = &scenario.market;
    let mut groups = [GroupStats::default(); 4];
    let mut incentive = vec![0.0; m.peers() as usize];
    let sql = format!(
        "SELECT uid, stake_before, emission, stake_share, dividends, incentive FROM state WHERE epoch = {e}"
    );
    for b in Ledger::query(&ctx, &sql).await? {
        let int = |c: usize| b.column(c).as_primitive::<Int64Type>().clone();
        let flt = |c: usize| b.column(c).as_primitive::<Float64Type>().clone();
        let (uid, before, em) = (int(0), int(1), int(2));
        let (share, div, inc) = (flt(3), flt(4), flt(5));
        for i in 0..b.num_rows() {
            let u = uid.value(i) as u32;
            let g = &mut groups[m.group(u) as usize];
            g.share += share.value(i);
            g.emission += em.value(i) as u64;
            g.stake_before += before.value(i) as u64;
            g.dividends += if div.is_null(i) { 0.0 } else { div.value(i) };
            let v = if inc.is_null(i) { 0.0 } else { inc.value(i) };
            g.incentive += v;
            if let Some(x) = incentive.get_mut(u as usize) {
                *x = v;
            }
        }
    }
    let rej = Ledger::query(
        &ctx,
        &format!("SELECT count(*) FROM rejections WHERE epoch = {e}"),
    )
    .await?;
    let rejections = rej
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0) as u64)
        .unwrap_or(0);
    Ok((
        EpochStats {
            epoch: e,
            k: 0,
            k_next: 0,
            loss: 0.0,
            emission: 0,
            rows_in_force: 0,
            rejections,
            groups,
        },
        incentive,
    ))
}

/// Reads back a run's CSV (as [`csv`] writes it), so that a stopped frontier
/// can resume from the scenarios it finished. What the CSV does not carry is
/// derived: a group's stake before the epoch is recovered from its emission
/// and yield (exact enough for the ratios the report prints); the noise
/// group's stake and the cabal's dividends are not recorded and read as 0.
pub fn parse_csv(text: &str, origin: &str) -> Result<Vec<EpochStats>> {
    let bad = |line: usize, m: String| Error::Scenario(format!("{origin}:{line}: {m}"));
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.trim() == EpochStats::CSV_HEADER => {}
        _ => {
            return Err(bad(
                1,
                "not a `faceblock simulate` CSV (its header differs); run the scenario again"
                    .into(),
            ))
        }
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let n = i + 2;
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 20 {
            return Err(bad(n, format!("{} fields, expected 20", f.len())));
        }
        let u = |c: usize| {
            f[c].parse::<u64>()
                .map_err(|e| bad(n, format!("field {} ({}): {e}", c + 1, f[c])))
        };
        let x = |c: usize| {
            f[c].parse::<f64>()
                .map_err(|e| bad(n, format!("field {} ({}): {e}", c + 1, f[c])))
        };
        let group = |share: f64, emission: u64, yield_: f64, dividends: f64| GroupStats {
            share,
            emission,
            stake_before: if yield_ > 0.0 {
                (emission as f64 / yield_).round() as u64
            } else {
                1
            },
            dividends,
            incentive: 0.0,
        };
        let k =
            |c: usize| u32::try_from(u(c)?).map_err(|_| bad(n, format!("k {} out of range", f[c])));
        out.push(EpochStats {
            epoch: u(0)?,
            k: k(1)?,
            k_next: k(2)?,
            loss: x(3)?,
            emission: u(4)?,
            rows_in_force: u(5)?,
            rejections: u(6)?,
            groups: [
                group(x(8)?, u(12)?, x(15)?, x(18)?),
                group(x(7)?, u(11)?, x(16)?, 0.0),
                group(x(9)?, u(13)?, 0.0, 0.0),
                group(x(10)?, u(14)?, x(17)?, x(19)?),
            ],
        });
    }
    Ok(out)
}

/// The CSV of a run: a header, then one line per epoch.
pub fn csv(stats: &[EpochStats]) -> String {
    let mut s = String::from(EpochStats::CSV_HEADER);
    s.push('\n');
    for e in stats {
        s.push_str(&e.csv_row());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reads_back_what_the_report_uses() {
        let g = |share: f64, emission: u64, stake_before: u64, dividends: f64| GroupStats {
            share,
            emission,
            stake_before,
            dividends,
            incentive: 0.0,
        };
        let stats = vec![EpochStats {
            epoch: 7,
            k: 3,
            k_next: 6,
            loss: -0.25,
            emission: 1_000_000_000,
            rows_in_force: 30,
            rejections: 2,
            groups: [
                g(0.6125, 600_000_000, 20_000_000_000, 0.5),
                g(0.3875, 400_000_000, 10_000_000_000, 0.0),
                g(0.0, 0, 0, 0.0),
                g(0.0, 0, 0, 0.0),
            ],
        }];
        let back = parse_csv(&csv(&stats), "t.csv").unwrap();
        assert_eq!(back.len(), 1);
        let b = &back[0];
        assert_eq!(
            (b.epoch, b.k, b.k_next, b.emission),
            (7, 3, 6, 1_000_000_000)
        );
        assert_eq!(b.group(Group::Cabal).share, 0.3875);
        assert_eq!(b.group(Group::Honest).emission, 600_000_000);
        assert!((b.group(Group::Honest).yield_() - 0.03).abs() < 1e-12);
        assert!((b.group(Group::Cabal).yield_() - 0.04).abs() < 1e-12);
        assert_eq!(b.group(Group::Copier).yield_(), 0.0);
        // The report's CSV again, byte for byte.
        assert_eq!(csv(&back), csv(&stats));
        let err = parse_csv("epoch,k\n1,2\n", "x.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.csv:1") && err.contains("header"), "{err}");
        let cut = csv(&stats).replace(",0.500000,0.000000", "");
        let err = parse_csv(&cut, "y.csv").unwrap_err().to_string();
        assert!(
            err.contains("y.csv:2") && err.contains("expected 20"),
            "{err}"
        );
    }
}
