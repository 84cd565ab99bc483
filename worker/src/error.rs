//! The peer's error type.

/// Peer errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the shared crate (store, keys, params).
    #[error(transparent)]
    Shared(#[from] faceblock_schemas::Error),
    /// A weight row given on the command line or in a file is not valid.
    #[error("invalid weight row: {0}")]
    Row(String),
    /// A model operation failed, or a saved model doesn't fit this network.
    #[error("model: {0}")]
    Model(String),
    /// From candle.
    #[error("model: {0}")]
    Candle(#[from] candle_core::Error),
    /// The peer's state directory can't be used.
    #[error("state directory: {0}")]
    State(String),
    /// The peer's own data can't be used.
    #[error("data: {0}")]
    Data(String),
    /// This key has no uid yet.
    #[error("key {0} is not registered in this network: run `faceblock-peer register --key ...` and wait for the next `faceblock epoch run`")]
    NotRegistered(String),
}

/// Result with the peer [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
