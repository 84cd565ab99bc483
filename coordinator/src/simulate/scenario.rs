//! A scenario file (`faceblock simulate SCENARIO.toml`): the market's peers
//! and behaviours, and the network's params (SPEC 4), checked once.

use std::path::Path;

use faceblock_schemas::Params;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One synthetic market run through the real epoch code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short name for reports (default: the file's stem).
    #[serde(default)]
    pub name: String,
    /// Seed of every random draw: the same seed gives the same ledger.
    #[serde(default = "one")]
    pub seed: u64,
    /// Epochs to close.
    pub epochs: u64,
    /// Who is in the market and how they weight.
    #[serde(default)]
    pub market: Market,
    /// The network's params (SPEC 4; every field optional, as in `init --params`).
    #[serde(default)]
    pub params: Params,
}

fn one() -> u64 {
    1
}

/// The peers of a market, by group (uids in this order: honest, cabal,
/// noise, copiers), and their stake shares at genesis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Market {
    /// Honest peers: they weight honest peers only, by noisy quality.
    pub honest: u32,
    /// Weights each honest row sets (at least k; 0 = every other honest peer).
    pub honest_k: u32,
    /// Cabal peers: a disjoint cabal that weights only its own members.
    pub cabal: u32,
    /// The cabal's share of genesis stake, in [0, 1).
    pub cabal_stake: f64,
    /// Whether the cabal pads its rows with tiny weights on honest peers to meet k.
    pub cabal_pads: bool,
    /// Noise peers: rows of k random weights over every peer.
    pub noise: u32,
    /// Their share of genesis stake.
    pub noise_stake: f64,
    /// Weight copiers: each sets its row to the previous epoch's incentive
    /// (the consensus), read from the ledger in SQL.
    pub copiers: u32,
    /// Their share of genesis stake.
    pub copier_stake: f64,
    /// Relative noise on each honest weight, drawn anew each epoch.
    pub quality_noise: f64,
    /// How much honest peers' views of each other differ (0: all honest
    /// peers rank the same peers first; 1: views spread over everyone).
    pub taste: f64,
    /// Genesis stake in base units, over all peers.
    pub total_stake: u64,
}

impl Default for Market {
    fn default() -> Self {
        Self {
            honest: 20,
            honest_k: 2,
            cabal: 10,
            cabal_stake: 0.3,
            cabal_pads: false,
            noise: 0,
            noise_stake: 0.0,
            copiers: 0,
            copier_stake: 0.0,
            quality_noise: 0.2,
            taste: 10.0,
            total_stake: 30_000_000_000,
        }
    }
}

/// Which group a peer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Weights honest peers by quality.
    Honest,
    /// Weights only the cabal.
    Cabal,
    /// Random rows.
    Noise,
    /// Copies the consensus.
    Copier,
}

impl Market {
    /// Number of peers.
    pub fn peers(&self) -> u32 {
        self.honest + self.cabal + self.noise + self.copiers
    }

    /// The group of uid `u`.
    pub fn group(&self, u: u32) -> Group {
        if u < self.honest {
            Group::Honest
        } else if u < self.honest + self.cabal {
            Group::Cabal
        } else if u < self.honest + self.cabal + self.noise {
            Group::Noise
        } else {
            Group::Copier
        }
    }

    /// Weights an honest row sets at the start (0 in the file: fully connected).
    pub fn honest_row(&self) -> u32 {
        if self.honest_k == 0 {
            self.honest.saturating_sub(1)
        } else {
            self.honest_k
        }
    }

    /// Genesis stake of uid `u`: each group's share split evenly.
    pub fn stake(&self, u: u32) -> u64 {
        let honest_share = 1.0 - self.cabal_stake - self.noise_stake - self.copier_stake;
        let (share, count) = match self.group(u) {
            Group::Honest => (honest_share, self.honest),
            Group::Cabal => (self.cabal_stake, self.cabal),
            Group::Noise => (self.noise_stake, self.noise),
            Group::Copier => (self.copier_stake, self.copiers),
        };
        (self.total_stake as f64 * share / count.max(1) as f64) as u64
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.honest < 2 {
            return Err("market.honest must be at least 2".into());
        }
        if self.honest_k >= self.honest {
            return Err(format!(
                "market.honest_k = {} but an honest peer can weight at most {} other honest peers (0 = all of them)",
                self.honest_k,
                self.honest - 1
            ));
        }
        for (name, v, count) in [
            ("cabal_stake", self.cabal_stake, self.cabal),
            ("noise_stake", self.noise_stake, self.noise),
            ("copier_stake", self.copier_stake, self.copiers),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("market.{name} must lie in [0, 1), not {v}"));
            }
            if (v > 0.0) != (count > 0) {
                return Err(format!(
                    "market.{name} = {v} with {count} such peers: give both or neither"
                ));
            }
        }
        if self.cabal == 1 {
            return Err(
                "market.cabal must be 0 or at least 2 (a cabal weights its other members)".into(),
            );
        }
        let rest = self.cabal_stake + self.noise_stake + self.copier_stake;
        if rest >= 1.0 {
            return Err("the cabal, noise and copier stakes leave honest peers nothing".into());
        }
        if !(self.quality_noise >= 0.0 && self.quality_noise < 1.0) {
            return Err("market.quality_noise must lie in [0, 1)".into());
        }
        if !(self.taste.is_finite() && self.taste >= 0.0) {
            return Err("market.taste must be finite and >= 0".into());
        }
        if self.total_stake < self.peers() as u64 || self.total_stake > (1u64 << 60) {
            return Err("market.total_stake must give every peer stake and stay below 2^60".into());
        }
        Ok(())
    }
}

impl Scenario {
    /// Parses and checks a scenario's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let bad = |m: String| Error::Scenario(format!("{origin}: {m}"));
        let mut s: Scenario = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        s.params.validate().map_err(|e| bad(e.to_string()))?;
        s.market.validate().map_err(bad)?;
        if s.epochs == 0 {
            return Err(bad("epochs must be at least 1".into()));
        }
        if s.name.is_empty() {
            s.name = origin.to_string();
        }
        Ok(s)
    }

    /// Reads a scenario file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Scenario(format!("cannot read {}: {e}", path.display())))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::from_toml(&text, &stem).map_err(|e| match e {
            Error::Scenario(m) => Error::Scenario(format!("in {}: {m}", path.display())),
            e => e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let s = Scenario::from_toml("epochs = 3", "t").unwrap();
        assert_eq!(s.market, Market::default());
        assert_eq!(s.name, "t");
        assert_eq!(s.market.stake(0), 1_050_000_000);
        assert_eq!(s.market.stake(20), 900_000_000);
        let e = Scenario::from_toml("epochs = 3\n[market]\ncabal_stak = 0.2", "t").unwrap_err();
        assert!(e.to_string().contains("cabal_stak"), "{e}");
        let e = Scenario::from_toml("epochs = 3\n[market]\nhonest_k = 20", "t").unwrap_err();
        assert!(e.to_string().contains("honest_k"), "{e}");
        assert!(Scenario::from_toml("epochs = 0", "t").is_err());
        assert!(Scenario::from_toml("epochs = 3\n[params]\nconsensus = \"x\"", "t").is_err());
    }
}
