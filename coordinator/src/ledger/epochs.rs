//! The one reader of an `epochs` row: what later epochs, `publish` and
//! `verify` need from a committed epoch.

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;

use super::{string_col, Ledger};
use crate::{Error, Result};

/// The fields of a committed `epochs` row that the coordinator reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The epoch.
    pub epoch: u64,
    /// k for the next epoch.
    pub k_next: u32,
    /// The epoch's digest.
    pub digest: String,
    /// The digest of its inputs.
    pub inputs_digest: String,
    /// The digest of epoch e−1 it chains onto.
    pub prev_digest: String,
}

/// Reads epoch `epoch`'s row in a ledger session; an error names the epoch
/// when there is none (the caller knows it was committed).
pub async fn read(ctx: &SessionContext, epoch: u64) -> Result<Committed> {
    let rows = Ledger::query(
        ctx,
        &format!(
            "SELECT k_next, digest, inputs_digest, prev_digest FROM epochs WHERE epoch = {epoch}"
        ),
    )
    .await?;
    let b = rows
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| Error::Corrupt(format!("epochs has no row for epoch {epoch}")))?;
    let k = b.column(0).as_primitive::<Int64Type>().value(0);
    Ok(Committed {
        epoch,
        k_next: u32::try_from(k)
            .map_err(|_| Error::Corrupt(format!("epoch {epoch}: k_next {k} out of range")))?,
        digest: string_col(b, 1)?.value(0).to_string(),
        inputs_digest: string_col(b, 2)?.value(0).to_string(),
        prev_digest: string_col(b, 3)?.value(0).to_string(),
    })
}
