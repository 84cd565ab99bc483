//! The coordinator's error type: each variant names the epoch, table or object
//! involved and what to do about it.

/// Coordinator errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the shared crate (store, params, keys).
    #[error(transparent)]
    Shared(#[from] faceblock_schemas::Error),
    /// A Delta Lake operation failed.
    #[error("failed on ledger table '{table}': {source}")]
    Ledger {
        /// The table.
        table: String,
        /// The cause.
        #[source]
        source: deltalake::DeltaTableError,
    },
    /// A query failed.
    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// Arrow failed building or printing a table.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// An epoch that can't be run or verified as asked.
    #[error("{0}")]
    Epoch(String),
    /// `faceblock init` on a store that already holds another network.
    #[error("{0}")]
    AlreadyInitialised(String),
    /// Another coordinator claimed this epoch first.
    #[error("epoch {epoch} was claimed by another coordinator (run {run}); it commits the epoch, this run wrote nothing visible")]
    LostRace {
        /// The epoch.
        epoch: u64,
        /// The winning run's id.
        run: String,
    },
    /// The recomputed digest differs from the committed one.
    #[error("epoch {epoch} does not verify: {detail}")]
    VerifyMismatch {
        /// The epoch.
        epoch: u64,
        /// What differs.
        detail: String,
    },
    /// A simulation scenario or frontier file that can't be used as written.
    #[error("{0}")]
    Scenario(String),
    /// The ledger holds something the coordinator can't use.
    #[error("ledger is inconsistent: {0}")]
    Corrupt(String),
}

/// Result with the coordinator [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code the `faceblock` binary uses for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::LostRace { .. } => 75,
            Error::VerifyMismatch { .. } => 3,
            _ => 1,
        }
    }
}
