//! Access policies for a shared bucket (AWS S3, MinIO): one per role, made from
//! the layout's own patterns ([`crate::layout::Authored::pattern`]), so a
//! peer may write only the objects it authors and delete nothing.
//!
//! Signatures already stop a peer from forging another's submission; these
//! policies stop it from overwriting or deleting one, which a signature can't.
//!
//! ```
//! use faceblock_schemas::policy::{self, Bucket};
//! let b = Bucket::new("my-bucket", "my-network").unwrap();
//! let p = policy::peer(&b, Some(3), None).unwrap();
//! let text = p.to_string();
//! assert!(text.contains("arn:aws:s3:::my-bucket/my-network/submissions/epoch=*/weights/uid=3.parquet"));
//! assert!(!text.contains("s3:DeleteObject"));
//! ```

use serde_json::{json, Value};

use crate::layout::{self, Authored, ANY};
use crate::{Error, Result};

/// The bucket and the prefix that hold one network (`s3://bucket/prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    name: String,
    prefix: String,
}

impl Bucket {
    /// A bucket name and a network prefix (slashes at either end are
    /// dropped; empty means the bucket's root).
    pub fn new(name: &str, prefix: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Policy(format!("bucket '{name}': {reason}"));
        if name.is_empty() || name.contains('/') || name.contains(ANY) {
            return Err(bad("a bucket name is one path segment without '/' or '*'"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.contains(ANY) {
            return Err(Error::Policy(format!(
                "prefix '{prefix}': a network prefix can't contain '*'"
            )));
        }
        Ok(Self {
            name: name.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The ARN of the bucket itself (what `s3:ListBucket` applies to).
    pub fn arn(&self) -> String {
        format!("arn:aws:s3:::{}", self.name)
    }

    /// The ARN of a layout path or pattern under the network's prefix.
    pub fn object_arn(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            format!("{}/{rel}", self.arn())
        } else {
            format!("{}/{}/{rel}", self.arn(), self.prefix)
        }
    }

    fn arns<S: AsRef<str>>(&self, rels: impl IntoIterator<Item = S>) -> Vec<String> {
        rels.into_iter()
            .map(|r| self.object_arn(r.as_ref()))
            .collect()
    }
}

/// In an ARN `*` matches any characters, `/` included, so a pattern like
/// `submissions/epoch=*/weights/uid=3.parquet` would also let peer 3 write
/// `submissions/epoch=7/weights/uid=4.parquet/weights/uid=3.parquet`. That
/// key is not peer 4's object, but on a store with folders (MinIO, a
/// filesystem gateway) it makes `.../uid=4.parquet` a folder, and peer 4's
/// own row can then never be written. The deny statement built from these
/// patterns keeps every `*` within one path segment: for each `*`, the same
/// pattern with that `*` spanning a `/`.
fn spanning_segments(pattern: &str) -> Vec<String> {
    let pieces: Vec<&str> = pattern.split(ANY).collect();
    (1..pieces.len())
        .map(|i| {
            let mut out = String::new();
            for (k, piece) in pieces.iter().enumerate() {
                if k > 0 {
                    out.push_str(if k == i { "*/*" } else { ANY });
                }
                out.push_str(piece);
            }
            out
        })
        .collect()
}

fn statement(sid: &str, effect: &str, actions: &[&str], resources: Vec<String>) -> Value {
    json!({
        "Sid": sid,
        "Effect": effect,
        "Action": actions,
        "Resource": resources,
    })
}

fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// Listing shows object names, never their contents. Peers may list the
/// bucket because S3 answers a GET of a missing object with 403 instead of
/// 404 to a caller that may not list it, and peers routinely look for
/// objects that may not be there yet (answers, their uid marker); a 403
/// there would read as a refused credential.
fn list(bucket: &Bucket) -> Value {
    statement("List", "Allow", &["s3:ListBucket"], vec![bucket.arn()])
}

/// The policy of a peer. `uid`: its objects once registered (weights,
/// queries, activations it answers, gradients it sends, metrics) and what it
/// reads of others (every query batch, the answers to its queries, the
/// gradients sent to it). `public_key_hex`: its join request, before it has
/// a uid. At least one of the two. Every peer reads the network files, the
/// uid markers and the ledger (the market's public record); no peer deletes.
pub fn peer(bucket: &Bucket, uid: Option<u32>, public_key_hex: Option<&str>) -> Result<Value> {
    if uid.is_none() && public_key_hex.is_none() {
        return Err(Error::Policy(
            "a peer policy needs --uid (a registered peer) or --public-key (a peer asking to join), or both".into(),
        ));
    }
    if let Some(pk) = public_key_hex {
        if layout::parse_join_file(&format!("{pk}.parquet")).is_none() {
            return Err(Error::Policy(format!(
                "public key '{pk}': expected 64 hex characters, as `faceblock-peer keygen` prints"
            )));
        }
    }
    let own: Vec<String> = Authored::ALL
        .iter()
        .filter_map(|k| k.pattern(uid, public_key_hex))
        .collect();
    let mut reads = vec![
        format!("{}/*", layout::NETWORK_DIR),
        format!("{}/*", layout::UID_MARKERS),
        format!("{}/*", layout::LEDGER),
    ];
    if let Some(uid) = uid {
        reads.extend(layout::peer_reads(uid));
    }
    let spans: Vec<String> = own.iter().flat_map(|p| spanning_segments(p)).collect();
    let mut statements = vec![
        list(bucket),
        statement(
            "ReadShared",
            "Allow",
            &["s3:GetObject"],
            bucket.arns(&reads),
        ),
        statement(
            "WriteOwn",
            "Allow",
            &["s3:GetObject", "s3:PutObject"],
            bucket.arns(&own),
        ),
    ];
    if !spans.is_empty() {
        statements.push(statement(
            "OneSegmentPerWildcard",
            "Deny",
            &["s3:PutObject"],
            bucket.arns(&spans),
        ));
    }
    Ok(document(statements))
}

/// The policy of the coordinator: it reads everything under the prefix and
/// writes the ledger (its tables and epoch claims), the network files and
/// the uid markers of joined peers. It deletes nothing outside the ledger.
pub fn coordinator(bucket: &Bucket) -> Value {
    document(vec![
        list(bucket),
        statement("ReadAll", "Allow", &["s3:GetObject"], bucket.arns(["*"])),
        statement(
            "WriteLedger",
            "Allow",
            &["s3:PutObject", "s3:AbortMultipartUpload"],
            bucket.arns([
                format!("{}/*", layout::LEDGER),
                format!("{}/*", layout::NETWORK_DIR),
                format!("{}/*", layout::UID_MARKERS),
            ]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IAM's wildcard match: `*` is any run of characters, `/` included.
    fn matches(pattern: &str, key: &str) -> bool {
        let (p, k) = (pattern.as_bytes(), key.as_bytes());
        let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
        while j < k.len() {
            if i < p.len() && p[i] == b'*' {
                star = Some(i);
                mark = j;
                i += 1;
            } else if i < p.len() && p[i] == k[j] {
                i += 1;
                j += 1;
            } else if let Some(s) = star {
                i = s + 1;
                mark += 1;
                j = mark;
            } else {
                return false;
            }
        }
        p[i..].iter().all(|&c| c == b'*')
    }

    fn resources(p: &Value, sid: &str) -> Vec<String> {
        p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .map(|s| {
                s["Resource"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What an IAM evaluation of `PutObject` on `key` says for this policy.
    fn may_put(p: &Value, b: &Bucket, key: &str) -> bool {
        let arn = b.object_arn(key);
        let allowed = resources(p, "WriteOwn").iter().any(|r| matches(r, &arn));
        let denied = resources(p, "OneSegmentPerWildcard")
            .iter()
            .any(|r| matches(r, &arn));
        allowed && !denied
    }

    #[test]
    fn a_peer_writes_its_own_objects_and_no_one_elses() {
        let b = Bucket::new("bkt", "/net/").unwrap();
        let (pk3, pk4) = ("a3".repeat(32), "b4".repeat(32));
        let p = peer(&b, Some(3), Some(&pk3)).unwrap();
        for kind in Authored::ALL {
            for (e, other) in [(0, 4), (12, 13), (7, 30)] {
                let own = kind.path(e, 3, other, &pk3);
                assert!(may_put(&p, &b, &own), "{own}");
                for (author, pk) in [(4, &pk4), (13, &pk4), (30, &pk4), (33, &pk4)] {
                    let theirs = kind.path(e, author, 3, pk);
                    assert!(!may_put(&p, &b, &theirs), "{theirs}");
                    let nested = format!("{theirs}/{}", kind.path(e, 3, other, &pk3));
                    if kind != Authored::JoinRequest {
                        assert!(!may_put(&p, &b, &nested), "{nested}");
                    }
                }
            }
        }
        let text = p.to_string();
        assert!(!text.contains("Delete"), "{text}");
        assert!(text.contains("arn:aws:s3:::bkt/net/ledger/*"), "{text}");
    }

    #[test]
    fn wildcards_stay_within_a_segment() {
        assert_eq!(
            spanning_segments("a/x=*/b/y=*/c"),
            vec!["a/x=*/*/b/y=*/c", "a/x=*/b/y=*/*/c"]
        );
        assert!(spanning_segments("a/b").is_empty());
    }

    #[test]
    fn roles_need_an_identity_and_sane_names() {
        let b = Bucket::new("bkt", "").unwrap();
        assert!(peer(&b, None, None).is_err());
        assert!(peer(&b, None, Some("xyz")).is_err());
        assert_eq!(b.object_arn("ledger/*"), "arn:aws:s3:::bkt/ledger/*");
        assert!(Bucket::new("a/b", "x").is_err());
        assert!(Bucket::new("b", "x/*").is_err());
        let c = coordinator(&b).to_string();
        assert!(c.contains("arn:aws:s3:::bkt/registry/uids/*"), "{c}");
        assert!(!c.contains("registry/requests"), "{c}");
    }
}
