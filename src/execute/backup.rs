//! BACKUP TO: a consistent copy of the database taken while it keeps serving; the copy itself
//! is `storage::backup`, this is what holds still meanwhile.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::database::Database;
use crate::error::{Error, Result, SqlState};
use crate::storage::TierTable;
use crate::storage::backup::{self, BackupReport, MARKER};

impl Database {
    /// Copies the database into `dest`, a directory on the server that does not exist or is
    /// empty: every write acknowledged before this began, with the catalog, the features'
    /// snapshots, sources' positions and the cold tier's files. Writes wait only while the
    /// catalog and the features' snapshots are copied, not while the rows are.
    ///
    /// It runs to the end in a task of its own, with the locks it holds: a statement dropped
    /// on the way (at shutdown) must not let a DROP TABLE in while rows are being copied.
    pub async fn backup(self: &Arc<Self>, dest: &str) -> Result<BackupReport> {
        let dest = PathBuf::from(dest);
        if !dest.is_absolute() {
            return Err(Error::invalid_input(SqlState::InvalidName, "relative path not allowed for BACKUP TO"));
        }
        let db = self.clone();
        let task = tokio::spawn(async move { db.backup_locked(dest).await });
        task.await.map_err(|e| Error::internal(format!("backup: {e}")))?
    }

    async fn backup_locked(&self, dest: PathBuf) -> Result<BackupReport> {
        let store = self.catalog.store().clone();
        // Not among the hot tier's files, nor the cold tier's (collection would delete them).
        for own in self.data_dir.iter().map(|dir| dir.join("hot")).chain(store.cold_root()) {
            if resolved(&dest).starts_with(resolved(&own)) {
                let message = format!("cannot back up into \"{}\", inside the database's own files", dest.display());
                return Err(Error::invalid_input(SqlState::InvalidParameterValue, message));
            }
        }
        // One backup at a time, and no table dropped while its rows are copied.
        let _no_drops = self.backups.write().await;
        backup::check_empty(&dest)?;
        // No tiering pass either; taken before the commit gate, as CREATE OR REPLACE does.
        let _no_tiering = self.tiering.lock().await;
        // Cold files still holding erased rows are written again without them first, so no
        // erased row reaches the copy (the tiering lock keeps new erasures out until it ends).
        let tables: Vec<TierTable> = self
            .catalog
            .table_names()
            .into_iter()
            .filter_map(|name| self.catalog.table(&name))
            .filter_map(|t| Some(TierTable { id: t.id, name: t.name.clone(), event_time: t.event_time? }))
            .collect();
        let purging = store.clone();
        tokio::task::spawn_blocking(move || tables.iter().try_for_each(|t| purging.purge_erased(t).map(|_| ())))
            .await
            .map_err(|e| Error::internal(format!("backup: {e}")))??;
        // No commit mid-way while the backup's seq is fixed (a staged write's rows must be
        // wholly in place). Features are not snapshotted first: the copy restored replays the
        // rows after their last snapshot, as a restart does, and writes wait less.
        // New commits wait from the moment this is asked for (the lock is fair).
        let paused = std::time::Instant::now();
        let gate = self.commit_gate.write().await;
        let (captured, seq_fixed) = tokio::sync::oneshot::channel();
        let target = dest.clone();
        let job = tokio::task::spawn_blocking(move || {
            store.backup(&target, move || {
                let _ = captured.send(());
            })
        });
        // Commits go on once the backup's seq is fixed (or it failed before).
        let _ = seq_fixed.await;
        drop(gate);
        let writes_waited = paused.elapsed();
        let outcome = job.await.map_err(|e| Error::internal(format!("backup: {e}"))).and_then(|r| r);
        match outcome {
            Ok(report) => {
                tracing::info!(
                    dest = %dest.display(),
                    seq = report.next_seq,
                    hot_entries = report.hot_entries,
                    cold_files = report.cold_files,
                    bytes = report.hot_bytes + report.cold_bytes,
                    secs = report.seconds,
                    writes_waited_secs = writes_waited.as_secs_f64(),
                    "backup written"
                );
                Ok(report)
            }
            Err(e) => {
                remove_partial(&dest);
                Err(e)
            }
        }
    }
}

/// `path` with symbolic links and `..` resolved, as far as it exists.
fn resolved(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    out.extend(rest.iter().rev());
    out
}

/// Removes what a failed backup wrote into `dest` (which was empty or missing before).
fn remove_partial(dest: &Path) {
    for name in ["hot", "cold"] {
        let _ = std::fs::remove_dir_all(dest.join(name));
    }
    let _ = std::fs::remove_file(dest.join(MARKER));
    let _ = std::fs::remove_file(dest.join(MARKER).with_extension("partial"));
}
