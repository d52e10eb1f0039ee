//! Planning with DataFusion: the session context, and event tables as `TableProvider`s.

pub mod asof;
mod checked_arithmetic;
mod coalesce;
mod context;
mod correlated_subqueries;
mod datetime_template;
mod event_table;
mod exact_avg;
mod expr_rules;
mod feature_table;
mod float_over_numeric;
mod guarded_evaluation;
mod in_subquery_nulls;
pub mod infinite_time;
pub mod integer_literals;
mod interval_arithmetic;
mod interval_groups;
mod interval_order;
mod key_filter;
mod ordered_set;
mod pg_datetime_functions;
mod pg_functions;
mod pg_interval_functions;
mod pg_numeric;
mod pg_time;
mod point_read;
mod schema;
mod session_time_zone;
mod system;
mod time_bounds;

pub use context::{CATALOG_NAME, SCHEMA_NAME, new_session_context};
pub use event_table::EventTable;
pub use pg_numeric::round_for_integer;
pub use point_read::{PointRead, try_point_read};
pub use system::SystemSchema;
