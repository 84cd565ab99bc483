//! Closing an epoch (SPEC 5): read the previous state and this epoch's
//! submissions, compute, build the ledger tables, and commit them exactly once.

pub mod build;
pub mod cache;
pub mod previous;
pub mod rows;

use std::time::Instant;

use faceblock_schemas::{NetworkFile, Store};
use tracing::{debug, info};

use crate::fisher;
use crate::ingest::{self, InputObject, Rejection, Source};
use crate::ledger::batches::Batches;
use crate::ledger::commit::Claim;
use crate::ledger::Ledger;
use crate::math;
use crate::reason::Reason;
use crate::registry::{Peer, Registry};
use crate::timing::Phases;
use crate::{Error, Result};
use build::{EpochRow, State};

/// The software version recorded with every epoch.
pub const VERSION: &str = concat!("faceblock ", env!("CARGO_PKG_VERSION"));

/// A computed but not yet committed epoch.
#[derive(Debug)]
pub struct Prepared {
    /// The `epochs` row.
    pub row: EpochRow,
    /// Every other table's batches, in commit order.
    pub tables: Vec<(&'static str, Batches)>,
    /// The epoch digest.
    pub digest: String,
    /// Inputs read, for naming changed objects in `verify`.
    pub inputs: Vec<InputObject>,
    /// Time per phase.
    pub phases: Phases,
    /// What this epoch hands to the next, being written to the
    /// [`cache::EpochCache`] given to [`prepare`].
    pub cache_entry: Option<cache::Pending>,
}

pub use crate::ingest::Recorded;

/// Computes epoch `epoch` from the ledger at `epoch − 1` and the store's submissions.
pub async fn prepare(
    store: &Store,
    net: &NetworkFile,
    ledger: &Ledger,
    epoch: u64,
    threads: usize,
    only: Option<&Recorded>,
    cache: Option<&cache::EpochCache>,
) -> Result<Prepared> {
    let t = Instant::now();
    let mut prev = previous::load(net, ledger, epoch, threads, cache).await?;
    let load_previous = t.elapsed();

    // Join requests: next free uids in ascending order of public key bytes.
    let old = &prev.registry;
    let (requests, mut rejections, mut inputs) =
        ingest::read_join_requests(store, net, old, only).await?;
    let mut peers = old.peers().to_vec();
    let mut new_peers: Vec<Peer> = if epoch == 0 { peers.clone() } else { vec![] };
    let mut next = old.next_uid();
    for r in requests {
        // Once u32::MAX is taken the counter refuses: the request is
        // rejected, never given a wrapped uid, and the epoch goes on.
        let Some(uid) = next else {
            rejections.push(ingest::reject(
                None,
                &r.object,
                Reason::NoFreeUid,
                "every uid up to 4294967295 is taken",
            ));
            continue;
        };
        let p = Peer {
            uid,
            public_key: r.public_key,
            modality: r.modality,
            registered_epoch: epoch,
        };
        next = uid.checked_add(1);
        peers.push(p.clone());
        new_peers.push(p);
    }
    let registry = Registry::new(peers);
    // New uids come after every old one, so e−1's indices stay valid.
    if registry.peers()[..old.len()] != *old.peers() {
        return Err(Error::Corrupt(format!(
            "epoch {epoch}: a new uid sorts before a registered one"
        )));
    }
    // The peg may raise k past the number of peers a row can name; rows are
    // then held to all of them, not rejected forever (SPEC 4 is silent here).
    let nameable = registry.len() as u32 - u32::from(!net.params.allow_self_weight);
    let row_k = prev.k.min(nameable.max(1));
    new_peers.sort_by_key(|p| p.uid);

    let (mut got, mut phases) =
        ingest::read_weights(store, net, &registry, epoch, row_k, only).await?;
    phases.load_previous = load_previous;
    let t = Instant::now();
    let mut exchange =
        ingest::exchange::read_exchange(store, net, &registry, epoch, threads, only).await?;
    let phi = fisher::phi_rows(&exchange.scores, &registry);
    phases.fisher = t.elapsed();
    // A fisher-sourced row becomes the peer's own φ row (SPEC 5.3).
    let mut accepted = Vec::with_capacity(got.rows.len());
    for mut r in got.rows.drain(..) {
        if r.source == Source::Fisher {
            match fisher::fisher_row(&phi[r.src as usize], r.src, &net.params, row_k) {
                Ok((dst, weight)) => {
                    r.dst = dst;
                    r.weight = weight;
                }
                Err((reason, detail)) => {
                    let uid = registry.peers()[r.src as usize].uid;
                    got.rejections.push(Rejection {
                        uid: Some(uid),
                        object: faceblock_schemas::layout::weights(epoch, uid),
                        reason,
                        detail,
                    });
                    continue;
                }
            }
        }
        accepted.push(r);
    }
    let rows_rejected = got.rejections.len() as u64;
    rejections.append(&mut got.rejections);
    rejections.append(&mut exchange.rejections);
    rejections.sort_by(|a, b| a.object.cmp(&b.object));
    inputs.append(&mut got.inputs);
    inputs.append(&mut exchange.inputs);
    inputs.sort_by(|a, b| a.object.cmp(&b.object));

    let t = Instant::now();
    // New rows and segments are laid out in the epoch cache's files when
    // it is on (`math::block`).
    let arena = cache.map(|c| c.arena(epoch));
    let force = rows::in_force(
        &registry,
        epoch,
        net.params.weights_ttl,
        &prev.rows,
        &prev.weights_epoch,
        &accepted,
        net.params.rows_meet_k.then_some(row_k),
        &|n| match &arena {
            Some(a) => a.rows(n),
            None => math::Block::in_memory(n, 1),
        },
    )?;
    for (uid, we, set) in &force.below_k {
        rejections.push(Rejection {
            uid: Some(*uid),
            object: faceblock_schemas::layout::weights(*we, *uid),
            reason: Reason::BelowK,
            detail: format!("row in force since epoch {we} sets {set} weights; k is now {row_k}"),
        });
    }
    rejections.sort_by(|a, b| a.object.cmp(&b.object));
    // Debug marks within the arithmetic phase: time since it began.
    debug!(
        since_start_ms = t.elapsed().as_millis() as u64,
        "rows in force merged"
    );
    let mut stake = prev.stake;
    stake.resize(registry.len(), 0);
    let total_before: u128 = stake.iter().map(|s| *s as u128).sum();
    if total_before + net.params.emission_per_epoch as u128 > i64::MAX as u128 {
        return Err(Error::Epoch(format!(
            "epoch {epoch}: total stake {total_before} plus emission would pass 2^63-1, the ledger's limit"
        )));
    }
    let due: Vec<bool> = registry
        .peers()
        .iter()
        .map(|p| math::bonds::checkpoint_due(epoch, p.uid))
        .collect();
    let bond_edges = math::bond_edges(&net.params, &stake, &force.edges);
    // Segments restart between kept ones every epoch (checkpoints are
    // spread over uids), so the pieces they are carried in multiply; past
    // a bound they are laid end to end again as they advance.
    let compact = prev.segments.parts.len() > cache::COMPACT_PIECES;
    let alloc: math::Alloc = &|n| match &arena {
        Some(a) => a.segments(n),
        None => math::Block::in_memory(n, 2),
    };
    let segments = prev
        .segments
        .advance_into(epoch, &stake, &bond_edges, &due, (alloc, compact));
    debug!(
        since_start_ms = t.elapsed().as_millis() as u64,
        "bond segments advanced"
    );
    // What the next epoch starts from is known now: its cache entry is
    // written while the rest of this epoch runs.
    let cache_entry = cache.zip(arena.as_ref()).map(|(c, arena)| {
        c.start(
            epoch,
            cache::Carried {
                rows: force.edges.clone(),
                segments: segments.clone(),
                from: std::mem::take(&mut prev.cached),
            },
            arena,
        )
    });
    let out = math::plans::compute(
        &math::Input {
            params: &net.params,
            k: prev.k,
            stake: &stake,
            edges: &force.edges,
            segments: &segments,
        },
        threads,
    )
    .await?;
    debug!(since_start_ms = t.elapsed().as_millis() as u64, "plans run");
    let fisher_rank = fisher::fisher_rank(&phi);
    let fisher_divergence = fisher::divergence(&force.edges, &phi);
    phases.arithmetic = t.elapsed();

    let t = Instant::now();
    let uids: Vec<i64> = registry.peers().iter().map(|p| p.uid as i64).collect();
    let n = registry.len();
    // `weights` and `bonds` hold up to one row per edge: their chunks are
    // built when hashed and again when staged, never all at once.
    let tables: Vec<(&'static str, Batches)> = vec![
        ("registry", build::registry(epoch, &new_peers)?.into()),
        (
            "state",
            build::state(
                epoch,
                State {
                    uids: &uids,
                    stake: &stake,
                    out: &out,
                    fisher_rank,
                    fisher_divergence,
                    force: &force,
                    segments: &segments,
                },
            )?
            .into(),
        ),
        ("weights", build::weights(epoch, &uids, &force)),
        ("bonds", build::bonds(epoch, &uids, &segments)),
        ("fisher", build::fisher(epoch, &exchange.scores)?.into()),
        ("rejections", build::rejections(epoch, &rejections)?.into()),
        ("metrics", build::metrics(epoch, &exchange.metrics)?.into()),
    ];
    let mut tables = tables;
    let input_batches: Batches = build::inputs(epoch, &inputs)?.into();
    let inputs_digest = hex::encode(crate::digest::table_digest("inputs", &input_batches)?);
    tables.push(("inputs", input_batches));
    let row = EpochRow {
        epoch,
        n_peers: n as u64,
        total_stake_before: total_before as u64,
        emission: out.emission.iter().sum(),
        loss: out.loss,
        k: prev.k,
        k_next: out.k_next,
        rows_in_force: force.rows as u64,
        rows_accepted: accepted.len() as u64,
        rows_rejected,
        inputs_digest,
        prev_digest: prev.prev_digest,
    };
    let digest = row.digest(&tables)?;
    phases.digest = t.elapsed();
    Ok(Prepared {
        row,
        tables,
        digest,
        inputs,
        phases,
        cache_entry,
    })
}

/// Options of `epoch run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The epoch to close; default: the open one.
    pub epoch: Option<u64>,
    /// Worker threads and DataFusion partitions.
    pub partitions: usize,
    /// Root of the local epoch cache ([`cache::EpochCache`]); `None`: read
    /// the previous epoch from the ledger every time.
    pub cache: Option<std::path::PathBuf>,
}

