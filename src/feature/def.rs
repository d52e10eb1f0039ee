//! Feature definitions: validated from `CREATE FEATURE`, persisted in the catalog, and
//! compiled into DataFusion physical expressions over the source table's rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, PrimitiveArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{ArrowPrimitiveType, Float64Type, Int64Type};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, SelectItem, SetExpr, TableFactor,
};

use super::accumulate::HEADER;
use super::aggregate::AggKind;
use super::encoding::{MAX_AGGREGATES, Repr};
use super::window::Window;
use crate::catalog::TableDef;
use crate::error::{Error, Result, SqlState};
use crate::sql::feature::CreateFeature;
use crate::sql::names::{ident_name, option_text, table_name};
use crate::sql::parse_interval_micros;

/// One value column of a feature: an aggregate of an expression of the row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueDef {
    pub name: String,
    pub kind: AggKind,
    /// The argument as SQL text (`None` for `count(*)`).
    pub arg: Option<String>,
    /// `FILTER (WHERE ...)` as SQL text.
    pub filter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDef {
    pub name: String,
    pub table: String,
    pub keys: Vec<String>,
    pub values: Vec<ValueDef>,
    /// The row predicate (`WHERE`) as SQL text.
    pub filter: Option<String>,
    pub window: Window,
    /// `WITH (tile = ...)`: the tile width in µs; `None` picks one from the window.
    #[serde(default)]
    pub tile: Option<i64>,
    /// The CREATE FEATURE statement as written.
    pub sql: String,
    /// The role that created it (CREATE OR REPLACE keeps it); features made before roles
    /// belong to the bootstrap superuser.
    #[serde(default = "bootstrap_owner")]
    pub owner: String,
}

fn bootstrap_owner() -> String {
    crate::catalog::BOOTSTRAP_ROLE.into()
}

