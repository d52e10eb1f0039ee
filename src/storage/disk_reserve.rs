//! Refuses new rows while the data directory's disk has less free space than a reserve.
//!
//! Why not just let the write fail: sled turns a failed write into an error that every later
//! write repeats until the process restarts, and its flush can then wait forever for a write
//! that never completes. Stopping user writes while space remains keeps the hot tier
//! healthy; tiering, snapshots and catalog changes may still use the reserve, and writes go
//! on by themselves once space is freed.
//!
//! Maintenance (tiering moves, compaction, collection, feature snapshots) may use the first
//! half of the reserve and stops at the second: the hot tier's own writes must never find
//! the disk full.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::error::{Error, Result};

/// Free space is read at most this often; writes in between use the last reading.
const RECHECK_MICROS: u64 = 50_000;

/// The reserve of one data directory (or none, for in-memory databases).
pub struct DiskReserve {
    dir: Option<PathBuf>,
    reserve_bytes: u64,
    started: Instant,
    /// When free space was last read (µs since `started`, plus one; 0: never) and what it was.
    checked_at: AtomicU64,
    available: AtomicU64,
}

impl DiskReserve {
    pub fn new(dir: PathBuf, reserve_bytes: u64) -> Self {
        Self {
            dir: Some(dir),
            reserve_bytes,
            started: Instant::now(),
            checked_at: AtomicU64::new(0),
            available: AtomicU64::new(u64::MAX),
        }
    }

    pub fn none() -> Self {
        Self { dir: None, ..Self::new(PathBuf::new(), 0) }
    }

    /// Ok while the disk has room for `bytes` more and the reserve; 53100 otherwise. For
    /// writes of new rows. The write's size comes off the last reading, so writes between two
    /// readings count against each other.
    pub fn check(&self, bytes: u64) -> Result<()> {
        self.check_above(self.reserve_bytes, bytes)
    }

    /// Ok while the disk has room for `bytes` more and half the reserve; 53100 otherwise.
    /// For maintenance writes.
    pub fn check_for_maintenance(&self, bytes: u64) -> Result<()> {
        self.check_above(self.reserve_bytes / 2, bytes)
    }

    fn check_above(&self, floor: u64, bytes: u64) -> Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        if floor == 0 {
            return Ok(());
        }
        let now = self.started.elapsed().as_micros() as u64 + 1;
        let last = self.checked_at.load(Ordering::Relaxed);
        let available = if last == 0 || now.saturating_sub(last) >= RECHECK_MICROS {
            // A reading that fails (the directory vanished, say) lets the write try: the
            // write reports the real error.
            let available = fs2::available_space(dir).unwrap_or(u64::MAX);
            self.available.store(available, Ordering::Relaxed);
            self.checked_at.store(now, Ordering::Relaxed);
            available
        } else {
            self.available.load(Ordering::Relaxed)
        };
        if available >= floor.saturating_add(bytes) {
            let _ =
                self.available.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| Some(a.saturating_sub(bytes)));
            return Ok(());
        }
        Err(Error::DiskFull(format!(
            "could not write: only {} MB free on the disk of {}, below the {} MB kept free \
             (--disk-reserve-mb {}); free disk space to write again",
            available >> 20,
            dir.display(),
            floor >> 20,
            self.reserve_bytes >> 20
        )))
    }
}
