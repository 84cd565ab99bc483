//! The FaceBlock peer (SPEC 9): its key, join request and weight rows, its
//! candle models (encoder, gating, head, distilled student) and the three
//! phases of its epoch, exchanged through the store.
#![warn(missing_docs)]

pub mod error;
pub mod identity;
pub mod model;
pub mod peer;
pub mod phases;
pub mod submit;
pub mod text;

pub use error::{Error, Result};
