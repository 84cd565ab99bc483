//! The exchange of an epoch (SPEC 5.3): queries, activations, gradients and
//! metrics, listed, fetched and checked with the checks peers run themselves
//! (`faceblock_schemas::exchange`); the checked tensors go to
//! [`crate::fisher::scores`] for φ.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use faceblock_schemas::exchange::{self, Invalid, Metrics, Queries, Signed};
use faceblock_schemas::parquet_io::Decoded;
use faceblock_schemas::signing::{Kind, SignContext};
use faceblock_schemas::{layout, NetworkFile, Params, Store};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::{reject, InputObject, Recorded, Rejection};
use crate::fisher::{scores, Pairs, Score};
use crate::reason::Reason;
use crate::registry::Registry;
use crate::Result;

/// Where the Fisher job's time went.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Listing `exchange/epoch=<e>/`.
    pub list: Duration,
    /// Fetching the objects.
    pub read: Duration,
    /// Decoding, hashing, signatures and the shared checks.
    pub verify: Duration,
    /// φ on DataFusion.
    pub score: Duration,
    /// Bytes of activation and gradient files read.
    pub tensor_bytes: u64,
}

/// Everything the Fisher job found for one epoch.
#[derive(Debug, Default)]
pub struct Exchange {
    /// φ per pair, sorted by (src, dst).
    pub scores: Vec<Score>,
    /// Valid self-reported metrics, sorted by uid.
    pub metrics: Vec<(u32, Metrics)>,
    /// Rejected objects, sorted by object.
    pub rejections: Vec<Rejection>,
    /// Every object read or listed, sorted by object.
    pub inputs: Vec<InputObject>,
    /// Time per phase.
    pub timings: Timings,
}

/// An exchange object, as its path names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Obj {
    Queries(u32),
    /// (querier, answerer)
    Activations(u32, u32),
    /// (querier, answerer)
    Gradients(u32, u32),
    Metrics(u32),
}

impl Obj {
    /// `rel` is the path below `exchange/epoch=<e>/`.
    fn parse(rel: &str) -> Option<Obj> {
        let parts: Vec<&str> = rel.split('/').collect();
        let pair = |q: &str, f: &str| layout::parse_pair_path(&format!("{q}/{f}"));
        match parts.as_slice() {
            ["queries", f] => layout::parse_uid_file(f).map(Obj::Queries),
            ["metrics", f] => layout::parse_uid_file(f).map(Obj::Metrics),
            ["activations", q, f] => pair(q, f).map(|(j, i)| Obj::Activations(j, i)),
            ["gradients", q, f] => pair(q, f).map(|(j, i)| Obj::Gradients(j, i)),
            _ => None,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Obj::Queries(_) => "queries",
            Obj::Activations(..) => "activations",
            Obj::Gradients(..) => "gradients",
            Obj::Metrics(_) => "metrics",
        }
    }

    /// The peer that writes (and signs) this object.
    fn writer(self) -> u32 {
        match self {
            Obj::Queries(j) | Obj::Gradients(j, _) => j,
            Obj::Activations(_, i) | Obj::Metrics(i) => i,
        }
    }

    fn context(
        self,
        network_id: [u8; 32],
        epoch: u64,
    ) -> (SignContext, Vec<(&'static str, String)>) {
        let (kind, j, i) = match self {
            Obj::Queries(j) => (Kind::Queries, j, 0),
            Obj::Activations(j, i) => (Kind::Activations, j, i),
            Obj::Gradients(j, i) => (Kind::Gradients, j, i),
            Obj::Metrics(i) => (Kind::Metrics, i, 0),
        };
        exchange::sign_context(kind, network_id, epoch, j, i)
    }
}

/// The `kind` recorded for a stray object: its folder when it is a known one.
fn stray_kind(rel: &str) -> &'static str {
    match rel.split('/').next() {
        Some("queries") => "queries",
        Some("activations") => "activations",
        Some("gradients") => "gradients",
        Some("metrics") => "metrics",
        _ => "exchange",
    }
}

