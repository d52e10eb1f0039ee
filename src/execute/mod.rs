//! Executes parsed statements against the database: DDL, writes, queries, transactions.

mod conform;
pub mod copy_format;
mod create_table;
mod database;
mod insert;
mod session;
mod settings;

pub use conform::{conform, RowLabel};
pub use database::Database;
pub use session::{check_copy, CopyIn, Output, Session};
