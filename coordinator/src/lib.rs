//! The FaceBlock coordinator: closes epochs over object storage and keeps the
//! ledger.
//!
//! - [`ingest`] reads what peers wrote, one module per input kind (SPEC 5.1, 5.3, 7);
//! - [`fisher`] measures Fisher scores from the checked exchange (SPEC 5.3);
//! - [`math`] is SPEC 5.2, one module per quantity;
//! - [`epoch`] runs an epoch and [`ledger`] commits it exactly once (SPEC 6);
//! - [`verify`], [`sql`], [`plot`] and [`status`] serve auditors and analysts.
#![warn(missing_docs)]

pub mod digest;
pub mod epoch;
pub mod error;
pub mod fisher;
pub mod ingest;
pub mod init;
pub mod ledger;
pub mod math;
pub mod plot;
pub mod progress;
pub mod reason;
pub mod registry;
pub mod simulate;
pub mod sql;
pub mod status;
pub mod timing;
pub mod verify;

pub use error::{Error, Result};