/// A decoded object whose signature is still to be checked.
struct Opened {
    obj: Obj,
    object: String,
    d: Decoded,
    ctx: SignContext,
    attrs: Vec<(&'static str, String)>,
    signed: Signed,
    key: VerifyingKey,
}

type Failed = (Obj, String, Reason, String);

fn failed(obj: Obj, object: String, e: Invalid) -> Failed {
    // A code the coordinator does not know is a schemas bug; never drop the file silently.
    let reason = Reason::from_code(e.code).unwrap_or(Reason::Schema);
    (obj, object, reason, e.detail)
}

/// Lists, fetches and checks the exchange of `epoch` and measures φ.
/// `only`: the objects `verify` recorded for this epoch.
pub async fn read_exchange(
    store: &Store,
    net: &NetworkFile,
    registry: &Registry,
    epoch: u64,
    partitions: usize,
    only: Option<&Recorded>,
) -> Result<Exchange> {
    let mut out = Exchange::default();
    let t = Instant::now();
    let dir = layout::exchange_dir(epoch);
    let listed = super::list_inputs(store, &dir, only).await?;
    let mut to_read = Vec::new();
    let mut objs: HashMap<String, Obj> = HashMap::new();
    for (object, meta) in listed {
        let rel = object
            .strip_prefix(&format!("{dir}/"))
            .unwrap_or(&object)
            .to_string();
        let Some(obj) = Obj::parse(&rel) else {
            out.rejections.push(reject(
                None,
                &object,
                Reason::UnexpectedObject,
                "exchange/epoch=<e>/ holds only queries/uid=<j>.parquet, \
                 activations/query=<j>/uid=<i>.parquet, gradients/query=<j>/uid=<i>.parquet \
                 and metrics/uid=<i>.parquet",
            ));
            out.inputs.push(InputObject::unread(
                object,
                None,
                stray_kind(&rel),
                meta.size,
            ));
            continue;
        };
        let uid = obj.writer();
        if let Some((reason, detail)) = super::unread_reason(meta.size, uid, registry, &net.params)
        {
            out.rejections
                .push(reject(Some(uid), &object, reason, detail));
            out.inputs.push(InputObject::unread(
                object,
                Some(uid),
                obj.kind(),
                meta.size,
            ));
            continue;
        }
        objs.insert(object.clone(), obj);
        to_read.push(object);
    }
    out.timings.list = t.elapsed();

    let t = Instant::now();
    let pb = crate::progress::bar(to_read.len() as u64, "reading the exchange");
    let fetched = super::fetch_all(store, to_read, 64, &pb).await?;
    pb.finish_and_clear();
    out.timings.read = t.elapsed();

    let t = Instant::now();
    let id = net.id();
    let opened: Vec<(InputObject, std::result::Result<Opened, Failed>)> = fetched
        .into_par_iter()
        .map(|f| {
            let obj = objs[&f.object];
            let input = InputObject {
                object: f.object.clone(),
                uid: Some(obj.writer()),
                kind: obj.kind(),
                bytes: f.bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(&f.bytes)),
            };
            (input, open(obj, f.object, f.bytes, registry, id, epoch))
        })
        .collect();
    let mut candidates = Vec::with_capacity(opened.len());
    let mut failures: Vec<Failed> = Vec::new();
    for (input, r) in opened {
        if matches!(input.kind, "activations" | "gradients") {
            out.timings.tensor_bytes += input.bytes;
        }
        out.inputs.push(input);
        match r {
            Ok(o) => candidates.push(o),
            Err(f) => failures.push(f),
        }
    }
    let items: Vec<_> = candidates
        .iter()
        .map(|o| (o.signed.msg, o.signed.sig, o.key))
        .collect();
    let verdicts = super::verify_batched(&items);
    let mut by_kind: [Vec<Opened>; 4] = Default::default();
    for (o, ok) in candidates.into_iter().zip(verdicts) {
        if !ok {
            let e = exchange::signature_failure(&o.d, &o.ctx, &o.attrs, &o.signed.sig, &o.key);
            failures.push(failed(o.obj, o.object, e));
            continue;
        }
        let k = match o.obj {
            Obj::Queries(_) => 0,
            Obj::Metrics(_) => 1,
            Obj::Activations(..) => 2,
            Obj::Gradients(..) => 3,
        };
        by_kind[k].push(o);
    }
    let [queries, metrics, activations, gradients] = by_kind;
    let checked = check_all(
        &net.params,
        queries,
        metrics,
        activations,
        gradients,
        &mut failures,
    );
    out.metrics = checked.metrics;
    out.timings.verify = t.elapsed();

    let t = Instant::now();
    out.scores = scores(checked.activations, checked.gradients, partitions).await?;
    out.timings.score = t.elapsed();

    for (obj, object, reason, detail) in failures {
        out.rejections
            .push(reject(Some(obj.writer()), &object, reason, detail));
    }
    out.rejections.sort_by(|a, b| a.object.cmp(&b.object));
    out.inputs.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(out)
}

