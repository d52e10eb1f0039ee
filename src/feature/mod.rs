//! Features: windowed aggregations keyed by entity, kept current on every write and
//! evaluated at any time T by one core (`state::KeyHistory::evaluate`).

mod accumulate;
pub mod aggregate;
mod as_of;
mod as_of_stored;
mod backfills;
mod def;
mod definitions;
mod encoding;
mod engine;
mod erasure;
mod pending_read;
mod quantile;
mod sharded_ingest;
mod snapshot;
mod state;
pub mod window;

pub use as_of::{Points, Values};
pub use backfills::{Backfill, BackfillGuard, BackfillKind, BackfillProgress, BackfillState, Backfills};
pub use def::{CompiledFeature, FeatureDef, ValueDef, array_of, human_interval, value_column};
pub use definitions::{forget_definition, persist_definition, stored_definitions};
pub use engine::{FeatureEngine, LiveFeature, PointValue};
pub use erasure::{EncodedKeys, rebuild_erased_keys, rebuild_whole};
pub use snapshot::SnapshotMeta;
pub use state::SlidingDistinct;
use state::distinct_aggregates;
pub use state::{FeatureState, ShardedWrite};
