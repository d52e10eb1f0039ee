//! The `asofdb` schema: system tables describing the database (`asofdb.features`,
//! `asofdb.feature_state`, `asofdb.backfills`, `asofdb.storage`, `asofdb.sources`,
//! `asofdb.source_errors`, `asofdb.table_privileges`, which `information_schema.table_privileges`
//! names: `sql::pg_compat`, and `asofdb.tables`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::SchemaRef;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::Catalog;
use crate::feature::FeatureEngine;

#[derive(Debug)]
pub struct SystemSchema {
    catalog: Arc<Catalog>,
    features: Arc<FeatureEngine>,
    /// Each table's schema, from its first read: planning does not make its rows again.
    schemas: parking_lot::Mutex<std::collections::HashMap<String, SchemaRef>>,
}

impl SystemSchema {
    pub fn new(catalog: Arc<Catalog>, features: Arc<FeatureEngine>) -> Self {
        Self { catalog, features, schemas: Default::default() }
    }

    /// `asofdb.features`: name, source table, keys, window, definition SQL.
    pub fn features(engine: &FeatureEngine) -> Result<RecordBatch> {
        let features = engine.all();
        let column = |f: &dyn Fn(&crate::feature::FeatureDef) -> String| -> Arc<StringArray> {
            Arc::new(StringArray::from(features.iter().map(|l| f(&l.compiled().def)).collect::<Vec<_>>()))
        };
        let schema = text_columns(&["name", "source_table", "keys", "window", "definition"]);
        Ok(RecordBatch::try_new(
            schema,
            vec![
                column(&|d| d.name.clone()),
                column(&|d| d.table.clone()),
                column(&|d| d.keys.join(", ")),
                column(&|d| d.window_sql()),
                column(&|d| d.sql.clone()),
            ],
        )?)
    }

