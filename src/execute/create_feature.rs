//! CREATE [OR REPLACE] FEATURE: the definition is validated, backfilled from the stored rows,
//! persisted and then served; a replacement is built while the old definition serves.

use crate::catalog::{Privilege, Securable};
use std::sync::Arc;

use super::database::Database;
use super::views::replan_dependents;
use crate::catalog::TableDef;
use crate::error::{Error, Result, SqlState};
use crate::feature::{BackfillGuard, BackfillKind, CompiledFeature, FeatureDef, LiveFeature, persist_definition};
use crate::sql::feature::CreateFeature;
use crate::storage::EventStore;

/// Where a statement's NOTICE messages go (its client), if anywhere.
pub type Notices = Option<tokio::sync::mpsc::UnboundedSender<String>>;

/// Disk space a new feature needs at least, for its catalog entry and first snapshot.
const FEATURE_MIN_BYTES: u64 = 64 << 10;

/// CREATE [OR REPLACE] FEATURE. A replacement of an existing feature is [`replace_feature`];
/// anything else creates one.
/// `role` makes it (and owns it, if it is new).
pub async fn create_feature(db: &Arc<Database>, create: &CreateFeature, role: &str, notices: &Notices) -> Result<()> {
    if create.or_replace {
        if let Some(old) = db.features.get(&create.name) {
            return replace_feature(db, create, old, role, notices).await;
        }
        if db.relation_exists(&create.name) {
            let message = format!("\"{}\" is not a feature", create.name);
            return Err(Error::invalid_input(SqlState::WrongObjectType, message));
        }
    }
    new_feature(db, create, role, notices).await
}

/// Creates a feature: backfills it from every stored row, persists it, then serves it.
/// Commits wait meanwhile, so none is missed between backfill and registration.
async fn new_feature(db: &Arc<Database>, create: &CreateFeature, owner: &str, notices: &Notices) -> Result<()> {
    let catalog = &db.catalog;
    let _no_commits = db.commit_gate.write().await;
    if create.if_not_exists && db.features.get(&create.name).is_some() {
        return Ok(());
    }
    if db.relation_exists(&create.name) {
        return Err(Error::duplicate_table(&create.name));
    }
    db.require(owner, &Securable::Schema, Privilege::Create)?;
    let mut def = FeatureDef::bind(create, |t| catalog.require_table(t))?;
    def.owner = owner.into();
    db.require(owner, &Securable::Table(def.table.clone()), Privilege::Select)?;
    // The catalog entry and the backfill's snapshot are new data too.
    catalog.store().disk_reserve().check(FEATURE_MIN_BYTES)?;
    let table = readable_table(db, &def)?;
    let started = std::time::Instant::now();
    let total = catalog.store().stats(table.id).rows;
    let backfill = db.features.backfills().start(&def.name, BackfillKind::Create, table.id, None, total)?;
    let built = {
        let (db, def, mut notices) = (db.clone(), def.clone(), ProgressNotices::new(&create.name, notices));
        let progress = backfill.progress();
        tokio::task::spawn_blocking(move || {
            LiveFeature::backfill(def, table, db.catalog.store(), &db.ctx, true, &mut |done, total| {
                notices.report(done, total);
                progress.report(done)
            })
        })
        .await
        .map_err(|e| Error::internal(format!("backfill task failed: {e}")))
        .and_then(|built| built)
    };
    let outcome = async {
        let live = built?;
        // Again after the backfill, which may have taken long: the catalog entry and the
        // snapshot must not find the disk full between them.
        catalog.store().disk_reserve().check(FEATURE_MIN_BYTES.max(live.size().2 as u64))?;
        persist_definition(catalog.store(), &def).await?;
        catalog.forget_grants(&Securable::Feature(def.name.clone()));
        live.write_snapshot(catalog.store()).await?;
        notice(notices, built_notice(&live, "", started));
        db.features.insert(live)
    }
    .await;
    backfill.finish(&outcome);
    outcome
}

