//! Exactly-once, all-or-nothing epoch commits over plain object storage (no
//! lock service): conditional PUTs decide, Delta app transactions make every
//! step idempotent.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use serde::{Deserialize, Serialize};

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

impl Ledger {
    /// Writes a table's batches as Parquet data files without committing them.
    pub async fn stage(&self, table: &str, batches: Vec<RecordBatch>) -> Result<Vec<Add>> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(vec![]);
        }
        // Only the schema and partitioning are needed to write files.
        let t = self.table_as_seen(table).await?;
        let err = |source| Error::Ledger {
            table: table.to_string(),
            source,
        };
        let mut w = RecordBatchWriter::for_table(&t)
            .map_err(err)?
            .with_writer_properties(writer_properties(table));
        for b in batches {
            if b.num_rows() > 0 {
                w.write(b).await.map_err(err)?;
            }
        }
        w.flush().await.map_err(err)
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
