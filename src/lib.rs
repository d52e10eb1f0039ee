//! asofdb: a SQL feature database for real-time machine learning, spoken to over the
//! PostgreSQL wire protocol.
//!
//! # The life of a statement
//!
//! 1. **wire** (`server`): pgwire decodes a Query (or Parse/Bind/Execute) message from a
//!    client connection and hands the text to the connection's [`execute::Session`].
//! 2. **sql** (`sql`): the text is split into statements and parsed with sqlparser's
//!    PostgreSQL dialect (plus the compatibility rewrites client catalog queries need).
//! 3. **plan** (`plan`): queries are planned by DataFusion in a context whose `public` schema
//!    is the live catalog of event tables (`catalog`), each a `TableProvider` that streams
//!    Arrow blocks and prunes them by event time.
//! 4. **execute** (`execute`): the session runs the statement: DDL goes to the catalog;
//!    INSERT and COPY rows are converted to the table's exact schema (rejecting the whole
//!    statement on the first bad value); queries run in DataFusion; transactions buffer writes.
//! 5. **storage** (`storage`): a write becomes one atomic batch in the hot tier (sled), keyed
//!    by table, event-time block and arrival sequence, and is flushed (group commit) before
//!    the client receives CommandComplete.

pub mod catalog;
pub mod error;
pub mod execute;
pub mod feature;
pub mod plan;
pub mod server;
pub mod sql;
pub mod storage;

pub use error::{Error, Result};
