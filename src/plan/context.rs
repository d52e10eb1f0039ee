//! Builds the DataFusion `SessionContext` every connection plans its queries in.

use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{FunctionRegistry, SessionStateBuilder};
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::setup_pg_catalog;

use super::asof::AsofQueryPlanner;
use super::schema::EventSchema;
use super::system::SystemSchema;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::feature::FeatureEngine;

/// The one database asofdb serves; clients may name any database when connecting.
pub const CATALOG_NAME: &str = "asofdb";
/// Where event tables live.
pub const SCHEMA_NAME: &str = "public";

/// DataFusion's analyzer rules with PostgreSQL's semantics added where DataFusion's differ:
/// interval ordering, three-valued `IN (subquery)`, rounding to integers, NUMERIC division and overflow and division-by-zero errors,
/// floats, intervals and timestamps as text, intervals read from text,
/// after type coercion (they need the operands' coerced types).
fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules = Analyzer::new().rules;
    // Before type coercion, which would otherwise make decimals of the doubles.
    let coercion = rules.iter().position(|r| r.name() == "type_coercion").unwrap_or(0);
    rules.insert(coercion, Arc::new(super::integer_literals::IntegerLiterals));
    rules.insert(coercion + 1, Arc::new(super::float_over_numeric::FloatOverNumeric));
    rules.insert(coercion + 2, Arc::new(super::pg_numeric::PgNumeric));
    rules.insert(coercion + 3, Arc::new(super::pg_time::PgTimeBeforeCoercion));
    rules.insert(coercion + 4, Arc::new(super::boolean_literals::BooleanLiterals));
    rules.insert(coercion + 5, Arc::new(super::text_casts::PgConcatBooleans));
    rules.push(Arc::new(super::pg_time::PgTimeLiterals));
    rules.push(Arc::new(super::text_casts::PgTextCasts));
    rules.push(Arc::new(super::interval_input::PgIntervalInput));
    rules.push(Arc::new(super::session_time_zone::SessionTimeZone));
    rules.push(Arc::new(super::infinite_time::InfiniteStaysInfinite));
    rules.push(Arc::new(super::interval_order::IntervalOrder));
    rules.push(Arc::new(super::interval_groups::IntervalGroups));
    rules.push(Arc::new(super::in_subquery_nulls::InSubqueryNulls));
    rules.push(Arc::new(super::correlated_subqueries::CorrelatedSubqueries));
    rules.push(Arc::new(super::guarded_evaluation::GuardedEvaluation));
    rules.push(Arc::new(super::checked_arithmetic::CheckedArithmetic));
    // Last: the rules above look for scalar subqueries themselves, not this one's wrapping.
    rules.push(Arc::new(super::scalar_subquery_nulls::ScalarSubqueryNulls));
    rules
}

/// A context whose `public` schema is the live catalog of event tables, with `pg_catalog` and
/// `information_schema` for client introspection.
/// `query_memory` bounds DataFusion's memory pool (bytes): operators that would exceed it
/// spill or fail with 53200.
pub fn new_session_context(
    catalog: Arc<Catalog>,
    features: Arc<FeatureEngine>,
    views: Arc<super::views::TemporaryViews>,
    query_memory: usize,
) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME)
        .with_create_default_catalog_and_schema(true)
        .with_information_schema(true)
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
    // `0.1` is NUMERIC in PostgreSQL (`0.1 + 0.2 = 0.3` holds), not double precision.
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    // TIMESTAMPTZ values are instants shown in UTC (the zone of stored TIMESTAMPTZ columns);
    // without a zone, DataFusion makes `timestamptz '...'` a timestamp without one.
    config.options_mut().execution.time_zone = Some("+00:00".into());
    let runtime = RuntimeEnvBuilder::new().with_memory_limit(query_memory, 1.0).build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_query_planner(Arc::new(AsofQueryPlanner))
        .with_analyzer_rules(analyzer_rules())
        .build();
    let mut ctx = SessionContext::new_with_state(state);
    let db = ctx.catalog(CATALOG_NAME).ok_or_else(|| Error::internal("default catalog missing"))?;
    db.register_schema(SCHEMA_NAME, Arc::new(EventSchema::new(catalog.clone(), features.clone(), views)))?;
    db.register_schema("asofdb", Arc::new(SystemSchema::new(catalog.clone(), features)))?;
    setup_pg_catalog(&ctx, CATALOG_NAME, EmptyContextProvider).map_err(|e| Error::DataFusion(*e))?;
    if let Some(pg_catalog) = db.schema("pg_catalog") {
        db.register_schema(
            "pg_catalog",
            Arc::new(super::pg_catalog_extension::PgCatalogExtension::new(pg_catalog, catalog)),
        )?;
    }
    super::pg_functions::register(&ctx);
    ctx.register_expr_planner(Arc::new(super::interval_arithmetic::IntervalArithmetic::new()))?;
    ctx.register_expr_planner(Arc::new(super::untyped_numbers::UntypedNumbers))?;
    Ok(ctx)
}
