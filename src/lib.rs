//! asofdb: a SQL feature database for real-time machine learning, spoken to over the
//! PostgreSQL wire protocol.
//!
//! # The stages, in pipeline order
//!
//! A stage imports only the stages after it (`server` → `execute` → `plan` → `feature` →
//! `catalog` → `storage`); `sql`, `value` and `error` sit below them all and any stage may
//! use them. `docs/architecture.md` has the tree and how to check the rule.
//!
//! # The life of a statement
//!
//! 1. **wire** (`server`): pgwire decodes a Query (or Parse/Bind/Execute) message; the one
//!    file that implements pgwire's handlers (`server/query_handler.rs`) hands it to the
//!    connection's [`execute::Session`], the only door into the database: `execute`,
//!    `Database::prepare` at Parse, `copy_data`/`copy_done` for COPY FROM STDIN. Notices come
//!    back from the call; results go back out as DataRows (`server/encode.rs`).
//! 2. **sql** (`sql`): the text is split into statements and parsed with sqlparser's
//!    PostgreSQL dialect, plus asofdb's own statements (`CREATE FEATURE`) and the
//!    normalisation of ASOF syntax.
//! 3. **execute** (`execute`): the session runs the statement. DDL goes to the catalog or the
//!    feature engine. **A write with features**: INSERT and COPY rows are converted to the
//!    table's exact schema (the whole statement is rejected at the first bad value), checked
//!    against every feature's expressions, and committed through `Database::commit`, the one
//!    commit path: under the commit gate the rows become one durable atomic batch, then every
//!    feature of the table takes them, all before CommandComplete (read-your-writes through
//!    features). A transaction keeps its rows until COMMIT, which goes the same way.
//! 4. **plan** (`plan`): queries are planned by DataFusion in a context whose `public` schema
//!    is the live catalog of event tables and features, each a `TableProvider`; PostgreSQL's
//!    semantics are analyzer rules. **A point read** (`SELECT ... FROM feature WHERE key =
//!    $1`, prepared) is recognised at Parse (`plan::point_read`) and answered at Execute from
//!    the feature's state without planning. **An ASOF training set** (`spine ASOF JOIN
//!    feature`) is marked against placeholders of the statement's own (`plan::asof::mark`),
//!    planned, and lowered to its own node and operators (`plan::asof`); against a feature,
//!    the operator asks `LiveFeature::evaluate_at` for the values at every spine row's time.
//! 5. **feature** (`feature`): each feature keeps per-key state, updated by every commit and
//!    evaluated at any time T by one core, for online reads and training sets alike.
//! 6. **catalog** and **storage** (`catalog`, `storage`): table definitions; a write becomes
//!    one atomic batch in the hot tier (sled), keyed by table, event-time block and arrival
//!    sequence, flushed (group commit) before the client receives CommandComplete; old rows
//!    move to the Parquet cold tier.

/// Which event tables exist, persisted in the hot tier.
pub mod catalog;
/// The one error type, and the only place SQLSTATE codes are written.
pub mod error;
/// Sessions and the database: statements, transactions, the one commit path.
pub mod execute;
/// Features: per-key windowed state, kept current by every commit, evaluated at any T.
pub mod feature;
/// The HTTP port: feature vectors, Prometheus metrics, health.
pub mod http;
/// Metrics: histograms and counters recorded as work happens, rendered for Prometheus.
pub mod metrics;
/// Planning with DataFusion: tables and features as providers, PostgreSQL's semantics, ASOF.
pub mod plan;
/// The PostgreSQL wire protocol: connections, the simple and extended protocols, COPY.
pub mod server;
/// SQL text to statements.
pub mod sql;
/// The durable home of rows: the sled hot tier, the Parquet cold tier.
pub mod storage;
/// PostgreSQL's text of dates, timestamps and infinities; time zones.
pub mod value;

pub use error::{Error, Result};
