//! The FaceBlock peer: its key, its join request and its signed weight rows.
//! Candle models, gating and the exchange phases build on these.
#![warn(missing_docs)]

pub mod error;
pub mod identity;
pub mod submit;

pub use error::{Error, Result};
