//! ASOF JOIN, planned by rewriting each ASOF join into an equi-join with a computed table.
//!
//! The result of an ASOF join for a left row depends only on the row's key values and time.
//! So for `L ASOF [LEFT] JOIN R ON L.k = R.k AND L.t >= R.ts`:
//!
//! 1. the distinct probes `(L.k, L.t)` are computed by DataFusion from the left side;
//! 2. for each probe the match is found: against a feature, its value at `L.t` from the one
//!    evaluation core (`>=` inclusive, `>` strict); against a table, the row with the closest
//!    time satisfying the inequality (ties: the last-arrived row for `>=`/`>`, the
//!    first-arrived for `<=`/`<`);
//! 3. the matches become an in-memory table `M` with a hidden column `__asof_t` (the probe
//!    time), and the join is rewritten to `L [LEFT] JOIN M AS R ON L.k = R.k AND L.t = R.__asof_t`.
//!
//! Probes with a NULL key or time never match. ASOF joins are found in the SELECT, its CTEs,
//! set operations and FROM subqueries (not in expression subqueries); extended-protocol
//! parameters (`$1`) cannot appear in their left side.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::{Field, Schema};
use arrow::row::{RowConverter, SortField};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::Column;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::scalar::ScalarValue;
use sqlparser::ast::{
    BinaryOperator, Expr, JoinConstraint, JoinOperator, Query, SetExpr, Statement as SqlStatement, TableFactor,
    TableWithJoins,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::Database;
use crate::error::{Error, Result};
use crate::feature::array_of;
use crate::sql::asof_syntax::{INNER_MARKER, LEFT_MARKER};
use crate::sql::names::{ident_name, table_name};

/// The schema holding match tables while a statement is planned.
pub const TEMP_SCHEMA: &str = "asof_tmp";
pub const PROBE_TIME: &str = "__asof_t";

static NEXT_TABLE: AtomicU64 = AtomicU64::new(1);

/// True if the statement has an ASOF join anywhere.
pub fn has_asof(statement: &SqlStatement) -> bool {
    matches!(statement, SqlStatement::Query(_)) && statement.to_string().contains("ASOF JOIN")
}

/// Rewrites every ASOF join of `query` (in its CTEs, set operations and FROM subqueries too),
/// recording in `registered` the match tables it registers, which the caller deregisters once
/// the statement is planned (even on error).
pub fn rewrite<'a>(
    db: &'a Database,
    query: &'a mut Query,
    registered: &'a mut Vec<String>,
) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        if let Some(with) = query.with.as_mut() {
            for cte in with.cte_tables.iter_mut() {
                rewrite(db, &mut cte.query, registered).await?;
            }
        }
        rewrite_set_expr(db, &mut query.body, registered).await
    })
}