/// Replaces feature `old` with `create`'s definition without stopping it: the new one is
/// backfilled while the old one serves reads, writes and joins; then, with commits held off
/// briefly, it takes the writes made meanwhile and is persisted (definition and snapshot in
/// one durable switch) and served in the old one's place. A failure before the switch leaves
/// the old one as it was, on disk too.
async fn replace_feature(
    db: &Arc<Database>,
    create: &CreateFeature,
    old: Arc<LiveFeature>,
    role: &str,
    notices: &Notices,
) -> Result<()> {
    let catalog = &db.catalog;
    db.require_owner(role, &Securable::Feature(create.name.clone()))?;
    let mut def = FeatureDef::bind(create, |t| catalog.require_table(t))?;
    def.owner = old.compiled().def.owner.clone();
    db.require(role, &Securable::Table(def.table.clone()), Privilege::Select)?;
    let table = readable_table(db, &def)?;
    let compiled = CompiledFeature::compile(def, table.clone(), &db.ctx)?;
    keeps_columns_views_read(db, &old, &compiled)?;
    let store = catalog.store().clone();
    store.disk_reserve().check(FEATURE_MIN_BYTES)?;
    let started = std::time::Instant::now();
    let (backfill, hot_from) = {
        // No tier move is deciding which rows to take while the replacement marks where its
        // reading of the hot tier starts: else one could take rows above the mark.
        let _no_moves = db.tiering.lock().await;
        let hot_from = store.visible_seq();
        let total = store.stats(table.id).rows;
        let kind = BackfillKind::Replace;
        (db.features.backfills().start(&create.name, kind, table.id, Some(hot_from), total)?, hot_from)
    };
    // A replacement that finished meanwhile: this one would fail only at its switch.
    if !is_current(db, &old) {
        let failed = Err(changed_meanwhile(&create.name));
        backfill.finish(&failed);
        return failed;
    }
    let built = build(&store, (compiled, hot_from), &backfill, notices).await;
    let live = match built {
        Ok(live) => live,
        Err(e) => {
            let failed = Err(e);
            backfill.finish(&failed);
            return failed;
        }
    };
    // The switch runs to its end even if the statement is dropped meanwhile (at shutdown): a
    // durable switch whose feature was not installed would leave the old one in service, to be
    // snapshotted under the new definition.
    let switch = tokio::spawn(switch(db.clone(), live, old, backfill, notices.clone(), started));
    switch.await.map_err(|e| Error::internal(format!("feature switch failed: {e}")))?
}

/// Builds `compiled` from the rows below `hot_from` and those written since.
async fn build(
    store: &Arc<EventStore>,
    (compiled, hot_from): (CompiledFeature, u64),
    backfill: &BackfillGuard,
    notices: &Notices,
) -> Result<LiveFeature> {
    let (store, mut notices, progress) =
        (store.clone(), ProgressNotices::new(&compiled.def.name, notices), backfill.progress());
    tokio::task::spawn_blocking(move || {
        LiveFeature::build(compiled, &store, hot_from, &mut |done, total| {
            notices.report(done, total);
            progress.report(done)
        })
    })
    .await
    .map_err(|e| Error::internal(format!("backfill task failed: {e}")))?
}

/// With commits held off: `live` takes the writes made since it was built, is persisted in
/// one durable switch and served in `old`'s place; the views reading it are planned again.
async fn switch(
    db: Arc<Database>,
    mut live: LiveFeature,
    old: Arc<LiveFeature>,
    backfill: BackfillGuard,
    notices: Notices,
    started: std::time::Instant,
) -> Result<()> {
    let _no_commits = db.commit_gate.write().await;
    let outcome = async {
        let name = live.compiled().def.name.clone();
        let table = &live.compiled().table;
        if !is_current(&db, &old) || db.catalog.table(&table.name).is_none_or(|t| t.id != table.id) {
            return Err(changed_meanwhile(&name));
        }
        // Views made while it was built (CREATE VIEW waits for the gate).
        keeps_columns_views_read(&db, &old, live.compiled())?;
        let store = db.catalog.store().clone();
        let progress = backfill.progress();
        live = tokio::task::spawn_blocking(move || live.catch_up(&store, &progress).map(|_| live))
            .await
            .map_err(|e| Error::internal(format!("backfill task failed: {e}")))??;
        let store = db.catalog.store();
        store.disk_reserve().check(FEATURE_MIN_BYTES.max(live.size().2 as u64))?;
        if let Err(e) = live.persist_replacement(store).await {
            // Whether the switch is on disk is unknown: the old state must not be
            // snapshotted again, under what may be the new definition.
            old.retire();
            return Err(e);
        }
        notice(&notices, built_notice(&live, "replaced, ", started));
        db.features.insert(live)?;
        for view in replan_dependents(&db, &name).await {
            notice(&notices, format!("view \"{view}\" could not read the new definition and was dropped"));
        }
        Ok(())
    }
    .await;
    backfill.finish(&outcome);
    outcome
}

