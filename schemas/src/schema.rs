//! Arrow schemas of what peers write, and the metadata keys that carry
//! signatures inside Parquet files.

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Parquet key-value metadata key holding the hex signature.
pub const SIGNATURE_KEY: &str = "faceblock.signature";
/// Metadata key with the epoch a submission claims (signed as part of the
/// context); lets the coordinator name a replay `wrong_epoch`.
pub const EPOCH_KEY: &str = "faceblock.epoch";
/// Metadata key naming where a weight row comes from (`explicit` or `fisher`).
pub const SOURCE_KEY: &str = "faceblock.source";

/// A weight row: `dst: UInt32, weight: Float64` (SPEC 5.1).
pub fn weights_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("dst", DataType::UInt32, false),
        Field::new("weight", DataType::Float64, false),
    ]))
}

/// Builds a weight-row batch.
pub fn weights_batch(dst: &[u32], weight: &[f64]) -> RecordBatch {
    RecordBatch::try_new(
        weights_schema(),
        vec![
            Arc::new(UInt32Array::from(dst.to_vec())),
            Arc::new(Float64Array::from(weight.to_vec())),
        ],
    )
    .expect("weights schema matches its columns")
}

/// A join request: one row naming the new key and its modality.
pub fn join_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("public_key", DataType::Utf8, false),
        Field::new("modality", DataType::Utf8, false),
    ]))
}

/// Builds a join-request batch.
pub fn join_batch(public_key_hex: &str, modality: &str) -> RecordBatch {
    RecordBatch::try_new(
        join_schema(),
        vec![
            Arc::new(StringArray::from(vec![public_key_hex])),
            Arc::new(StringArray::from(vec![modality])),
        ],
    )
    .expect("join schema matches its columns")
}

/// The only modality so far: bytes as tokens.
pub const MODALITY_TEXT: &str = "TEXT";
