//! Builds the DataFusion `SessionContext` every connection plans its queries in.

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::setup_pg_catalog;

use super::asof::AsofQueryPlanner;
use super::schema::EventSchema;
use super::system::SystemSchema;
use crate::catalog::Catalog;
use crate::error::{Error, Result};

/// The one database asofdb serves; clients may name any database when connecting.
pub const CATALOG_NAME: &str = "asofdb";
/// Where event tables live.
pub const SCHEMA_NAME: &str = "public";

/// A context whose `public` schema is the live catalog of event tables, with `pg_catalog` and
/// `information_schema` for client introspection.
/// `query_memory` bounds DataFusion's memory pool (bytes): operators that would exceed it
/// spill or fail with 53200.
pub fn new_session_context(catalog: Arc<Catalog>, query_memory: usize) -> Result<SessionContext> {
    let config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME)
        .with_create_default_catalog_and_schema(true)
        .with_information_schema(true)
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let runtime = RuntimeEnvBuilder::new().with_memory_limit(query_memory, 1.0).build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_query_planner(Arc::new(AsofQueryPlanner))
        .build();
    let ctx = SessionContext::new_with_state(state);
    let db = ctx.catalog(CATALOG_NAME).ok_or_else(|| Error::internal("default catalog missing"))?;
    db.register_schema(SCHEMA_NAME, Arc::new(EventSchema::new(catalog.clone())))?;
    db.register_schema("asofdb", Arc::new(SystemSchema::new(catalog)))?;
    setup_pg_catalog(&ctx, CATALOG_NAME, EmptyContextProvider).map_err(|e| Error::DataFusion(*e))?;
    super::pg_functions::register(&ctx);
    // After DataFusion's own rules (type coercion), which it needs to see operand types.
    ctx.add_analyzer_rule(Arc::new(super::interval_order::IntervalOrder));
    ctx.add_analyzer_rule(Arc::new(super::in_subquery_nulls::InSubqueryNulls));
    Ok(ctx)
}
