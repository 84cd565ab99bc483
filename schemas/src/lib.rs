//! What the FaceBlock coordinator and its peers must agree on: the store layout
//! (SPEC 2), identities and signatures (SPEC 3), network parameters (SPEC 4) and
//! the Arrow schemas of everything a peer writes.
//!
//! Both binaries link this crate so that a peer and the coordinator can never
//! disagree about a path, a column or the bytes a signature covers.
#![warn(missing_docs)]

pub mod error;
pub mod exchange;
pub mod genesis;
pub mod head;
pub mod layout;
pub mod logging;
pub mod network;
pub mod params;
pub mod parquet_io;
pub mod policy;
pub mod schema;
pub mod signing;
pub mod store;

pub use error::{Error, Result};
pub use genesis::{Genesis, GenesisPeer};
pub use network::NetworkFile;
pub use params::{Consensus, Params, PegRule};
pub use signing::{Keypair, PublicKey};
pub use store::Store;