fn rewrite_set_expr<'a>(
    db: &'a Database,
    body: &'a mut SetExpr,
    registered: &'a mut Vec<String>,
) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        match body {
            SetExpr::Query(query) => rewrite(db, query, registered).await,
            SetExpr::SetOperation { left, right, .. } => {
                rewrite_set_expr(db, left, registered).await?;
                rewrite_set_expr(db, right, registered).await
            }
            SetExpr::Select(select) => {
                for from in select.from.iter_mut() {
                    rewrite_factor(db, &mut from.relation, registered).await?;
                    for i in 0..from.joins.len() {
                        rewrite_factor(db, &mut from.joins[i].relation, registered).await?;
                        if !matches!(from.joins[i].join_operator, JoinOperator::AsOf { .. }) {
                            continue;
                        }
                        let left = TableWithJoins { relation: from.relation.clone(), joins: from.joins[..i].to_vec() };
                        let name = rewrite_join(db, &left, &mut from.joins[i]).await?;
                        registered.push(name);
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    })
}

async fn rewrite_factor(db: &Database, factor: &mut TableFactor, registered: &mut Vec<String>) -> Result<()> {
    if let TableFactor::Derived { subquery, .. } = factor {
        rewrite(db, subquery, registered).await?;
    }
    Ok(())
}

/// The parts of one ASOF join's condition.
struct Condition {
    left_join: bool,
    /// `(left expression, right column)` pairs that must be equal.
    keys: Vec<(Expr, String)>,
    /// The left time expression, the operator as `left OP right`, and the right time column.
    time: (Expr, BinaryOperator, String),
    /// The equalities as written, reused in the rewritten join.
    equalities: Vec<Expr>,
}

async fn rewrite_join(db: &Database, left: &TableWithJoins, join: &mut sqlparser::ast::Join) -> Result<String> {
    let TableFactor::Table { name, alias, .. } = &join.relation else {
        return Err(Error::unsupported("the right side of an ASOF JOIN must be a table or a feature"));
    };
    let right_name = table_name(name)?;
    let right_alias = alias.as_ref().map(|a| ident_name(&a.name)).unwrap_or_else(|| right_name.clone());
    let JoinOperator::AsOf { match_condition, constraint } = &join.join_operator else {
        return Err(Error::internal("not an ASOF join"));
    };
    let condition = split_condition(match_condition, constraint, left, &right_alias)?;

    let probes = probe(db, left, &condition).await?;
    let matches = if let Some(feature) = db.catalog.features.get(&right_name) {
        match_feature(&feature, &condition, &probes)?
    } else {
        let def = db.catalog.require_table(&right_name)?;
        let rows = db.ctx.sql(&format!("SELECT * FROM \"{}\"", def.name.replace('"', "\"\""))).await?.collect().await?;
        let rows = concat_batches(&def.schema(), &rows)?;
        match_table(&rows, &condition, &probes)?
    };

    let table = format!("__asof_{}", NEXT_TABLE.fetch_add(1, Ordering::Relaxed));
    let provider = MemTable::try_new(matches.schema(), vec![vec![matches]])?;
    temp_schema(db)?.register_table(table.clone(), Arc::new(provider))?;

    let mut on = condition.equalities.clone();
    on.push(parse_expr(&format!("{} = \"{right_alias}\".{PROBE_TIME}", condition.time.0))?);
    let on =
        on.into_iter().reduce(|a, b| Expr::BinaryOp { left: Box::new(a), op: BinaryOperator::And, right: Box::new(b) });
    let relation = parse_relation(&format!("{TEMP_SCHEMA}.{table} AS \"{right_alias}\""))?;
    join.relation = relation;
    let constraint = JoinConstraint::On(on.ok_or_else(|| Error::internal("empty ASOF join condition"))?);
    join.join_operator =
        if condition.left_join { JoinOperator::LeftOuter(constraint) } else { JoinOperator::Inner(constraint) };
    Ok(table)
}

/// The schema match tables are registered in, created on first use.
fn temp_schema(db: &Database) -> Result<Arc<dyn datafusion::catalog::SchemaProvider>> {
    let catalog = db.ctx.catalog(crate::plan::CATALOG_NAME).ok_or_else(|| Error::internal("catalog missing"))?;
    if let Some(schema) = catalog.schema(TEMP_SCHEMA) {
        return Ok(schema);
    }
    let schema: Arc<dyn datafusion::catalog::SchemaProvider> = Arc::new(MemorySchemaProvider::new());
    catalog.register_schema(TEMP_SCHEMA, schema.clone())?;
    Ok(schema)
}

/// `plan` without the probe-time columns of its match tables, which `SELECT *` would show.
pub fn hide_probe_times(plan: LogicalPlan) -> Result<LogicalPlan> {
    let schema = plan.schema().clone();
    if !schema.fields().iter().any(|f| f.name() == PROBE_TIME) {
        return Ok(plan);
    }
    let visible: Vec<datafusion::prelude::Expr> = schema
        .iter()
        .filter(|(_, field)| field.name() != PROBE_TIME)
        .map(|(qualifier, field)| datafusion::prelude::Expr::Column(Column::new(qualifier.cloned(), field.name())))
        .collect();
    Ok(LogicalPlanBuilder::from(plan).project(visible)?.build()?)
}

/// Removes the match tables of a planned statement.
pub fn deregister(db: &Database, tables: &[String]) {
    if let Ok(schema) = temp_schema(db) {
        for table in tables {
            let _ = schema.deregister_table(table);
        }
    }
}

fn split_condition(
    match_condition: &Expr,
    constraint: &JoinConstraint,
    left: &TableWithJoins,
    right_alias: &str,
) -> Result<Condition> {
    let marker = match match_condition {
        Expr::Identifier(i) if i.value == INNER_MARKER => Some(false),
        Expr::Identifier(i) if i.value == LEFT_MARKER => Some(true),
        _ => None,
    };
    let mut conjuncts = Vec::new();
    match constraint {
        JoinConstraint::On(on) => flatten_and(on, &mut conjuncts),
        JoinConstraint::Using(columns) => {
            let left_alias = relation_alias(&left.relation)?;
            let names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            for (i, c) in names.iter().enumerate() {
                let op = if i + 1 == names.len() { ">=" } else { "=" };
                conjuncts.push(parse_expr(&format!("\"{left_alias}\".{c} {op} \"{right_alias}\".{c}"))?);
            }
        }
        JoinConstraint::None => {}
        _ => return Err(Error::unsupported("ASOF JOIN needs ON or USING")),
    }
    if marker.is_none() {
        conjuncts.push(match_condition.clone());
    }
    let mut keys = Vec::new();
    let mut equalities = Vec::new();
    let mut time = None;
    for c in conjuncts {
        let Expr::BinaryOp { left: l, op, right: r } = &c else {
            return Err(asof_error(&format!("unsupported ASOF JOIN condition {c}")));
        };
        let (left_expr, op, right_col) = match (right_column(r, right_alias), right_column(l, right_alias)) {
            (Some(col), None) => ((**l).clone(), op.clone(), col),
            (None, Some(col)) => ((**r).clone(), flip(op)?, col),
            _ => {
                return Err(asof_error(&format!(
                    "each ASOF JOIN condition compares a left expression with a column of \"{right_alias}\": {c}"
                )));
            }
        };
        match op {
            BinaryOperator::Eq => {
                keys.push((left_expr, right_col));
                equalities.push(c.clone());
            }
            BinaryOperator::GtEq | BinaryOperator::Gt | BinaryOperator::LtEq | BinaryOperator::Lt => {
                if time.is_some() {
                    return Err(asof_error("an ASOF JOIN has exactly one inequality"));
                }
                time = Some((left_expr, op, right_col));
            }
            other => return Err(asof_error(&format!("operator {other} is not allowed in an ASOF JOIN condition"))),
        }
    }
    let time =
        time.ok_or_else(|| asof_error("an ASOF JOIN needs one inequality (>=, >, <=, <) between the time columns"))?;
    Ok(Condition { left_join: marker.unwrap_or(false), keys, time, equalities })
}

fn asof_error(message: &str) -> Error {
    Error::invalid_input("42601", message)
}

fn flip(op: &BinaryOperator) -> Result<BinaryOperator> {
    Ok(match op {
        BinaryOperator::Eq => BinaryOperator::Eq,
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        other => return Err(asof_error(&format!("operator {other} is not allowed in an ASOF JOIN condition"))),
    })
}

/// The column name if `expr` is `right_alias.column`.
fn right_column(expr: &Expr, right_alias: &str) -> Option<String> {
    match expr {
        Expr::CompoundIdentifier(parts) if parts.len() == 2 && ident_name(&parts[0]) == right_alias => {
            Some(ident_name(&parts[1]))
        }
        _ => None,
    }
}

fn relation_alias(relation: &TableFactor) -> Result<String> {
    match relation {
        TableFactor::Table { alias: Some(a), .. } => Ok(ident_name(&a.name)),
        TableFactor::Table { name, .. } => table_name(name),
        TableFactor::Derived { alias: Some(a), .. } => Ok(ident_name(&a.name)),
        _ => Err(Error::unsupported("ASOF JOIN ... USING needs a named left relation")),
    }
}

fn flatten_and(expr: &Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            flatten_and(left, out);
            flatten_and(right, out);
        }
        Expr::Nested(inner) => flatten_and(inner, out),
        other => out.push(other.clone()),
    }
}

