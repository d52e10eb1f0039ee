//! PostgreSQL query forms DataFusion lacks, rewritten in the syntax tree to equivalents it
//! runs with the same result:
//!
//! - `FETCH FIRST n ROWS ONLY` is `LIMIT n`;
//! - `x = ANY (subquery)` is `x IN (subquery)`, `x <> ALL (subquery)` is `x NOT IN (...)`,
//!   and the other comparisons with ANY or ALL go through the subquery's least and greatest
//!   values (DataFusion's own rewrite of them fails);
//! - a set-returning function in the SELECT list (`SELECT generate_series(1, 3)`) returns
//!   rows, as `unnest(...)` of DataFusion's list-returning form does;
//! - a one-column table function's alias names its column (`FROM generate_series(1, 3) g`
//!   has a column `g`, DataFusion's is `value`).

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    LimitClause, ObjectName, ObjectNamePart, Query, Select, SelectItem, SetExpr, Statement, TableAliasColumnDef,
    TableFactor, VisitMut, VisitorMut, visit_expressions_mut,
};

/// Functions that return a set of rows in PostgreSQL and a list in DataFusion.
const SET_RETURNING: &[&str] = &["generate_series"];

/// Rewrites every such form in `statement` in place, in every query it holds: a SELECT,
/// INSERT's source, `COPY (query) TO`, a view's or a cursor's query, CTEs, derived tables and
/// subqueries.
pub fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        subquery_comparison(expr);
        ControlFlow::<()>::Continue(())
    });
    let _ = statement.visit(&mut EveryQuery(|query: &mut Query| {
        fetch_first(query);
        each_select(&mut query.body, &mut |select| {
            set_returning_items(select);
            table_function_aliases(select);
        });
    }));
}

/// Calls its function on every query of a statement, nested ones first (sqlparser's visitor
/// reaches queries wherever they sit).
struct EveryQuery<F>(F);

impl<F: FnMut(&mut Query)> VisitorMut for EveryQuery<F> {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        (self.0)(query);
        ControlFlow::Continue(())
    }
}

/// The SELECTs of one query's body, through its set operations (not into nested queries,
/// which `EveryQuery` visits on their own).
fn each_select(body: &mut SetExpr, f: &mut impl FnMut(&mut Select)) {
    match body {
        SetExpr::Select(select) => f(select),
        SetExpr::SetOperation { left, right, .. } => {
            each_select(left, f);
            each_select(right, f);
        }
        _ => {}
    }
}

fn fetch_first(query: &mut Query) {
    let Some(fetch) = &query.fetch else { return };
    if fetch.with_ties || fetch.percent {
        return; // DataFusion refuses these with its own error
    }
    let count = fetch.quantity.clone().unwrap_or_else(|| Expr::value(sqlparser::ast::Value::Number("1".into(), false)));
    match &mut query.limit_clause {
        None => {
            query.limit_clause = Some(LimitClause::LimitOffset { limit: Some(count), offset: None, limit_by: vec![] })
        }
        Some(LimitClause::LimitOffset { limit: limit @ None, .. }) => *limit = Some(count),
        Some(_) => return,
    }
    query.fetch = None;
}

fn subquery_comparison(expr: &mut Expr) {
    let (left, op, subquery, all) = match expr {
        Expr::AnyOp { left, compare_op, right, .. } => (left, compare_op.clone(), right, false),
        Expr::AllOp { left, compare_op, right } => (left, compare_op.clone(), right, true),
        _ => return,
    };
    let Expr::Subquery(query) = subquery.as_ref() else { return };
    match (&op, all) {
        (BinaryOperator::Eq, false) => {
            *expr = Expr::InSubquery { expr: left.clone(), subquery: query.clone(), negated: false };
        }
        (BinaryOperator::NotEq, true) => {
            *expr = Expr::InSubquery { expr: left.clone(), subquery: query.clone(), negated: true };
        }
        _ => {
            if let Some(rewritten) = by_extremes(left, &op, query, all) {
                *expr = rewritten;
            }
        }
    }
}

