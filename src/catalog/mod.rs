//! The catalog: which event tables, sources and roles exist, their columns and options,
//! persisted in the hot tier.

mod privilege;
mod role;
mod source;
mod table;

pub use privilege::{Grants, PUBLIC, Privilege, Securable};
pub use role::{BOOTSTRAP_ROLE, RoleChange, RoleDef, Verifier};
pub use source::{
    KEPT_ERRORS, Source, SourceDef, SourceEntries, SourceError, SourceKind, SourcePosition, SourceReport, SourceState,
    lsn_text,
};
pub use table::{ColumnDef, DEFAULT_HOT_RETENTION_MICROS, TableDef};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::storage::{CatalogKind, Commit, EventStore};

/// Table definitions, in memory for planning and in the store for restarts.
///
/// DDL is serialized by `ddl`; each change is committed to the store (durably) before the
/// in-memory map is updated, so a crash never leaves a table that the store does not know.
pub struct Catalog {
    store: Arc<EventStore>,
    tables: RwLock<BTreeMap<String, Arc<TableDef>>>,
    /// The sources (`source`), which feed tables.
    sources: RwLock<BTreeMap<String, Arc<Source>>>,
    /// The stored roles (`role`); the bootstrap superuser is not among them.
    roles: RwLock<BTreeMap<String, Arc<RoleDef>>>,
    /// Privileges granted (`privilege`), by object.
    grants: RwLock<std::collections::HashMap<Securable, Grants>>,
    /// Counts table DDL; see [`Catalog::generation`].
    table_changes: AtomicU64,
    ddl: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("tables", &self.table_names()).finish()
    }
}

impl Catalog {
    /// Loads every table definition from the store.
    pub fn open(store: Arc<EventStore>) -> Result<Self> {
        let mut tables = BTreeMap::new();
        for entry in store.catalog_entries(CatalogKind::Table)? {
            let def: TableDef = serde_json::from_slice(&entry)?;
            store.set_columns(def.id, Some(def.stored_columns()?));
            tables.insert(def.name.clone(), Arc::new(def));
        }
        let sources = Self::load_sources(&store)?;
        let roles = Self::load_roles(&store)?;
        let grants = Self::load_grants(&store)?;
        Ok(Self {
            store,
            tables: RwLock::new(tables),
            sources: RwLock::new(sources),
            roles: RwLock::new(roles),
            grants: RwLock::new(grants),
            table_changes: AtomicU64::new(0),
            ddl: tokio::sync::Mutex::new(()),
        })
    }

    /// Changes whenever a table is created, dropped or altered (after the change is visible);
    /// see `execute::Database::generation`.
    pub fn generation(&self) -> u64 {
        self.table_changes.load(Ordering::SeqCst)
    }

    pub fn store(&self) -> &Arc<EventStore> {
        &self.store
    }

    pub fn table(&self, name: &str) -> Option<Arc<TableDef>> {
        self.tables.read().get(name).cloned()
    }

    /// Like [`Catalog::table`], with the PostgreSQL error for a missing table.
    pub fn require_table(&self, name: &str) -> Result<Arc<TableDef>> {
        self.table(name).ok_or_else(|| Error::undefined_table(name))
    }

    pub fn table_names(&self) -> Vec<String> {
        self.tables.read().keys().cloned().collect()
    }

