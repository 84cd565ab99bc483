//! Identities and signatures (SPEC 3).
//!
//! A signature covers a SHA-256 over a canonical encoding of the *values* of a
//! submission plus its context (kind, network id, epoch, uid, attributes), not
//! the file bytes: the same values re-encoded still verify, while moving a file
//! to another peer's path, epoch or network breaks it.
//!
//! ```
//! use faceblock_schemas::signing::{Keypair, SignContext, Kind};
//! use faceblock_schemas::schema::weights_batch;
//!
//! let key = Keypair::generate();
//! let batch = weights_batch(&[3, 7], &[0.5, 0.25]);
//! let ctx = SignContext { kind: Kind::Weights, network_id: [9; 32], epoch: 4, uid: 1 };
//! let sig = key.sign_batch(&ctx, &[], &batch);
//! assert!(key.public().verify_batch(&ctx, &[], &batch, &sig).is_ok());
//! // The same row replayed into epoch 5 does not verify.
//! let moved = SignContext { epoch: 5, ..ctx };
//! assert!(key.public().verify_batch(&moved, &[], &batch, &sig).is_err());
//! ```

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type, UInt8Type,
};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Which kind of object a signature is for; part of the signed message so a
/// signature for one kind can never pass as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A weight row.
    Weights,
    /// A join request.
    Join,
    /// A query batch.
    Queries,
    /// Activations answering a query.
    Activations,
    /// Gradients sent back to an answering peer.
    Gradients,
    /// Self-reported metrics.
    Metrics,
}

impl Kind {
    fn tag(self) -> &'static [u8] {
        match self {
            Kind::Weights => b"weights",
            Kind::Join => b"join",
            Kind::Queries => b"queries",
            Kind::Activations => b"activations",
            Kind::Gradients => b"gradients",
            Kind::Metrics => b"metrics",
        }
    }
}

/// Where a submission belongs: signing over it stops forgery, moves and replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignContext {
    /// The object's kind.
    pub kind: Kind,
    /// SHA-256 of the canonical params and genesis.
    pub network_id: [u8; 32],
    /// The epoch it is for (0 for join requests, which carry no epoch).
    pub epoch: u64,
    /// The writer's uid (0 for join requests, which have none yet).
    pub uid: u32,
}

/// An ed25519 public key: a peer's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Parses lower- or upper-case hex.
    pub fn from_hex(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Key {
            what: s.to_string(),
            reason: reason.to_string(),
        };
        let bytes = hex::decode(s.trim()).map_err(|e| bad(&e.to_string()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad("a public key is 32 bytes (64 hex characters)"))?;
        VerifyingKey::from_bytes(&arr).map_err(|_| bad("not a valid ed25519 point"))?;
        Ok(Self(arr))
    }

    /// Parses hex read back from the ledger's `registry`, whose keys were
    /// checked to be ed25519 points when their peers joined: the point is
    /// not decompressed again (about 9 µs a key, seconds for a million
    /// peers). A key damaged since still fails, at [`Self::verifying_key`].
    pub fn from_registry_hex(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Key {
            what: s.to_string(),
            reason: reason.to_string(),
        };
        let mut arr = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut arr)
            .map_err(|_| bad("a public key is 32 bytes (64 hex characters)"))?;
        Ok(Self(arr))
    }

    /// Lower-case hex, the form used in paths and tables.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The dalek key, for batch verification.
    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| Error::Key {
            what: self.to_hex(),
            reason: "not a valid ed25519 point".into(),
        })
    }

    /// Verifies a signature over `batch` in `ctx`.
    pub fn verify_batch(
        &self,
        ctx: &SignContext,
        attrs: &[(&str, &str)],
        batch: &RecordBatch,
        signature: &[u8; 64],
    ) -> Result<()> {
        let msg = message(ctx, attrs, batch);
        self.verifying_key()?
            .verify(&msg, &Signature::from_bytes(signature))
            .map_err(|e| Error::Signature(e.to_string()))
    }
}

/// A peer's signing key.
pub struct Keypair(SigningKey);

impl Keypair {
    /// A fresh key from the OS random source.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// A deterministic key from a seed, for tests and benchmarks.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `batch` in `ctx`; the 64 signature bytes go into the file's metadata.
    pub fn sign_batch(
        &self,
        ctx: &SignContext,
        attrs: &[(&str, &str)],
        batch: &RecordBatch,
    ) -> [u8; 64] {
        self.0.sign(&message(ctx, attrs, batch)).to_bytes()
    }

