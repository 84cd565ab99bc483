//! Weight submissions (SPEC 5.1): list, fetch, decode, check signatures in
//! batches and validate each row; every file ends up an accepted row or one
//! rejection.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, UInt32Type};
use ed25519_dalek::VerifyingKey;
use faceblock_schemas::schema::{EPOCH_KEY, SIGNATURE_KEY, SOURCE_KEY};
use faceblock_schemas::signing::{self, Kind, SignContext};
use faceblock_schemas::{layout, NetworkFile, Params, Store};
use sha2::{Digest, Sha256};

use crate::reason::Reason;
use crate::registry::{Peer, Registry};
use crate::Result;

use super::{
    decode_guarded, fetch_map, list_inputs, reject, unread_reason, verify_batched, Fetched,
    InputObject, Recorded, Rejection,
};

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
    let listed = list_inputs(store, &dir, only).await?;
    let mut out = Ingested::default();
    let mut to_read = Vec::new();
    for (object, meta) in listed {
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
        to_read.push(object);
    }
    phases.list = t.elapsed();

    let t = std::time::Instant::now();
    let ctx = SignContext {
        kind: Kind::Weights,
        network_id: net.id(),
        epoch,
        uid: 0,
    };
    let pb = crate::progress::bar(to_read.len() as u64, "reading submissions");
    let decoded = fetch_map(store, to_read, 64, &pb, |f| {
        decode_file(f, registry, &ctx, &net.params, k)
    })
    .await?;
    pb.finish_and_clear();
    phases.read = t.elapsed();

    let t = std::time::Instant::now();
    let checked = check_decoded(decoded, &ctx);
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

/// A decoded file, its row already validated: the Arrow batch is dropped
/// as soon as the file is read, so that a hundred thousand of them never
/// sit in memory together (their first touch was a quarter of this phase).
struct Decoded {
    signed: Signed,
    /// SPEC 5.1 checks 3 and 4: what the row holds if the signature holds.
    row: Result<AcceptedRow, (Reason, String)>,
}

/// What a file's signature is checked against.
struct Signed {
    uid: u32,
    source: Source,
    sig: [u8; 64],
    msg: [u8; 32],
    key: VerifyingKey,
    /// When the file claims another epoch: that epoch and the message
    /// signed for it, to tell `wrong_epoch` from `bad_signature`.
    claimed: Option<(u64, [u8; 32])>,
}

/// One fetched weight file: its input record and its decoded row (or why not).
fn decode_file(
    f: Fetched,
    registry: &Registry,
    ctx: &SignContext,
    params: &Params,
    k: u32,
) -> DecodedFile {
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
    let decoded = decode_weights(&f, uid, peer, ctx).map(|(signed, batch)| {
        let row = match signed.source {
            // The row's values are φ, measured by the coordinator, not the file's.
            Source::Fisher => Ok((vec![], vec![])),
            Source::Explicit => validate_row(&batch, uid, src, registry, params, k),
        };
        Decoded {
            row: row.map(|(dst, weight)| AcceptedRow {
                src,
                dst,
                weight,
                source: signed.source,
            }),
            signed,
        }
    });
    (input, decoded)
}

/// Verifies decoded weight files' signatures, in batches.
fn check_decoded(decoded: Vec<DecodedFile>, ctx: &SignContext) -> Vec<Checked> {
    let idx: Vec<usize> = (0..decoded.len())
        .filter(|i| decoded[*i].1.is_ok())
        .collect();
    let items: Vec<_> = idx
        .iter()
        .filter_map(|i| decoded[*i].1.as_ref().ok())
        .map(|d| (d.signed.msg, d.signed.sig, d.signed.key))
        .collect();
    let mut ok = vec![false; decoded.len()];
    for (i, v) in idx.into_iter().zip(verify_batched(&items)) {
        ok[i] = v;
    }
    decoded
        .into_iter()
        .zip(ok)
        .map(|((input, d), ok)| {
            let result = d.and_then(|d| {
                if !ok {
                    return Err(signature_failure(&d.signed, ctx));
                }
                d.row
            });
            (input, result)
        })
        .collect()
}

fn signature_failure(d: &Signed, ctx: &SignContext) -> (Reason, String) {
    if let Some((e, msg)) = d.claimed {
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

/// What the file's signature is checked against, and its batch (the
/// caller validates the row).
fn decode_weights(
    f: &Fetched,
    uid: u32,
    peer: &Peer,
    ctx: &SignContext,
) -> Result<(Signed, arrow::array::RecordBatch), (Reason, String)> {
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
    let claimed = (d.metadata.get(EPOCH_KEY))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|e| *e != ctx.epoch)
        .map(|e| {
            (
                e,
                signing::message(&SignContext { epoch: e, ..c }, &attrs, &d.batch),
            )
        });
    let signed = Signed {
        uid,
        source,
        sig,
        msg,
        key,
        claimed,
    };
    Ok((signed, d.batch))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, RecordBatch, UInt32Array};

    use super::*;
    use faceblock_schemas::PublicKey;

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
