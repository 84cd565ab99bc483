//! A peer in one network: its identity, the other peers' keys, its state
//! directory (model and progress, never in the bucket) and its settings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use faceblock_schemas::head::UidMarker;
use faceblock_schemas::{layout, Keypair, NetworkFile, PublicKey, Store};
use serde::{Deserialize, Serialize};

use crate::model::{Dims, ParamStore, PeerModel};
use crate::text::Corpus;
use crate::{identity, Error, Result};

/// How a peer answers queries; anything but `Honest` is for experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Behaviour {
    /// Answers with its trained encoder.
    Honest,
    /// Answers with standard normal noise of the right shape.
    Noise,
}

/// Where the weight row a peer submits after learning comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightsFrom {
    /// Mean gate probabilities of its gating layer.
    Gating,
    /// The Fisher scores the coordinator measures (SPEC 5.3).
    Fisher,
    /// Submit no weights (keep the row in force).
    None,
}

/// Training and exchange settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Examples per query batch and per local step.
    pub batch: usize,
    /// Peers each example is sent to (the gating layer's top-k).
    pub fanout: usize,
    /// Steps on the queried batch with the answers that came back.
    pub exchange_steps: usize,
    /// Further steps on fresh local batches, the student standing in.
    pub local_steps: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Learning rate of the gating layer.
    pub gating_lr: f64,
    /// Exploration noise on gating logits when choosing whom to query.
    pub explore: f64,
    /// How this peer answers.
    pub behaviour: Behaviour,
    /// Where its weight row comes from.
    pub weights: WeightsFrom,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch: 32,
            fanout: 2,
            exchange_steps: 4,
            local_steps: 16,
            lr: 3e-3,
            gating_lr: 3e-2,
            explore: 1.0,
            behaviour: Behaviour::Honest,
            weights: WeightsFrom::Gating,
        }
    }
}

/// What the state directory remembers between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Hex network id, so a state directory is never used in another network.
    pub network_id: String,
    /// The peer's uid.
    pub uid: u32,
    /// Last epoch whose learn phase finished.
    pub learned: Option<u64>,
    /// Gradient files already trained on, as (epoch, querier).
    pub consumed: BTreeSet<(u64, u32)>,
    /// Running mean of the gate weight each peer earned when it answered:
    /// the gating layer's verdict, kept for peers not asked this epoch.
    #[serde(default)]
    pub scores: BTreeMap<u32, f64>,
}

/// A peer ready to run phases.
pub struct Peer {
    /// The network's store.
    pub store: Store,
    /// Its params and genesis.
    pub net: NetworkFile,
    /// Signing key.
    pub key: Keypair,
    /// Its uid.
    pub uid: u32,
    /// Model and progress live here.
    pub state_dir: PathBuf,
    /// Its own text.
    pub corpus: Corpus,
    /// Settings.
    pub settings: Settings,
    /// Its networks.
    pub model: PeerModel,
    /// Progress across runs.
    pub progress: Progress,
    /// Registered peers' keys by uid, refreshed each epoch.
    pub peers: BTreeMap<u32, PublicKey>,
}

/// The default state directory: next to the key, `peer.key` → `peer.state/`.
pub fn default_state_dir(key_path: &Path) -> PathBuf {
    key_path.with_extension("state")
}