/// How `epoch run` ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// This run committed the epoch.
    Committed {
        /// The `epochs` row.
        row: Box<EpochRow>,
        /// Its digest.
        digest: String,
        /// Where time went.
        phases: Phases,
    },
    /// A crashed run's claim was found and finished.
    Finished {
        /// The epoch.
        epoch: u64,
        /// Its digest.
        digest: String,
    },
    /// Nothing to do: the epoch was committed before.
    AlreadyCommitted {
        /// The epoch.
        epoch: u64,
    },
}

/// The epoch a run would close: one after the last committed.
pub async fn open_epoch(ledger: &Ledger) -> Result<u64> {
    Ok(ledger.last_committed().await?.map(|e| e + 1).unwrap_or(0))
}

/// `faceblock epoch run`.
pub async fn run(store: &Store, opts: &RunOptions) -> Result<Outcome> {
    run_on(&Ledger::new(store.clone()), opts).await
}

/// [`run`] on a ledger whose table handles a caller keeps between epochs
/// (the simulator, a long-lived coordinator): each epoch then reads only the
/// commits that followed the last one.
pub async fn run_on(ledger: &Ledger, opts: &RunOptions) -> Result<Outcome> {
    let store = ledger.store();
    let net = NetworkFile::load(store).await?;
    let open = open_epoch(ledger).await?;
    let epoch = match opts.epoch {
        Some(e) if e < open => {
            publish(store, &net, ledger, open - 1).await?;
            return Ok(Outcome::AlreadyCommitted { epoch: e });
        }
        Some(e) if e > open => {
            return Err(Error::Epoch(format!(
                "epoch {e} is not open yet: the open epoch is {open}"
            )))
        }
        _ => open,
    };
    let span = tracing::info_span!("epoch_run", epoch);
    let _g = span.enter();
    if let Some(claim) = ledger.claim(epoch).await? {
        info!(run = %claim.run, "finishing epoch claimed by an earlier run");
        ledger.commit_claim(&claim).await?;
        publish(store, &net, ledger, epoch).await?;
        return Ok(Outcome::Finished {
            epoch,
            digest: claim.digest,
        });
    }
    let cache = opts
        .cache
        .as_deref()
        .map(|root| cache::EpochCache::new(root, store.url().as_str()));
    let mut p = prepare(
        store,
        &net,
        ledger,
        epoch,
        opts.partitions,
        None,
        cache.as_ref(),
    )
    .await?;
    let t = Instant::now();
    let now = chrono::Utc::now().timestamp_micros();
    let mut claim = Claim {
        epoch,
        run: uuid::Uuid::new_v4().to_string(),
        digest: p.digest.clone(),
        tables: Default::default(),
    };
    let epochs_batch = p.row.batch(&p.digest, VERSION, now)?;
    p.tables.push(("epochs", epochs_batch.into()));
    // Tables are encoded in parallel (Parquet encoding is the heavy part).
    let staging: Vec<_> = std::mem::take(&mut p.tables)
        .into_iter()
        .map(|(name, batches)| {
            let ledger = ledger.clone();
            tokio::spawn(async move { (name, ledger.stage(name, batches).await) })
        })
        .collect();
    for task in staging {
        let (name, adds) = task
            .await
            .map_err(|e| Error::Epoch(format!("staging a ledger table failed: {e}")))?;
        claim.tables.insert(name.to_string(), adds?);
    }
    ledger.put_claim(&claim).await?;
    ledger.commit_claim(&claim).await?;
    publish(store, &net, ledger, epoch).await?;
    // The cache entry is named by the digest only once the epoch is
    // committed: an entry for an epoch that never commits is never taken.
    if let Some(entry) = p.cache_entry.take() {
        debug!(
            since_commit_ms = t.elapsed().as_millis() as u64,
            "epoch published; finishing its cache entry"
        );
        let digest = p.digest.clone();
        tokio::task::spawn_blocking(move || entry.finish(&digest))
            .await
            .map_err(|e| Error::Epoch(format!("writing the epoch cache failed: {e}")))?;
    }
    p.phases.commit = t.elapsed();
    info!(digest = %p.digest, timings = %p.phases.summary(), "epoch committed");
    Ok(Outcome::Committed {
        row: Box::new(p.row),
        digest: p.digest,
        phases: p.phases,
    })
}

