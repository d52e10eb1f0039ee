//! Executes parsed statements against the database: DDL, writes, queries, transactions.

mod alter_table;
mod backup;
pub(crate) mod conform;
mod copy_binary;
pub mod copy_format;
pub mod copy_rows;
mod create_feature;
mod create_table;
mod database;
mod delete;
mod drop;
mod erase;
mod feature_vectors;
mod insert;
mod logins;
mod low_priority;
mod prepared;
mod privileges;
mod retention;
mod roles;
mod scrape;
mod session;
mod settings;
pub mod source;
pub mod tiering;
mod views;

pub use conform::{RowLabel, conform};
pub use database::{Database, Limits};
pub use drop::drop_leftover_temporary_tables;
pub use feature_vectors::{FeatureVectors, VectorShape, VectorValue};
pub use logins::Login;
pub use prepared::{Planned, PreparedStatement};
pub use session::{Output, Session, check_copy};
pub use source::{resume_sources, stop_sources};
