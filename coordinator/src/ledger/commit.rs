//! Exactly-once, all-or-nothing epoch commits over plain object storage (no
//! lock service): conditional PUTs decide, Delta app transactions make every
//! step idempotent.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use serde::{Deserialize, Serialize};

use super::batches::Batches;
use super::{tables, Ledger, APP_ID};
use crate::{Error, Result};

/// What a run staged for an epoch; whoever holds the claim commits exactly this.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    /// The epoch.
    pub epoch: u64,
    /// Random id of the run that staged the files.
    pub run: String,
    /// The epoch digest the files carry.
    pub digest: String,
    /// Data files per table, as Delta add actions.
    pub tables: BTreeMap<String, Vec<Add>>,
}

/// How ledger Parquet files are encoded: zstd throughout; floats (mostly
/// distinct values) as byte-stream-split without a dictionary, which zstd
/// compresses better than plain or dictionary pages. Readers see only the
/// values, and the digest covers values, never bytes.
fn writer_properties(table: &str) -> parquet::file::properties::WriterProperties {
    use parquet::basic::{Compression, Encoding, ZstdLevel};
    use parquet::schema::types::ColumnPath;
    let mut b = parquet::file::properties::WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()));
    if let Some(schema) = tables::schema(table) {
        for f in schema.fields() {
            let encoding = match f.data_type() {
                arrow::datatypes::DataType::Float64 => Encoding::BYTE_STREAM_SPLIT,
                arrow::datatypes::DataType::Int64 => Encoding::DELTA_BINARY_PACKED,
                _ => continue,
            };
            let c = ColumnPath::from(f.name().as_str());
            b = b
                .set_column_dictionary_enabled(c.clone(), false)
                .set_column_encoding(c, encoding);
        }
    }
    b.build()
}

/// The one epoch every row of `b` belongs to (the table's partition).
fn partition_epoch(table: &str, b: &RecordBatch) -> Result<u64> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    let col = b
        .column_by_name("epoch")
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .filter(|c| c.null_count() == 0)
        .ok_or_else(|| Error::Epoch(format!("ledger table {table}: no epoch column")))?;
    let first = col.values().first().copied();
    if col.values().iter().any(|v| Some(*v) != first) {
        return Err(Error::Epoch(format!(
            "ledger table {table}: one staging holds rows of several epochs"
        )));
    }
    first
        .and_then(|e| u64::try_from(e).ok())
        .ok_or_else(|| Error::Epoch(format!("ledger table {table}: a negative epoch")))
}

/// Batches grouped into files of at most about `rows` rows (batches are
/// never split), as ranges of batch indices.
fn cut(batches: &Batches, rows: usize) -> Vec<std::ops::Range<usize>> {
    let mut files: Vec<std::ops::Range<usize>> = vec![];
    let mut in_last = 0;
    for i in 0..batches.len() {
        let n = batches.rows_of(i);
        match files.last_mut() {
            Some(f) if in_last + n <= rows => f.end = i + 1,
            _ => {
                files.push(i..i + 1);
                in_last = 0;
            }
        }
        in_last += n;
    }
    files
}

/// One data file: batches `range`, all of `epoch`, without the partition
/// column, as Parquet into the writer `sink` makes (given the bytes
/// expected). Batches built on demand live one at a time.
fn encode<W: std::io::Write + Send>(
    table: &str,
    epoch: u64,
    batches: &Batches,
    range: std::ops::Range<usize>,
    sink: impl FnOnce(usize) -> std::io::Result<W>,
) -> Result<(W, usize)> {
    let err = |e: parquet::errors::ParquetError| {
        Error::Epoch(format!("encoding ledger table {table}: {e}"))
    };
    let mut sink = Some(sink);
    let mut w = None;
    let mut rows = 0;
    for i in range.clone() {
        let b = batches.get(i)?;
        if partition_epoch(table, &b)? != epoch {
            return Err(Error::Epoch(format!(
                "ledger table {table}: one staging holds rows of several epochs"
            )));
        }
        let schema = b.schema();
        let keep: Vec<usize> = (0..schema.fields().len())
            .filter(|i| schema.field(*i).name() != "epoch")
            .collect();
        let b = b.project(&keep)?;
        if let Some(sink) = sink.take() {
            // About half the values' width per row.
            let width: usize = (b.schema().fields().iter())
                .map(|f| f.data_type().primitive_width().unwrap_or(16))
                .sum();
            let all: usize = range.clone().map(|i| batches.rows_of(i)).sum();
            let out = sink(all * width / 2)
                .map_err(|e| Error::Epoch(format!("writing ledger table {table}: {e}")))?;
            w = Some(
                parquet::arrow::ArrowWriter::try_new(
                    out,
                    b.schema(),
                    Some(writer_properties(table)),
                )
                .map_err(err)?,
            );
        }
        w.as_mut().expect("made above").write(&b).map_err(err)?;
        rows += b.num_rows();
    }
    let w = w.ok_or_else(|| Error::Epoch(format!("ledger table {table}: an empty file")))?;
    Ok((w.into_inner().map_err(err)?, rows))
}

