//! Reading what peers wrote for an epoch (SPEC 5.1, 7): list, fetch in
//! parallel, decode, check signatures in batches, validate values. Every
//! object ends up either accepted or as one rejection with a reason code;
//! nothing a peer writes can fail the epoch.
//!
//! One module per input kind: [`weights`] (SPEC 5.1), [`join`] (join
//! requests) and [`exchange`] (queries, activations, gradients and metrics,
//! SPEC 5.3); this module holds what they share: fetching, batched signature
//! checks, and the records every object leaves behind.

pub mod exchange;
pub mod join;
pub mod weights;

use std::collections::HashMap;

use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use faceblock_schemas::signing;
use faceblock_schemas::{parquet_io, Params, Store};
use futures::{StreamExt, TryStreamExt};
use rayon::prelude::*;

use crate::reason::Reason;
use crate::registry::Registry;
use crate::Result;

pub use join::{read_join_requests, JoinRequest};
pub use weights::{read_weights, validate_row, AcceptedRow, Ingested, Source};

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

/// Lists `dir` as (layout path, object), keeping only the objects `verify`
/// recorded when `only` is given: every input kind filters its listing the same way.
pub(crate) async fn list_inputs(
    store: &Store,
    dir: &str,
    only: Option<&Recorded>,
) -> Result<Vec<(String, object_store::ObjectMeta)>> {
    Ok(store
        .list(dir)
        .await?
        .into_iter()
        .map(|meta| (store.relative(&meta.location), meta))
        .filter(|(object, _)| only.is_none_or(|o| o.contains_key(object)))
        .collect())
}

/// Concurrent fetches; a file that vanished since listing is treated as absent.
pub async fn fetch_all(
    store: &Store,
    objects: Vec<String>,
    concurrency: usize,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<Fetched>> {
    fetch_map(store, objects, concurrency, progress, |f| f).await
}

/// Fetches `objects` and maps each through `f`, dropping its bytes at once.
/// From a local directory, [`LOCAL_READERS`] threads each read a file and
/// map it, so the files are never all in memory together and reading
/// overlaps decoding; from an object store, concurrent GETs, then `f` in
/// parallel. A file that vanished since listing is treated as absent.
pub async fn fetch_map<T: Send>(
    store: &Store,
    objects: Vec<String>,
    concurrency: usize,
    progress: &indicatif::ProgressBar,
    f: impl Fn(Fetched) -> T + Sync + Send,
) -> Result<Vec<T>> {
    if store.local_path("").is_some() {
        return read_local(store, objects, progress, &f);
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
    Ok(fetched
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(f)
        .collect())
}

/// Threads that read local files and map them. A file not in the page
/// cache keeps its thread waiting on the disk, so reading on the cores
/// alone, two files at a time, left the disk idle: 100,000 cold weight
/// files took 6.3–8.9 s to read and decode on two threads, 2.5–3.5 s on
/// 16, and as fast as two when warm (BENCHMARKS.md, eleventh session). At most
/// this many files are in memory at once.
const LOCAL_READERS: usize = 16;

/// The readers' pool, started once; `None` where its threads cannot start
/// (a thread limit), and the cores read as they did before.
fn readers() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(LOCAL_READERS)
            .thread_name(|i| format!("faceblock-read-{i}"))
            .build()
            .map_err(|e| {
                tracing::warn!(error = %e, "reader threads did not start; the cores read");
            })
            .ok()
    })
    .as_ref()
}

