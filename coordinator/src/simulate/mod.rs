//! `faceblock simulate`: synthetic markets run through the real epoch code
//! and ledger, to measure what the mechanism resists (issue 11).
//!
//! - [`scenario`]: the scenario file (peers, behaviours, params);
//! - [`agents`]: what each synthetic peer writes each epoch;
//! - [`run`]: writes signed rows, closes epochs, reads the ledger back;
//! - [`frontier`]: many scenarios in parallel and the frontier table.

pub mod agents;
pub mod frontier;
pub mod run;
pub mod scenario;

pub use run::{csv, parse_csv, private_memory_store, EpochStats, GroupStats};
pub use scenario::{Group, Market, Scenario};