    /// Reads a key file written by [`Keypair::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        let bad = |reason: &str| Error::Key {
            what: path.display().to_string(),
            reason: reason.to_string(),
        };
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| bad("the file holds no key"))?;
        let bytes = hex::decode(line).map_err(|e| bad(&format!("not hex: {e}")))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad("a secret key is 32 bytes (64 hex characters)"))?;
        Ok(Self::from_seed(seed))
    }

    /// Writes the secret seed as hex, readable by the owner only; refuses to
    /// overwrite so a key (and the stake it holds) is never lost by accident.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io)?;
        writeln!(
            f,
            "# faceblock peer secret key; public key {}\n{}",
            self.public().to_hex(),
            hex::encode(self.0.to_bytes())
        )
        .map_err(io)?;
        Ok(())
    }
}

/// The 32-byte message a signature covers.
pub fn message(ctx: &SignContext, attrs: &[(&str, &str)], batch: &RecordBatch) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"faceblock/v1\0");
    h.update(ctx.kind.tag());
    h.update([0]);
    h.update(ctx.network_id);
    h.update(ctx.epoch.to_le_bytes());
    h.update(ctx.uid.to_le_bytes());
    let mut attrs: Vec<_> = attrs.to_vec();
    attrs.sort();
    h.update((attrs.len() as u64).to_le_bytes());
    for (k, v) in attrs {
        put_str(&mut h, k);
        put_str(&mut h, v);
    }
    hash_batch(&mut h, batch);
    h.finalize().into()
}

fn put_str(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// Feeds a canonical encoding of a batch's values (names, types, nulls and
/// values in row order) into `h`; independent of how the batch was encoded.
pub fn hash_batch(h: &mut Sha256, batch: &RecordBatch) {
    h.update((batch.num_rows() as u64).to_le_bytes());
    h.update((batch.num_columns() as u64).to_le_bytes());
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        put_str(h, field.name());
        put_str(h, &field.data_type().to_string());
        hash_array(h, col.as_ref());
    }
}

fn hash_array(h: &mut Sha256, a: &dyn Array) {
    if a.null_count() > 0 {
        for i in 0..a.len() {
            h.update([a.is_valid(i) as u8]);
        }
    }
    // Values are hashed as little-endian bytes; on little-endian machines that
    // is the buffer itself, hashed in one call.
    macro_rules! prim {
        ($t:ty) => {{
            let values = a.as_primitive::<$t>().values();
            if cfg!(target_endian = "little") {
                h.update(values.inner().as_slice());
            } else {
                for v in values.iter() {
                    h.update(v.to_le_bytes());
                }
            }
        }};
    }
    match a.data_type() {
        DataType::UInt8 => h.update(a.as_primitive::<UInt8Type>().values()),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::Float32 => prim!(Float32Type),
        DataType::Float64 => prim!(Float64Type),
        DataType::Utf8 => {
            for v in a.as_string::<i32>().iter() {
                put_str(h, v.unwrap_or(""));
            }
        }
        DataType::Binary => {
            for v in a.as_binary::<i32>().iter() {
                let v = v.unwrap_or(&[]);
                h.update((v.len() as u64).to_le_bytes());
                h.update(v);
            }
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            for o in l.value_offsets() {
                h.update(o.to_le_bytes());
            }
            hash_array(h, l.values().as_ref());
        }
        DataType::FixedSizeList(_, _) => {
            hash_array(h, a.as_fixed_size_list().values().as_ref());
        }
        // Any other type is hashed through its Arrow data buffers; kept only so a
        // new column type can't make signing panic.
        _ => {
            let d = a.to_data();
            h.update((d.offset() as u64).to_le_bytes());
            for b in d.buffers() {
                h.update(b.as_slice());
            }
        }
    }
}

