//! BACKUP TO: a consistent copy of the database taken while it keeps serving; the copy itself
//! is `storage::backup`, this is what holds still meanwhile.

use std::path::{Path, PathBuf};

use super::database::Database;
use crate::error::{Error, Result, SqlState};
use crate::storage::backup::{self, BackupReport, MARKER};

impl Database {
    /// Copies the database into `dest`, a directory on the server that does not exist or is
    /// empty: every write acknowledged before this began, with the catalog, the features'
    /// snapshots, sources' positions and the cold tier's files. Writes wait only while the
    /// features are snapshotted and the catalog is copied, not while the rows are.
    pub async fn backup(&self, dest: &str) -> Result<BackupReport> {
        let dest = PathBuf::from(dest);
        if !dest.is_absolute() {
            return Err(Error::invalid_input(SqlState::InvalidName, "relative path not allowed for BACKUP TO"));
        }
        // One backup at a time, and no table dropped while its rows are copied.
        let _no_drops = self.backups.write().await;
        backup::check_empty(&dest)?;
        // No tiering pass either; taken before the commit gate, as CREATE OR REPLACE does.
        let _no_tiering = self.tiering.lock().await;
        let gate = self.commit_gate.write().await;
        self.checkpoint_gated(false).await?;
        let store = self.catalog.store().clone();
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

/// Removes what a failed backup wrote into `dest` (which was empty or missing before).
fn remove_partial(dest: &Path) {
    for name in ["hot", "cold"] {
        let _ = std::fs::remove_dir_all(dest.join(name));
    }
    let _ = std::fs::remove_file(dest.join(MARKER));
}