    /// Creates a table; `def.id` is assigned here. Returns false if it existed and
    /// `if_not_exists` was given.
    pub async fn create_table(&self, mut def: TableDef, if_not_exists: bool) -> Result<bool> {
        let _ddl = self.ddl.lock().await;
        if self.table(&def.name).is_some() {
            return if if_not_exists { Ok(false) } else { Err(Error::duplicate_table(&def.name)) };
        }
        def.id = self.store.allocate_table_id()?;
        let entry = serde_json::to_vec(&def)?;
        // A new table starts with no grants, whatever a GRANT racing an earlier table's drop
        // may have left under its name.
        let grants = Securable::Table(def.name.clone());
        self.store
            .commit(Commit {
                catalog_puts: vec![(CatalogKind::Table.key(&def.name), entry)],
                catalog_deletes: vec![grants.grants_key()],
                ..Default::default()
            })
            .await?;
        self.forget_grants(&grants);
        self.store.set_columns(def.id, Some(def.stored_columns()?));
        self.tables.write().insert(def.name.clone(), Arc::new(def));
        self.table_changes.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    /// `ALTER TABLE name ADD COLUMN`: appends `column`. False if it existed and
    /// `if_not_exists` was given. `has_rows` says whether the table holds rows (asked under
    /// the DDL lock): NOT NULL without a DEFAULT cannot be added to a table that does.
    pub async fn add_column(
        &self,
        name: &str,
        column: ColumnDef,
        if_not_exists: bool,
        has_rows: impl FnOnce(&TableDef) -> Result<bool>,
    ) -> Result<bool> {
        let _ddl = self.ddl.lock().await;
        let old = self.require_table(name)?;
        if old.column_index(&column.name).is_some() {
            if if_not_exists {
                return Ok(false);
            }
            return Err(Error::Conflict {
                sqlstate: crate::error::SqlState::DuplicateColumn,
                message: format!("column \"{}\" of relation \"{name}\" already exists", column.name),
            });
        }
        column.default_value()?;
        if column.not_null && column.default.is_none() && has_rows(&old)? {
            return Err(Error::NullViolation(format!(
                "column \"{}\" of relation \"{name}\" contains null values",
                column.name
            )));
        }
        let mut def = (*old).clone();
        def.columns.push(column);
        let columns = def.stored_columns()?;
        let entry = serde_json::to_vec(&def)?;
        self.store
            .commit(Commit { catalog_puts: vec![(CatalogKind::Table.key(&def.name), entry)], ..Default::default() })
            .await?;
        self.store.set_columns(def.id, Some(columns));
        self.tables.write().insert(def.name.clone(), Arc::new(def));
        self.table_changes.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    /// Sets (or with `None` removes) table `name`'s retention, durably.
    pub async fn set_retention(&self, name: &str, retention_micros: Option<i64>) -> Result<()> {
        let _ddl = self.ddl.lock().await;
        let mut def = (*self.require_table(name)?).clone();
        def.retention_micros = retention_micros;
        let entry = serde_json::to_vec(&def)?;
        self.store
            .commit(Commit { catalog_puts: vec![(CatalogKind::Table.key(&def.name), entry)], ..Default::default() })
            .await?;
        self.tables.write().insert(def.name.clone(), Arc::new(def));
        self.table_changes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Drops table `name` with its rows if it is still the temporary table `id` (a session's
    /// own, at its end); else leaves it. True if dropped. Checked and dropped under the DDL
    /// lock, so a table made under the same name since is never dropped for it.
    pub async fn drop_table_with_id(&self, name: &str, id: u64) -> Result<bool> {
        let _ddl = self.ddl.lock().await;
        match self.table(name) {
            Some(def) if def.id == id && def.temporary => self.drop_locked(&def).await.map(|()| true),
            _ => Ok(false),
        }
    }

    /// Drops a table and all its rows. Returns false if it did not exist and `if_exists` was given.
    pub async fn drop_table(&self, name: &str, if_exists: bool) -> Result<bool> {
        let _ddl = self.ddl.lock().await;
        let Some(def) = self.table(name) else {
            return if if_exists { Ok(false) } else { Err(Error::undefined_table(name)) };
        };
        self.drop_locked(&def).await?;
        Ok(true)
    }

    /// Drops `def` (the caller holds the DDL lock).
    async fn drop_locked(&self, def: &TableDef) -> Result<()> {
        let table_grants = Securable::Table(def.name.clone());
        self.store
            .commit(Commit {
                catalog_deletes: vec![CatalogKind::Table.key(&def.name), table_grants.grants_key()],
                dropped_tables: vec![def.id],
                ..Default::default()
            })
            .await?;
        self.forget_grants(&table_grants);
        self.tables.write().remove(&def.name);
        self.store.set_columns(def.id, None);
        self.table_changes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