impl Peer {
    /// Opens the peer: checks it is registered, loads (or creates) its model
    /// and progress, and reads its data.
    pub async fn open(
        store: Store,
        key: Keypair,
        state_dir: PathBuf,
        data: &Path,
        settings: Settings,
    ) -> Result<Self> {
        let net = NetworkFile::load(&store).await?;
        let uid = identity::uid(&store, &net, &key.public()).await?;
        let dims = Dims::new(net.params.seq_len as usize, net.params.out_dim as usize);
        if dims.seq_len == 0 || dims.out_dim == 0 {
            return Err(Error::Model(
                "this network's seq_len and out_dim must be positive".into(),
            ));
        }
        let corpus = Corpus::load(data, dims.seq_len)?;
        std::fs::create_dir_all(&state_dir).map_err(|source| io(&state_dir, source))?;
        let network_id = hex::encode(net.id());
        let progress_path = state_dir.join("progress.json");
        let progress = match std::fs::read(&progress_path) {
            Ok(b) => {
                let p: Progress = serde_json::from_slice(&b).map_err(|e| {
                    Error::State(format!("{} is damaged: {e}", progress_path.display()))
                })?;
                if p.network_id != network_id || p.uid != uid {
                    return Err(Error::State(format!(
                        "{} belongs to uid {} of network {}; use another --state directory for this network",
                        state_dir.display(),
                        p.uid,
                        &p.network_id[..p.network_id.len().min(12)]
                    )));
                }
                p
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Progress {
                network_id,
                uid,
                ..Default::default()
            },
            Err(source) => return Err(io(&progress_path, source)),
        };
        let peers = directory(&store, &net).await?;
        let max_uid = peers.keys().last().copied().unwrap_or(uid).max(uid);
        let model_path = state_dir.join("model.safetensors");
        let params = if model_path.exists() {
            ParamStore::load(&model_path)?
        } else {
            ParamStore::default()
        };
        let model = PeerModel::new(params, dims, max_uid)?;
        Ok(Self {
            store,
            net,
            key,
            uid,
            state_dir,
            corpus,
            settings,
            model,
            progress,
            peers,
        })
    }

    /// Rereads who is registered; grows the gating layer for new uids.
    pub async fn refresh_peers(&mut self) -> Result<()> {
        self.peers = directory(&self.store, &self.net).await?;
        let max = self.peers.keys().last().copied().unwrap_or(self.uid);
        if max as usize >= self.model.gating_slots() {
            let params = std::mem::take(&mut self.model.params);
            self.model = PeerModel::new(params, self.model.dims(), max)?;
        }
        Ok(())
    }

    /// Other registered peers, ascending: whom the gating layer may pick.
    pub fn candidates(&self) -> Vec<u32> {
        self.peers
            .keys()
            .copied()
            .filter(|u| *u != self.uid)
            .collect()
    }

    /// Writes model and progress (each atomically).
    pub fn save(&self) -> Result<()> {
        self.model
            .params
            .save(&self.state_dir.join("model.safetensors"))?;
        let path = self.state_dir.join("progress.json");
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(&self.progress).expect("progress serialises"),
        )
        .map_err(|source| io(&tmp, source))?;
        std::fs::rename(&tmp, &path).map_err(|source| io(&path, source))
    }

    /// Where the batch queried in `epoch` is kept until its learn phase.
    pub fn batch_path(&self, epoch: u64) -> PathBuf {
        self.state_dir.join(format!("batch-{epoch}.bin"))
    }
}

fn io(p: &Path, source: std::io::Error) -> Error {
    Error::Shared(faceblock_schemas::Error::Io {
        path: p.display().to_string(),
        source,
    })
}

/// Registered peers' keys: genesis plus the uid markers the coordinator writes.
pub async fn directory(store: &Store, net: &NetworkFile) -> Result<BTreeMap<u32, PublicKey>> {
    let mut out = BTreeMap::new();
    for p in &net.genesis.peers {
        out.insert(p.uid, PublicKey::from_hex(&p.public_key)?);
    }
    for meta in store.list(layout::UID_MARKERS).await? {
        let object = store.relative(&meta.location);
        let Some(hexkey) = object
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let Ok(pk) = PublicKey::from_hex(hexkey) else {
            continue;
        };
        if let Some(b) = store.get_opt(&layout::uid_marker(hexkey)).await? {
            if let Ok(m) = serde_json::from_slice::<UidMarker>(&b) {
                out.insert(m.uid, pk);
            }
        }
    }
    Ok(out)
}
