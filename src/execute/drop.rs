//! DROP TABLE and DROP FEATURE: a table goes with the features and views that read it and
//! the sources that feed it (CASCADE); and the temporary tables a stopped server left.

use super::database::Database;
use super::views::still_needed;
use crate::error::{Error, Result, SqlState};
use crate::feature::forget_definition;

/// Drops features `names`; a missing one is 42704 unless `if_exists`; the views reading one
/// go with it if `cascade`, else they are 2BP01.
pub async fn drop_features(db: &Database, names: &[String], if_exists: bool, cascade: bool) -> Result<()> {
    let _no_commits = db.commit_gate.write().await;
    drop_features_gated(db, names, if_exists, cascade).await
}

/// [`drop_features`], the caller holding the commit gate.
async fn drop_features_gated(db: &Database, names: &[String], if_exists: bool, cascade: bool) -> Result<()> {
    for name in names {
        let views = db.views.depending_on(std::slice::from_ref(name));
        if !views.is_empty() && !cascade {
            return Err(still_needed("feature", name, &views));
        }
        for view in &views {
            db.views.remove(view, None);
        }
        if db.features.get(name).is_none() {
            if if_exists {
                continue;
            }
            return Err(Error::NotFound {
                sqlstate: SqlState::UndefinedObject,
                message: format!("feature \"{name}\" does not exist"),
            });
        }
        forget_definition(db.catalog.store(), name).await?;
        db.catalog.forget_grants(&crate::catalog::Securable::Feature(name.clone()));
        db.features.remove(name)?;
        // A replacement being built would switch to nothing: it stops.
        db.features.backfills().abandon(name);
    }
    Ok(())
}

/// Drops tables `names` with their rows; the features and views reading one go with it if
/// `cascade`, else they are 2BP01. A missing table is 42P01 unless `if_exists`. Commits wait
/// meanwhile, and so does the switch of a feature replacement, which checks its table.
pub async fn drop_tables(db: &Database, names: &[String], if_exists: bool, cascade: bool) -> Result<()> {
    // Not while a backup copies rows (`execute::backup`).
    let _no_backup = db.backups.read().await;
    // Sources first, before the commit gate: a source's runner may be waiting for it. No
    // source is created or dropped meanwhile.
    let _sources = db.sources.ddl.lock().await;
    let feeding: Vec<(&String, Vec<String>)> = names.iter().map(|t| (t, db.catalog.sources_into(t))).collect();
    if let Some((table, sources)) = feeding.iter().find(|(_, sources)| !sources.is_empty() && !cascade) {
        return Err(still_needed("table", table, sources));
    }
    for source in feeding.iter().flat_map(|(_, sources)| sources) {
        super::source::drop_source_locked(db, source, true).await?;
    }
    let _no_commits = db.commit_gate.write().await;
    for table in names {
        if db.catalog.table(table).is_none() {
            let other = if db.views.get(table).is_some() {
                Some("DROP VIEW")
            } else {
                db.features.get(table).map(|_| "DROP FEATURE")
            };
            if let Some(statement) = other {
                let message = format!("\"{table}\" is not a table (use {statement})");
                return Err(Error::invalid_input(SqlState::WrongObjectType, message));
            }
        }
        let dependents = db.features.reading(table);
        let mut read = dependents.clone();
        read.push(table.clone());
        let views = db.views.depending_on(&read);
        let needed = !dependents.is_empty() || !views.is_empty();
        if needed && !cascade {
            let all: Vec<String> = dependents.iter().chain(&views).cloned().collect();
            return Err(still_needed("table", table, &all));
        }
        for view in &views {
            db.views.remove(view, None);
        }
        drop_features_gated(db, &dependents, true, true).await?;
        db.catalog.drop_table(table, if_exists).await?;
    }
    Ok(())
}

/// Drops the temporary tables a server stopped before their sessions ended (at start-up; no
/// feature reads one, CREATE FEATURE refuses them).
pub async fn drop_leftover_temporary_tables(db: &Database) -> Result<()> {
    for name in db.catalog.table_names() {
        if let Some(table) = db.catalog.table(&name).filter(|t| t.temporary) {
            db.catalog.drop_table_with_id(&name, table.id).await?;
        }
    }
    Ok(())
}
