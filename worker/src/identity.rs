//! Who this peer is in a network: its uid and the epoch it should submit for.

use faceblock_schemas::head::{Head, UidMarker};
use faceblock_schemas::{layout, Error as SharedError, NetworkFile, PublicKey, Store};

use crate::{Error, Result};

/// The peer's uid: from genesis, else from the marker the coordinator writes
/// when a join request is honoured.
pub async fn uid(store: &Store, net: &NetworkFile, key: &PublicKey) -> Result<u32> {
    let hex = key.to_hex();
    if let Some(p) = net.genesis.peers.iter().find(|p| p.public_key == hex) {
        return Ok(p.uid);
    }
    match store.get_opt(&layout::uid_marker(&hex)).await? {
        Some(b) => {
            let m: UidMarker = serde_json::from_slice(&b).map_err(|source| SharedError::Json {
                path: layout::uid_marker(&hex),
                source,
            })?;
            Ok(m.uid)
        }
        None => Err(Error::NotRegistered(hex)),
    }
}

/// The open epoch and its k (epoch 0 and `k_initial` before any commit).
pub async fn head(store: &Store, net: &NetworkFile) -> Result<Head> {
    Ok(Head::load(store).await?.unwrap_or(Head {
        open_epoch: 0,
        k: net.params.k_initial,
    }))
}