impl FeatureDef {
    /// Validates `create` against the source table. Every failure is a clear error and
    /// nothing is created.
    pub fn bind(create: &CreateFeature, table_of: impl Fn(&str) -> Result<Arc<TableDef>>) -> Result<FeatureDef> {
        let tile = feature_options(&create.options)?;
        let q = &create.query;
        if q.with.is_some() || q.order_by.is_some() || q.limit_clause.is_some() {
            return Err(Error::unsupported("a feature's SELECT cannot have WITH, ORDER BY or LIMIT"));
        }
        let SetExpr::Select(select) = q.body.as_ref() else {
            return Err(Error::unsupported("a feature is defined by a single SELECT ... GROUP BY"));
        };
        if select.from.len() != 1 || !select.from[0].joins.is_empty() {
            return Err(Error::unsupported("a feature reads exactly one event table (no joins)"));
        }
        let TableFactor::Table { name, .. } = &select.from[0].relation else {
            return Err(Error::unsupported("a feature reads an event table, not a subquery"));
        };
        let table = table_of(&table_name(name)?)?;
        let event_time = table.event_time_column().ok_or_else(|| Error::no_event_time(&table.name))?;
        if select.having.is_some() || select.distinct.is_some() {
            return Err(Error::unsupported("a feature's SELECT cannot have HAVING or DISTINCT"));
        }
        let column = |ident: &sqlparser::ast::Ident| -> Result<String> {
            let name = ident_name(ident);
            table.column_index(&name).map(|_| name.clone()).ok_or_else(|| Error::undefined_column(&name, &table.name))
        };
        let GroupByExpr::Expressions(group_by, _) = &select.group_by else {
            return Err(Error::unsupported("GROUP BY ALL is not supported in a feature"));
        };
        let mut keys = Vec::new();
        for expr in group_by {
            match expr {
                Expr::Identifier(ident) => keys.push(column(ident)?),
                Expr::CompoundIdentifier(parts) if parts.len() == 2 => keys.push(column(&parts[1])?),
                other => return Err(Error::unsupported(format!("feature keys are columns, not {other}"))),
            }
        }
        if keys.is_empty() {
            return Err(Error::invalid_input(
                SqlState::GroupingError,
                "a feature needs GROUP BY with at least one key column",
            ));
        }
        if keys.contains(&event_time.name) {
            return Err(Error::invalid_input(SqlState::GroupingError, "the event-time column cannot be a feature key"));
        }

        let mut projected_keys = Vec::new();
        let mut values = Vec::new();
        for item in &select.projection {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(ident_name(alias))),
                other => return Err(Error::unsupported(format!("{other} is not allowed in a feature's SELECT"))),
            };
            match expr {
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                    let ident = match expr {
                        Expr::Identifier(i) => i,
                        Expr::CompoundIdentifier(p) => &p[p.len() - 1],
                        _ => unreachable!("matched above"),
                    };
                    let name = column(ident)?;
                    if !keys.contains(&name) {
                        return Err(Error::invalid_input(
                            SqlState::GroupingError,
                            format!(
                                "column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"
                            ),
                        ));
                    }
                    projected_keys.push(name);
                }
                Expr::Function(f) => values.push(value_def(f, alias)?),
                other => {
                    return Err(Error::invalid_input(
                        SqlState::GroupingError,
                        format!("feature value {other} must be an aggregate of the row (count, sum, max, ...)"),
                    ));
                }
            }
        }
        if values.is_empty() {
            return Err(Error::invalid_input(SqlState::GroupingError, "a feature needs at least one aggregate value"));
        }
        if values.len() > MAX_AGGREGATES {
            return Err(Error::invalid_input(
                SqlState::TooManyColumns,
                format!("a feature can have at most {MAX_AGGREGATES} aggregates, not {}", values.len()),
            ));
        }
        if projected_keys != keys {
            return Err(Error::invalid_input(
                SqlState::GroupingError,
                "a feature selects its GROUP BY key columns, in the same order, before its aggregates",
            ));
        }
        let mut names: Vec<&str> = keys.iter().map(String::as_str).collect();
        names.push(&event_time.name);
        for v in &values {
            if names.contains(&v.name.as_str()) {
                return Err(Error::Conflict {
                    sqlstate: SqlState::DuplicateColumn,
                    message: format!("column \"{}\" specified more than once", v.name),
                });
            }
            names.push(&v.name);
        }
        Ok(FeatureDef {
            name: create.name.clone(),
            table: table.name.clone(),
            keys,
            values,
            filter: select.selection.as_ref().map(|e| e.to_string()),
            window: create.window.into(),
            tile,
            sql: create.sql.clone(),
            owner: crate::catalog::BOOTSTRAP_ROLE.into(),
        })
    }

    /// The tile width in µs: the `tile` option, or about a sixteenth of the window rounded
    /// down to a round interval (1s, 10s, 1min, 5min, 15min, 1h, 6h, 1d).
    pub fn tile_micros(&self) -> i64 {
        const S: i64 = 1_000_000;
        let span = match self.window {
            Window::Sliding { width } | Window::Hopping { width, .. } | Window::Tumbling { width } => width,
            Window::Session { gap } => gap.saturating_mul(16),
            Window::Lifetime => 16 * 86_400 * S,
        };
        self.tile.unwrap_or_else(|| {
            [86_400 * S, 21_600 * S, 3_600 * S, 900 * S, 300 * S, 60 * S, 10 * S, S]
                .into_iter()
                .find(|tile| *tile <= span / 16)
                .unwrap_or(S)
        })
    }

    /// The window as written in SQL, for `asofdb.features` and `SHOW FEATURES`.
    pub fn window_sql(&self) -> String {
        let i = |us: i64| format!("INTERVAL '{}'", human_interval(us));
        match self.window {
            Window::Sliding { width } => format!("SLIDING {}", i(width)),
            Window::Hopping { width, every } => format!("SLIDING {} EVERY {}", i(width), i(every)),
            Window::Tumbling { width } => format!("TUMBLING {}", i(width)),
            Window::Session { gap } => format!("SESSION GAP {}", i(gap)),
            Window::Lifetime => "LIFETIME".into(),
        }
    }
}

