//! Small Parquet files in memory: one PUT per object, with the signature in
//! the key-value metadata.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::{Error, Result};

/// Encodes `batch` as a Parquet file carrying `metadata`.
pub fn encode(path: &str, batch: &RecordBatch, metadata: &[(&str, String)]) -> Result<Bytes> {
    write(path, batch, metadata, true)
}

/// Like [`encode`], without dictionaries: for float tensors, which don't
/// repeat and decode fastest from plain pages.
pub fn encode_plain(path: &str, batch: &RecordBatch, metadata: &[(&str, String)]) -> Result<Bytes> {
    write(path, batch, metadata, false)
}

fn write(
    path: &str,
    batch: &RecordBatch,
    metadata: &[(&str, String)],
    dictionary: bool,
) -> Result<Bytes> {
    let kv = metadata
        .iter()
        .map(|(k, v)| KeyValue::new(k.to_string(), v.clone()))
        .collect();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(kv))
        .set_dictionary_enabled(dictionary)
        .build();
    let err = |e: parquet::errors::ParquetError| Error::Parquet {
        path: path.to_string(),
        reason: e.to_string(),
    };
    let mut buf = Vec::with_capacity(1024 + batch.get_array_memory_size());
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(err)?;
    w.write(batch).map_err(err)?;
    w.close().map_err(err)?;
    Ok(Bytes::from(buf))
}

/// A decoded file: its schema, its rows and its key-value metadata.
#[derive(Debug)]
pub struct Decoded {
    /// The Arrow schema as stored.
    pub schema: SchemaRef,
    /// All rows, concatenated.
    pub batch: RecordBatch,
    /// Key-value metadata.
    pub metadata: HashMap<String, String>,
}

/// Decodes a whole Parquet file; any malformation is an error, never a panic.
pub fn decode(path: &str, bytes: Bytes) -> Result<Decoded> {
    let err = |reason: String| Error::Parquet {
        path: path.to_string(),
        reason,
    };
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| err(e.to_string()))?;
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter_map(|k| k.value.clone().map(|v| (k.key.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(|e| err(e.to_string()))?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| err(e.to_string()))?);
    }
    let batch =
        arrow::compute::concat_batches(&schema, &batches).map_err(|e| err(e.to_string()))?;
    Ok(Decoded {
        schema,
        batch,
        metadata,
    })
}