/// `x op ANY (subquery)` and `x op ALL (subquery)` for `<`, `<=`, `>`, `>=`, `=` (ALL) and
/// `<>` (ANY), with PostgreSQL's three values, through the subquery's least and greatest
/// values: ANY is true if some value passes (`x > ANY` if `x > min`), ALL false if some value
/// fails (`x > ALL` unless `x > max`); otherwise an empty subquery makes ANY false and ALL
/// true, and a NULL `x` or a NULL among the values makes either NULL.
fn by_extremes(x: &Expr, op: &BinaryOperator, query: &Query, all: bool) -> Option<Expr> {
    let values = |aggregate: &str| format!("(SELECT {aggregate} FROM ({query}) AS __any_values(__v))");
    let (least, greatest) = (values("min(__v)"), values("max(__v)"));
    let symbol = op.to_string();
    // Some (non-NULL) value passes `x op value`.
    let passes = match op {
        BinaryOperator::Gt | BinaryOperator::GtEq => format!("({x}) {symbol} {least}"),
        BinaryOperator::Lt | BinaryOperator::LtEq => format!("({x}) {symbol} {greatest}"),
        BinaryOperator::NotEq => format!("NOT (({x}) = {least} AND ({x}) = {greatest})"),
        BinaryOperator::Eq => format!("(({x}) = {least} AND ({x}) = {greatest})"),
        _ => return None,
    };
    // Some (non-NULL) value fails `x op value`.
    let fails = match op {
        BinaryOperator::Gt | BinaryOperator::GtEq => format!("NOT (({x}) {symbol} {greatest})"),
        BinaryOperator::Lt | BinaryOperator::LtEq => format!("NOT (({x}) {symbol} {least})"),
        BinaryOperator::Eq => format!("NOT (({x}) = {least} AND ({x}) = {greatest})"),
        BinaryOperator::NotEq => format!("(({x}) = {least} OR ({x}) = {greatest})"),
        _ => return None,
    };
    let empty = format!("{} = 0", values("count(*)"));
    let unknown = format!("({x}) IS NULL OR {} > 0", values("count(*) - count(__v)"));
    let text = if all {
        format!("(CASE WHEN {empty} THEN true WHEN {fails} THEN false WHEN {unknown} THEN NULL ELSE true END)")
    } else {
        format!("(CASE WHEN {passes} THEN true WHEN {empty} THEN false WHEN {unknown} THEN NULL ELSE false END)")
    };
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    sqlparser::parser::Parser::new(&dialect).try_with_sql(&text).ok()?.parse_expr().ok()
}

/// `generate_series(...)` as a SELECT item becomes `unnest(generate_series(...))`, keeping
/// its output name.
fn set_returning_items(select: &mut Select) {
    for item in &mut select.projection {
        let (expr, named) = match item {
            SelectItem::UnnamedExpr(expr) => (expr, false),
            SelectItem::ExprWithAlias { expr, .. } => (expr, true),
            _ => continue,
        };
        let Expr::Function(function) = expr else { continue };
        let name = function.name.to_string().to_ascii_lowercase();
        if !SET_RETURNING.contains(&name.as_str()) {
            continue;
        }
        type_unknown_arguments(function);
        let call = expr.clone();
        *expr = Expr::Function(Function {
            name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new("unnest"))]),
            uses_odbc_syntax: false,
            parameters: FunctionArguments::None,
            args: FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: None,
                args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(call))],
                clauses: vec![],
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: vec![],
        });
        if !named {
            *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias: Ident::new(name) };
        }
    }
}

/// `generate_series(TIMESTAMP '2024-01-01', '2024-01-03', '1 day')`: as PostgreSQL types an
/// untyped literal argument by the other arguments, a text bound takes the type written on
/// the other bound, and a text step is an INTERVAL (DataFusion matches the signature before
/// any of asofdb's rules could cast them).
fn type_unknown_arguments(function: &mut Function) {
    let FunctionArguments::List(list) = &mut function.args else { return };
    if list.args.len() != 3 {
        return;
    }
    let mut exprs: Vec<&mut Expr> = list
        .args
        .iter_mut()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    if exprs.len() != 3 {
        return;
    }
    let is_text =
        |e: &Expr| matches!(e, Expr::Value(v) if matches!(v.value, sqlparser::ast::Value::SingleQuotedString(_)));
    let written_type = |e: &Expr| match e {
        Expr::TypedString(typed) => Some(typed.data_type.clone()),
        Expr::Cast { data_type, .. } => Some(data_type.clone()),
        _ => None,
    };
    let Some(bound_type) = written_type(exprs[0]).or_else(|| written_type(exprs[1])) else { return };
    let as_type = |e: &mut Expr, data_type: sqlparser::ast::DataType| {
        *e = Expr::Cast {
            kind: sqlparser::ast::CastKind::DoubleColon,
            expr: Box::new(e.clone()),
            data_type,
            array: false,
            format: None,
        };
    };
    for bound in exprs.iter_mut().take(2) {
        if is_text(bound) {
            as_type(bound, bound_type.clone());
        }
    }
    if is_text(exprs[2]) {
        let step = if is_time_type(&bound_type) {
            sqlparser::ast::DataType::Interval { fields: None, precision: None }
        } else {
            bound_type
        };
        as_type(exprs[2], step);
    }
}

fn is_time_type(data_type: &sqlparser::ast::DataType) -> bool {
    use sqlparser::ast::DataType as T;
    matches!(data_type, T::Date | T::Timestamp(..) | T::Datetime(_) | T::TimestampNtz(_))
}

/// Whether an argument is written as a time, a date or an interval (a literal, a cast or
/// text), so its series is one of times.
fn is_written_as_time(arg: &FunctionArg) -> bool {
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) = arg else { return false };
    match expr {
        Expr::Interval(_) => true,
        Expr::TypedString(typed) => {
            is_time_type(&typed.data_type) || matches!(typed.data_type, sqlparser::ast::DataType::Interval { .. })
        }
        Expr::Cast { data_type, .. } => {
            is_time_type(data_type) || matches!(data_type, sqlparser::ast::DataType::Interval { .. })
        }
        Expr::Value(v) => matches!(v.value, sqlparser::ast::Value::SingleQuotedString(_)),
        _ => false,
    }
}