/// Reads `WITH (...)`: only `tile = '<interval>'` is known.
fn feature_options(options: &[sqlparser::ast::SqlOption]) -> Result<Option<i64>> {
    let mut tile = None;
    for option in options {
        let sqlparser::ast::SqlOption::KeyValue { key, value } = option else {
            return Err(Error::invalid_input(
                SqlState::InvalidParameterValue,
                format!("invalid feature option {option}"),
            ));
        };
        match ident_name(key).as_str() {
            "tile" => {
                let micros = parse_interval_micros(&option_text(value)?)?;
                if micros <= 0 {
                    return Err(Error::invalid_input(
                        SqlState::InvalidParameterValue,
                        "tile must be a positive interval",
                    ));
                }
                tile = Some(micros);
            }
            other => {
                return Err(Error::invalid_input(
                    SqlState::InvalidParameterValue,
                    format!("unrecognized feature option \"{other}\" (known: tile)"),
                ));
            }
        }
    }
    Ok(tile)
}

/// An interval in µs as the largest whole unit that divides it (`5 minutes`).
pub fn human_interval(us: i64) -> String {
    for (unit, size) in
        [("day", 86_400_000_000i64), ("hour", 3_600_000_000), ("minute", 60_000_000), ("second", 1_000_000)]
    {
        if us % size == 0 {
            let n = us / size;
            return format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
        }
    }
    format!("{us} microseconds")
}

fn value_def(f: &sqlparser::ast::Function, alias: Option<String>) -> Result<ValueDef> {
    let name = f.name.to_string().to_ascii_lowercase();
    if f.over.is_some() {
        return Err(Error::unsupported(
            "window functions (OVER) are not feature aggregates; use WINDOW on the feature",
        ));
    }
    let FunctionArguments::List(list) = &f.args else {
        return Err(Error::invalid_input(SqlState::SyntaxError, format!("{name}() needs an argument")));
    };
    let distinct = matches!(list.duplicate_treatment, Some(sqlparser::ast::DuplicateTreatment::Distinct));
    let (takes_value, params) = AggKind::takes(&name);
    let wrong_arguments = || {
        let expected = match (takes_value, params) {
            (true, 0) => "exactly one argument".to_string(),
            (true, n) => format!("a value and {n} constant"),
            (false, _) => "one constant".to_string(),
        };
        Error::invalid_input(SqlState::SyntaxError, format!("{name}() takes {expected}"))
    };
    let mut args = list.args.iter();
    let (star, arg) = match takes_value.then(|| args.next()) {
        None => (false, None),
        Some(Some(FunctionArg::Unnamed(FunctionArgExpr::Wildcard))) => (true, None),
        Some(Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))) => (false, Some(e.to_string())),
        Some(_) => return Err(wrong_arguments()),
    };
    let param = match args.next() {
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) if params == 1 => Some(e),
        None if params == 0 => None,
        _ => return Err(wrong_arguments()),
    };
    if args.next().is_some() {
        return Err(wrong_arguments());
    }
    let kind = AggKind::from_name(&name, distinct, star, param)?;
    if star && kind != AggKind::CountStar {
        return Err(Error::invalid_input(SqlState::SyntaxError, format!("{name}(*) is not an aggregate")));
    }
    let filter = f.filter.as_ref().map(|e| e.to_string());
    Ok(ValueDef { name: alias.unwrap_or(name), kind, arg, filter })
}

/// A feature definition ready to run: expressions compiled against the table schema.
#[derive(Clone)]
pub struct CompiledFeature {
    pub def: FeatureDef,
    pub table: Arc<TableDef>,
    pub event_time: usize,
    pub key_columns: Vec<usize>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub args: Vec<Option<Arc<dyn PhysicalExpr>>>,
    pub value_filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// What a write's rows must pass before it commits; None when nothing can fail.
    pub checks: Option<Checks>,
    pub result_types: Vec<DataType>,
    /// Each aggregate's argument type (BIGINT for `count(*)`) and stored form.
    pub arg_types: Vec<DataType>,
    pub reprs: Vec<Repr>,
    /// Tile width (µs), and the number of events from which a key keeps tiles (below it,
    /// folding the events is as fast as merging tiles).
    pub tile: i64,
    pub tile_min_events: usize,
    /// Keys, values, the evaluation time named like the event-time column, then (for a table
    /// with an ingest-time column) the greatest ingest time of the events evaluated, named
    /// like that column.
    pub schema: SchemaRef,
    /// The table's ingest-time column: each event keeps its ingest time as one more word,
    /// after the aggregates' (see `feature::known_at`).
    pub ingest: Option<usize>,
}