/// [`encode`] into memory, for an object store. The buffer is sized up
/// front: grown by doubling, it was copied into fresh memory again and again.
fn encode_bytes(
    table: &str,
    epoch: u64,
    batches: &Batches,
    range: std::ops::Range<usize>,
) -> Result<(bytes::Bytes, usize)> {
    let (v, rows) = encode(table, epoch, batches, range, |n| Ok(Vec::with_capacity(n)))?;
    Ok((v.into(), rows))
}

/// [`encode`] straight into the file at `path` of a local store, under a
/// temporary name renamed into place, as the store's own put does: the
/// bytes never sit in a buffer of their own (fresh memory, then a copy).
fn encode_file(
    table: &str,
    epoch: u64,
    batches: &Batches,
    range: std::ops::Range<usize>,
    path: &std::path::Path,
) -> Result<(u64, usize)> {
    let io = |e: std::io::Error| faceblock_schemas::Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    let dir = path.parent().expect("a file in a table's folder");
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    let (w, rows) = encode(table, epoch, batches, range, |_| {
        Ok(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&tmp)?,
        ))
    })?;
    let done = w
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.metadata())
        .and_then(|m| std::fs::rename(&tmp, path).map(|_| m.len()));
    match done {
        Ok(size) => Ok((size, rows)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io(e).into())
        }
    }
}

/// Rows per staged data file. Large tables become several files, encoded
/// side by side: one file per table was one core's work (the `bonds` file
/// alone took seconds).
pub const FILE_ROWS: usize = 1 << 22;

