//! The one way events leave a table (DELETE, retention): erased from both tiers in one atomic,
//! durable switch (`storage::erasure`), then every feature over the table rebuilt for the keys
//! whose events went (`feature::rebuild_erased_keys`), with writes held meanwhile.

use arrow::array::{BooleanArray, RecordBatch};

use super::database::Database;
use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::feature::{EncodedKeys, rebuild_erased_keys, rebuild_whole};
use crate::storage::{Erased, Erasure};

/// The rows of a batch of a table's rows (widened to its columns) an erasure takes.
pub type MatchRows = Box<dyn Fn(&RecordBatch) -> Result<BooleanArray> + Send + Sync>;

/// Which rows of a table an erasure takes.
pub struct RowMatcher {
    /// The columns it reads (table column numbers): the others may be NULL in what it sees.
    pub columns: Vec<usize>,
    pub matches: MatchRows,
}

/// Erases the rows of `def` that `matches` takes (only rows with an event time before
/// `before_time` can match; `i64::MAX` for any). The caller holds the database's tiering
/// lock; this waits for the writes in flight and holds new ones until the features follow.
/// The features' snapshots go with the rows; with `snapshot`, new ones are written before
/// writes go on (else the next checkpoint writes them, and tier moves wait for it).
pub async fn erase(
    db: &Database,
    def: &TableDef,
    matches: RowMatcher,
    before_time: i64,
    snapshot: bool,
) -> Result<Erased> {
    // A replacement reading the rows now would keep erased ones in its state and snapshot.
    // None starts meanwhile: it registers under the tiering lock, which the caller holds.
    if db.features.backfills().hot_from(def.id).is_some() {
        return Err(Error::invalid_input(
            crate::error::SqlState::ObjectInUse,
            format!(
                "a CREATE OR REPLACE FEATURE over \"{}\" is reading its rows; try again when it completes",
                def.name
            ),
        ));
    }
    let _no_commits = db.commit_gate.write().await;
    // Dropped (and perhaps made again under its name) before the gate was taken.
    if db.catalog.table(&def.name).is_none_or(|now| now.id != def.id) {
        return Err(Error::undefined_table(&def.name));
    }
    let store = db.catalog.store().clone();
    let features: Vec<_> = db.features.all().into_iter().filter(|f| f.compiled().table.id == def.id).collect();
    let mut snapshots = Vec::new();
    for feature in &features {
        snapshots.extend(feature.snapshot_entries(&store)?);
    }
    let had_snapshots = !snapshots.is_empty();
    let started = std::time::Instant::now();
    let work = || -> Result<(Erased, u64)> {
        // Of the erased rows, the features read their keys and event times.
        let row_columns = features.iter().flat_map(|f| f.compiled().key_columns.clone()).collect();
        let erasure = Erasure {
            table_id: def.id,
            table_name: def.name.clone(),
            event_time: def.event_time,
            matches: matches.matches.as_ref(),
            before_time,
            catalog_deletes: snapshots,
            columns: matches.columns.clone(),
            row_columns,
        };
        let mut keys: Vec<EncodedKeys> = vec![EncodedKeys::default(); features.len()];
        let erased = store.erase(&erasure, &mut |rows| {
            features.iter().zip(&mut keys).try_for_each(|(f, into)| f.collect_keys(rows, into))
        })?;
        if erased.changed_nothing() {
            return Ok((erased, 0));
        }
        let rebuilt = match erased.watermark_lowered {
            true => rebuild_whole(&store, &features),
            false => {
                rebuild_erased_keys(&store, def.scan_table(), &features.iter().cloned().zip(keys).collect::<Vec<_>>())
            }
        };
        let rebuilt = rebuilt.map_err(|e| {
            Error::internal(format!(
                "the rows were erased, but rebuilding the features of \"{}\" failed ({e}); they serve again after a restart",
                def.name
            ))
        })?;
        Ok((erased, rebuilt))
    };
    // Waited for here, not as a task this future awaits: dropped at an await (the connection
    // closed), it would let writes go on while the features are rebuilt. On a thread of lower
    // priority than the serving ones, so point reads keep their latency meanwhile.
    let at_low_priority = || super::low_priority::run(work).and_then(|outcome| outcome);
    let outcome = match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => at_low_priority(),
        _ => tokio::task::block_in_place(at_low_priority),
    };
    let (erased, rebuilt) = match outcome {
        Ok(done) => done,
        Err(e) => {
            // The switch deletes the snapshots: if they are gone, it landed, and the features
            // still hold what it erased.
            let landed = had_snapshots
                && features.iter().all(|f| f.snapshot_entries(&store).is_ok_and(|entries| entries.is_empty()));
            if landed {
                features.iter().for_each(|f| f.break_after_erasure());
            }
            return Err(e);
        }
    };
    db.rows_erased(erased.rows);
    if snapshot && !erased.changed_nothing() {
        for feature in &features {
            let written = match store.disk_reserve().check_for_maintenance(0) {
                Ok(()) => feature.write_snapshot(&store).await,
                Err(e) => Err(e),
            };
            // The next checkpoint tries again; the erasure is done either way.
            if let Err(e) = written {
                tracing::warn!(feature = %feature.compiled().def.name, "snapshot after an erasure failed: {e}");
            }
        }
    }
    if erased != Erased::default() {
        tracing::info!(
            table = %def.name,
            rows = erased.rows,
            files_rewritten = erased.files_rewritten,
            files_marked = erased.files_marked,
            hot_values_rewritten = erased.hot_values_rewritten,
            feature_rows_reread = rebuilt,
            secs = started.elapsed().as_secs_f64(),
            "erased"
        );
    }
    Ok(erased)
}