/// Parses a signature from hex (as stored in Parquet metadata).
pub fn signature_from_hex(s: &str) -> Result<[u8; 64]> {
    let bytes = hex::decode(s).map_err(|e| Error::Signature(format!("not hex: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| Error::Signature("a signature is 64 bytes".into()))
}

/// Verifies many signatures at once (about twice as fast as one by one); on a
/// failure the caller falls back to single checks to find the culprits.
pub fn verify_many(messages: &[[u8; 32]], sigs: &[[u8; 64]], keys: &[VerifyingKey]) -> bool {
    let msgs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
    let sigs: Vec<Signature> = sigs.iter().map(Signature::from_bytes).collect();
    ed25519_dalek::verify_batch(&msgs, &sigs, keys).is_ok()
}

/// Verifies one precomputed message.
pub fn verify_one(message: &[u8; 32], sig: &[u8; 64], key: &VerifyingKey) -> bool {
    key.verify(message, &Signature::from_bytes(sig)).is_ok()
}

/// A peer's weight row for `epoch` as it goes into the store: its layout path
/// and the signed Parquet bytes (signature and epoch in the metadata). Tools
/// that write a network straight into a store (the benchmark generator, the
/// simulator) use this so their files are exactly what a peer would write.
pub fn signed_weights(
    key: &Keypair,
    network_id: [u8; 32],
    epoch: u64,
    uid: u32,
    dst: &[u32],
    weight: &[f64],
) -> Result<(String, bytes::Bytes)> {
    let batch = crate::schema::weights_batch(dst, weight);
    let ctx = SignContext {
        kind: Kind::Weights,
        network_id,
        epoch,
        uid,
    };
    let sig = key.sign_batch(&ctx, &[], &batch);
    let path = crate::layout::weights(epoch, uid);
    let bytes = crate::parquet_io::encode(
        &path,
        &batch,
        &[
            (crate::schema::SIGNATURE_KEY, hex::encode(sig)),
            (crate::schema::EPOCH_KEY, epoch.to_string()),
        ],
    )?;
    Ok((path, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::weights_batch;

    fn ctx() -> SignContext {
        SignContext {
            kind: Kind::Weights,
            network_id: [1; 32],
            epoch: 0,
            uid: 2,
        }
    }

    #[test]
    fn forged_moved_and_cross_network_fail() {
        let k = Keypair::from_seed([7; 32]);
        let b = weights_batch(&[1, 3], &[0.5, 0.5]);
        let sig = k.sign_batch(&ctx(), &[], &b);
        let p = k.public();
        assert!(p.verify_batch(&ctx(), &[], &b, &sig).is_ok());
        let moved = SignContext { uid: 3, ..ctx() };
        assert!(p.verify_batch(&moved, &[], &b, &sig).is_err());
        let other_net = SignContext {
            network_id: [2; 32],
            ..ctx()
        };
        assert!(p.verify_batch(&other_net, &[], &b, &sig).is_err());
        let changed = weights_batch(&[1, 3], &[0.5, 0.6]);
        assert!(p.verify_batch(&ctx(), &[], &changed, &sig).is_err());
        let other = Keypair::from_seed([8; 32]).public();
        assert!(other.verify_batch(&ctx(), &[], &b, &sig).is_err());
        assert!(p
            .verify_batch(&ctx(), &[("faceblock.source", "fisher")], &b, &sig)
            .is_err());
    }

    #[test]
    fn key_file_round_trip_and_no_overwrite() {
        let dir = std::env::temp_dir().join(format!("fb-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peer.key");
        let _ = std::fs::remove_file(&path);
        let k = Keypair::generate();
        k.save(&path).unwrap();
        assert_eq!(Keypair::load(&path).unwrap().public(), k.public());
        assert!(Keypair::generate().save(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn public_key_hex_is_checked() {
        assert!(PublicKey::from_hex("zz").is_err());
        assert!(PublicKey::from_hex(&"ab".repeat(16)).is_err());
        let k = Keypair::generate().public();
        assert_eq!(PublicKey::from_hex(&k.to_hex()).unwrap(), k);
    }

    /// Registry hex skips only the point check: lengths and hex are still
    /// refused, and a non-point fails where it is used.
    #[test]
    fn registry_hex_defers_the_point_check() {
        let k = Keypair::from_seed([3; 32]).public();
        assert_eq!(PublicKey::from_registry_hex(&k.to_hex()).unwrap(), k);
        assert!(PublicKey::from_registry_hex("abcd").is_err());
        assert!(PublicKey::from_registry_hex(&"zz".repeat(32)).is_err());
        let not_a_point = (0u8..=255)
            .map(|b| [b; 32])
            .find(|a| VerifyingKey::from_bytes(a).is_err())
            .expect("some 32-byte string is not a point");
        let hex = hex::encode(not_a_point);
        assert!(PublicKey::from_hex(&hex).is_err());
        let p = PublicKey::from_registry_hex(&hex).unwrap();
        assert!(p.verifying_key().is_err());
    }
}