fn parse_expr(sql: &str) -> Result<Expr> {
    Ok(Parser::new(&PostgreSqlDialect {}).try_with_sql(sql)?.parse_expr()?)
}

fn parse_relation(sql: &str) -> Result<TableFactor> {
    Ok(Parser::new(&PostgreSqlDialect {}).try_with_sql(sql)?.parse_table_factor()?)
}

/// The distinct `(keys..., time)` of the left side: key columns, then the time column.
async fn probe(db: &Database, left: &TableWithJoins, condition: &Condition) -> Result<RecordBatch> {
    let mut items: Vec<String> =
        condition.keys.iter().enumerate().map(|(i, (e, _))| format!("{e} AS __k{i}")).collect();
    items.push(format!("{} AS __t", condition.time.0));
    let sql = format!("SELECT DISTINCT {} FROM {left}", items.join(", "));
    let frame = db.ctx.sql(&sql).await?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    Ok(concat_batches(&schema, &batches)?)
}

/// Times as µs (any timestamp unit or a date), `None` for NULL.
fn micros(array: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let cast = arrow::compute::cast(
        array,
        &arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
    )
    .map_err(|_| asof_error("ASOF JOIN time columns must be timestamps"))?;
    let times = cast
        .as_any()
        .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
        .ok_or_else(|| Error::internal("timestamp cast"))?;
    Ok((0..times.len()).map(|i| times.is_valid(i).then(|| times.value(i))).collect())
}