/// After a commit: rewrite `network/head.json` and the uid markers of peers
/// that joined in `epoch`, so peers can act without reading the ledger.
/// Both are derived from the ledger and safe to rewrite.
pub async fn publish(store: &Store, net: &NetworkFile, ledger: &Ledger, epoch: u64) -> Result<()> {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use faceblock_schemas::head::{Head, UidMarker};
    use faceblock_schemas::layout;
    let ctx = ledger
        .session_of(&["epochs", "registry"], Some(epoch), 1)
        .await?;
    let k = crate::ledger::epochs::read(&ctx, epoch).await?.k_next;
    let head = Head {
        open_epoch: epoch + 1,
        k,
    };
    store
        .put(
            layout::HEAD,
            serde_json::to_vec(&head).expect("head serialises").into(),
        )
        .await?;
    let joined = Ledger::query(
        &ctx,
        &format!("SELECT uid, public_key FROM registry WHERE epoch = {epoch}"),
    )
    .await?;
    let genesis: std::collections::HashSet<&str> = net
        .genesis
        .peers
        .iter()
        .map(|p| p.public_key.as_str())
        .collect();
    for b in joined {
        let keys = crate::ledger::string_col(&b, 1)?;
        for i in 0..b.num_rows() {
            let uid = b.column(0).as_primitive::<Int64Type>().value(i) as u32;
            let pk = keys.value(i);
            if genesis.contains(pk) {
                continue;
            }
            let m = UidMarker {
                uid,
                registered_epoch: epoch,
            };
            store
                .put(
                    &layout::uid_marker(pk),
                    serde_json::to_vec(&m).expect("marker serialises").into(),
                )
                .await?;
        }
    }
    Ok(())
}
