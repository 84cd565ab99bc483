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
    /// Rise of k after an epoch with positive loss (0: no peg, whatever `peg_rule`).
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
    /// How a column's support turns into incentive (SPEC 5.2). Left out of
    /// `params.json` when it is the original `sigmoid`, so networks made
    /// before it existed keep their id.
    #[serde(skip_serializing_if = "Consensus::is_legacy")]
    pub consensus: Consensus,
    /// Whether a row in force must still set the current k (SPEC 5.1): when
    /// true, a carried row that the peg has outgrown leaves force (recorded
    /// in `rejections` as `below_k`), so a cabal cannot keep old short rows.
    /// Default true; left out of `params.json` when false, the original
    /// behaviour (so networks made before it keep their id).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rows_meet_k: bool,
    /// How the peg raises k after an epoch with positive loss (default
    /// `double_capped`, chosen by the frontier). Left out of `params.json`
    /// when it is the original `step`.
    #[serde(skip_serializing_if = "PegRule::is_legacy")]
    pub peg_rule: PegRule,
}

/// The consensus variants (SPEC 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consensus {
    /// The paper's c_j = σ(ρ(t_j − κ)), multiplying rank in incentive and loss.
    #[default]
    Sigmoid,
    /// The production descendant's rule: each weight w_ij is clipped at its
    /// column's stake-weighted κ-quantile before ranks, trust and bonds, and
    /// incentive is the clipped rank, normalised.
    MedianClip,
}

impl Consensus {
    /// The value networks had before the field existed.
    pub fn is_legacy(&self) -> bool {
        *self == Consensus::Sigmoid
    }

    /// The name used in params files.
    pub fn name(self) -> &'static str {
        match self {
            Consensus::Sigmoid => "sigmoid",
            Consensus::MedianClip => "median_clip",
        }
    }
}

/// The peg's step rules (SPEC 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PegRule {
    /// k_{e+1} = min(k_e + peg_step, k_max) when L > 0.
    Step,
    /// k_{e+1} = min(k_e + max(k_e, peg_step), k_max) when L > 0: k doubles,
    /// so the peg reaches a dense row in log₂ steps instead of linearly, and
    /// a cabal has fewer sparse epochs to grow in.
    Double,
    /// `step`, but k never rises past R_e − 1, R_e the peers with a positive
    /// rank in epoch e, nor (once two or more peers have trust ≥ κ) past
    /// their number − 1; never lowered by it. The peg does not ask a row for
    /// more entries than there are peers the market ranks (or trusts), so a
    /// cabal cannot drive k past what honest rows can name (and freeze the
    /// market or push honest rows out of force).
    StepCapped,
    /// `double` with the cap of `step_capped`.
    DoubleCapped,
}

impl PegRule {
    /// The value networks had before the field existed.
    pub fn is_legacy(&self) -> bool {
        *self == PegRule::Step
    }

    /// The name used in params files.
    pub fn name(self) -> &'static str {
        match self {
            PegRule::Step => "step",
            PegRule::Double => "double",
            PegRule::StepCapped => "step_capped",
            PegRule::DoubleCapped => "double_capped",
        }
    }
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
            consensus: Consensus::Sigmoid,
            // Chosen by the frontier (MECHANISM.md): with the peg, rows in
            // force must meet k, or a cabal keeps its old short rows.
            rows_meet_k: true,
            peg_rule: PegRule::DoubleCapped,
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

    /// Parses the params stored in `network/params.json`. A field added after
    /// a network was made is absent from its file and takes the value that
    /// reproduces the behaviour the network was made with (the original
    /// mechanism), not today's default.
    pub fn from_stored(value: serde_json::Value) -> std::result::Result<Self, serde_json::Error> {
        let mut value = value;
        if let Some(m) = value.as_object_mut() {
            let legacy = Params::legacy();
            for (key, v) in [
                ("consensus", serde_json::to_value(legacy.consensus)?),
                ("rows_meet_k", serde_json::to_value(legacy.rows_meet_k)?),
                ("peg_rule", serde_json::to_value(legacy.peg_rule)?),
            ] {
                m.entry(key).or_insert(v);
            }
        }
        serde_json::from_value(value)
    }

    /// The mechanism as it was before `consensus`, `rows_meet_k` and
    /// `peg_rule` existed (what a stored file without them means).
    pub fn legacy() -> Self {
        Self {
            consensus: Consensus::Sigmoid,
            rows_meet_k: false,
            peg_rule: PegRule::Step,
            ..Self::default()
        }
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
        if self.consensus == Consensus::MedianClip && !(self.kappa > 0.0 && self.kappa <= 1.0) {
            return bad(
                "median_clip needs kappa in (0, 1]: it is the share of stake a weight needs",
            );
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

    #[test]
    fn mechanism_fields_parse_and_validate() {
        let p = Params::from_toml(
            "consensus = \"median_clip\"\nrows_meet_k = true\npeg_rule = \"double\"",
        )
        .unwrap();
        assert_eq!(p.consensus, Consensus::MedianClip);
        assert!(p.rows_meet_k);
        assert_eq!(p.peg_rule, PegRule::Double);
        let e = Params::from_toml("consensus = \"median\"").unwrap_err();
        assert!(e.to_string().contains("median"), "{e}");
        assert!(Params::from_toml("consensus = \"median_clip\"\nkappa = 1.5").is_err());
    }

    /// A params.json written before the mechanism fields existed loads with
    /// the original mechanism and serialises to the same bytes (same id),
    /// whatever today's defaults are; a non-original value is serialised.
    #[test]
    fn stored_params_without_new_fields_mean_the_original_mechanism() {
        let old = r#"{"rho":10.0,"kappa":0.5,"bond_share":0.5,"emission_per_epoch":1000000000,
            "k_initial":1,"k_max":1024,"peg_step":1,"max_weights":1024,"allow_self_weight":false,
            "weights_ttl":0,"max_submission_bytes":16777216,"seq_len":32,"out_dim":64}"#;
        let v: serde_json::Value = serde_json::from_str(old).unwrap();
        let p = Params::from_stored(v.clone()).unwrap();
        assert_eq!(p, Params::legacy());
        assert_eq!(serde_json::to_value(&p).unwrap(), v);
        let changed = Params {
            rows_meet_k: true,
            ..Params::legacy()
        };
        let text = serde_json::to_string(&changed).unwrap();
        assert!(text.contains("\"rows_meet_k\":true"), "{text}");
        let back = Params::from_stored(serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back, changed);
    }
}