/// Appends the probe time column to `matched` rows of `columns`.
fn with_probe_time(columns: Vec<(Field, ArrayRef)>, probe_times: ArrayRef, time_field: &Field) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = columns.iter().map(|(f, _)| f.clone().with_nullable(true)).collect();
    let mut arrays: Vec<ArrayRef> = columns.into_iter().map(|(_, a)| a).collect();
    fields.push(Field::new(PROBE_TIME, time_field.data_type().clone(), true));
    arrays.push(probe_times);
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

fn match_feature(
    feature: &crate::feature::LiveFeature,
    condition: &Condition,
    probes: &RecordBatch,
) -> Result<RecordBatch> {
    let compiled = &feature.compiled;
    let strict = match condition.time.1 {
        BinaryOperator::GtEq => false,
        BinaryOperator::Gt => true,
        _ => return Err(asof_error("only >= and > are valid against a feature (its value as of the left time)")),
    };
    let time_column = &compiled.table.columns[compiled.event_time].name;
    if condition.time.2 != *time_column {
        return Err(Error::undefined_column(&condition.time.2, &compiled.def.name));
    }
    // Each feature key must be matched by one equality, in any order.
    let mut key_probe = Vec::new();
    for key in &compiled.def.keys {
        let index = condition.keys.iter().position(|(_, col)| col == key).ok_or_else(|| {
            asof_error(&format!(
                "an ASOF JOIN against feature \"{}\" needs an equality on key {key}",
                compiled.def.name
            ))
        })?;
        key_probe.push(index);
    }
    if condition.keys.len() != compiled.def.keys.len() {
        return Err(asof_error("an ASOF JOIN against a feature has one equality per feature key"));
    }
    let times = micros(probes.column(probes.num_columns() - 1))?;
    let state = feature.state.read().map_err(|_| Error::internal("feature state poisoned"))?;
    let mut keep = Vec::new();
    let mut rows = Vec::new();
    for (row, t) in times.iter().enumerate() {
        let Some(t) = t else { continue };
        let key: Vec<ScalarValue> = key_probe
            .iter()
            .zip(&compiled.key_columns)
            .map(|(p, c)| {
                ScalarValue::try_from_array(probes.column(*p), row)?
                    .cast_to(&compiled.table.columns[*c].ty.arrow_type())
            })
            .collect::<std::result::Result<_, _>>()?;
        if key.iter().any(|k| k.is_null()) {
            continue;
        }
        if let Some(history) = state.history(&key)?
            && let Some(values) = history.evaluate(compiled, *t, strict)?
        {
            keep.push(row as u32);
            rows.push((key, values, *t));
        }
    }
    let keys = (0..compiled.def.keys.len())
        .map(|k| array_of(rows.iter().map(|r| r.0[k].clone()), compiled.schema.field(k).data_type()))
        .collect::<Result<Vec<_>>>()?;
    let values: Vec<Vec<ScalarValue>> = rows.iter().map(|r| r.1.clone()).collect();
    let batch = compiled.batch(keys, &values, rows.iter().map(|r| r.2).collect())?;
    let columns =
        batch.schema().fields().iter().zip(batch.columns()).map(|(f, c)| (f.as_ref().clone(), c.clone())).collect();
    let probe_time = probes.column(probes.num_columns() - 1);
    let probe_field = probes.schema().field(probes.num_columns() - 1).clone();
    with_probe_time(columns, take(probe_time, &UInt32Array::from(keep), None)?, &probe_field)
}

