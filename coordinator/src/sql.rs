//! `faceblock sql`: any query over the ledger tables by name, committed epochs only.

use arrow::array::RecordBatch;
use faceblock_schemas::Store;

use crate::ledger::Ledger;
use crate::Result;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// CSV with a header.
    Csv,
    /// JSON array of objects.
    Json,
}

/// Runs `sql` over the committed ledger.
pub async fn run(store: &Store, sql: &str, partitions: usize) -> Result<Vec<RecordBatch>> {
    faceblock_schemas::NetworkFile::load(store).await?;
    let ledger = Ledger::new(store.clone());
    let last = ledger.last_committed().await?;
    let ctx = ledger.session(last, partitions).await?;
    Ledger::query(&ctx, sql).await
}

/// Renders batches in a format.
pub fn render(batches: &[RecordBatch], format: Format) -> Result<String> {
    Ok(match format {
        Format::Table => arrow::util::pretty::pretty_format_batches(batches)?.to_string(),
        Format::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buf);
                for b in batches {
                    w.write(b)?;
                }
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
        Format::Json => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::json::ArrayWriter::new(&mut buf);
                let refs: Vec<&RecordBatch> = batches.iter().collect();
                w.write_batches(&refs)?;
                w.finish()?;
            }
            let s = String::from_utf8_lossy(&buf).into_owned();
            if s.is_empty() {
                "[]".into()
            } else {
                s
            }
        }
    })
}