/// `expr` after the session's analyzer rules, as a query's expressions are: the same type
/// coercion, and PostgreSQL's semantics where asofdb adds a rule for them (intervals compare
/// by length, `plan::interval_order`), so a feature computes what the same query would.
/// Integer literals stay `bigint` (`plan::integer_literals`), so `int_column * 100` computes
/// in 64 bits, as features always have (their stored state depends on the argument types).
///
/// With `checked`, arithmetic raises overflow and division-by-zero errors
/// (`plan::checked_arithmetic`). Those forms run on a write's rows before it commits
/// ([`CompiledFeature::check`]); the forms that update the state after the commit wrap, and
/// never fail on rows that passed.
fn analyzed(
    state: &datafusion::execution::SessionState,
    expr: datafusion::logical_expr::Expr,
    schema: &DFSchema,
    checked: bool,
) -> Result<datafusion::logical_expr::Expr> {
    use datafusion::logical_expr::{EmptyRelation, LogicalPlan, Projection};
    let input = LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: false, schema: Arc::new(schema.clone()) });
    let plan = LogicalPlan::Projection(Projection::try_new(vec![expr], Arc::new(input))?);
    // By the names the rules give DataFusion (so `feature` needs nothing of `plan`).
    let left_out = |name: &str| name == "integer_literals" || (!checked && name == "checked_arithmetic");
    let rules = state.analyzer().rules.iter().filter(|r| !left_out(r.name())).cloned().collect();
    let analyzer = datafusion::optimizer::Analyzer::with_rules(rules);
    match analyzer.execute_and_check(plan, state.config_options(), |_, _| {})? {
        LogicalPlan::Projection(mut projection) if projection.expr.len() == 1 => {
            Ok(projection.expr.remove(0).unalias_nested().data)
        }
        _ => Err(Error::internal("the analyzer changed a one-expression projection's shape")),
    }
}

impl CompiledFeature {
    pub fn compile(def: FeatureDef, table: Arc<TableDef>, ctx: &SessionContext) -> Result<Self> {
        let arrow_schema = table.schema();
        let df_schema = DFSchema::try_from_qualified_schema(table.name.as_str(), &arrow_schema)?;
        let state = ctx.state();
        let compile = |sql: &str| compile_checked(&state, sql, &df_schema);
        let boolean = |sql: &str, what: &str| -> Result<Compiled> {
            let expr = compile(sql)?;
            if expr.0.data_type(&arrow_schema)? != DataType::Boolean {
                return Err(Error::invalid_input(
                    SqlState::DatatypeMismatch,
                    format!("argument of {what} must be type boolean: {sql}"),
                ));
            }
            Ok(expr)
        };
        let filter = def.filter.as_deref().map(|f| boolean(f, "WHERE")).transpose()?;
        let mut args = Vec::new();
        let mut value_filters = Vec::new();
        let mut result_types = Vec::new();
        let mut arg_types = Vec::new();
        let mut reprs = Vec::new();
        for v in &def.values {
            let arg = v.arg.as_deref().map(compile).transpose()?;
            let arg_type = match &arg {
                Some(a) => a.0.data_type(&arrow_schema)?,
                None => DataType::Int64,
            };
            if v.kind.needs_numeric() && !arg_type.is_numeric() {
                return Err(Error::NotFound {
                    sqlstate: SqlState::UndefinedFunction,
                    message: format!("function {:?}({arg_type}) does not exist: it needs a numeric argument", v.kind),
                });
            }
            result_types.push(v.kind.result_type(&arg_type));
            reprs.push(Repr::of(v.kind, &arg_type));
            arg_types.push(arg_type);
            args.push(arg);
            value_filters.push(v.filter.as_deref().map(|f| boolean(f, "FILTER")).transpose()?);
        }
        let checks = Checks::of(&filter, &args, &value_filters);
        let unchecked = |c: Option<Compiled>| c.map(|(expr, _)| expr);
        let filter = unchecked(filter);
        let args: Vec<_> = args.into_iter().map(unchecked).collect();
        let value_filters: Vec<_> = value_filters.into_iter().map(unchecked).collect();
        let event_time = table.event_time.ok_or_else(|| Error::internal("feature table lost its event time"))?;
        let key_columns: Vec<usize> = def
            .keys
            .iter()
            .map(|k| table.column_index(k).ok_or_else(|| Error::undefined_column(k, &table.name)))
            .collect::<Result<_>>()?;
        let mut fields: Vec<Field> = key_columns
            .iter()
            .map(|i| Field::new(&table.columns[*i].name, table.columns[*i].ty.arrow_type(), true))
            .collect();
        for (v, t) in def.values.iter().zip(&result_types) {
            fields.push(Field::new(&v.name, t.clone(), true));
        }
        fields.push(Field::new(&table.columns[event_time].name, table.columns[event_time].ty.arrow_type(), false));
        let ingest = table.ingest_time;
        if let Some(i) = ingest {
            fields.push(Field::new(&table.columns[i].name, table.columns[i].ty.arrow_type(), true));
        }
        Ok(Self {
            ingest,
            checks,
            tile: def.tile_micros(),
            tile_min_events: 16,
            arg_types,
            reprs,
            def,
            event_time,
            key_columns,
            filter,
            args,
            value_filters,
            result_types,
            schema: Arc::new(Schema::new(fields)),
            table,
        })
    }
}