/// `FROM generate_series(1, 3) g` or `FROM unnest(a) g` (no column list) names the one column `g`, as PostgreSQL does.
fn table_function_aliases(select: &mut Select) {
    for table in &mut select.from {
        name_function_column(&mut table.relation);
        for join in &mut table.joins {
            name_function_column(&mut join.relation);
        }
        unnest_beside(table);
    }
}

fn name_function_column(factor: &mut TableFactor) {
    // `CROSS JOIN UNNEST(conkey) AS k` (the ADBC driver's constraint query): the column is `k`.
    if let TableFactor::UNNEST { alias: Some(alias), array_exprs, with_offset: false, with_ordinality: false, .. } =
        factor
        && array_exprs.len() == 1
        && alias.columns.is_empty()
    {
        alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
        return;
    }
    let TableFactor::Table { name, args: Some(args), alias, .. } = factor else { return };
    let function = name.to_string().to_ascii_lowercase();
    if !SET_RETURNING.contains(&function.as_str()) {
        return;
    }
    if let Some(alias) = alias.as_mut().filter(|a| a.columns.is_empty()) {
        alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
    }
    if args.args.len() == 3
        && args.args.iter().any(is_written_as_time)
        && let Some(select) = series_as_select(&function, args.args.clone(), alias.clone())
    {
        *factor = select;
    }
}

/// `FROM t AS a CROSS JOIN UNNEST(a.x) AS k(v)`, an UNNEST reading the relation before it
/// (the ADBC driver's constraint query), as `FROM (SELECT *, unnest(a.x) AS v FROM t AS a) AS a`:
/// DataFusion cannot run the lateral reference. Only `v` (or `a.` columns) may be named
/// afterwards; `k.v` is not rewritten.
fn unnest_beside(table: &mut sqlparser::ast::TableWithJoins) {
    use sqlparser::ast::{JoinOperator, TableAlias};
    let Some(first) = table.joins.first() else { return };
    let (
        JoinOperator::CrossJoin(_),
        TableFactor::UNNEST {
            alias: Some(unnest_alias), array_exprs, with_offset: false, with_ordinality: false, ..
        },
    ) = (&first.join_operator, &first.relation)
    else {
        return;
    };
    let ([array], [column]) = (array_exprs.as_slice(), unnest_alias.columns.as_slice()) else { return };
    let TableFactor::Table { name, alias, args: None, .. } = &table.relation else { return };
    let Some(outer_name) = alias.as_ref().map(|a| a.name.clone()).or_else(|| name.0.last()?.as_ident().cloned()) else {
        return;
    };
    // Only a lateral reference needs it: an UNNEST of its own runs as written.
    if !reads_relation(array, &outer_name) {
        return;
    }
    let relation = &table.relation;
    let sql = format!("SELECT *, unnest({array}) AS {} FROM {relation}", column.name);
    let Ok(mut statements) = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, &sql)
    else {
        return;
    };
    let Some(Statement::Query(subquery)) = statements.pop() else { return };
    table.relation = TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(TableAlias { explicit: true, name: outer_name, columns: vec![], at: None }),
        sample: None,
    };
    table.joins.remove(0);
}

/// Whether `expr` names a column of `relation` (`relation.c`), or a bare column (which, next
/// to a lateral UNNEST, is the relation's).
fn reads_relation(expr: &Expr, relation: &Ident) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        match e {
            Expr::Identifier(_) => found = true,
            Expr::CompoundIdentifier(parts)
                if parts.len() == 2 && parts[0].value.eq_ignore_ascii_case(&relation.value) =>
            {
                found = true
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// `FROM generate_series(start, stop, step) [AS g(v)]` with an argument written as a time,
/// date or interval (a series of timestamps) as `FROM (SELECT unnest(generate_series(...)) AS v) AS g(v)`:
/// DataFusion evaluates a table function's arguments while it plans, before asofdb's rules
/// read text and step in the session's time zone; the SELECT-list form is analyzed like any
/// expression.
fn series_as_select(
    function: &str,
    args: Vec<FunctionArg>,
    alias: Option<sqlparser::ast::TableAlias>,
) -> Option<TableFactor> {
    let mut alias = alias.unwrap_or(sqlparser::ast::TableAlias {
        explicit: true,
        name: Ident::new(function),
        columns: vec![],
        at: None,
    });
    let column = alias.columns.first().map_or_else(|| Ident::new(function), |c| c.name.clone());
    alias.columns = vec![TableAliasColumnDef::from_name(column.value.clone())];
    let call = Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(function))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList { duplicate_treatment: None, args, clauses: vec![] }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    });
    let parsed = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, "SELECT 1");
    let Some(Statement::Query(mut query)) = parsed.ok()?.pop() else { return None };
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    select.projection = vec![SelectItem::ExprWithAlias { expr: call, alias: column }];
    set_returning_items(select);
    Some(TableFactor::Derived { lateral: false, subquery: query, alias: Some(alias), sample: None })
}