/// The local path of [`fetch_map`]: each reader reads a file and maps it.
fn read_local<T: Send>(
    store: &Store,
    objects: Vec<String>,
    progress: &indicatif::ProgressBar,
    f: &(impl Fn(Fetched) -> T + Sync + Send),
) -> Result<Vec<T>> {
    let read_all = || -> Vec<Result<Option<T>>> {
        objects
            .into_par_iter()
            .map(|object| {
                let path = store.local_path(&object).expect("local store");
                let r = match std::fs::read(&path) {
                    Ok(b) => Ok(Some(f(Fetched {
                        object,
                        bytes: Bytes::from(b),
                    }))),
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
            .collect()
    };
    let done = match readers() {
        Some(pool) => pool.install(read_all),
        None => read_all(),
    };
    let mut out = Vec::with_capacity(done.len());
    for r in done {
        out.extend(r?);
    }
    Ok(out)
}

/// Signatures per batch check. Past about 190 points the batch's
/// multiscalar multiplication switches to Pippenger's method, which is
/// cheaper per signature than the smaller batches' Straus.
const SIGNATURE_BATCH: usize = 256;

/// Checks signatures [`SIGNATURE_BATCH`] at a time; a failing batch is
/// halved until the culprits stand alone, so one bad signature costs a few
/// more batch checks, not a batch of single ones.
pub(crate) fn verify_batched(items: &[([u8; 32], [u8; 64], VerifyingKey)]) -> Vec<bool> {
    fn check(chunk: &[([u8; 32], [u8; 64], VerifyingKey)], out: &mut Vec<bool>) {
        let msgs: Vec<[u8; 32]> = chunk.iter().map(|c| c.0).collect();
        let sigs: Vec<[u8; 64]> = chunk.iter().map(|c| c.1).collect();
        let keys: Vec<VerifyingKey> = chunk.iter().map(|c| c.2).collect();
        if signing::verify_many(&msgs, &sigs, &keys) {
            out.resize(out.len() + chunk.len(), true);
        } else if chunk.len() <= 4 {
            out.extend(chunk.iter().map(|c| signing::verify_one(&c.0, &c.1, &c.2)));
        } else {
            let (a, b) = chunk.split_at(chunk.len() / 2);
            check(a, out);
            check(b, out);
        }
    }
    items
        .par_chunks(SIGNATURE_BATCH)
        .flat_map_iter(|chunk| {
            let mut out = Vec::with_capacity(chunk.len());
            check(chunk, &mut out);
            out
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

/// Decodes Parquet bytes, turning a decoder panic on hostile input into `unreadable`.
pub fn decode_guarded(object: &str, bytes: Bytes) -> Result<parquet_io::Decoded, (Reason, String)> {
    faceblock_schemas::exchange::decode(object, bytes).map_err(|e| {
        (
            Reason::from_code(e.code).unwrap_or(Reason::Unreadable),
            e.detail,
        )
    })
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    /// Reading a local store on the reader threads returns every file that
    /// exists, once, in the order asked; a file that vanished since listing
    /// is left out, and other read errors fail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_files_are_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let n = 1337;
        let mut objects = Vec::new();
        for i in 0..n {
            let object = format!("in/f{i:05}");
            if i % 300 != 7 {
                let path = store.local_path(&object).unwrap();
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, vec![b'x'; i % 13]).unwrap();
            }
            objects.push(object);
        }
        let pb = indicatif::ProgressBar::hidden();
        let got = fetch_map(&store, objects.clone(), 8, &pb, |f| {
            (f.object, f.bytes.len())
        })
        .await
        .unwrap();
        let want: Vec<(String, usize)> = (0..n)
            .filter(|i| i % 300 != 7)
            .map(|i| (format!("in/f{i:05}"), i % 13))
            .collect();
        assert_eq!(got, want);
        assert_eq!(pb.position(), n as u64);
        // A folder where a file should be is an error, not an absence.
        let path = store.local_path("in/f00007").unwrap();
        std::fs::create_dir(path).unwrap();
        let err = fetch_map(&store, objects, 8, &pb, |f| f.object).await;
        assert!(err.is_err());
    }

    /// Every signature gets its own verdict, whichever batch it falls in:
    /// bad ones at batch borders, several in one batch, none in others.
    #[test]
    fn batched_checks_find_each_bad_signature() {
        let n = 3 * SIGNATURE_BATCH + 17;
        let bad = [0, 5, SIGNATURE_BATCH - 1, SIGNATURE_BATCH, 300, 301, n - 1];
        let items: Vec<_> = (0..n)
            .map(|i| {
                let key = SigningKey::from_bytes(&[(i % 7) as u8 + 1; 32]);
                let msg = [i as u8; 32];
                let mut sig = key.sign(&msg).to_bytes();
                if bad.contains(&i) {
                    sig[40] ^= 1;
                }
                (msg, sig, key.verifying_key())
            })
            .collect();
        let got = verify_batched(&items);
        let want: Vec<bool> = (0..n).map(|i| !bad.contains(&i)).collect();
        assert_eq!(got, want);
    }
}
