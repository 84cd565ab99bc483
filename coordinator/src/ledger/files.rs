//! A ledger table as a plain list of Parquet files: the data files of its
//! Delta snapshot, resolved on the coordinator, scanned by DataFusion's own
//! Parquet source. Delta scans do not travel to Ballista executors with
//! deltalake 1.1; a file list and a Parquet scan do (an executor needs only
//! the object store registered for [`LedgerFiles::store_url`]).
//!
//! Files are named by their path in the store (from its root) and carry the
//! `epoch` of their Delta partition, so a filter on `epoch` prunes whole
//! files before anything is read.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use deltalake::DeltaTable;
use faceblock_schemas::Store;
use object_store::path::Path;
use object_store::ObjectMeta;

use crate::{Error, Result};

/// One data file of a ledger table.
#[derive(Debug, Clone)]
struct DataFile {
    path: Path,
    size: u64,
    epoch: i64,
}

/// A ledger table's committed data files as a DataFusion table whose
/// columns are the file columns followed by `epoch`.
#[derive(Debug)]
pub struct LedgerFiles {
    store_url: ObjectStoreUrl,
    file_schema: SchemaRef,
    schema: SchemaRef,
    files: Vec<DataFile>,
}

impl LedgerFiles {
    /// The data files of `table`'s snapshot (`name` is its ledger name,
    /// `root` the table's path from the store root).
    pub fn new(store: &Store, name: &str, table: &DeltaTable, root: &Path) -> Result<Self> {
        let ledger = super::tables::schema(name).expect("known table");
        let file_schema = Arc::new(Schema::new(
            ledger
                .fields()
                .iter()
                .filter(|f| f.name() != "epoch")
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let mut fields: Vec<_> = file_schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new("epoch", DataType::Int64, false)));
        let url = store.url();
        let store_url = ObjectStoreUrl::parse(format!(
            "{}://{}",
            url.scheme(),
            url.host_str().unwrap_or("")
        ))?;
        let snapshot = table.snapshot().map_err(|source| Error::Ledger {
            table: name.to_string(),
            source,
        })?;
        let mut files = Vec::new();
        for f in snapshot.log_data().iter() {
            let epoch = f
                .partition_values_map()
                .get("epoch")
                .cloned()
                .flatten()
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "ledger/{name}: {} has no epoch partition",
                        f.path()
                    ))
                })?;
            let rel = f.object_store_path();
            files.push(DataFile {
                path: Path::from_iter(root.parts().chain(rel.parts())),
                size: f.size().max(0) as u64,
                epoch,
            });
        }
        files.sort_by(|a, b| (a.epoch, &a.path).cmp(&(b.epoch, &b.path)));
        Ok(Self {
            store_url,
            file_schema,
            schema: Arc::new(Schema::new(fields)),
            files,
        })
    }

    /// The object store URL the file paths are relative to.
    pub fn store_url(&self) -> &ObjectStoreUrl {
        &self.store_url
    }

    /// The epochs that `filters` (those on `epoch` alone) leave.
    fn epochs(&self, state: &dyn Session, filters: &[Expr]) -> DfResult<BTreeSet<i64>> {
        let all: BTreeSet<i64> = self.files.iter().map(|f| f.epoch).collect();
        let on_epoch: Vec<&Expr> = filters
            .iter()
            .filter(|f| {
                let cols = f.column_refs();
                !cols.is_empty() && cols.iter().all(|c| c.name == "epoch")
            })
            .collect();
        if on_epoch.is_empty() || all.is_empty() {
            return Ok(all);
        }
        let schema = Arc::new(Schema::new(vec![Field::new(
            "epoch",
            DataType::Int64,
            false,
        )]));
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let values: ArrayRef = Arc::new(Int64Array::from_iter_values(all.iter().copied()));
        let batch = RecordBatch::try_new(schema, vec![values])?;
        let mut keep = vec![true; all.len()];
        for f in on_epoch {
            // A filter this cannot evaluate alone (a subquery, say) prunes
            // nothing; it is applied above the scan all the same.
            let Ok(mask) = state
                .create_physical_expr((*f).clone(), &df_schema)
                .and_then(|e| e.evaluate(&batch))
                .and_then(|v| v.into_array(batch.num_rows()))
            else {
                continue;
            };
            let Some(mask) = arrow::array::AsArray::as_boolean_opt(mask.as_ref()) else {
                continue;
            };
            for (i, k) in keep.iter_mut().enumerate() {
                *k &= mask.is_valid(i) && mask.value(i);
            }
        }
        Ok(all
            .into_iter()
            .zip(keep)
            .filter_map(|(e, k)| k.then_some(e))
            .collect())
    }
}

#[async_trait]
impl TableProvider for LedgerFiles {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters on `epoch` prune files; every filter is still applied above.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let epochs = self.epochs(state, filters)?;
        let files: Vec<&DataFile> = self
            .files
            .iter()
            .filter(|f| epochs.contains(&f.epoch))
            .collect();
        let parts = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![vec![]; parts.min(files.len()).max(1)];
        let n = groups.len();
        for (i, f) in files.iter().enumerate() {
            let meta = ObjectMeta {
                location: f.path.clone(),
                last_modified: chrono::DateTime::<chrono::Utc>::MIN_UTC,
                size: f.size,
                e_tag: None,
                version: None,
            };
            groups[i % n].push(
                PartitionedFile::new_from_meta(meta)
                    .with_partition_values(vec![ScalarValue::Int64(Some(f.epoch))]),
            );
        }
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(vec![Arc::new(Field::new("epoch", DataType::Int64, false))])
            .build();
        let source = Arc::new(ParquetSource::new(table_schema));
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