fn is_current(db: &Database, old: &Arc<LiveFeature>) -> bool {
    db.features.get(&old.compiled().def.name).is_some_and(|current| Arc::ptr_eq(&current, old))
}

fn changed_meanwhile(name: &str) -> Error {
    Error::Conflict {
        sqlstate: SqlState::ObjectInUse,
        message: format!(
            "feature \"{name}\" or its table was dropped or replaced while this replacement was built; nothing was replaced"
        ),
    }
}

/// The table a feature reads, if a feature may read it. A feature outlives any session;
/// PostgreSQL keeps permanent objects off temporary tables too.
fn readable_table(db: &Database, def: &FeatureDef) -> Result<Arc<TableDef>> {
    let table = db.catalog.require_table(&def.table)?;
    if table.temporary {
        return Err(Error::unsupported(format!("a feature cannot read temporary table \"{}\"", table.name)));
    }
    Ok(table)
}

/// Views read a feature by its columns (inlined when they were planned, planned again after
/// the replacement): a replacement keeps them while a view reads the feature, as PostgreSQL's
/// CREATE OR REPLACE VIEW keeps a view's columns.
fn keeps_columns_views_read(db: &Database, old: &LiveFeature, new: &CompiledFeature) -> Result<()> {
    let name = &new.def.name;
    let views = db.views.depending_on(std::slice::from_ref(name));
    let columns = |schema: &arrow::datatypes::Schema| -> Vec<(String, arrow::datatypes::DataType)> {
        schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
    };
    if views.is_empty() || columns(&old.compiled().schema) == columns(&new.schema) {
        return Ok(());
    }
    Err(Error::invalid_input(
        SqlState::InvalidTableDefinition,
        format!(
            "cannot change the columns of feature \"{name}\": views read them ({}); drop the views first",
            views.join(", ")
        ),
    ))
}

/// `feature "f" [replaced, ]backfilled from N rows[ on T threads] in 1.2s: K keys, E events kept`.
fn built_notice(live: &LiveFeature, done: &str, started: std::time::Instant) -> String {
    let (keys, events, _) = live.size();
    format!(
        "feature \"{}\" {done}{} in {:.1?}: {keys} keys, {events} events kept",
        live.compiled().def.name,
        live.origin(),
        started.elapsed()
    )
}

fn notice(notices: &Notices, message: String) {
    if let Some(notices) = notices {
        let _ = notices.send(message);
    }
}

/// NOTICEs of a backfill's progress, at most one per `ASOFDB_BACKFILL_NOTICE_MS` (1 s).
struct ProgressNotices {
    feature: String,
    notices: Notices,
    last: std::time::Instant,
    every: std::time::Duration,
}

impl ProgressNotices {
    fn new(feature: &str, notices: &Notices) -> Self {
        let millis = std::env::var("ASOFDB_BACKFILL_NOTICE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        let every = std::time::Duration::from_millis(millis);
        Self { feature: feature.to_string(), notices: notices.clone(), last: std::time::Instant::now(), every }
    }

    fn report(&mut self, done: u64, total: u64) {
        if self.last.elapsed() < self.every {
            return;
        }
        self.last = std::time::Instant::now();
        let total = total.max(done);
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        notice(&self.notices, format!("backfilling feature \"{}\": {done} of {total} rows ({percent}%)", self.feature));
    }
}
