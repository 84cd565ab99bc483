//! Network parameters (SPEC 4): set once by `faceblock init`, read by everyone.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Every tunable of the epoch; each field has the SPEC's default so a params
/// file may set only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Consensus temperature ρ.
    pub rho: f64,
    /// Consensus shift κ.
    pub kappa: f64,
    /// Share of emission paid through bonds.
    pub bond_share: f64,
    /// τ: base units minted per epoch.
    pub emission_per_epoch: u64,
    /// Entries each row must set at epoch 0 (the peg's k).
    pub k_initial: u32,
    /// Ceiling for k.
    pub k_max: u32,
    /// Rise of k after an epoch with positive loss.
    pub peg_step: u32,
    /// Most entries one row may set.
    pub max_weights: u32,
    /// Keep a row's entry for its own uid.
    pub allow_self_weight: bool,
    /// Epochs a row stays in force without renewal; 0 = until replaced.
    pub weights_ttl: u64,
    /// Submissions larger than this are rejected unread.
    pub max_submission_bytes: u64,
    /// TEXT modality sequence length.
    pub seq_len: u32,
    /// TEXT modality output width.
    pub out_dim: u32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            rho: 10.0,
            kappa: 0.5,
            bond_share: 0.5,
            emission_per_epoch: 1_000_000_000,
            k_initial: 1,
            k_max: 1024,
            peg_step: 1,
            max_weights: 1024,
            allow_self_weight: false,
            weights_ttl: 0,
            max_submission_bytes: 16 * 1024 * 1024,
            seq_len: 32,
            out_dim: 64,
        }
    }
}

impl Params {
    /// Parses a params TOML file's text; unknown keys are an error so a typo
    /// can't silently leave a default in force.
    pub fn from_toml(text: &str) -> Result<Self> {
        let p: Params = toml::from_str(text).map_err(|e| Error::Params(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    /// Checks ranges that the epoch arithmetic relies on.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Params(m.to_string()));
        if !self.rho.is_finite() || self.rho < 0.0 {
            return bad("rho must be finite and >= 0");
        }
        if !self.kappa.is_finite() {
            return bad("kappa must be finite");
        }
        if !(0.0..=1.0).contains(&self.bond_share) {
            return bad("bond_share must lie in [0, 1]");
        }
        if self.emission_per_epoch > i64::MAX as u64 {
            return bad("emission_per_epoch must be at most 2^63-1 (the ledger stores Int64)");
        }
        if self.k_max == 0 || self.k_initial > self.k_max {
            return bad("need 0 < k_max and k_initial <= k_max");
        }
        if self.max_weights == 0 {
            return bad("max_weights must be at least 1");
        }
        if self.max_submission_bytes == 0 {
            return bad("max_submission_bytes must be at least 1");
        }
        if self.seq_len == 0 || self.out_dim == 0 {
            return bad("seq_len and out_dim must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_spec_defaults() {
        let p = Params::from_toml("").unwrap();
        assert_eq!(p, Params::default());
        assert_eq!(p.emission_per_epoch, 1_000_000_000);
    }

    #[test]
    fn typo_is_an_error() {
        let e = Params::from_toml("rhoo = 3.0").unwrap_err().to_string();
        assert!(e.contains("rhoo"), "{e}");
    }

    #[test]
    fn out_of_range_is_an_error() {
        assert!(Params::from_toml("bond_share = 1.5").is_err());
        assert!(Params::from_toml("k_initial = 5\nk_max = 2").is_err());
    }
}
