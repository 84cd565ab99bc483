//! `network/head.json`: what a peer needs to submit for the open epoch.

use serde::{Deserialize, Serialize};

use crate::{layout, Error, Result, Store};

/// The open epoch as of the last commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The epoch the next `epoch run` closes.
    pub open_epoch: u64,
    /// Entries each row must set in it.
    pub k: u32,
}

/// A joined peer's uid, written once it is registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidMarker {
    /// The uid.
    pub uid: u32,
    /// The epoch it was registered in.
    pub registered_epoch: u64,
}

impl Head {
    /// Reads the head; `None` before the first commit.
    pub async fn load(store: &Store) -> Result<Option<Self>> {
        match store.get_opt(layout::HEAD).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| Error::Json {
                    path: layout::HEAD.into(),
                    source,
                }),
        }
    }
}