fn match_table(rows: &RecordBatch, condition: &Condition, probes: &RecordBatch) -> Result<RecordBatch> {
    let schema = rows.schema();
    let column = |name: &str| -> Result<usize> {
        schema
            .index_of(name)
            .map_err(|_| Error::NotFound { sqlstate: "42703", message: format!("column \"{name}\" does not exist") })
    };
    let key_columns: Vec<usize> = condition.keys.iter().map(|(_, c)| column(c)).collect::<Result<_>>()?;
    let time_column = column(&condition.time.2)?;
    let right_times = micros(rows.column(time_column))?;

    // Keys are compared in the right side's types.
    let key_types: Vec<SortField> =
        key_columns.iter().map(|c| SortField::new(schema.field(*c).data_type().clone())).collect();
    let converter = RowConverter::new(key_types)?;
    let right_keys: Vec<ArrayRef> = key_columns.iter().map(|c| rows.column(*c).clone()).collect();
    let right_rows = converter.convert_columns(&right_keys)?;
    let mut index: HashMap<Vec<u8>, Vec<(i64, u32)>> = HashMap::new();
    for (row, time) in right_times.iter().enumerate() {
        let has_null_key = right_keys.iter().any(|k| k.is_null(row));
        if let (false, Some(t)) = (has_null_key, *time) {
            index.entry(right_rows.row(row).as_ref().to_vec()).or_default().push((t, row as u32));
        }
    }
    for entries in index.values_mut() {
        entries.sort_by_key(|(t, _)| *t); // stable: arrival order within equal times
    }

    let probe_keys: Vec<ArrayRef> = (0..key_columns.len())
        .map(|i| arrow::compute::cast(probes.column(i), schema.field(key_columns[i]).data_type()))
        .collect::<std::result::Result<_, _>>()?;
    let probe_rows = converter.convert_columns(&probe_keys)?;
    let probe_times = micros(probes.column(probes.num_columns() - 1))?;
    let (mut matched, mut keep) = (Vec::new(), Vec::new());
    for (row, t) in probe_times.iter().enumerate() {
        let Some(t) = *t else { continue };
        if probe_keys.iter().any(|k| k.is_null(row)) {
            continue;
        }
        let Some(entries) = index.get(probe_rows.row(row).as_ref()) else { continue };
        let found = match condition.time.1 {
            // left >= right: the greatest right time <= t; of ties, the last-arrived.
            BinaryOperator::GtEq => entries.partition_point(|(e, _)| *e <= t).checked_sub(1),
            BinaryOperator::Gt => entries.partition_point(|(e, _)| *e < t).checked_sub(1),
            // left <= right: the smallest right time >= t; of ties, the first-arrived.
            BinaryOperator::LtEq => Some(entries.partition_point(|(e, _)| *e < t)).filter(|i| *i < entries.len()),
            BinaryOperator::Lt => Some(entries.partition_point(|(e, _)| *e <= t)).filter(|i| *i < entries.len()),
            _ => None,
        };
        if let Some(i) = found {
            matched.push(entries[i].1);
            keep.push(row as u32);
        }
    }
    let matched = UInt32Array::from(matched);
    let columns = schema
        .fields()
        .iter()
        .zip(rows.columns())
        .map(|(f, c)| Ok((f.as_ref().clone(), take(c, &matched, None)?)))
        .collect::<Result<Vec<_>>>()?;
    let probe_time = probes.column(probes.num_columns() - 1);
    let probe_field = probes.schema().field(probes.num_columns() - 1).clone();
    with_probe_time(columns, take(probe_time, &UInt32Array::from(keep), None)?, &probe_field)
}
