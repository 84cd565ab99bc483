//! A peer's epoch (SPEC 9): `query`, `answer`, `learn`, and `run`, which
//! loops over them. Every object is one signed PUT; a phase that is rerun
//! after a crash redoes its work and overwrites its own objects, so a peer
//! never leaves half a submission behind as the final state.

use std::time::{Duration, Instant};

use bytes::Bytes;
use faceblock_schemas::exchange::{self, Metrics, Queries, Tensor};
use faceblock_schemas::signing::Kind;
use faceblock_schemas::{layout, PublicKey};
use futures::{StreamExt, TryStreamExt};
use rand::seq::SliceRandom;
use tracing::{info, warn};

use crate::model::{Answer, Trainer, Window};
use crate::peer::{Behaviour, Peer, WeightsFrom};
use crate::submit::{self, Row};
use crate::{identity, Result};

/// One example in this many is sent to peers picked at random.
const EXPLORE_EVERY: usize = 4;

/// Uploads in flight at once.
const UPLOADS: usize = 8;

/// What the query phase did.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryReport {
    /// The epoch.
    pub epoch: u64,
    /// Examples in the batch.
    pub examples: usize,
    /// Distinct peers asked.
    pub peers: Vec<u32>,
    /// False when this epoch's query was already written.
    pub written: bool,
}

/// What the learn phase did.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnReport {
    /// The epoch.
    pub epoch: u64,
    /// Next-byte loss on the queried batch before training on it (nats).
    pub loss: f64,
    /// The student's KL to the network on that batch.
    pub distill_loss: f64,
    /// Peers whose answers were used.
    pub answered: Vec<u32>,
    /// Peers asked that sent nothing usable.
    pub missing: Vec<u32>,
    /// Gradient files from other peers trained on.
    pub remote_gradients: usize,
    /// Examples trained on.
    pub examples: u64,
    /// False when this epoch was already learned.
    pub learned: bool,
}