    /// `asofdb.feature_state`: per feature, its tile width, the keys and events its state
    /// holds, their approximate memory, the last snapshot's sequence number and where the
    /// state came from (backfill, or snapshot plus replay).
    pub fn feature_state(engine: &FeatureEngine) -> Result<RecordBatch> {
        let features = engine.all();
        let sizes: Vec<(usize, usize, usize)> = features.iter().map(|f| f.size()).collect();
        let int = |f: &dyn Fn(usize) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from((0..features.len()).map(f).collect::<Vec<_>>()))
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("tile", DataType::Utf8, false),
            Field::new("keys", DataType::Int64, false),
            Field::new("events", DataType::Int64, false),
            Field::new("state_bytes", DataType::Int64, false),
            Field::new("snapshot_seq", DataType::Int64, false),
            Field::new("origin", DataType::Utf8, false),
        ]));
        Ok(RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(features.iter().map(|f| f.compiled().def.name.clone()).collect::<Vec<_>>())),
                Arc::new(StringArray::from(
                    features.iter().map(|f| crate::feature::human_interval(f.compiled().tile)).collect::<Vec<_>>(),
                )),
                int(&|i| sizes[i].0 as i64),
                int(&|i| sizes[i].1 as i64),
                int(&|i| sizes[i].2 as i64),
                int(&|i| features[i].snapshot_seq() as i64),
                Arc::new(StringArray::from(features.iter().map(|f| f.origin()).collect::<Vec<_>>())),
            ],
        )?)
    }

    /// `asofdb.backfills`: one row per backfill (CREATE or CREATE OR REPLACE FEATURE) running
    /// now or finished since the server started, oldest first.
    pub fn backfills(engine: &FeatureEngine) -> Result<RecordBatch> {
        let backfills = engine.backfills().list();
        let outcomes: Vec<_> = backfills.iter().map(|b| b.outcome()).collect();
        let progress: Vec<_> = backfills.iter().map(|b| b.progress()).collect();
        let text = |f: &dyn Fn(usize) -> String| -> ArrayRef {
            Arc::new(StringArray::from((0..backfills.len()).map(f).collect::<Vec<_>>()))
        };
        let time = |f: &dyn Fn(usize) -> Option<i64>| -> ArrayRef {
            Arc::new(
                TimestampMicrosecondArray::from((0..backfills.len()).map(f).collect::<Vec<_>>()).with_timezone("UTC"),
            )
        };
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("feature", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("events_done", DataType::Int64, false),
            Field::new("events_total", DataType::Int64, false),
            Field::new("started_at", utc.clone(), false),
            Field::new("finished_at", utc, true),
        ]));
        Ok(RecordBatch::try_new(
            schema,
            vec![
                text(&|i| backfills[i].feature.clone()),
                text(&|i| backfills[i].kind.name().to_string()),
                text(&|i| outcomes[i].0.name().to_string()),
                Arc::new(Int64Array::from(progress.iter().map(|p| p.0 as i64).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(progress.iter().map(|p| p.1 as i64).collect::<Vec<_>>())),
                time(&|i| Some(backfills[i].started_at)),
                time(&|i| outcomes[i].1),
            ],
        )?)
    }

    /// `asofdb.table_privileges`, as `information_schema.table_privileges` lays it out: each
    /// owner's privileges on its tables (SELECT, INSERT, DELETE) and features (SELECT),
    /// grantable, then every grant, by the owner. Every grant is listed, not only those of
    /// the reading role (PostgreSQL's view filters them; `has_table_privilege` answers per role).
    pub fn table_privileges(catalog: &Catalog, features: &FeatureEngine) -> Result<RecordBatch> {
        use crate::catalog::{Privilege, Securable};
        let mut owners: Vec<(Securable, String)> = Vec::new();
        for name in catalog.table_names() {
            if let Some(table) = catalog.table(&name) {
                owners.push((Securable::Table(name), table.owner.clone()));
            }
        }
        owners.extend(features.all().iter().map(|f| {
            let def = &f.compiled().def;
            (Securable::Feature(def.name.clone()), def.owner.clone())
        }));
        owners.sort_by_key(|a| a.0.described());
        let grants = catalog.all_grants();
        let mut rows: Vec<[String; 5]> = Vec::new();
        for (object, owner) in &owners {
            let (Securable::Table(name) | Securable::Feature(name)) = object else { continue };
            let own: &[Privilege] = match object {
                Securable::Table(_) => &[Privilege::Select, Privilege::Insert, Privilege::Delete],
                _ => &[Privilege::Select],
            };
            for privilege in own {
                rows.push([owner.clone(), owner.clone(), name.clone(), privilege.name().into(), "YES".into()]);
            }
            for (_, grantee, privilege) in grants.iter().filter(|(granted_on, ..)| granted_on == object) {
                let grantee = if grantee == crate::catalog::PUBLIC { "PUBLIC".to_string() } else { grantee.clone() };
                rows.push([owner.clone(), grantee, name.clone(), privilege.name().into(), "NO".into()]);
            }
        }
        let column = |f: &dyn Fn(&[String; 5]) -> String| -> ArrayRef {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        let schema = text_columns(&[
            "grantor",
            "grantee",
            "table_catalog",
            "table_schema",
            "table_name",
            "privilege_type",
            "is_grantable",
            "with_hierarchy",
        ]);
        Ok(RecordBatch::try_new(
            schema,
            vec![
                column(&|r| r[0].clone()),
                column(&|r| r[1].clone()),
                column(&|_| super::CATALOG_NAME.to_string()),
                column(&|_| super::SCHEMA_NAME.to_string()),
                column(&|r| r[2].clone()),
                column(&|r| r[3].clone()),
                column(&|r| r[4].clone()),
                column(&|r| if r[3] == "SELECT" { "YES".into() } else { "NO".into() }),
            ],
        )?)
    }

    /// `asofdb.storage`: per table and tier (`hot`, `cold`), rows, files (hot: stored
    /// values) and bytes.
    pub fn storage(catalog: &Catalog) -> Result<RecordBatch> {
        let (mut names, mut tiers, mut rows, mut files, mut bytes) = (vec![], vec![], vec![], vec![], vec![]);
        for name in catalog.table_names() {
            let Some(table) = catalog.table(&name) else { continue };
            let (hot, cold) =
                catalog.store().tier_usage(table.id).map_err(|e| DataFusionError::External(Box::new(e)))?;
            for (tier, usage) in [("hot", hot), ("cold", cold)] {
                names.push(name.clone());
                tiers.push(tier);
                rows.push(usage.rows as i64);
                files.push(usage.files as i64);
                bytes.push(usage.bytes as i64);
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("tier", DataType::Utf8, false),
            Field::new("row_count", DataType::Int64, false),
            Field::new("file_count", DataType::Int64, false),
            Field::new("bytes", DataType::Int64, false),
        ]));
        Ok(RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(tiers)),
                Arc::new(Int64Array::from(rows)),
                Arc::new(Int64Array::from(files)),
                Arc::new(Int64Array::from(bytes)),
            ],
        )?)
    }

    /// `asofdb.tables`: every table, its event-time and ingest-time columns, its retention
    /// rules and owner (what clients such as the Python package need to know of a table).
    pub fn tables(catalog: &Catalog) -> Result<RecordBatch> {
        let tables: Vec<_> = catalog.table_names().iter().filter_map(|name| catalog.table(name)).collect();
        let text = |f: &dyn Fn(&crate::catalog::TableDef) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(tables.iter().map(|t| f(t)).collect::<Vec<_>>()))
        };
        let column = |t: &crate::catalog::TableDef, i: Option<usize>| i.map(|i| t.columns[i].name.clone());
        let interval = |us: i64| Some(crate::feature::human_interval(us));
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("event_time", DataType::Utf8, true),
            Field::new("ingest_time", DataType::Utf8, true),
            Field::new("hot_retention", DataType::Utf8, true),
            Field::new("retention", DataType::Utf8, true),
            Field::new("owner", DataType::Utf8, false),
        ]));
        Ok(RecordBatch::try_new(
            schema,
            vec![
                text(&|t| Some(t.name.clone())),
                text(&|t| column(t, t.event_time)),
                text(&|t| column(t, t.ingest_time)),
                text(&|t| t.event_time.and_then(|_| interval(t.hot_retention_micros))),
                text(&|t| t.retention_micros.and_then(interval)),
                text(&|t| Some(t.owner.clone())),
            ],
        )?)
    }

    /// `asofdb.sources` (and SHOW SOURCES): every source, what it reads, where it is.
    pub fn sources(catalog: &Catalog) -> Result<RecordBatch> {
        let sources = catalog.sources();
        let reports: Vec<_> = sources.iter().map(|s| s.report.lock().clone()).collect();
        let text = |f: &dyn Fn(usize) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from((0..sources.len()).map(f).collect::<Vec<_>>()))
        };
        let int = |f: &dyn Fn(usize) -> Option<i64>| -> ArrayRef {
            Arc::new(Int64Array::from((0..sources.len()).map(f).collect::<Vec<_>>()))
        };
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let field = |name: &str, ty: DataType, nullable: bool| Field::new(name, ty, nullable);
        let schema = Arc::new(Schema::new(vec![
            field("name", DataType::Utf8, false),
            field("kind", DataType::Utf8, false),
            field("table_name", DataType::Utf8, false),
            field("state", DataType::Utf8, false),
            field("rows_ingested", DataType::Int64, false),
            field("bad_messages", DataType::Int64, false),
            field("deletes_ignored", DataType::Int64, false),
            field("lag", DataType::Int64, true),
            field("position", DataType::Utf8, false),
            field("last_error", DataType::Utf8, true),
            field("last_commit_at", utc, true),
        ]));
        let commits = reports.iter().map(|r| r.last_commit_at).collect::<Vec<_>>();
        Ok(RecordBatch::try_new(
            schema,
            vec![
                text(&|i| Some(sources[i].def.name.clone())),
                text(&|i| Some(sources[i].def.kind.name().to_string())),
                text(&|i| Some(sources[i].def.table.clone())),
                text(&|i| Some(reports[i].state.name().to_string())),
                int(&|i| Some(reports[i].position.rows_ingested as i64)),
                int(&|i| Some(reports[i].position.bad_messages as i64)),
                int(&|i| Some(reports[i].position.deletes_ignored as i64)),
                int(&|i| reports[i].lag),
                text(&|i| Some(reports[i].position.text(sources[i].def.kind))),
                text(&|i| reports[i].last_error.clone()),
                Arc::new(TimestampMicrosecondArray::from(commits).with_timezone("UTC")),
            ],
        )?)
    }

    /// `asofdb.source_errors`: the latest bad messages of every source.
    pub fn source_errors(catalog: &Catalog) -> Result<RecordBatch> {
        let errors = catalog.source_errors().map_err(|e| DataFusionError::External(Box::new(e)))?;
        let text = |f: &dyn Fn(&(String, crate::catalog::SourceError)) -> String| -> ArrayRef {
            Arc::new(StringArray::from(errors.iter().map(f).collect::<Vec<_>>()))
        };
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, false),
            Field::new("at", utc, false),
            Field::new("position", DataType::Utf8, false),
            Field::new("payload", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
        ]));
        let at = TimestampMicrosecondArray::from(errors.iter().map(|(_, e)| e.at).collect::<Vec<_>>());
        Ok(RecordBatch::try_new(
            schema,
            vec![
                text(&|(source, _)| source.clone()),
                Arc::new(at.with_timezone("UTC")),
                text(&|(_, e)| e.position.clone()),
                text(&|(_, e)| e.payload.clone()),
                text(&|(_, e)| e.reason.clone()),
            ],
        )?)
    }
}

