//! The ledger: one Delta Lake table per SPEC 6 table under `<root>/ledger/`,
//! committed exactly once per epoch, all or nothing.
//!
//! Commit protocol (see `commit`):
//! 1. the run writes every table's data files (invisible until committed);
//! 2. it claims the epoch with a conditional PUT of `ledger/_claims/epoch=<e>.json`
//!    listing those files: the first claim wins, a racing coordinator loses here;
//! 3. each table gets one Delta commit carrying the app transaction
//!    `(faceblock, e)`; a commit is skipped when the table already has it, so a
//!    rerun after a crash finishes the epoch and never appends twice;
//! 4. `epochs` is committed last: an epoch is visible through `epochs` only
//!    when all its tables are.

pub mod batches;
pub mod commit;
pub mod epochs;
pub mod files;
pub mod tables;

use datafusion::prelude::SessionContext;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::StructType;
use deltalake::{DeltaTable, DeltaTableBuilder};
use faceblock_schemas::{layout, Store};

use crate::{Error, Result};

/// The Delta app id whose transaction version records the last epoch a table holds.
pub const APP_ID: &str = "faceblock";

/// Access to the ledger tables of one store.
///
/// Table handles are kept and brought forward with only the commits that
/// followed (`update_incremental`), and a commit's own snapshot is kept, so
/// a coordinator or simulator that closes epoch after epoch does not reload
/// every table at every read. (Delta still rebuilds a table's file list on
/// each update, so that cost grows with the table's files.)
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Store,
    handles: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, DeltaTable>>>,
}

fn ledger_err(table: &str) -> impl FnOnce(deltalake::DeltaTableError) -> Error + '_ {
    move |source| Error::Ledger {
        table: table.to_string(),
        source,
    }
}