impl Ledger {
    /// Writes a table's batches (all of one epoch) as Parquet data files of
    /// its `epoch=<e>` partition, without committing them.
    ///
    /// The files are written here rather than by Delta's `RecordBatchWriter`,
    /// which splits every batch by partition value (a hash lookup and a copy
    /// per row) although each epoch's rows share one partition. The add
    /// actions are what that writer makes for a table that keeps no column
    /// statistics (`dataSkippingNumIndexedCols = 0`).
    pub async fn stage(&self, table: &str, batches: impl Into<Batches>) -> Result<Vec<Add>> {
        let batches = match batches.into() {
            Batches::Built(b) => {
                Batches::Built(b.into_iter().filter(|b| b.num_rows() > 0).collect())
            }
            b => b,
        };
        if batches.is_empty() {
            return Ok(vec![]);
        }
        let epoch = partition_epoch(table, &batches.get(0)?)?;
        let files = cut(&batches, FILE_ROWS);
        let name = table.to_string();
        let run = uuid::Uuid::new_v4();
        let now = chrono::Utc::now().timestamp_millis();
        let root = faceblock_schemas::layout::ledger_table(table);
        let path = move |i: usize| format!("epoch={epoch}/part-{i:05}-{run}-c000.zstd.parquet");
        let (store, at) = (self.store().clone(), root.clone());
        let encoded = tokio::task::spawn_blocking(move || {
            use rayon::prelude::*;
            files
                .into_par_iter()
                .enumerate()
                .map(
                    |(i, f)| match store.local_path(&format!("{at}/{}", path(i))) {
                        Some(file) => encode_file(&name, epoch, &batches, f, &file)
                            .map(|(size, rows)| (size, rows, None)),
                        None => encode_bytes(&name, epoch, &batches, f)
                            .map(|(b, rows)| (b.len() as u64, rows, Some(b))),
                    },
                )
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(|e| Error::Epoch(format!("encoding ledger table {table} failed: {e}")))??;
        let puts = encoded
            .into_iter()
            .enumerate()
            .map(|(i, (size, rows, bytes))| {
                let path = path(i);
                let object = format!("{root}/{path}");
                async move {
                    if let Some(bytes) = bytes {
                        self.store().put(&object, bytes).await?;
                    }
                    let size = size as i64;
                    let stats = deltalake::protocol::Stats {
                        num_records: rows as i64,
                        ..Default::default()
                    };
                    Ok::<_, Error>(Add {
                        path,
                        partition_values: [("epoch".to_string(), Some(epoch.to_string()))]
                            .into_iter()
                            .collect(),
                        size,
                        modification_time: now,
                        data_change: true,
                        stats: Some(serde_json::to_string(&stats).expect("stats serialise")),
                        tags: None,
                        deletion_vector: None,
                        base_row_id: None,
                        default_row_commit_version: None,
                        clustering_provider: None,
                    })
                }
            });
        futures::future::try_join_all(puts).await
    }

    /// Reads an existing claim.
    pub async fn claim(&self, epoch: u64) -> Result<Option<Claim>> {
        let path = faceblock_schemas::layout::epoch_claim(epoch);
        match self.store().get_opt(&path).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("claim {path} is not valid JSON: {e}"))),
        }
    }

    /// Claims the epoch with a conditional PUT; `Err(LostRace)` if another run did.
    pub async fn put_claim(&self, claim: &Claim) -> Result<()> {
        let path = faceblock_schemas::layout::epoch_claim(claim.epoch);
        let body = serde_json::to_vec(claim).expect("claims serialise");
        if self.store().put_if_absent(&path, body.into()).await? {
            return Ok(());
        }
        let other = self
            .claim(claim.epoch)
            .await?
            .map(|c| c.run)
            .unwrap_or_else(|| "unknown".into());
        Err(Error::LostRace {
            epoch: claim.epoch,
            run: other,
        })
    }

    /// Commits a claim's files table by table, `epochs` last; safe to run
    /// again after a crash and concurrently with another finisher.
    pub async fn commit_claim(&self, claim: &Claim) -> Result<()> {
        for name in tables::TABLES {
            let adds = claim.tables.get(name).cloned().unwrap_or_default();
            self.commit_table(name, claim.epoch, adds).await?;
        }
        Ok(())
    }

    /// Commits one table's files for `epoch` unless it already holds them.
    pub async fn commit_table(&self, name: &str, epoch: u64, adds: Vec<Add>) -> Result<()> {
        let err = |source| Error::Ledger {
            table: name.to_string(),
            source,
        };
        let mut last_error = None;
        for attempt in 0..20u32 {
            // The handle as last seen is usually current (the run read every
            // table to prepare); if not, the commit finds the next log version
            // taken and the retry reloads.
            let t = if attempt == 0 {
                self.table_as_seen(name).await?
            } else {
                self.table(name).await?
            };
            if self.table_epoch(&t).await?.is_some_and(|v| v >= epoch) {
                return Ok(());
            }
            let snapshot = t.snapshot().map_err(err)?;
            let props = CommitProperties::default()
                .with_application_transaction(Transaction::new(APP_ID, epoch as i64))
                .with_max_retries(0);
            let op = DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: Some(vec!["epoch".into()]),
                predicate: None,
            };
            let actions: Vec<Action> = adds.iter().cloned().map(Action::Add).collect();
            let r = CommitBuilder::from(props)
                .with_actions(actions)
                .build(Some(snapshot), t.log_store(), op)
                .await;
            match r {
                Ok(done) => {
                    // The commit already brought a snapshot to the new
                    // version: keep it rather than read the log again.
                    let mut t = t;
                    t.state = Some(done.snapshot());
                    self.keep(name, t);
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(table = name, epoch, attempt, error = %e, "commit lost a race; re-checking");
                    last_error = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(20 * (attempt as u64 + 1)))
                        .await;
                }
            }
        }
        Err(err(last_error.expect("at least one attempt")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array};

    use super::*;

    fn batch(epochs: Vec<i64>) -> RecordBatch {
        let n = epochs.len() as i64;
        RecordBatch::try_from_iter([
            ("epoch", Arc::new(Int64Array::from(epochs)) as ArrayRef),
            (
                "uid",
                Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    /// A staging is one partition: rows of two epochs are refused, not
    /// filed under the first one's.
    #[test]
    fn one_epoch_per_staging() {
        assert_eq!(partition_epoch("t", &batch(vec![3, 3])).unwrap(), 3);
        assert!(partition_epoch("t", &batch(vec![3, 4])).is_err());
        assert!(partition_epoch("t", &batch(vec![-1])).is_err());
        let two: Batches = vec![batch(vec![3]), batch(vec![4])].into();
        assert!(encode_bytes("t", 3, &two, 0..2).is_err());
        assert!(encode_bytes("t", 3, &two, 0..1).is_ok());
    }

    /// Files hold whole batches, in order, up to the row budget.
    #[test]
    fn files_are_cut_between_batches() {
        let sizes = |b: Vec<RecordBatch>| -> Vec<Vec<usize>> {
            let b = Batches::from(b);
            cut(&b, 4)
                .into_iter()
                .map(|f| f.map(|i| b.rows_of(i)).collect())
                .collect()
        };
        let b = |n: usize| batch(vec![0; n]);
        assert_eq!(
            sizes(vec![b(2), b(2), b(1), b(3), b(4)]),
            vec![vec![2, 2], vec![1, 3], vec![4]]
        );
        assert_eq!(sizes(vec![b(5)]), vec![vec![5]]);
        assert!(sizes(vec![]).is_empty());
    }

    /// A data file leaves the partition column out and keeps the rest.
    #[test]
    fn a_data_file_has_no_partition_column() {
        let (bytes, rows) =
            encode_bytes("weights", 7, &vec![batch(vec![7, 7, 7])].into(), 0..1).unwrap();
        assert_eq!(rows, 3);
        let r =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(bytes, 1024).unwrap();
        let got: Vec<RecordBatch> = r.collect::<std::result::Result<_, _>>().unwrap();
        assert_eq!(got[0].schema().fields().len(), 1);
        assert_eq!(got[0].schema().field(0).name(), "uid");
        assert_eq!(got[0].num_rows(), 3);
    }
}
