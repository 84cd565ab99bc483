//! Reading what peers wrote for an epoch (SPEC 5.1, 7): list, fetch in
//! parallel, decode, check signatures in batches, validate values. Every
//! object ends up either accepted or as one rejection with a reason code;
//! nothing a peer writes can fail the epoch.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, UInt32Type};
use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use faceblock_schemas::parquet_io;
use faceblock_schemas::schema::{EPOCH_KEY, SIGNATURE_KEY, SOURCE_KEY};
use faceblock_schemas::signing::{self, Kind, SignContext};
use faceblock_schemas::{layout, NetworkFile, Params, PublicKey, Store};
use futures::{StreamExt, TryStreamExt};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::reason::Reason;
use crate::registry::{Peer, Registry};
use crate::Result;

/// Recorded inputs (object → sha256) that `verify` restricts a recomputation to.
pub type Recorded = HashMap<String, String>;

/// One rejected object.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The writer's uid, when the path names one.
    pub uid: Option<u32>,
    /// Layout path of the object.
    pub object: String,
    /// Reason code.
    pub reason: Reason,
    /// What exactly was wrong.
    pub detail: String,
}

/// One object read as an input of the epoch; `inputs_digest` covers these.
#[derive(Debug, Clone, PartialEq)]
pub struct InputObject {
    /// Layout path.
    pub object: String,
    /// Writer uid, if any.
    pub uid: Option<u32>,
    /// `weights`, `join`, `queries`, `activations`, `gradients`, `metrics`,
    /// or `exchange` for a stray object there.
    pub kind: &'static str,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes, hex (empty when not read).
    pub sha256: String,
}

impl InputObject {
    /// An object listed but not read (stray name, too large, unknown uid).
    pub(crate) fn unread(object: String, uid: Option<u32>, kind: &'static str, bytes: u64) -> Self {
        Self {
            object,
            uid,
            kind,
            bytes,
            sha256: String::new(),
        }
    }
}

/// Where an accepted row's weights come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Weights set by the peer.
    Explicit,
    /// φ scores measured by the coordinator (SPEC 5.3).
    Fisher,
}

/// A validated weight row, normalised, in index space, sorted by dst.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedRow {
    /// Index of the row owner.
    pub src: u32,
    /// Destination indices, ascending.
    pub dst: Vec<u32>,
    /// Normalised weights.
    pub weight: Vec<f64>,
    /// Where it comes from.
    pub source: Source,
}

/// Everything read for one epoch.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Accepted rows, by src index.
    pub rows: Vec<AcceptedRow>,
    /// Rejections, sorted by object.
    pub rejections: Vec<Rejection>,
    /// Inputs, sorted by object.
    pub inputs: Vec<InputObject>,
}

/// A fetched object, before checks.
pub struct Fetched {
    /// Layout path.
    pub object: String,
    /// Bytes.
    pub bytes: Bytes,
}

pub(crate) fn reject(
    uid: Option<u32>,
    object: &str,
    reason: Reason,
    detail: impl Into<String>,
) -> Rejection {
    Rejection {
        uid,
        object: object.to_string(),
        reason,
        detail: detail.into(),
    }
}