fn sign_ctx(
    peer: &Peer,
    kind: Kind,
    epoch: u64,
    querier: u32,
    answerer: u32,
) -> (
    faceblock_schemas::signing::SignContext,
    Vec<(&'static str, String)>,
) {
    exchange::sign_context(kind, peer.net.id(), epoch, querier, answerer)
}

/// Reads and checks another peer's query batch; `None` (with a warning) when
/// it is absent or fails a check.
async fn read_queries(peer: &Peer, epoch: u64, querier: u32) -> Result<Option<Queries>> {
    let Some(key) = peer.peers.get(&querier) else {
        return Ok(None);
    };
    let path = layout::queries(epoch, querier);
    let Some(bytes) = peer.store.get_opt(&path).await? else {
        return Ok(None);
    };
    let (ctx, attrs) = sign_ctx(peer, Kind::Queries, epoch, querier, 0);
    let checked = exchange::decode(&path, bytes).and_then(|d| {
        exchange::verify(&d, &ctx, &attrs, key)?;
        exchange::check_queries(&d, querier, peer.model.dims().seq_len)
    });
    match checked {
        Ok(q) => Ok(Some(q)),
        Err(e) => {
            warn!(object = %path, reason = e.code, detail = %e.detail, "skipping a query that fails its checks");
            Ok(None)
        }
    }
}

/// Reads and checks a tensor written by `writer` for the pair (querier, answerer).
#[allow(clippy::too_many_arguments)]
async fn read_tensor(
    peer: &Peer,
    kind: Kind,
    path: &str,
    epoch: u64,
    querier: u32,
    answerer: u32,
    key: &PublicKey,
    allowed: &[u32],
) -> Result<Option<Tensor>> {
    let Some(bytes) = peer.store.get_opt(path).await? else {
        return Ok(None);
    };
    let (ctx, attrs) = sign_ctx(peer, kind, epoch, querier, answerer);
    let d = peer.model.dims();
    let checked = exchange::decode(path, bytes).and_then(|dec| {
        exchange::verify(&dec, &ctx, &attrs, key)?;
        exchange::check_tensor(&dec, d.seq_len * d.out_dim, allowed)
    });
    match checked {
        Ok(t) => Ok(Some(t)),
        Err(e) => {
            warn!(object = %path, reason = e.code, detail = %e.detail, "skipping a file that fails its checks");
            Ok(None)
        }
    }
}

async fn put_all(peer: &Peer, objects: Vec<(String, Bytes)>) -> Result<()> {
    futures::stream::iter(objects)
        .map(|(path, bytes)| async move { peer.store.put(&path, bytes).await })
        .buffer_unordered(UPLOADS)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// `query`: sample a batch and ask the peers the gating layer picks for each
/// example (noisy top-k). The batch, with its targets, stays in the state
/// directory for the learn phase.
pub async fn query(peer: &mut Peer, epoch: u64) -> Result<QueryReport> {
    let path = layout::queries(epoch, peer.uid);
    let batch_path = peer.batch_path(epoch);
    if batch_path.exists() && peer.store.get_opt(&path).await?.is_some() {
        return Ok(QueryReport {
            epoch,
            examples: 0,
            peers: vec![],
            written: false,
        });
    }
    peer.refresh_peers().await?;
    let s = peer.model.dims().seq_len;
    let mut rng = rand::thread_rng();
    let windows = peer.corpus.sample(&mut rng, peer.settings.batch, s);
    let inputs: Vec<&[u8]> = windows.iter().map(|w| &w[..s]).collect();
    let candidates = peer.candidates();
    let k = peer.settings.fanout.min(candidates.len());
    let mut q = Queries::default();
    if k > 0 {
        let logits =
            peer.model
                .gate_logits(&inputs, &candidates, peer.settings.explore, &mut rng)?;
        // Peers whose answers proved worth little are asked less: the gate's
        // logit plus the log of their score relative to the mean.
        let known: Vec<f64> = peer.progress.scores.values().copied().collect();
        let mean = known.iter().sum::<f64>() / known.len().max(1) as f64;
        let bias: Vec<f32> = candidates
            .iter()
            .map(|u| match peer.progress.scores.get(u) {
                Some(s) if mean > 0.0 => (s / mean).max(0.05).ln() as f32,
                _ => 0.0,
            })
            .collect();
        let logits: Vec<Vec<f32>> = logits
            .into_iter()
            .map(|row| row.iter().zip(&bias).map(|(l, b)| l + b).collect())
            .collect();
        for (ex, row) in logits.iter().enumerate() {
            let mut order: Vec<usize> = (0..row.len()).collect();
            if ex % EXPLORE_EVERY == EXPLORE_EVERY - 1 {
                // Exploration: every peer keeps being measured, so one bad
                // batch doesn't silence a good peer for good.
                order.shuffle(&mut rng);
            } else {
                order.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
            }
            for c in order.into_iter().take(k) {
                q.example.push(ex as u32);
                q.dst.push(candidates[c]);
                q.tokens.push(inputs[ex].to_vec());
            }
        }
    }
    // The batch is saved before the query goes out: answers are useless
    // without the targets it holds.
    let tmp = batch_path.with_extension("bin.tmp");
    std::fs::write(&tmp, windows.concat()).map_err(|source| shared_io(&tmp, source))?;
    std::fs::rename(&tmp, &batch_path).map_err(|source| shared_io(&batch_path, source))?;
    let mut peers: Vec<u32> = q.dst.clone();
    peers.sort_unstable();
    peers.dedup();
    if !q.example.is_empty() {
        let (ctx, attrs) = sign_ctx(peer, Kind::Queries, epoch, peer.uid, 0);
        let bytes = exchange::encode_signed(&path, &q.batch(), &peer.key, &ctx, &attrs)?;
        peer.store.put(&path, bytes).await?;
    }
    info!(epoch, examples = windows.len(), peers = ?peers, "queried");
    Ok(QueryReport {
        epoch,
        examples: windows.len(),
        peers,
        written: true,
    })
}

fn shared_io(p: &std::path::Path, source: std::io::Error) -> crate::Error {
    crate::Error::Shared(faceblock_schemas::Error::Io {
        path: p.display().to_string(),
        source,
    })
}

/// `answer`: compute `f_i(x)` for every query of `epoch` addressed to this
/// peer that it has not answered yet. Returns the queriers answered now.
pub async fn answer(peer: &mut Peer, epoch: u64) -> Result<Vec<u32>> {
    let listed = peer.store.list(&layout::queries_dir(epoch)).await?;
    let mut queriers: Vec<u32> = listed
        .iter()
        .filter_map(|m| layout::parse_uid_file(m.location.filename()?))
        .filter(|u| *u != peer.uid)
        .collect();
    queriers.sort_unstable();
    if queriers.iter().any(|q| !peer.peers.contains_key(q)) {
        peer.refresh_peers().await?;
    }
    let done: std::collections::HashSet<u32> = peer
        .store
        .list(&format!("{}/activations", layout::exchange_dir(epoch)))
        .await?
        .iter()
        .filter_map(|m| {
            let rel = peer.store.relative(&m.location);
            layout::parse_pair_path(&rel).filter(|(_, i)| *i == peer.uid)
        })
        .map(|(j, _)| j)
        .collect();
    let d = peer.model.dims();
    let mut out = Vec::new();
    let mut uploads = Vec::new();
    for j in queriers.into_iter().filter(|j| !done.contains(j)) {
        let Some(q) = read_queries(peer, epoch, j).await? else {
            continue;
        };
        let mine = q.for_peer(peer.uid);
        if mine.is_empty() {
            continue;
        }
        let tokens: Vec<&[u8]> = mine.iter().map(|(_, t)| *t).collect();
        let values = match peer.settings.behaviour {
            Behaviour::Honest => peer.model.answer(&tokens)?,
            Behaviour::Noise => crate::model::normal(
                &mut rand::thread_rng(),
                tokens.len() * d.seq_len * d.out_dim,
            ),
        };
        let t = Tensor {
            example: mine.iter().map(|(e, _)| *e).collect(),
            values,
            width: d.seq_len * d.out_dim,
        };
        let path = layout::activations(epoch, j, peer.uid);
        let (ctx, attrs) = sign_ctx(peer, Kind::Activations, epoch, j, peer.uid);
        uploads.push((
            path.clone(),
            exchange::encode_signed(&path, &t.batch(), &peer.key, &ctx, &attrs)?,
        ));
        out.push(j);
    }
    put_all(peer, uploads).await?;
    if !out.is_empty() {
        info!(epoch, queriers = ?out, "answered");
    }
    Ok(out)
}

/// Which of this peer's targets in `epoch` have answered (an object exists).
pub async fn answered(peer: &Peer, epoch: u64) -> Result<(Vec<u32>, Vec<u32>)> {
    let Some(bytes) = peer
        .store
        .get_opt(&layout::queries(epoch, peer.uid))
        .await?
    else {
        return Ok((vec![], vec![]));
    };
    let d = exchange::decode("own query", bytes).map_err(|e| crate::Error::Data(e.detail))?;
    let q = exchange::check_queries(&d, peer.uid, peer.model.dims().seq_len)
        .map_err(|e| crate::Error::Data(e.detail))?;
    let mut targets = q.dst.clone();
    targets.sort_unstable();
    targets.dedup();
    let present: std::collections::HashSet<u32> = peer
        .store
        .list(&format!(
            "{}/activations/query={}",
            layout::exchange_dir(epoch),
            peer.uid
        ))
        .await?
        .iter()
        .filter_map(|m| layout::parse_uid_file(m.location.filename()?))
        .collect();
    Ok(targets.into_iter().partition(|t| present.contains(t)))
}

/// `learn`: join the answers to this peer's queries through the gating layer,
/// train, send each answering peer its gradient, train `f_i` on the
/// gradients others sent, then submit the weight row and metrics (last, so
/// metrics mark a finished epoch).
pub async fn learn(peer: &mut Peer, epoch: u64) -> Result<LearnReport> {
    if peer.progress.learned.is_some_and(|l| l >= epoch)
        && peer
            .store
            .get_opt(&layout::metrics(epoch, peer.uid))
            .await?
            .is_some()
    {
        return Ok(LearnReport {
            epoch,
            loss: f64::NAN,
            distill_loss: f64::NAN,
            answered: vec![],
            missing: vec![],
            remote_gradients: 0,
            examples: 0,
            learned: false,
        });
    }
    peer.refresh_peers().await?;
    let d = peer.model.dims();
    let s = d.seq_len;
    let width = s * d.out_dim;
    let mut rng = rand::thread_rng();
    let windows: Vec<Window> = match std::fs::read(peer.batch_path(epoch)) {
        Ok(b) if !b.is_empty() && b.len() % (s + 1) == 0 => {
            b.chunks(s + 1).map(|c| c.to_vec()).collect()
        }
        _ => {
            warn!(
                epoch,
                "no query batch kept for this epoch (query phase not run here); learning locally"
            );
            peer.corpus.sample(&mut rng, peer.settings.batch, s)
        }
    };

    // Answers to our queries, checked like the coordinator checks them.
    let own = match peer
        .store
        .get_opt(&layout::queries(epoch, peer.uid))
        .await?
    {
        Some(b) => exchange::decode("own query", b)
            .ok()
            .and_then(|dd| exchange::check_queries(&dd, peer.uid, s).ok())
            .filter(|q| q.example.iter().all(|e| (*e as usize) < windows.len())),
        None => None,
    };
    let mut answers = Vec::new();
    let mut missing = Vec::new();
    if let Some(q) = &own {
        let mut targets = q.dst.clone();
        targets.sort_unstable();
        targets.dedup();
        for t in targets {
            let allowed: Vec<u32> = q.for_peer(t).iter().map(|(e, _)| *e).collect();
            let key = match peer.peers.get(&t) {
                Some(k) => *k,
                None => {
                    missing.push(t);
                    continue;
                }
            };
            let path = layout::activations(epoch, peer.uid, t);
            match read_tensor(
                peer,
                Kind::Activations,
                &path,
                epoch,
                peer.uid,
                t,
                &key,
                &allowed,
            )
            .await?
            {
                Some(tensor) => answers.push(Answer {
                    uid: t,
                    rows: tensor.example.iter().map(|e| *e as usize).collect(),
                    values: tensor.values,
                }),
                None => missing.push(t),
            }
        }
    }
    let answered_uids: Vec<u32> = answers.iter().map(|a| a.uid).collect();

    let mut opt = Trainer::new(&peer.model, peer.settings.lr, peer.settings.gating_lr)?;
    // Each peer's worth is measured before training on this batch: after a
    // few steps on it the head could fit even noise answers.
    let cost = peer.model.removal_cost(&windows, &answers)?;
    // The first step's gradients are the ones sent back: they are taken at
    // the parameters the answers were computed against.
    let first = peer.model.train_step(&mut opt, &windows, &answers)?;
    let mut uploads = Vec::new();
    for (a, (uid, g)) in answers.iter().zip(&first.gradients) {
        debug_assert_eq!(a.uid, *uid);
        let t = Tensor {
            example: a.rows.iter().map(|r| *r as u32).collect(),
            values: g.clone(),
            width,
        };
        let path = layout::gradients(epoch, peer.uid, *uid);
        let (ctx, attrs) = sign_ctx(peer, Kind::Gradients, epoch, peer.uid, *uid);
        uploads.push((
            path.clone(),
            exchange::encode_signed(&path, &t.batch(), &peer.key, &ctx, &attrs)?,
        ));
    }
    put_all(peer, uploads).await?;
    let mut examples = windows.len() as u64;
    for _ in 1..peer.settings.exchange_steps {
        peer.model.train_step(&mut opt, &windows, &answers)?;
        examples += windows.len() as u64;
    }
    for (a, c) in answers.iter().zip(&cost) {
        let s = peer.progress.scores.entry(a.uid).or_insert(c.max(0.0));
        *s = 0.5 * *s + 0.5 * c.max(0.0);
    }
    for _ in 0..peer.settings.local_steps {
        let w = peer.corpus.sample(&mut rng, peer.settings.batch, s);
        peer.model.train_step(&mut opt, &w, &[])?;
        examples += w.len() as u64;
    }

    // f_i learns from what its answers cost other peers.
    let remote = train_on_gradients(peer, &mut opt, epoch).await?;

    // Weight row and metrics.
    let candidates = peer.candidates();
    match peer.settings.weights {
        WeightsFrom::Gating if !candidates.is_empty() => {
            // Peers not measured yet get the mean score of those that were,
            // and every candidate keeps a sliver so the row meets k.
            let known: Vec<f64> = peer.progress.scores.values().copied().collect();
            let prior = if known.is_empty() {
                1.0
            } else {
                known.iter().sum::<f64>() / known.len() as f64
            };
            let top = known.iter().copied().fold(prior, f64::max).max(1e-12);
            let weight = candidates
                .iter()
                .map(|u| peer.progress.scores.get(u).copied().unwrap_or(prior) + 1e-3 * top)
                .collect();
            let row = Row::Explicit {
                dst: candidates.clone(),
                weight,
            };
            submit::weights(&peer.store, &peer.net, &peer.key, peer.uid, epoch, &row).await?;
        }
        WeightsFrom::Fisher => {
            submit::weights(
                &peer.store,
                &peer.net,
                &peer.key,
                peer.uid,
                epoch,
                &Row::Fisher,
            )
            .await?;
        }
        _ => {}
    }
    peer.progress.learned = Some(epoch);
    peer.save()?;
    let m = Metrics {
        loss: first.loss,
        distill_loss: first.distill_loss,
        examples,
    };
    let path = layout::metrics(epoch, peer.uid);
    let (ctx, attrs) = sign_ctx(peer, Kind::Metrics, epoch, peer.uid, 0);
    let bytes = exchange::encode_signed(&path, &m.batch(), &peer.key, &ctx, &attrs)?;
    peer.store.put(&path, bytes).await?;
    let _ = std::fs::remove_file(peer.batch_path(epoch));
    info!(epoch, loss = first.loss, distill = first.distill_loss, answered = ?answered_uids, "learned");
    Ok(LearnReport {
        epoch,
        loss: first.loss,
        distill_loss: first.distill_loss,
        answered: answered_uids,
        missing,
        remote_gradients: remote,
        examples,
        learned: true,
    })
}

/// Trains `f_i` on gradients sent to it in this epoch and the one before that
/// it has not used yet.
async fn train_on_gradients(peer: &mut Peer, opt: &mut Trainer, epoch: u64) -> Result<usize> {
    let mut used = 0;
    for e in epoch.saturating_sub(1)..=epoch {
        let listed = peer.store.list(&layout::gradients_dir(e)).await?;
        let mut queriers: Vec<u32> = listed
            .iter()
            .filter_map(|m| layout::parse_pair_path(&peer.store.relative(&m.location)))
            .filter(|(_, i)| *i == peer.uid)
            .map(|(j, _)| j)
            .filter(|j| !peer.progress.consumed.contains(&(e, *j)))
            .collect();
        queriers.sort_unstable();
        for j in queriers {
            let Some(key) = peer.peers.get(&j).copied() else {
                continue;
            };
            let Some(q) = read_queries(peer, e, j).await? else {
                continue;
            };
            let mine = q.for_peer(peer.uid);
            let allowed: Vec<u32> = mine.iter().map(|(x, _)| *x).collect();
            let path = layout::gradients(e, j, peer.uid);
            let Some(g) =
                read_tensor(peer, Kind::Gradients, &path, e, j, peer.uid, &key, &allowed).await?
            else {
                peer.progress.consumed.insert((e, j));
                continue;
            };
            let tokens: Vec<&[u8]> = g
                .example
                .iter()
                .filter_map(|x| mine.iter().find(|(y, _)| y == x).map(|(_, t)| *t))
                .collect();
            peer.model
                .train_on_remote_gradient(opt, &tokens, &g.values)?;
            peer.progress.consumed.insert((e, j));
            used += 1;
        }
    }
    // Forget entries too old to matter.
    peer.progress.consumed.retain(|(e, _)| *e + 1 >= epoch);
    Ok(used)
}

/// How `run` waits.
#[derive(Debug, Clone, Copy)]
pub struct RunTiming {
    /// Longest wait for others' queries, and again for answers, per epoch.
    pub wait: Duration,
    /// Pause between looks at the store.
    pub poll: Duration,
}

/// `run`: for `epochs` epochs (or forever), query, answer until the others
/// have queried, learn once answers are in (or the wait is over), then keep
/// answering until the coordinator closes the epoch. A peer that was away
/// starts at the open epoch.
pub async fn run(
    peer: &mut Peer,
    epochs: Option<u64>,
    timing: RunTiming,
    mut on_learn: impl FnMut(&LearnReport),
) -> Result<()> {
    let mut done = 0u64;
    loop {
        let head = identity::head(&peer.store, &peer.net).await?;
        let epoch = head.open_epoch;
        if peer.progress.learned.is_some_and(|l| l >= epoch) {
            answer(peer, epoch).await?;
            tokio::time::sleep(timing.poll).await;
            continue;
        }
        query(peer, epoch).await?;
        let deadline = Instant::now() + timing.wait;
        loop {
            answer(peer, epoch).await?;
            let queried = peer.store.list(&layout::queries_dir(epoch)).await?.len();
            if queried >= peer.peers.len() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(timing.poll).await;
        }
        let deadline = Instant::now() + timing.wait;
        loop {
            answer(peer, epoch).await?;
            let (_, missing) = answered(peer, epoch).await?;
            if missing.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(timing.poll).await;
        }
        let report = learn(peer, epoch).await?;
        on_learn(&report);
        answer(peer, epoch).await?;
        done += 1;
        if epochs.is_some_and(|n| done >= n) {
            return Ok(());
        }
        // Keep serving late queries until the coordinator closes the epoch.
        loop {
            let head = identity::head(&peer.store, &peer.net).await?;
            if head.open_epoch > epoch {
                break;
            }
            answer(peer, epoch).await?;
            tokio::time::sleep(timing.poll).await;
        }
    }
}
