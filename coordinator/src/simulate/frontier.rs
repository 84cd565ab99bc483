//! The frontier (issue 11): many scenarios, one per cell of variants × honest
//! row size × cabal stake × seed, run in parallel (each on its own in-memory
//! store and a one-thread runtime), then reduced to tables of the cabal's
//! share after chosen epochs and the largest cabal stake that still loses.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use faceblock_schemas::Params;
use serde::Deserialize;

use super::run::{self, EpochStats};
use super::scenario::{Group, Market, Scenario};
use crate::{Error, Result};

/// A frontier file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Epochs per scenario.
    pub epochs: u64,
    /// Epoch counts after which the cabal's share is reported.
    pub checkpoints: Vec<u64>,
    /// Seeds; a cell reports its worst seed (the largest cabal share).
    #[serde(default = "seeds")]
    pub seeds: Vec<u64>,
    /// The market every table starts from (fields of a scenario's `[market]`).
    #[serde(default)]
    pub market: toml::Table,
    /// Mechanism variants by name.
    pub variant: BTreeMap<String, Variant>,
    /// The tables to produce.
    pub table: Vec<Table>,
}

fn seeds() -> Vec<u64> {
    vec![1]
}

/// One mechanism: a label and the params it sets (SPEC 4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// How the table names it.
    pub label: String,
    /// Params fields (the rest: SPEC defaults).
    #[serde(default)]
    pub params: toml::Table,
}

/// What a table reports per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// The cabal's share at each checkpoint, and the frontier.
    #[default]
    Cabal,
    /// Weight copiers' emission per unit stake over honest peers', over the run.
    Copiers,
}

/// One table: variants × honest row sizes × cabal stakes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Its heading.
    pub title: String,
    /// Variant names, in row order.
    pub variants: Vec<String>,
    /// Cabal stake shares, in column order.
    pub cabal_stakes: Vec<f64>,
    /// Honest row sizes (0: fully connected).
    pub honest_k: Vec<u32>,
    /// Market fields that differ from the file's `[market]`.
    #[serde(default)]
    pub market: toml::Table,
    /// What each cell shows.
    #[serde(default)]
    pub report: Report,
}

/// One scenario of the frontier and where it goes in the tables.
#[derive(Debug, Clone)]
pub struct Job {
    /// Table index.
    pub table: usize,
    /// Variant name.
    pub variant: String,
    /// Honest row size as written (0: full).
    pub honest_k: u32,
    /// Cabal stake.
    pub cabal_stake: f64,
    /// The scenario.
    pub scenario: Scenario,
}

impl Spec {
    /// Parses and checks a frontier file's text.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let bad = |m: String| Error::Scenario(format!("{origin}: {m}"));
        let s: Spec = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if s.epochs == 0 || s.seeds.is_empty() || s.table.is_empty() {
            return Err(bad(
                "need epochs >= 1, at least one seed and one [[table]]".into()
            ));
        }
        if let Some(c) = s.checkpoints.iter().find(|c| **c == 0 || **c > s.epochs) {
            return Err(bad(format!(
                "checkpoint {c} is not within 1..={}",
                s.epochs
            )));
        }
        s.jobs().map_err(|e| bad(e.to_string()))?;
        Ok(s)
    }

    /// Reads a frontier file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Scenario(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Every scenario, in table order.
    pub fn jobs(&self) -> Result<Vec<Job>> {
        let mut jobs = vec![];
        for (t, table) in self.table.iter().enumerate() {
            for v in &table.variants {
                let variant = self.variant.get(v).ok_or_else(|| {
                    Error::Scenario(format!(
                        "table '{}' names unknown variant '{v}'",
                        table.title
                    ))
                })?;
                let params: Params = toml::Value::Table(variant.params.clone())
                    .try_into()
                    .map_err(|e| Error::Scenario(format!("variant '{v}': {e}")))?;
                for &k in &table.honest_k {
                    for &s in &table.cabal_stakes {
                        for &seed in &self.seeds {
                            let mut m = self.market.clone();
                            m.extend(table.market.clone());
                            m.insert("honest_k".into(), toml::Value::Integer(k as i64));
                            m.insert("cabal_stake".into(), toml::Value::Float(s));
                            let market: Market = toml::Value::Table(m).try_into().map_err(|e| {
                                Error::Scenario(format!("table '{}' market: {e}", table.title))
                            })?;
                            let name = format!(
                                "t{t}-{v}-k{k}-s{:02}-seed{seed}",
                                (s * 100.0).round() as u32
                            );
                            let sc = Scenario {
                                name: name.clone(),
                                seed,
                                epochs: self.epochs,
                                market,
                                params: params.clone(),
                            };
                            // The same checks as a scenario file.
                            let text = toml::to_string(&sc)
                                .map_err(|e| Error::Scenario(format!("{name}: {e}")))?;
                            Scenario::from_toml(&text, &name)?;
                            jobs.push(Job {
                                table: t,
                                variant: v.clone(),
                                honest_k: k,
                                cabal_stake: s,
                                scenario: sc,
                            });
                        }
                    }
                }
            }
        }
        Ok(jobs)
    }
}