/// Concurrent fetches; a file that vanished since listing is treated as absent.
pub async fn fetch_all(
    store: &Store,
    objects: Vec<String>,
    concurrency: usize,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<Fetched>> {
    if store.local_path("").is_some() {
        // A local directory: plain parallel reads are several times faster
        // than one async request per file.
        let read: Vec<Result<Option<Fetched>>> = objects
            .into_par_iter()
            .map(|object| {
                let path = store.local_path(&object).expect("local store");
                let r = match std::fs::read(&path) {
                    Ok(b) => Ok(Some(Fetched {
                        object,
                        bytes: Bytes::from(b),
                    })),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(faceblock_schemas::Error::Io {
                        path: path.display().to_string(),
                        source,
                    }
                    .into()),
                };
                progress.inc(1);
                r
            })
            .collect();
        let mut out = Vec::with_capacity(read.len());
        for r in read {
            out.extend(r?);
        }
        return Ok(out);
    }
    let fetched: Vec<Option<Fetched>> = futures::stream::iter(objects)
        .map(|object| async move {
            let r = store.get_opt(&object).await;
            progress.inc(1);
            r.map(|b| b.map(|bytes| Fetched { object, bytes }))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(fetched.into_iter().flatten().collect())
}

/// Lists, fetches and checks the weight submissions of `epoch`.
pub async fn read_weights(
    store: &Store,
    net: &NetworkFile,
    registry: &Registry,
    epoch: u64,
    k: u32,
    only: Option<&Recorded>,
) -> Result<(Ingested, crate::timing::Phases)> {
    let mut phases = crate::timing::Phases::default();
    let t = std::time::Instant::now();
    let dir = layout::weights_dir(epoch);
    let listed = store.list(&dir).await?;
    let mut out = Ingested::default();
    let mut to_read = Vec::new();
    let mut sizes = HashMap::new();
    for meta in listed {
        let object = store.relative(&meta.location);
        if let Some(only) = only {
            if !only.contains_key(&object) {
                continue;
            }
        }
        let name = object.strip_prefix(&format!("{dir}/")).unwrap_or(&object);
        let Some(uid) = layout::parse_uid_file(name) else {
            out.rejections.push(reject(
                None,
                &object,
                Reason::UnexpectedObject,
                "submissions/epoch=<e>/weights/ holds only uid=<u>.parquet files",
            ));
            out.inputs
                .push(InputObject::unread(object, None, "weights", meta.size));
            continue;
        };
        if let Some((reason, detail)) = unread_reason(meta.size, uid, registry, &net.params) {
            out.rejections
                .push(reject(Some(uid), &object, reason, detail));
            out.inputs
                .push(InputObject::unread(object, Some(uid), "weights", meta.size));
            continue;
        }
        sizes.insert(object.clone(), meta.size);
        to_read.push(object);
    }
    phases.list = t.elapsed();

    let t = std::time::Instant::now();
    let pb = crate::progress::bar(to_read.len() as u64, "reading submissions");
    let fetched = fetch_all(store, to_read, 64, &pb).await?;
    pb.finish_and_clear();
    phases.read = t.elapsed();

    let t = std::time::Instant::now();
    let ctx = SignContext {
        kind: Kind::Weights,
        network_id: net.id(),
        epoch,
        uid: 0,
    };
    let checked = check_weight_files(fetched, registry, &ctx, &net.params, k);
    phases.verify = t.elapsed();
    for (input, result) in checked {
        let uid = input.uid;
        let object = input.object.clone();
        out.inputs.push(input);
        match result {
            Ok(row) => out.rows.push(row),
            Err((reason, detail)) => out.rejections.push(reject(uid, &object, reason, detail)),
        }
    }
    out.rows.sort_by_key(|r| r.src);
    out.rejections.sort_by(|a, b| a.object.cmp(&b.object));
    out.inputs.sort_by(|a, b| a.object.cmp(&b.object));
    Ok((out, phases))
}

type Checked = (InputObject, Result<AcceptedRow, (Reason, String)>);
type DecodedFile = (InputObject, Result<Decoded, (Reason, String)>);

struct Decoded {
    uid: u32,
    src: u32,
    batch: arrow::array::RecordBatch,
    source: Source,
    claimed_epoch: Option<u64>,
    sig: [u8; 64],
    msg: [u8; 32],
    key: VerifyingKey,
}

/// Decodes, verifies (in batches) and validates fetched weight files.
pub fn check_weight_files(
    fetched: Vec<Fetched>,
    registry: &Registry,
    ctx: &SignContext,
    params: &Params,
    k: u32,
) -> Vec<Checked> {
    let decoded: Vec<DecodedFile> = fetched
        .into_par_iter()
        .map(|f| {
            let name = f.object.rsplit('/').next().unwrap_or("");
            let uid = layout::parse_uid_file(name).expect("only uid files are fetched");
            let input = InputObject {
                object: f.object.clone(),
                uid: Some(uid),
                kind: "weights",
                bytes: f.bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(&f.bytes)),
            };
            let src = registry
                .index(uid)
                .expect("only registered uids are fetched");
            let peer = &registry.peers()[src as usize];
            (input, decode_weights(&f, uid, src, peer, ctx))
        })
        .collect();

    let idx: Vec<usize> = (0..decoded.len())
        .filter(|i| decoded[*i].1.is_ok())
        .collect();
    let items: Vec<_> = idx
        .iter()
        .filter_map(|i| decoded[*i].1.as_ref().ok())
        .map(|d| (d.msg, d.sig, d.key))
        .collect();
    let mut ok = vec![false; decoded.len()];
    for (i, v) in idx.into_iter().zip(verify_batched(&items)) {
        ok[i] = v;
    }

    decoded
        .into_par_iter()
        .enumerate()
        .map(|(i, (input, d))| {
            let result = d.and_then(|d| {
                if !ok[i] {
                    return Err(signature_failure(&d, ctx));
                }
                if d.source == Source::Fisher {
                    // The row's values are φ, measured by the coordinator, not the file's.
                    return Ok(AcceptedRow {
                        src: d.src,
                        dst: vec![],
                        weight: vec![],
                        source: d.source,
                    });
                }
                validate_row(&d.batch, d.uid, d.src, registry, params, k).map(|(dst, weight)| {
                    AcceptedRow {
                        src: d.src,
                        dst,
                        weight,
                        source: d.source,
                    }
                })
            });
            (input, result)
        })
        .collect()
}

/// Checks signatures 64 at a time (a batch is about twice as fast as single
/// checks); a failing batch is re-checked one by one to find the culprits.
pub(crate) fn verify_batched(items: &[([u8; 32], [u8; 64], VerifyingKey)]) -> Vec<bool> {
    items
        .par_chunks(64)
        .flat_map_iter(|chunk| {
            let msgs: Vec<[u8; 32]> = chunk.iter().map(|c| c.0).collect();
            let sigs: Vec<[u8; 64]> = chunk.iter().map(|c| c.1).collect();
            let keys: Vec<VerifyingKey> = chunk.iter().map(|c| c.2).collect();
            let all = signing::verify_many(&msgs, &sigs, &keys);
            chunk
                .iter()
                .map(move |c| all || signing::verify_one(&c.0, &c.1, &c.2))
        })
        .collect()
}

/// Why an object is rejected unread: too large to read, or its writer has no uid.
pub(crate) fn unread_reason(
    size: u64,
    uid: u32,
    registry: &Registry,
    params: &Params,
) -> Option<(Reason, String)> {
    if size > params.max_submission_bytes {
        return Some((
            Reason::TooLarge,
            format!(
                "{size} bytes > max_submission_bytes {}",
                params.max_submission_bytes
            ),
        ));
    }
    if registry.index(uid).is_none() {
        return Some((Reason::UnknownUid, format!("uid {uid} is not registered")));
    }
    None
}

fn signature_failure(d: &Decoded, ctx: &SignContext) -> (Reason, String) {
    if let Some(e) = d.claimed_epoch.filter(|e| *e != ctx.epoch) {
        let c = SignContext {
            epoch: e,
            uid: d.uid,
            ..*ctx
        };
        let attrs = source_attrs(d.source);
        let msg = signing::message(&c, &attrs, &d.batch);
        if signing::verify_one(&msg, &d.sig, &d.key) {
            return (
                Reason::WrongEpoch,
                format!("signed for epoch {e}, submitted for epoch {}", ctx.epoch),
            );
        }
    }
    (
        Reason::BadSignature,
        format!(
            "signature does not verify for uid {} in epoch {} of this network",
            d.uid, ctx.epoch
        ),
    )
}

fn source_attrs(source: Source) -> Vec<(&'static str, &'static str)> {
    match source {
        Source::Explicit => vec![],
        Source::Fisher => vec![(SOURCE_KEY, "fisher")],
    }
}

fn decode_weights(
    f: &Fetched,
    uid: u32,
    src: u32,
    peer: &Peer,
    ctx: &SignContext,
) -> Result<Decoded, (Reason, String)> {
    let d = decode_guarded(&f.object, f.bytes.clone())?;
    let fields = d.schema.fields();
    let names: Vec<(&str, &DataType)> = fields
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    if names != [("dst", &DataType::UInt32), ("weight", &DataType::Float64)] {
        return Err((
            Reason::Schema,
            format!(
                "expected columns dst: UInt32, weight: Float64; found {}",
                names
                    .iter()
                    .map(|(n, t)| format!("{n}: {t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if d.batch.columns().iter().any(|c| c.null_count() > 0) {
        return Err((Reason::Schema, "dst and weight may not be null".into()));
    }
    let source = match d.metadata.get(SOURCE_KEY).map(String::as_str) {
        None | Some("explicit") => Source::Explicit,
        Some("fisher") => Source::Fisher,
        Some(other) => {
            return Err((
                Reason::Schema,
                format!("unknown {SOURCE_KEY} '{other}' (explicit or fisher)"),
            ))
        }
    };
    let sig = d
        .metadata
        .get(SIGNATURE_KEY)
        .ok_or((
            Reason::BadSignature,
            format!("no '{SIGNATURE_KEY}' in the file's metadata"),
        ))
        .and_then(|s| {
            signing::signature_from_hex(s).map_err(|e| (Reason::BadSignature, e.to_string()))
        })?;
    let key = peer
        .public_key
        .verifying_key()
        .map_err(|e| (Reason::BadSignature, e.to_string()))?;
    let c = SignContext { uid, ..*ctx };
    let attrs = source_attrs(source);
    let msg = signing::message(&c, &attrs, &d.batch);
    let claimed_epoch = d.metadata.get(EPOCH_KEY).and_then(|v| v.parse().ok());
    Ok(Decoded {
        uid,
        src,
        batch: d.batch,
        source,
        claimed_epoch,
        sig,
        msg,
        key,
    })
}

/// Decodes Parquet bytes, turning a decoder panic on hostile input into `unreadable`.
pub fn decode_guarded(object: &str, bytes: Bytes) -> Result<parquet_io::Decoded, (Reason, String)> {
    faceblock_schemas::exchange::decode(object, bytes).map_err(|e| {
        (
            Reason::from_code(e.code).unwrap_or(Reason::Unreadable),
            e.detail,
        )
    })
}

/// SPEC 5.1 checks 3 and 4 on a decoded row; returns destination indices and
/// normalised weights sorted by destination.
pub fn validate_row(
    batch: &arrow::array::RecordBatch,
    uid: u32,
    src: u32,
    registry: &Registry,
    params: &Params,
    k: u32,
) -> Result<(Vec<u32>, Vec<f64>), (Reason, String)> {
    let dst = batch.column(0).as_primitive::<UInt32Type>().values();
    let w = batch.column(1).as_primitive::<Float64Type>().values();
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err((
            Reason::NonFinite,
            format!("weight for dst {} is {}", dst[i], w[i]),
        ));
    }
    if let Some(i) = w.iter().position(|v| *v < 0.0) {
        return Err((
            Reason::Negative,
            format!("weight for dst {} is {}", dst[i], w[i]),
        ));
    }
    let mut entries = Vec::with_capacity(dst.len());
    for (d, v) in dst.iter().zip(w.iter()) {
        let Some(j) = registry.index(*d) else {
            return Err((
                Reason::UnknownDst,
                format!("dst {d} is not a registered uid"),
            ));
        };
        entries.push((j, *d, *v));
    }
    entries.sort_unstable_by_key(|e| e.0);
    if let Some(pair) = entries.windows(2).find(|p| p[0].0 == p[1].0) {
        return Err((
            Reason::DuplicateDst,
            format!("dst {} appears more than once", pair[0].1),
        ));
    }
    // SPEC 5.1 check 4 counts what is left after dropping zero and self entries.
    entries.retain(|(j, _, v)| *v > 0.0 && (params.allow_self_weight || *j != src));
    if entries.len() < k as usize {
        return Err((
            Reason::TooFewWeights,
            format!(
                "{} nonzero entries besides uid {uid} itself; this epoch needs at least k = {k}",
                entries.len()
            ),
        ));
    }
    if entries.is_empty() {
        // Only at k = 0: a row naming nobody would withdraw the row in force.
        return Err((
            Reason::Empty,
            format!("no nonzero entries besides uid {uid} itself"),
        ));
    }
    if entries.len() > params.max_weights as usize {
        return Err((
            Reason::TooManyWeights,
            format!(
                "{} nonzero entries > max_weights {}",
                entries.len(),
                params.max_weights
            ),
        ));
    }
    let mut total: f64 = entries.iter().map(|e| e.2).sum();
    if total.is_infinite() {
        // Finite raw weights whose sum overflows: scale by a power of two
        // (exact) so the largest is about 1, then normalise as usual.
        let max = entries.iter().map(|e| e.2).fold(0.0, f64::max);
        let scale = 2f64.powi(-libm::ilogb(max));
        for e in &mut entries {
            e.2 *= scale;
        }
        total = entries.iter().map(|e| e.2).sum();
    }
    Ok((
        entries.iter().map(|e| e.0).collect(),
        entries.iter().map(|e| e.2 / total).collect(),
    ))
}

/// A checked join request.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The new key.
    pub public_key: PublicKey,
    /// Its modality.
    pub modality: String,
    /// The request's object, for a rejection.
    pub object: String,
}

/// Reads pending join requests; already-registered keys are skipped silently
/// (their request was honoured in an earlier epoch).
pub async fn read_join_requests(
    store: &Store,
    net: &NetworkFile,
    registry: &Registry,
    only: Option<&Recorded>,
) -> Result<(Vec<JoinRequest>, Vec<Rejection>, Vec<InputObject>)> {
    let listed = store.list(layout::JOIN_REQUESTS).await?;
    let mut objects = Vec::new();
    let mut rejections = Vec::new();
    let mut inputs = Vec::new();
    for meta in listed {
        let object = store.relative(&meta.location);
        if let Some(only) = only {
            if !only.contains_key(&object) {
                continue;
            }
        }
        let name = object.rsplit('/').next().unwrap_or("").to_string();
        let unread_input = |inputs: &mut Vec<InputObject>| {
            inputs.push(InputObject::unread(object.clone(), None, "join", meta.size))
        };
        let Some(hexkey) = layout::parse_join_file(&name) else {
            unread_input(&mut inputs);
            rejections.push(reject(
                None,
                &object,
                Reason::UnexpectedObject,
                "registry/requests/ holds only <public-key-hex>.parquet files, the key in lower-case hex",
            ));
            continue;
        };
        let Ok(pk) = PublicKey::from_hex(hexkey) else {
            unread_input(&mut inputs);
            rejections.push(reject(
                None,
                &object,
                Reason::BadSignature,
                "the file name is not a valid ed25519 public key",
            ));
            continue;
        };
        if registry.index_of_key(&pk).is_some() {
            continue;
        }
        if meta.size > net.params.max_submission_bytes {
            unread_input(&mut inputs);
            rejections.push(reject(None, &object, Reason::TooLarge, "too large"));
            continue;
        }
        objects.push((object, pk));
    }
    let pb = indicatif::ProgressBar::hidden();
    let fetched = fetch_all(
        store,
        objects.iter().map(|o| o.0.clone()).collect(),
        32,
        &pb,
    )
    .await?;
    let keys: HashMap<String, PublicKey> = objects.into_iter().collect();
    let mut requests = Vec::new();
    let ctx = SignContext {
        kind: Kind::Join,
        network_id: net.id(),
        epoch: 0,
        uid: 0,
    };
    for f in fetched {
        let pk = keys[&f.object];
        inputs.push(InputObject {
            object: f.object.clone(),
            uid: None,
            kind: "join",
            bytes: f.bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&f.bytes)),
        });
        match check_join(&f, &pk, &ctx) {
            Ok(modality) => requests.push(JoinRequest {
                public_key: pk,
                modality,
                object: f.object.clone(),
            }),
            Err((reason, detail)) => rejections.push(reject(None, &f.object, reason, detail)),
        }
    }
    requests.sort_by_key(|r| r.public_key);
    rejections.sort_by(|a, b| a.object.cmp(&b.object));
    inputs.sort_by(|a, b| a.object.cmp(&b.object));
    Ok((requests, rejections, inputs))
}

fn check_join(f: &Fetched, pk: &PublicKey, ctx: &SignContext) -> Result<String, (Reason, String)> {
    let d = decode_guarded(&f.object, f.bytes.clone())?;
    if d.schema.fields().len() != 2
        || d.schema.field(0).name() != "public_key"
        || d.schema.field(1).name() != "modality"
        || d.schema.field(0).data_type() != &DataType::Utf8
        || d.schema.field(1).data_type() != &DataType::Utf8
        || d.batch.num_rows() != 1
        || d.batch.columns().iter().any(|c| c.null_count() > 0)
    {
        return Err((
            Reason::Schema,
            "a join request is one row of public_key: Utf8, modality: Utf8".into(),
        ));
    }
    let key_col = d.batch.column(0).as_string::<i32>().value(0);
    if key_col != pk.to_hex() {
        return Err((
            Reason::BadSignature,
            "the public_key column does not match the file name".into(),
        ));
    }
    let modality = d.batch.column(1).as_string::<i32>().value(0).to_string();
    if modality != faceblock_schemas::schema::MODALITY_TEXT {
        return Err((
            Reason::Schema,
            format!("unknown modality '{modality}' (TEXT)"),
        ));
    }
    let sig = d
        .metadata
        .get(SIGNATURE_KEY)
        .ok_or((Reason::BadSignature, "no signature".to_string()))
        .and_then(|s| {
            signing::signature_from_hex(s).map_err(|e| (Reason::BadSignature, e.to_string()))
        })?;
    pk.verify_batch(ctx, &[], &d.batch, &sig)
        .map_err(|e| (Reason::BadSignature, e.to_string()))?;
    Ok(modality)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, RecordBatch, UInt32Array};

    use super::*;

    fn registry(n: u32) -> Registry {
        Registry::new(
            (0..n)
                .map(|uid| Peer {
                    uid,
                    public_key: PublicKey([uid as u8; 32]),
                    modality: "TEXT".into(),
                    registered_epoch: 0,
                })
                .collect(),
        )
    }

    fn row(entries: &[(u32, f64)]) -> RecordBatch {
        let dst: UInt32Array = entries.iter().map(|e| e.0).collect();
        let w: Float64Array = entries.iter().map(|e| e.1).collect();
        RecordBatch::try_from_iter(vec![
            ("dst", Arc::new(dst) as arrow::array::ArrayRef),
            ("weight", Arc::new(w) as arrow::array::ArrayRef),
        ])
        .unwrap()
    }

    fn check(
        entries: &[(u32, f64)],
        params: &Params,
        k: u32,
    ) -> Result<(Vec<u32>, Vec<f64>), Reason> {
        validate_row(&row(entries), 0, 0, &registry(4), params, k).map_err(|e| e.0)
    }

    #[test]
    fn max_weights_counts_after_dropping_zero_and_self_entries() {
        let params = Params {
            max_weights: 2,
            ..Params::default()
        };
        // Four entries as written, two after dropping the zero and the self entry.
        let (dst, w) = check(&[(0, 5.0), (1, 1.0), (2, 0.0), (3, 3.0)], &params, 1).unwrap();
        assert_eq!(dst, vec![1, 3]);
        assert_eq!(w, vec![0.25, 0.75]);
        assert_eq!(
            check(&[(1, 1.0), (2, 1.0), (3, 1.0)], &params, 1),
            Err(Reason::TooManyWeights)
        );
    }

    #[test]
    fn no_entries_is_too_few_when_k_asks_for_some_and_empty_otherwise() {
        let p = Params::default();
        assert_eq!(check(&[], &p, 1), Err(Reason::TooFewWeights));
        assert_eq!(
            check(&[(0, 1.0), (1, 0.0)], &p, 1),
            Err(Reason::TooFewWeights)
        );
        // At k = 0 an all-zero or self-only row names nobody: it must not
        // withdraw the row in force.
        assert_eq!(check(&[], &p, 0), Err(Reason::Empty));
        assert_eq!(check(&[(1, 0.0), (2, 0.0)], &p, 0), Err(Reason::Empty));
        assert_eq!(check(&[(0, 1.0)], &p, 0), Err(Reason::Empty));
    }

    #[test]
    fn raw_weights_whose_sum_overflows_are_scaled_not_emptied() {
        let p = Params::default();
        let big = 2f64.powi(1023);
        let (dst, w) = check(&[(1, big), (2, big), (3, big / 2.0)], &p, 1).unwrap();
        assert_eq!(dst, vec![1, 2, 3]);
        assert_eq!(w, vec![0.4, 0.4, 0.2]);
        // Rows that do not overflow keep the plain raw / sum.
        let (_, w) = check(&[(1, 1.0), (2, 3.0)], &p, 1).unwrap();
        assert_eq!(w, vec![0.25, 0.75]);
    }
}