impl Ledger {
    /// Opens the ledger of a store (tables are created by `init`).
    pub fn new(store: Store) -> Self {
        deltalake::aws::register_handlers(None);
        Self {
            store,
            handles: Default::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn builder(&self, table: &str) -> Result<DeltaTableBuilder> {
        let url = self
            .store
            .url_of(&format!("{}/", layout::ledger_table(table)));
        Ok(DeltaTableBuilder::from_url(url.clone())
            .map_err(ledger_err(table))?
            .with_storage_backend(self.store.object_store(), url))
    }

    /// A table's path from the store's root (as the object store names it).
    fn table_root(&self, table: &str) -> Result<object_store::path::Path> {
        let url = self.store.url_of(layout::ledger_table(table).as_str());
        object_store::path::Path::from_url_path(url.path())
            .map_err(|e| Error::Corrupt(format!("ledger/{table}: bad path {url}: {e}")))
    }

    /// A table as this ledger last saw it (loaded now if never seen): for
    /// what needs only its schema, or where a stale version is caught anyway
    /// (a commit conditional on the next log version).
    pub async fn table_as_seen(&self, table: &str) -> Result<DeltaTable> {
        let kept = self.kept(table);
        match kept {
            Some(t) => Ok(t),
            None => self.table(table).await,
        }
    }

    /// A table at its latest version.
    pub async fn table(&self, table: &str) -> Result<DeltaTable> {
        let kept = self.kept(table);
        let t = match kept {
            Some(mut t) => match t.update_incremental(None).await {
                Ok(()) => t,
                // A log that moved in a way a forward update cannot follow
                // (a table recreated underneath): load it afresh.
                Err(_) => self
                    .builder(table)?
                    .load()
                    .await
                    .map_err(ledger_err(table))?,
            },
            None => self
                .builder(table)?
                .load()
                .await
                .map_err(ledger_err(table))?,
        };
        self.keep(table, t.clone());
        Ok(t)
    }

    /// The handle this ledger last saw for a table, if any.
    fn kept(&self, table: &str) -> Option<DeltaTable> {
        self.handles
            .lock()
            .expect("ledger handles")
            .get(table)
            .cloned()
    }

    /// Remembers a table handle as this ledger's latest view of it.
    fn keep(&self, table: &str, t: DeltaTable) {
        self.handles
            .lock()
            .expect("ledger handles")
            .insert(table.to_string(), t);
    }

    /// Creates every table that does not exist yet (idempotent).
    pub async fn create_all(&self) -> Result<()> {
        for name in tables::TABLES {
            let t = self.builder(name)?.build().map_err(ledger_err(name))?;
            if t.verify_deltatable_existence().await.unwrap_or(false) {
                continue;
            }
            let schema = tables::schema(name).expect("known table");
            let kernel: StructType = schema
                .as_ref()
                .try_into_kernel()
                .map_err(|e| ledger_err(name)(e.into()))?;
            let r = t
                .create()
                .with_table_name(name)
                .with_columns(kernel.fields().cloned())
                .with_partition_columns(["epoch"])
                // Files are one epoch's partition each, pruned by `epoch`;
                // column statistics only slow every snapshot read.
                .with_configuration_property(
                    deltalake::TableProperty::DataSkippingNumIndexedCols,
                    Some("0"),
                )
                .with_save_mode(deltalake::protocol::SaveMode::Ignore)
                .await;
            if let Err(e) = r {
                // A concurrent init may have created it meanwhile.
                let t = self.builder(name)?.build().map_err(ledger_err(name))?;
                if !t.verify_deltatable_existence().await.unwrap_or(false) {
                    return Err(ledger_err(name)(e));
                }
            }
        }
        Ok(())
    }

    /// The last epoch a table holds, from its app transaction.
    pub async fn table_epoch(&self, t: &DeltaTable) -> Result<Option<u64>> {
        let name = t.table_url().to_string();
        let v = t
            .snapshot()
            .map_err(ledger_err(&name))?
            .transaction_version(t.log_store().as_ref(), APP_ID)
            .await
            .map_err(ledger_err(&name))?;
        Ok(v.and_then(|v| u64::try_from(v).ok()))
    }

    /// The last committed epoch (the one `epochs` holds), `None` before epoch 0.
    pub async fn last_committed(&self) -> Result<Option<u64>> {
        let t = self.table("epochs").await?;
        self.table_epoch(&t).await
    }

    /// A DataFusion session where every ledger table is registered by name and
    /// shows committed epochs only (`epoch <= upto`), read as plain Parquet
    /// file lists ([`files::LedgerFiles`]) resolved here from each table's
    /// Delta snapshot, with every FaceBlock function registered
    /// ([`crate::math::udf::register`]) and the views
    /// [`tables::VIEWS`] over them (rows and bonds in force at every epoch).
    pub async fn session(&self, upto: Option<u64>, partitions: usize) -> Result<SessionContext> {
        let ctx = self.session_of(&tables::TABLES, upto, partitions).await?;
        for (name, sql) in tables::VIEWS {
            ctx.sql(&format!("CREATE VIEW {name} AS {sql}"))
                .await?
                .collect()
                .await?;
        }
        Ok(ctx)
    }

    /// [`Ledger::session`] with only the named tables (and no views): for
    /// readers that need one or two tables, each table costs a snapshot read.
    pub async fn session_of(
        &self,
        names: &[&str],
        upto: Option<u64>,
        partitions: usize,
    ) -> Result<SessionContext> {
        let cfg = datafusion::prelude::SessionConfig::new()
            .with_target_partitions(partitions.max(1))
            .with_information_schema(true);
        let ctx = SessionContext::new_with_config(cfg);
        crate::math::udf::register(&ctx);
        let limit = upto.map(|e| e as i64).unwrap_or(-1);
        let mut registered = false;
        for &name in names {
            let schema = tables::schema(name)
                .ok_or_else(|| Error::Corrupt(format!("no ledger table named {name}")))?;
            let t = self.table(name).await?;
            let files = files::LedgerFiles::new(&self.store, name, &t, &self.table_root(name)?)?;
            if !registered {
                let url: &url::Url = files.store_url().as_ref();
                ctx.runtime_env()
                    .register_object_store(url, self.store.object_store());
                registered = true;
            }
            let raw = format!("__ledger_{name}");
            ctx.register_table(raw.as_str(), std::sync::Arc::new(files))?;
            let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            ctx.sql(&format!(
                "CREATE VIEW {name} AS SELECT {} FROM {raw} WHERE epoch <= {limit}",
                columns.join(", ")
            ))
            .await?
            .collect()
            .await?;
        }
        Ok(ctx)
    }

    /// Runs a query and collects it.
    pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<arrow::array::RecordBatch>> {
        Ok(ctx.sql(sql).await?.collect().await?)
    }
}

/// A string column of a query result as plain Utf8 (DataFusion may hand out
/// Utf8View or dictionary-encoded strings).
pub fn string_col(
    batch: &arrow::array::RecordBatch,
    i: usize,
) -> Result<arrow::array::StringArray> {
    use arrow::array::AsArray;
    let c = arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8)?;
    Ok(c.as_string::<i32>().clone())
}
