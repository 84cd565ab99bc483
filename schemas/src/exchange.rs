//! What peers exchange through the store each epoch (SPEC 2, 5.3, 9): query
//! batches, activations, gradients and metrics, their schemas, signatures and
//! the checks both sides run before trusting a file.
//!
//! The checks live here, not in the coordinator, because a peer must run the
//! same ones on the answers and gradients it reads: one hostile peer must not
//! be able to poison another's model any more than the ledger.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BinaryArray, Float32Array, Float64Array, ListArray, RecordBatch, UInt32Array,
    UInt64Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema, SchemaRef, UInt32Type};
use bytes::Bytes;

use crate::parquet_io::{self, Decoded};
use crate::schema::{EPOCH_KEY, SIGNATURE_KEY};
use crate::signing::{self, Keypair, Kind, PublicKey, SignContext};
use crate::Result;

/// Signed attribute naming whose query an activation file answers.
pub const QUERY_ATTR: &str = "faceblock.query";
/// Signed attribute naming the peer a gradient file is for.
pub const ANSWERER_ATTR: &str = "faceblock.answerer";

/// Why an exchange file can't be used; `code` is a SPEC 7 reason code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// `unreadable`, `schema`, `shape`, `non_finite`, `bad_signature`, `wrong_epoch`, `empty`.
    pub code: &'static str,
    /// What exactly was wrong.
    pub detail: String,
}

fn invalid(code: &'static str, detail: impl Into<String>) -> Invalid {
    Invalid {
        code,
        detail: detail.into(),
    }
}

/// A query batch: one row per (example, addressed peer), so the gating layer
/// may route every example to its own top-k peers.
pub fn queries_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("example", DataType::UInt32, false),
        Field::new("dst", DataType::UInt32, false),
        Field::new("tokens", DataType::Binary, false),
    ]))
}

/// Activations or gradients: one row per example, `seq_len × out_dim` values
/// in row-major order.
pub fn tensor_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("example", DataType::UInt32, false),
        Field::new(
            "values",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, false))),
            false,
        ),
    ]))
}

/// A peer's self-reported training figures for one epoch.
pub fn metrics_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("loss", DataType::Float64, false),
        Field::new("distill_loss", DataType::Float64, false),
        Field::new("examples", DataType::UInt64, false),
    ]))
}

/// The queries a peer sends: example ids, who each goes to, and its tokens.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Queries {
    /// Example id per row.
    pub example: Vec<u32>,
    /// Addressed peer per row.
    pub dst: Vec<u32>,
    /// `seq_len` tokens per row.
    pub tokens: Vec<Vec<u8>>,
}

impl Queries {
    /// Builds the batch.
    pub fn batch(&self) -> RecordBatch {
        RecordBatch::try_new(
            queries_schema(),
            vec![
                Arc::new(UInt32Array::from(self.example.clone())),
                Arc::new(UInt32Array::from(self.dst.clone())),
                Arc::new(BinaryArray::from_iter_values(self.tokens.iter())),
            ],
        )
        .expect("queries schema matches its columns")
    }

    /// The distinct examples addressed to `uid`, with their tokens, by example id.
    pub fn for_peer(&self, uid: u32) -> Vec<(u32, &[u8])> {
        let mut v: Vec<(u32, &[u8])> = self
            .dst
            .iter()
            .enumerate()
            .filter(|(_, d)| **d == uid)
            .map(|(r, _)| (self.example[r], self.tokens[r].as_slice()))
            .collect();
        v.sort_by_key(|e| e.0);
        v.dedup_by_key(|e| e.0);
        v
    }
}

/// Activations or gradients: examples and their flattened values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tensor {
    /// Example ids, ascending and distinct once checked.
    pub example: Vec<u32>,
    /// `example.len() × width` values.
    pub values: Vec<f32>,
    /// Values per example (`seq_len × out_dim`).
    pub width: usize,
}

impl Tensor {
    /// Builds the batch.
    pub fn batch(&self) -> RecordBatch {
        let n = self.example.len();
        let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(self.width, n));
        let list = ListArray::new(
            Arc::new(Field::new("item", DataType::Float32, false)),
            offsets,
            Arc::new(Float32Array::from(self.values.clone())),
            None,
        );
        RecordBatch::try_new(
            tensor_schema(),
            vec![
                Arc::new(UInt32Array::from(self.example.clone())),
                Arc::new(list),
            ],
        )
        .expect("tensor schema matches its columns")
    }

    /// The values of row `r`.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.width..(r + 1) * self.width]
    }
}

/// A peer's metrics for an epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Mean next-byte cross-entropy on its own data (nats).
    pub loss: f64,
    /// Mean distillation loss of its student.
    pub distill_loss: f64,
    /// Examples it trained on.
    pub examples: u64,
}