/// An expression compiled unchecked, and checked where that form differs.
type Compiled = (Arc<dyn PhysicalExpr>, Option<Arc<dyn PhysicalExpr>>);

fn compile_checked(state: &datafusion::execution::SessionState, sql: &str, schema: &DFSchema) -> Result<Compiled> {
    let logical = state.create_logical_expr(sql, schema)?;
    let unchecked = analyzed(state, logical.clone(), schema, false)?;
    let checked = analyzed(state, logical, schema, true)?;
    let kept = checked != unchecked || may_fail(&checked);
    let checked = kept.then(|| state.create_physical_expr(checked, schema)).transpose()?;
    Ok((state.create_physical_expr(unchecked, schema)?, checked))
}

/// Whether evaluating `expr` can raise an error: it does arithmetic (integer division by
/// zero fails unchecked too), calls a function or casts.
fn may_fail(expr: &datafusion::logical_expr::Expr) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
    let mut fails = false;
    let _ = expr.apply(|e| {
        fails |= match e {
            Expr::BinaryExpr(BinaryExpr { op, .. }) => matches!(
                op,
                Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide | Operator::Modulo
            ),
            Expr::ScalarFunction(_) | Expr::Cast(_) | Expr::Negative(_) => true,
            _ => false,
        };
        Ok(if fails { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    fails
}

/// A feature's expressions as a write's rows are checked with before the write commits: the
/// filters (checked where they can fail, else as they are) choose the rows each argument is
/// evaluated on, as `agg(x) FILTER (WHERE p)` evaluates `x` only where `p` holds; only the
/// arguments that can fail are evaluated.
#[derive(Clone)]
pub struct Checks {
    filter: Option<Arc<dyn PhysicalExpr>>,
    args: Vec<Option<Arc<dyn PhysicalExpr>>>,
    value_filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
}

impl Checks {
    fn of(filter: &Option<Compiled>, args: &[Option<Compiled>], value_filters: &[Option<Compiled>]) -> Option<Self> {
        let can_fail = |c: &Option<Compiled>| c.as_ref().is_some_and(|(_, checked)| checked.is_some());
        if !can_fail(filter) && !args.iter().any(can_fail) && !value_filters.iter().any(can_fail) {
            return None;
        }
        let either = |c: &Option<Compiled>| {
            c.as_ref().map(|(unchecked, checked)| checked.clone().unwrap_or_else(|| unchecked.clone()))
        };
        Some(Self {
            filter: either(filter),
            args: args.iter().map(|c| c.as_ref().and_then(|(_, checked)| checked.clone())).collect(),
            value_filters: value_filters.iter().map(either).collect(),
        })
    }

    /// Evaluates the checked expressions over `batch`: their first error, if any. Each
    /// aggregate's FILTER runs on the rows the feature's WHERE passed, its argument on the
    /// rows both passed.
    fn run(&self, batch: &RecordBatch) -> Result<()> {
        let rows = match &self.filter {
            Some(filter) => filtered(batch, filter)?,
            None => batch.clone(),
        };
        if rows.num_rows() == 0 {
            return Ok(());
        }
        for (arg, value_filter) in self.args.iter().zip(&self.value_filters) {
            let rows = match value_filter {
                Some(filter) => filtered(&rows, filter)?,
                None if arg.is_some() => rows.clone(),
                None => continue,
            };
            if let Some(arg) = arg {
                arg.evaluate(&rows)?;
            }
        }
        Ok(())
    }
}

/// The rows of `batch` for which `predicate` is true.
fn filtered(batch: &RecordBatch, predicate: &Arc<dyn PhysicalExpr>) -> Result<RecordBatch> {
    let mask = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
    let mask = mask
        .as_any()
        .downcast_ref::<arrow::array::BooleanArray>()
        .ok_or_else(|| Error::internal("a feature's filter did not evaluate to booleans"))?;
    Ok(arrow::compute::filter_record_batch(batch, mask)?)
}

impl CompiledFeature {
    /// Raises the error a query computing this feature's expressions over `batch` (rows of
    /// its table about to be written) would raise: integer overflow (22003), division by
    /// zero (22012). Run before the write commits, so a failing statement stores nothing.
    pub fn check(&self, batch: &RecordBatch) -> Result<()> {
        self.checks.as_ref().map_or(Ok(()), |checks| checks.run(batch))
    }

    /// The same feature keeping no tiles: a backfill ingests with it, as maintaining each
    /// key's tiles event by event cost more than building them once at the end
    /// ([`FeatureState::build_tiles`](super::FeatureState::build_tiles)). Nothing is
    /// evaluated meanwhile.
    pub fn untiled(&self) -> Self {
        Self { tile_min_events: usize::MAX, ..self.clone() }
    }

    /// Words per stored event (see `encoding`).
    pub fn stride(&self) -> usize {
        HEADER + self.def.values.len() + self.ingest.is_some() as usize
    }

    /// The table columns the feature reads: keys, event time, ingest time, and those of its
    /// WHERE and its aggregates' arguments and filters.
    pub fn columns_read(&self) -> Vec<usize> {
        let mut columns = self.key_columns.clone();
        columns.push(self.event_time);
        columns.extend(self.ingest);
        let exprs = self.filter.iter().chain(self.args.iter().flatten()).chain(self.value_filters.iter().flatten());
        for expr in exprs {
            columns.extend(datafusion::physical_expr::utils::collect_columns(expr).iter().map(|c| c.index()));
        }
        columns.sort_unstable();
        columns.dedup();
        columns
    }

    /// How far back from T the window evaluated at T can reach (µs), for the strict and the
    /// inclusive variant alike; `None` when it is unbounded (session and lifetime windows).
    /// Events older than `T - lookback` never count again at T or any later time.
    pub fn lookback(&self) -> Option<i64> {
        match self.def.window {
            Window::Sliding { width } | Window::Tumbling { width } => Some(width),
            Window::Hopping { width, every } => Some(width.saturating_add(every)),
            Window::Session { .. } | Window::Lifetime => None,
        }
    }

    /// Rows in the feature's table schema: the key columns, each row's values, and the time
    /// each row was evaluated at (µs). Online reads and ASOF joins both answer with this.
    pub fn batch(&self, keys: Vec<ArrayRef>, values: &[Vec<ScalarValue>], times: Vec<i64>) -> Result<RecordBatch> {
        let mut columns = keys;
        for (j, result_type) in self.result_types.iter().enumerate() {
            columns.push(array_of(values.iter().map(|row| row[j].clone()), result_type)?);
        }
        columns.push(Arc::new(TimestampMicrosecondArray::from(times)));
        if self.ingest.is_some() {
            // Evaluation appends the greatest ingest time after the values.
            let n = self.result_types.len();
            let known = values.iter().map(|row| row.get(n).cloned().unwrap_or(ScalarValue::Int64(None)));
            columns.push(array_of(known, &DataType::Int64)?);
        }
        let columns = columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c) } else { arrow::compute::cast(&c, f.data_type()) })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

impl CompiledFeature {
    /// The columns at `indices` of one row of [`CompiledFeature::batch`] (the key, its values,
    /// the time they were evaluated at), built alone: a point read needs only the columns it
    /// selects, typed exactly as `batch` types them.
    pub fn row_columns(
        &self,
        key: &[ScalarValue],
        values: &[ScalarValue],
        time: i64,
        indices: &[usize],
    ) -> Result<Vec<ArrayRef>> {
        indices
            .iter()
            .map(|&i| {
                let column = if i < key.len() {
                    key[i].to_array()?
                } else if let Some(result_type) = self.result_types.get(i - key.len()) {
                    array_of(std::iter::once(values[i - key.len()].clone()), result_type)?
                } else if i == key.len() + self.result_types.len() {
                    Arc::new(TimestampMicrosecondArray::from(vec![time]))
                } else {
                    let known = values.get(self.result_types.len()).cloned().unwrap_or(ScalarValue::Int64(None));
                    array_of(std::iter::once(known), &DataType::Int64)?
                };
                let target = self.schema.field(i).data_type();
                Ok(if column.data_type() == target { column } else { arrow::compute::cast(&column, target)? })
            })
            .collect()
    }
}

/// Value `j` of every row as an array of `data_type`, NULL where a row is `None` (or too
/// short: the greatest ingest time is absent without one). BIGINT and DOUBLE PRECISION, what
/// most features give, are built straight from the values; other types through [`array_of`].
pub fn value_column(rows: &[Option<Vec<ScalarValue>>], j: usize, data_type: &DataType) -> Result<ArrayRef> {
    fn value(row: &Option<Vec<ScalarValue>>, j: usize) -> Option<&ScalarValue> {
        row.as_ref().and_then(|v| v.get(j))
    }
    /// The column, if `native` takes every value (`Some(None)` for a NULL of its type).
    fn primitive<T: ArrowPrimitiveType>(
        rows: &[Option<Vec<ScalarValue>>],
        j: usize,
        native: impl Fn(&ScalarValue) -> Option<Option<T::Native>>,
    ) -> Option<ArrayRef> {
        let values = rows.iter().map(|row| match value(row, j) {
            None | Some(ScalarValue::Null) => Some(None),
            Some(v) => native(v),
        });
        values.collect::<Option<PrimitiveArray<T>>>().map(|a| Arc::new(a) as ArrayRef)
    }
    let built = match data_type {
        DataType::Int64 => primitive::<Int64Type>(rows, j, |v| match v {
            ScalarValue::Int64(v) => Some(*v),
            _ => None,
        }),
        DataType::Float64 => primitive::<Float64Type>(rows, j, |v| match v {
            ScalarValue::Float64(v) => Some(*v),
            _ => None,
        }),
        _ => None,
    };
    match built {
        Some(array) => Ok(array),
        None => {
            let null = ScalarValue::try_from(data_type)?;
            array_of(rows.iter().map(|row| value(row, j).cloned().unwrap_or_else(|| null.clone())), data_type)
        }
    }
}

/// An array of `data_type` from scalar values (which may need a cast, e.g. NULLs).
pub fn array_of(values: impl Iterator<Item = ScalarValue>, data_type: &DataType) -> Result<ArrayRef> {
    let values: Vec<ScalarValue> = values.collect();
    if values.is_empty() {
        return Ok(arrow::array::new_empty_array(data_type));
    }
    let array = ScalarValue::iter_to_array(values)?;
    Ok(if array.data_type() == data_type { array } else { arrow::compute::cast(&array, data_type)? })
}
