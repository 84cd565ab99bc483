//! `faceblock init`: write `network/params.json` once and create the ledger tables.

use faceblock_schemas::{layout, Genesis, NetworkFile, Params, Store};

use crate::ledger::Ledger;
use crate::{Error, Result};

/// Initialises a network; re-running with the same params and genesis is a no-op.
pub async fn init(store: &Store, params: Params, genesis: Genesis) -> Result<NetworkFile> {
    store.ensure_local_root()?;
    let file = NetworkFile::new(params, genesis);
    let body = serde_json::to_vec_pretty(&file).expect("network file serialises");
    if !store.put_if_absent(layout::PARAMS, body.into()).await? {
        let existing = NetworkFile::load(store).await?;
        if existing.network_id != file.network_id {
            return Err(Error::AlreadyInitialised(format!(
                "{} already holds network {}; choose another --store for a new network",
                store.url(),
                existing.network_id
            )));
        }
    }
    Ledger::new(store.clone()).create_all().await?;
    Ok(file)
}