impl Metrics {
    /// Builds the batch.
    pub fn batch(&self) -> RecordBatch {
        RecordBatch::try_new(
            metrics_schema(),
            vec![
                Arc::new(Float64Array::from(vec![self.loss])),
                Arc::new(Float64Array::from(vec![self.distill_loss])),
                Arc::new(UInt64Array::from(vec![self.examples])),
            ],
        )
        .expect("metrics schema matches its columns")
    }
}

/// The signing context and attributes of an exchange object: the writer, and
/// for activations and gradients the other peer of the pair, so a file can't
/// be moved to another pair's path.
pub fn sign_context(
    kind: Kind,
    network_id: [u8; 32],
    epoch: u64,
    querier: u32,
    answerer: u32,
) -> (SignContext, Vec<(&'static str, String)>) {
    let (uid, attrs) = match kind {
        Kind::Activations => (answerer, vec![(QUERY_ATTR, querier.to_string())]),
        Kind::Gradients => (querier, vec![(ANSWERER_ATTR, answerer.to_string())]),
        _ => (querier, vec![]),
    };
    (
        SignContext {
            kind,
            network_id,
            epoch,
            uid,
        },
        attrs,
    )
}

fn attr_refs<'a>(attrs: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    attrs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Signs and encodes an exchange object. Values are written without
/// dictionaries: float tensors don't repeat, and plain pages decode fastest.
pub fn encode_signed(
    path: &str,
    batch: &RecordBatch,
    key: &Keypair,
    ctx: &SignContext,
    attrs: &[(&'static str, String)],
) -> Result<Bytes> {
    let sig = key.sign_batch(ctx, &attr_refs(attrs), batch);
    parquet_io::encode_plain(
        path,
        batch,
        &[
            (SIGNATURE_KEY, hex::encode(sig)),
            (EPOCH_KEY, ctx.epoch.to_string()),
        ],
    )
}

/// Decodes Parquet bytes; a decoder panic on hostile input becomes `unreadable`.
pub fn decode(object: &str, bytes: Bytes) -> std::result::Result<Decoded, Invalid> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        parquet_io::decode(object, bytes)
    })) {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(invalid("unreadable", e.to_string())),
        Err(_) => Err(invalid("unreadable", "the Parquet decoder gave up")),
    }
}

/// The signature and the message it must cover, for batched verification.
pub struct Signed {
    /// The 64 signature bytes.
    pub sig: [u8; 64],
    /// The message they must sign.
    pub msg: [u8; 32],
}

