//! asofdb: a SQL feature database for real-time machine learning, spoken to over the
//! PostgreSQL wire protocol.
//!
//! # The life of a statement
//!
//! 1. **wire** (`server`): pgwire decodes a Query (or Parse/Bind/Execute) message from a
//!    client connection and hands the text to the connection's [`execute::Session`].
//! 2. **sql** (`sql`): the text is split into statements and parsed with sqlparser's
//!    PostgreSQL dialect (plus the compatibility rewrites client catalog queries need).
//! 3. **execute** (`execute`): the session runs the statement: DDL goes to the catalog or the
//!    feature engine; INSERT and COPY rows are converted to the table's exact schema
//!    (rejecting the whole statement on the first bad value) and committed through
//!    `Database::commit`, which makes them durable and applies them to every feature before
//!    the statement is acknowledged; queries are planned and run; transactions buffer writes.
//! 4. **plan** (`plan`): queries are planned by DataFusion in a context whose `public` schema
//!    is the live catalog of event tables and features, each a `TableProvider`; PostgreSQL's
//!    semantics are analyzer rules; ASOF joins are lowered to their own node and operators
//!    (`plan::asof`). A prepared point read of a feature skips planning (`plan::point_read`).
//! 5. **feature** (`feature`): each feature keeps per-key state, updated by every commit and
//!    evaluated at any time T by one core, for online reads and ASOF training sets alike.
//! 6. **catalog** and **storage** (`catalog`, `storage`): table definitions; a write becomes
//!    one atomic batch in the hot tier (sled), keyed by table, event-time block and arrival
//!    sequence, flushed (group commit) before the client receives CommandComplete; old rows
//!    move to the Parquet cold tier.

pub mod catalog;
pub mod error;
pub mod execute;
pub mod feature;
pub mod plan;
pub mod server;
pub mod sql;
pub mod storage;
pub mod value;

pub use error::{Error, Result};