/// Runs every job on `threads` threads; `done` is called with each job's
/// results as it finishes (from the worker thread), so a long frontier can
/// keep what it ran if it is stopped. Results come back in job order.
pub fn run_all(
    jobs: &[Job],
    threads: usize,
    done: impl Fn(&Job, &[EpochStats]) + Sync,
) -> Result<Vec<Vec<EpochStats>>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Vec<EpochStats>>>> = Mutex::new(vec![None; jobs.len()]);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1).min(jobs.len().max(1)) {
            scope.spawn(|| {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        *failure.lock().expect("lock") =
                            Some(Error::Epoch(format!("cannot start a runtime: {e}")));
                        return;
                    }
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs.len() || failure.lock().expect("lock").is_some() {
                        return;
                    }
                    let job = &jobs[i];
                    let r = rt.block_on(async {
                        let store = run::private_memory_store(&job.scenario.name)?;
                        run::run(&job.scenario, &store, 1, |_| {}).await
                    });
                    match r {
                        Ok(stats) => {
                            done(job, &stats);
                            results.lock().expect("lock")[i] = Some(stats);
                        }
                        Err(e) => {
                            let msg = format!("scenario {}: {e}", job.scenario.name);
                            *failure.lock().expect("lock") = Some(Error::Scenario(msg));
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .expect("lock")
        .into_iter()
        .map(|r| r.unwrap_or_default())
        .collect())
}

/// The cabal's share after `epochs` epochs (after the last one run, if fewer).
fn share_after(stats: &[EpochStats], epochs: u64) -> f64 {
    let i = (epochs as usize).min(stats.len()).saturating_sub(1);
    stats
        .get(i)
        .map(|s| s.group(Group::Cabal).share)
        .unwrap_or(f64::NAN)
}

/// Whether a cabal that started at stake share `s` ended below it. Shares
/// are stake ratios in f64 (and six decimals when read back from a CSV),
/// so a frozen market, where no stake moved, ends within 10^-6 of `s`: that
/// is not a loss.
pub fn loses_share(end: f64, s: f64) -> bool {
    end < s - 1e-6
}

fn pct(x: f64) -> String {
    format!("{:.0}", x * 100.0)
}

fn k_label(k: u32, market: &Market) -> String {
    if k == 0 {
        format!("full ({})", market.honest.saturating_sub(1))
    } else {
        k.to_string()
    }
}

/// The tables as Markdown.
pub fn report(spec: &Spec, jobs: &[Job], results: &[Vec<EpochStats>]) -> String {
    let mut out = String::new();
    let cps = spec
        .checkpoints
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" → ");
    for (t, table) in spec.table.iter().enumerate() {
        out.push_str(&format!("### {}\n\n", table.title));
        let cells: Vec<(&Job, &Vec<EpochStats>)> = jobs
            .iter()
            .zip(results)
            .filter(|(j, _)| j.table == t)
            .collect();
        let market = cells
            .first()
            .map(|c| c.0.scenario.market.clone())
            .unwrap_or_default();
        let mut head = "| variant | honest k |".to_string();
        let mut rule = "| --- | --- |".to_string();
        for s in &table.cabal_stakes {
            head.push_str(&format!(" s = {} % |", pct(*s)));
            rule.push_str(" --- |");
        }
        match table.report {
            Report::Cabal => {
                head.push_str(" largest s that loses | honest minting at the end |");
                rule.push_str(" --- | --- |");
                out.push_str(&format!(
                    "Cabal share (%) after {cps} epochs{}.\n\n",
                    if spec.seeds.len() > 1 {
                        format!(", the worst of seeds {:?}", spec.seeds)
                    } else {
                        format!(", seed {}", spec.seeds[0])
                    }
                ));
            }
            Report::Copiers => {
                out.push_str(
                    "Weight copiers' emission per unit stake over honest peers', over the whole run \
(< 1: copying earns less than honest work).\n\n",
                );
            }
        }
        out.push_str(&head);
        out.push('\n');
        out.push_str(&rule);
        out.push('\n');
        for v in &table.variants {
            let label = &spec.variant[v].label;
            for &k in &table.honest_k {
                let mut line = format!("| {label} | {} |", k_label(k, &market));
                let mut loses = vec![];
                let mut frozen = vec![];
                for &s in &table.cabal_stakes {
                    let runs: Vec<&Vec<EpochStats>> = cells
                        .iter()
                        .filter(|(j, _)| j.variant == *v && j.honest_k == k && j.cabal_stake == s)
                        .map(|c| c.1)
                        .collect();
                    match table.report {
                        Report::Cabal => {
                            let worst = |c: u64| {
                                runs.iter()
                                    .map(|r| share_after(r, c))
                                    .fold(f64::MIN, f64::max)
                            };
                            let text: Vec<String> =
                                spec.checkpoints.iter().map(|c| pct(worst(*c))).collect();
                            line.push_str(&format!(" {} |", text.join(" → ")));
                            if loses_share(worst(spec.epochs), s) {
                                loses.push(s);
                            }
                            if runs
                                .iter()
                                .any(|r| r.last().is_some_and(|e| e.emission == 0))
                            {
                                frozen.push(s);
                            }
                        }
                        Report::Copiers => {
                            let ratio = runs
                                .iter()
                                .map(|r| {
                                    let (mut c, mut h) = (0.0, 0.0);
                                    for e in r.iter() {
                                        c += e.group(Group::Copier).yield_();
                                        h += e.group(Group::Honest).yield_();
                                    }
                                    if h > 0.0 {
                                        c / h
                                    } else {
                                        f64::NAN
                                    }
                                })
                                .filter(|r| r.is_finite())
                                .fold(f64::NAN, f64::max);
                            if ratio.is_finite() {
                                line.push_str(&format!(" {ratio:.2} |"));
                            } else {
                                line.push_str(" n/a (honest peers earned nothing) |");
                            }
                        }
                    }
                }
                if table.report == Report::Cabal {
                    // The frontier: the largest stake below which every listed stake loses.
                    let mut frontier = None;
                    for &s in &table.cabal_stakes {
                        if loses.contains(&s) {
                            frontier = Some(s);
                        } else {
                            break;
                        }
                    }
                    let f = match frontier {
                        Some(s) => format!("{} %", pct(s)),
                        None => format!("< {} %", pct(table.cabal_stakes[0])),
                    };
                    let fz = if frozen.is_empty() {
                        "yes".to_string()
                    } else {
                        format!(
                            "frozen at s = {}",
                            frozen
                                .iter()
                                .map(|s| pct(*s))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    line.push_str(&format!(" {f} | {fz} |"));
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::loses_share;

    #[test]
    fn a_frozen_market_is_not_a_loss() {
        // 0.1 as three stakes summed and divided: a hair under 0.1.
        let frozen = (1e9 + 1e9 + 1e9) / 3e10 - 1e-12;
        assert!(!loses_share(frozen, 0.10));
        assert!(!loses_share(0.100000, 0.10));
        assert!(loses_share(0.0999, 0.10));
        assert!(loses_share(0.07, 0.49));
        assert!(!loses_share(0.51, 0.49));
    }
}