/// A system table whose rows are made when a plan runs, not when it is planned: a prepared
/// `SELECT ... FROM asofdb.sources` shows the sources as they are at each Execute.
struct LiveTable {
    schema: SchemaRef,
    rows: Box<dyn Fn() -> Result<RecordBatch> + Send + Sync>,
}

impl std::fmt::Debug for LiveTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTable").field("schema", &self.schema).finish()
    }
}

#[async_trait]
impl TableProvider for LiveTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = (self.rows)()?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())?)
    }
}

/// A schema of non-null text columns.
fn text_columns(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(names.iter().map(|n| Field::new(*n, DataType::Utf8, false)).collect::<Vec<_>>()))
}

const TABLES: [&str; 8] =
    ["features", "feature_state", "backfills", "storage", "sources", "source_errors", "table_privileges", "tables"];

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if !TABLES.contains(&name) {
            return Ok(None);
        }
        let name = name.to_string();
        let (catalog, features, table) = (self.catalog.clone(), self.features.clone(), name.clone());
        let rows = move || match table.as_str() {
            "features" => Self::features(&features),
            "feature_state" => Self::feature_state(&features),
            "backfills" => Self::backfills(&features),
            "storage" => Self::storage(&catalog),
            "sources" => Self::sources(&catalog),
            "table_privileges" => Self::table_privileges(&catalog, &features),
            "tables" => Self::tables(&catalog),
            _ => Self::source_errors(&catalog),
        };
        let known = self.schemas.lock().get(&name).cloned();
        let schema = match known {
            Some(schema) => schema,
            None => {
                let schema = rows()?.schema();
                self.schemas.lock().insert(name.clone(), schema.clone());
                schema
            }
        };
        Ok(Some(Arc::new(LiveTable { schema, rows: Box::new(rows) })))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}