/// Extracts the signature of a decoded file and the message it must cover.
pub fn signed(
    d: &Decoded,
    ctx: &SignContext,
    attrs: &[(&'static str, String)],
) -> std::result::Result<Signed, Invalid> {
    let sig = d
        .metadata
        .get(SIGNATURE_KEY)
        .ok_or_else(|| {
            invalid(
                "bad_signature",
                format!("no '{SIGNATURE_KEY}' in the file's metadata"),
            )
        })
        .and_then(|s| {
            signing::signature_from_hex(s).map_err(|e| invalid("bad_signature", e.to_string()))
        })?;
    Ok(Signed {
        sig,
        msg: signing::message(ctx, &attr_refs(attrs), &d.batch),
    })
}

/// Checks one file's signature; a file validly signed for another epoch is a
/// `wrong_epoch` replay, anything else that fails is `bad_signature`.
pub fn verify(
    d: &Decoded,
    ctx: &SignContext,
    attrs: &[(&'static str, String)],
    key: &PublicKey,
) -> std::result::Result<(), Invalid> {
    let s = signed(d, ctx, attrs)?;
    let vk = key
        .verifying_key()
        .map_err(|e| invalid("bad_signature", e.to_string()))?;
    if signing::verify_one(&s.msg, &s.sig, &vk) {
        return Ok(());
    }
    Err(signature_failure(d, ctx, attrs, &s.sig, &vk))
}

/// Names a failed signature: a replay from another epoch, or a bad one.
pub fn signature_failure(
    d: &Decoded,
    ctx: &SignContext,
    attrs: &[(&'static str, String)],
    sig: &[u8; 64],
    key: &ed25519_dalek::VerifyingKey,
) -> Invalid {
    if let Some(e) = d
        .metadata
        .get(EPOCH_KEY)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|e| *e != ctx.epoch)
    {
        let c = SignContext { epoch: e, ..*ctx };
        if signing::verify_one(&signing::message(&c, &attr_refs(attrs), &d.batch), sig, key) {
            return invalid(
                "wrong_epoch",
                format!("signed for epoch {e}, found in epoch {}", ctx.epoch),
            );
        }
    }
    invalid(
        "bad_signature",
        format!(
            "signature does not verify for uid {} in epoch {} of this network",
            ctx.uid, ctx.epoch
        ),
    )
}

fn columns(d: &Decoded) -> Vec<(String, DataType)> {
    d.schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

fn expect_columns(d: &Decoded, want: &SchemaRef) -> std::result::Result<(), Invalid> {
    let got = columns(d);
    let ok = got.len() == want.fields().len()
        && got.iter().zip(want.fields()).all(|((n, t), f)| {
            n == f.name()
                && match (t, f.data_type()) {
                    (DataType::List(a), DataType::List(b)) => a.data_type() == b.data_type(),
                    (a, b) => a == b,
                }
        });
    if !ok {
        let show = |v: Vec<(String, String)>| {
            v.into_iter()
                .map(|(n, t)| format!("{n}: {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(invalid(
            "schema",
            format!(
                "expected columns {}; found {}",
                show(
                    want.fields()
                        .iter()
                        .map(|f| (f.name().clone(), f.data_type().to_string()))
                        .collect()
                ),
                show(got.into_iter().map(|(n, t)| (n, t.to_string())).collect())
            ),
        ));
    }
    if d.batch.columns().iter().any(|c| c.null_count() > 0) {
        return Err(invalid("schema", "no value may be null"));
    }
    Ok(())
}

/// Checks a decoded query batch: columns, `seq_len` tokens per row, no
/// (example, dst) pair twice, and no query addressed to its own writer.
pub fn check_queries(
    d: &Decoded,
    writer: u32,
    seq_len: usize,
) -> std::result::Result<Queries, Invalid> {
    expect_columns(d, &queries_schema())?;
    let b = &d.batch;
    if b.num_rows() == 0 {
        return Err(invalid("empty", "the query batch has no rows"));
    }
    let example = b.column(0).as_primitive::<UInt32Type>().values().to_vec();
    let dst = b.column(1).as_primitive::<UInt32Type>().values().to_vec();
    let tok = b.column(2).as_binary::<i32>();
    let mut tokens = Vec::with_capacity(b.num_rows());
    let mut seen = HashSet::new();
    for r in 0..b.num_rows() {
        let t = tok.value(r);
        if t.len() != seq_len {
            return Err(invalid(
                "shape",
                format!(
                    "example {} has {} tokens; this network's seq_len is {seq_len}",
                    example[r],
                    t.len()
                ),
            ));
        }
        if dst[r] == writer {
            return Err(invalid("shape", "a peer may not query itself"));
        }
        if !seen.insert((example[r], dst[r])) {
            return Err(invalid(
                "shape",
                format!("example {} is addressed to {} twice", example[r], dst[r]),
            ));
        }
        tokens.push(t.to_vec());
    }
    Ok(Queries {
        example,
        dst,
        tokens,
    })
}

/// Checks decoded activations or gradients: columns, `width` finite values per
/// row, distinct examples, each one of `allowed` (the examples of the pair's
/// query). Rows come back sorted by example.
pub fn check_tensor(
    d: &Decoded,
    width: usize,
    allowed: &[u32],
) -> std::result::Result<Tensor, Invalid> {
    expect_columns(d, &tensor_schema())?;
    let b = &d.batch;
    if b.num_rows() == 0 {
        return Err(invalid("empty", "no rows"));
    }
    let example = b.column(0).as_primitive::<UInt32Type>().values();
    let list = b.column(1).as_list::<i32>();
    if list.values().null_count() > 0 {
        return Err(invalid("schema", "no value may be null"));
    }
    let flat = list.values().as_primitive::<Float32Type>().values();
    let offsets = list.value_offsets();
    let mut order: Vec<usize> = (0..b.num_rows()).collect();
    order.sort_by_key(|r| example[*r]);
    let mut out = Tensor {
        example: Vec::with_capacity(order.len()),
        values: Vec::with_capacity(order.len() * width),
        width,
    };
    for (n, r) in order.iter().enumerate() {
        let (s, e) = (offsets[*r] as usize, offsets[*r + 1] as usize);
        let ex = example[*r];
        if e - s != width {
            return Err(invalid(
                "shape",
                format!(
                    "example {ex} has {} values; the network's shape needs {width} (seq_len × out_dim)",
                    e - s
                ),
            ));
        }
        if n > 0 && out.example[n - 1] == ex {
            return Err(invalid("shape", format!("example {ex} appears twice")));
        }
        if allowed.binary_search(&ex).is_err() {
            return Err(invalid(
                "shape",
                format!("example {ex} was not addressed to this peer"),
            ));
        }
        let v = &flat[s..e];
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(invalid(
                "non_finite",
                format!("example {ex} value {i} is {}", v[i]),
            ));
        }
        out.example.push(ex);
        out.values.extend_from_slice(v);
    }
    Ok(out)
}

/// Checks decoded metrics: one row of finite, non-negative figures.
pub fn check_metrics(d: &Decoded) -> std::result::Result<Metrics, Invalid> {
    expect_columns(d, &metrics_schema())?;
    let b = &d.batch;
    if b.num_rows() != 1 {
        return Err(invalid(
            "schema",
            format!("metrics are one row; found {}", b.num_rows()),
        ));
    }
    let loss = b.column(0).as_primitive::<Float64Type>().value(0);
    let distill_loss = b.column(1).as_primitive::<Float64Type>().value(0);
    let examples = b
        .column(2)
        .as_primitive::<arrow::datatypes::UInt64Type>()
        .value(0);
    if examples > i64::MAX as u64 {
        return Err(invalid(
            "schema",
            format!("examples {examples} is past the ledger's 2^63 - 1"),
        ));
    }
    for (name, v) in [("loss", loss), ("distill_loss", distill_loss)] {
        if !v.is_finite() {
            return Err(invalid("non_finite", format!("{name} is {v}")));
        }
        if v < 0.0 {
            return Err(invalid("negative", format!("{name} is {v}")));
        }
    }
    Ok(Metrics {
        loss,
        distill_loss,
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(examples: &[u32], width: usize, fill: f32) -> Tensor {
        Tensor {
            example: examples.to_vec(),
            values: vec![fill; examples.len() * width],
            width,
        }
    }

    fn round_trip(kind: Kind, batch: &RecordBatch, key: &Keypair) -> (Decoded, SignContext) {
        let (ctx, attrs) = sign_context(kind, [3; 32], 4, 1, 2);
        let bytes = encode_signed("t", batch, key, &ctx, &attrs).unwrap();
        (decode("t", bytes).unwrap(), ctx)
    }

    #[test]
    fn signed_tensor_round_trips_and_moves_fail() {
        let key = Keypair::from_seed([5; 32]);
        let t = tensor(&[4, 7], 6, 0.5);
        let (d, ctx) = round_trip(Kind::Activations, &t.batch(), &key);
        let (_, attrs) = sign_context(Kind::Activations, [3; 32], 4, 1, 2);
        verify(&d, &ctx, &attrs, &key.public()).unwrap();
        assert_eq!(check_tensor(&d, 6, &[4, 7, 9]).unwrap(), t);
        // The same file presented as an answer to another querier fails.
        let (moved, mattrs) = sign_context(Kind::Activations, [3; 32], 4, 3, 2);
        assert_eq!(
            verify(&d, &moved, &mattrs, &key.public()).unwrap_err().code,
            "bad_signature"
        );
        // And in another epoch it is a replay.
        let (later, lattrs) = sign_context(Kind::Activations, [3; 32], 5, 1, 2);
        assert_eq!(
            verify(&d, &later, &lattrs, &key.public()).unwrap_err().code,
            "wrong_epoch"
        );
    }

    #[test]
    fn tensor_checks_name_the_problem() {
        let key = Keypair::from_seed([5; 32]);
        let (d, _) = round_trip(Kind::Gradients, &tensor(&[1], 5, 1.0).batch(), &key);
        assert_eq!(check_tensor(&d, 6, &[1]).unwrap_err().code, "shape");
        assert_eq!(check_tensor(&d, 5, &[2]).unwrap_err().code, "shape");
        let (d, _) = round_trip(Kind::Gradients, &tensor(&[1], 5, f32::NAN).batch(), &key);
        assert_eq!(check_tensor(&d, 5, &[1]).unwrap_err().code, "non_finite");
        let (d, _) = round_trip(Kind::Gradients, &tensor(&[1, 1], 5, 0.0).batch(), &key);
        assert_eq!(check_tensor(&d, 5, &[1]).unwrap_err().code, "shape");
        let (d, _) = round_trip(
            Kind::Gradients,
            &Metrics {
                loss: 1.0,
                distill_loss: 0.5,
                examples: 3,
            }
            .batch(),
            &key,
        );
        assert_eq!(check_tensor(&d, 5, &[1]).unwrap_err().code, "schema");
        assert_eq!(check_metrics(&d).unwrap().examples, 3);
    }

    #[test]
    fn query_checks() {
        let key = Keypair::from_seed([5; 32]);
        let q = Queries {
            example: vec![0, 0, 1],
            dst: vec![2, 3, 2],
            tokens: vec![b"abcd".to_vec(), b"abcd".to_vec(), b"efgh".to_vec()],
        };
        let (d, _) = round_trip(Kind::Queries, &q.batch(), &key);
        let got = check_queries(&d, 1, 4).unwrap();
        assert_eq!(got, q);
        assert_eq!(got.for_peer(2).len(), 2);
        assert_eq!(got.for_peer(3), vec![(0, &b"abcd"[..])]);
        assert_eq!(check_queries(&d, 1, 5).unwrap_err().code, "shape");
        assert_eq!(check_queries(&d, 2, 4).unwrap_err().code, "shape");
    }
}
