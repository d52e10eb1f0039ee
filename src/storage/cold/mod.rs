//! The cold tier: older events as Parquet files in an object store, and the manifest that
//! says which files exist and which hot rows they replaced.
//!
//! Layout (documented for other engines in docs/storage.md):
//! `<cold root>/<table name>/<YYYY-MM-DD>/<file number, 20 digits>.parquet`, one table's rows
//! of one UTC day per file, sorted by event time.

pub mod file;
mod manifest;
pub mod merge;
mod store;

pub use manifest::{ColdFile, ERASED_MAX, Manifest, TierMark, day_of, encode};
pub use store::ColdStore;
