//! `network/params.json`: params, genesis and the network id that every
//! signature covers.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{layout, Error, Genesis, Params, Result, Store};

/// The network's founding document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkFile {
    /// Format version of this file.
    pub format: u32,
    /// Hex SHA-256 over the canonical params and genesis.
    pub network_id: String,
    /// The parameters in force (fields a file predates mean the original mechanism).
    #[serde(deserialize_with = "stored_params")]
    pub params: Params,
    /// The first peers.
    pub genesis: Genesis,
}

impl NetworkFile {
    /// Builds the file and its id.
    pub fn new(params: Params, genesis: Genesis) -> Self {
        let genesis = genesis.sorted();
        let id = network_id(&params, &genesis);
        Self {
            format: 1,
            network_id: hex::encode(id),
            params,
            genesis,
        }
    }

    /// The id as bytes.
    pub fn id(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(b) = hex::decode(&self.network_id) {
            if b.len() == 32 {
                out.copy_from_slice(&b);
            }
        }
        out
    }

    /// Reads the network of a store, with a hint to run `init` when there is none.
    pub async fn load(store: &Store) -> Result<Self> {
        let bytes = store
            .get_opt(layout::PARAMS)
            .await?
            .ok_or_else(|| Error::NoNetwork(store.url().to_string()))?;
        let f: NetworkFile = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: layout::PARAMS.into(),
            source,
        })?;
        f.params.validate()?;
        let expect = hex::encode(network_id(&f.params, &f.genesis));
        if expect != f.network_id {
            return Err(Error::Params(format!(
                "{} was altered: its network_id does not match its params and genesis",
                layout::PARAMS
            )));
        }
        Ok(f)
    }
}

fn stored_params<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Params, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Params::from_stored(v).map_err(serde::de::Error::custom)
}

/// SHA-256 over the canonical params (serde JSON, fields in declaration order)
/// and the genesis peers sorted by uid.
pub fn network_id(params: &Params, genesis: &Genesis) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"faceblock/network/v1\0");
    h.update(serde_json::to_vec(params).expect("params serialise"));
    let mut peers = genesis.peers.clone();
    peers.sort_by_key(|p| p.uid);
    for p in &peers {
        h.update(p.uid.to_le_bytes());
        h.update(p.public_key.as_bytes());
        h.update(p.stake.to_le_bytes());
    }
    h.finalize().into()
}