fn open(
    obj: Obj,
    object: String,
    bytes: bytes::Bytes,
    registry: &Registry,
    network_id: [u8; 32],
    epoch: u64,
) -> std::result::Result<Opened, Failed> {
    let d = match exchange::decode(&object, bytes) {
        Ok(d) => d,
        Err(e) => return Err(failed(obj, object, e)),
    };
    let (ctx, attrs) = obj.context(network_id, epoch);
    let signed = match exchange::signed(&d, &ctx, &attrs) {
        Ok(s) => s,
        Err(e) => return Err(failed(obj, object, e)),
    };
    let index = registry
        .index(obj.writer())
        .expect("only registered writers are fetched");
    let key = match registry.peers()[index as usize].public_key.verifying_key() {
        Ok(k) => k,
        Err(e) => return Err((obj, object, Reason::BadSignature, e.to_string())),
    };
    Ok(Opened {
        obj,
        object,
        d,
        ctx,
        attrs,
        signed,
        key,
    })
}

struct Checked {
    metrics: Vec<(u32, Metrics)>,
    activations: Pairs,
    gradients: Pairs,
}

/// The shared checks, in dependency order: an answer needs its query batch,
/// a gradient needs the answer it differentiates.
fn check_all(
    params: &Params,
    queries: Vec<Opened>,
    metrics: Vec<Opened>,
    activations: Vec<Opened>,
    gradients: Vec<Opened>,
    failures: &mut Vec<Failed>,
) -> Checked {
    let width = params.seq_len as usize * params.out_dim as usize;
    let mut valid_queries: HashMap<u32, Queries> = HashMap::new();
    let checked: Vec<_> = queries
        .into_par_iter()
        .map(|o| {
            let r = exchange::check_queries(&o.d, o.obj.writer(), params.seq_len as usize);
            (o.obj, o.object, r)
        })
        .collect();
    for (obj, object, r) in checked {
        match r {
            Ok(q) => {
                valid_queries.insert(obj.writer(), q);
            }
            Err(e) => failures.push(failed(obj, object, e)),
        }
    }
    let mut out = Checked {
        metrics: vec![],
        activations: vec![],
        gradients: vec![],
    };
    for o in metrics {
        match exchange::check_metrics(&o.d) {
            Ok(m) => out.metrics.push((o.obj.writer(), m)),
            Err(e) => failures.push(failed(o.obj, o.object, e)),
        }
    }
    out.metrics.sort_by_key(|m| m.0);

    let checked: Vec<_> = activations
        .into_par_iter()
        .map(|o| {
            let Obj::Activations(j, i) = o.obj else {
                unreachable!("sorted by kind")
            };
            let allowed: Vec<u32> = valid_queries
                .get(&j)
                .map(|q| q.for_peer(i).into_iter().map(|e| e.0).collect())
                .unwrap_or_default();
            let r = if allowed.is_empty() {
                Err(no_query(&format!(
                    "peer {j} has no valid query batch addressing examples to {i} in this epoch"
                )))
            } else {
                exchange::check_tensor(&o.d, width, &allowed)
            };
            ((j, i), o.obj, o.object, r)
        })
        .collect();
    for (pair, obj, object, r) in checked {
        match r {
            Ok(t) => out.activations.push((pair, t)),
            Err(e) => failures.push(failed(obj, object, e)),
        }
    }
    out.activations.sort_by_key(|p| p.0);

    let answered: HashMap<(u32, u32), &[u32]> = out
        .activations
        .iter()
        .map(|(p, t)| (*p, t.example.as_slice()))
        .collect();
    let checked: Vec<_> = gradients
        .into_par_iter()
        .map(|o| {
            let Obj::Gradients(j, i) = o.obj else {
                unreachable!("sorted by kind")
            };
            let r = match answered.get(&(j, i)) {
                Some(allowed) => exchange::check_tensor(&o.d, width, allowed),
                None => Err(no_query(&format!(
                    "peer {i} has no valid answer to peer {j}'s query in this epoch"
                ))),
            };
            ((j, i), o.obj, o.object, r)
        })
        .collect();
    for (pair, obj, object, r) in checked {
        match r {
            Ok(t) => out.gradients.push((pair, t)),
            Err(e) => failures.push(failed(obj, object, e)),
        }
    }
    out.gradients.sort_by_key(|p| p.0);
    out
}

fn no_query(detail: &str) -> Invalid {
    Invalid {
        code: Reason::NoQuery.code(),
        detail: detail.to_string(),
    }
}
