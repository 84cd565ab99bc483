//! `faceblock sql`: any query over the ledger tables by name, committed epochs only,
//! printed as a table, CSV or JSON, or written to a Parquet file.
//!
//! Results are handed out with plain column types (`Utf8`, not DataFusion's
//! `Utf8View`), so every Parquet, CSV or JSON reader an analyst uses reads them.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use faceblock_schemas::Store;

use crate::ledger::Ledger;
use crate::{Error, Result};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// CSV with a header.
    Csv,
    /// JSON array of objects.
    Json,
    /// Apache Parquet (binary: needs `--out FILE`).
    Parquet,
}

/// A query's answer: its schema (known even when no row matched) and rows.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Column names and types.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl Answer {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Runs `sql` over the committed ledger.
pub async fn run(store: &Store, sql: &str, partitions: usize) -> Result<Vec<RecordBatch>> {
    Ok(answer(store, sql, partitions).await?.batches)
}

/// Runs `sql` over the committed ledger, keeping the schema of an empty answer.
pub async fn answer(store: &Store, sql: &str, partitions: usize) -> Result<Answer> {
    faceblock_schemas::NetworkFile::load(store).await?;
    let ledger = Ledger::new(store.clone());
    let last = ledger.last_committed().await?;
    let ctx = ledger.session(last, partitions).await?;
    let df = ctx.sql(sql).await?;
    let schema = plain_schema(df.schema().as_arrow());
    let batches = df
        .collect()
        .await?
        .iter()
        .map(|b| plain_batch(b, &schema))
        .collect::<Result<Vec<_>>>()?;
    Ok(Answer { schema, batches })
}

/// The type a column is handed out as: view and large string types become `Utf8`.
fn plain_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Dictionary(_, v) => plain_type(v),
        other => other.clone(),
    }
}

fn plain_schema(s: &Schema) -> SchemaRef {
    let fields: Vec<Field> = s
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(plain_type(f.data_type())))
        .collect();
    std::sync::Arc::new(Schema::new(fields))
}

fn plain_batch(b: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let cols = b
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// Renders batches in a text format (`table`, `csv`, `json`).
pub fn render(batches: &[RecordBatch], format: Format) -> Result<String> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => std::sync::Arc::new(Schema::empty()),
    };
    let mut buf = Vec::new();
    write(
        &Answer {
            schema,
            batches: batches.to_vec(),
        },
        format,
        &mut buf,
    )?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Writes an answer in any format; CSV keeps its header and JSON is `[]` when
/// no row matched.
pub fn write(answer: &Answer, format: Format, out: &mut dyn Write) -> Result<()> {
    let io = |e: std::io::Error| Error::Arrow(arrow::error::ArrowError::from(e));
    match format {
        Format::Table => {
            let t = arrow::util::pretty::pretty_format_batches(&answer.batches)?;
            writeln!(out, "{t}").map_err(io)?;
        }
        Format::Csv => {
            if answer.rows() == 0 {
                let names: Vec<&str> = answer
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                writeln!(out, "{}", names.join(",")).map_err(io)?;
            } else {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut *out);
                for b in &answer.batches {
                    w.write(b)?;
                }
            }
        }
        Format::Json => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::json::ArrayWriter::new(&mut buf);
                let refs: Vec<&RecordBatch> = answer.batches.iter().collect();
                w.write_batches(&refs)?;
                w.finish()?;
            }
            if buf.is_empty() {
                buf.extend_from_slice(b"[]");
            }
            out.write_all(&buf).map_err(io)?;
            writeln!(out).map_err(io)?;
        }
        Format::Parquet => {
            let mut buf = Vec::new();
            {
                let mut w =
                    parquet::arrow::ArrowWriter::try_new(&mut buf, answer.schema.clone(), None)
                        .map_err(|e| Error::Arrow(e.into()))?;
                for b in &answer.batches {
                    w.write(b).map_err(|e| Error::Arrow(e.into()))?;
                }
                w.close().map_err(|e| Error::Arrow(e.into()))?;
            }
            out.write_all(&buf).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Float64Array;
    use arrow::datatypes::{DataType, Field};
    use std::sync::Arc;

    /// Every float an answer holds reads back as the same float from CSV
    /// and from JSON (serde_json's default parser is off by one unit in the
    /// last place for some 17-digit numbers: the workspace turns on its
    /// exact parser).
    #[test]
    fn floats_read_back_exactly_from_csv_and_json() {
        let vals = vec![
            0.41035192766666667f64,
            0.4103519276666666,
            0.1 + 0.2,
            1.0 / 3.0,
        ];
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
        let b =
            RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(vals.clone()))]).unwrap();
        let csv = render(std::slice::from_ref(&b), Format::Csv).unwrap();
        let csv: Vec<f64> = csv.lines().skip(1).map(|l| l.parse().unwrap()).collect();
        assert_eq!(csv, vals);
        let json = render(&[b], Format::Json).unwrap();
        let json: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        let json: Vec<f64> = json.iter().map(|o| o["x"].as_f64().unwrap()).collect();
        assert_eq!(json, vals);
    }
}
