//! INSERT: evaluates VALUES or a query with DataFusion, then conforms the rows to the table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::compute::{CastOptions, cast_with_options, concat_batches};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::{DateTime, Utc};
use sqlparser::ast::{
    Expr, Function, FunctionArguments, Insert, Query, SetExpr, Statement as SqlStatement, TableObject, UnaryOperator,
    Value,
};

use super::Database;
use super::conform::{RowLabel, conform};
use super::database::SessionReads;
use crate::catalog::TableDef;
use crate::error::{Error, Result, SqlState};
use crate::sql::names::{ident_name, table_name};
use crate::storage::Append;
use crate::value::time_zone::UTC_TAG;

/// Evaluates an INSERT into the rows it appends (nothing is written here).
/// Text and timestamps are read in the session's time zone; a SELECT source reads as the
/// session does (`reads`: its transaction's rows too).
pub async fn rows_to_insert(db: &Database, insert: &Insert, reads: &SessionReads<'_>) -> Result<Append> {
    if insert.returning.is_some() || insert.on.is_some() || insert.or.is_some() || insert.overwrite {
        return Err(Error::unsupported("INSERT supports only INTO t [(cols)] VALUES ... | SELECT ..."));
    }
    let TableObject::TableName(name) = &insert.table else {
        return Err(Error::unsupported("INSERT INTO a table function is not supported"));
    };
    let def = db.catalog.require_table(&table_name(name)?)?;
    db.require(reads.role, &crate::catalog::Securable::Table(def.name.clone()), crate::catalog::Privilege::Insert)?;
    let targets = target_columns(&def, insert)?;
    let source =
        insert.source.as_ref().ok_or_else(|| Error::unsupported("INSERT ... DEFAULT VALUES is not supported"))?;
    if let SetExpr::Values(values) = source.body.as_ref() {
        for (row, exprs) in values.rows.iter().enumerate() {
            check_arity(exprs.len(), targets.len(), &format!(" (row {})", row + 1))?;
        }
    }

    let plain_values = is_plain_values(source);
    let fast = match source.body.as_ref() {
        SetExpr::Values(values) if plain_values => {
            let types: Vec<DataType> = targets.iter().map(|t| def.columns[*t].ty.arrow_type()).collect();
            literal_columns(&values.rows, &types, reads.now)
        }
        _ => None,
    };
    let batch = match fast {
        Some(batch) => Ok(batch),
        // Boxed: DataFusion's planning makes this future ~12 KB, which every INSERT's future
        // would otherwise carry and copy, the fast path's too.
        None => Box::pin(evaluate(db, source, reads)).await,
    };
    let rows = match (batch, source.body.as_ref()) {
        (Ok(batch), _) => {
            check_arity(batch.num_columns(), targets.len(), "")?;
            let mut columns: Vec<Option<ArrayRef>> = vec![None; def.columns.len()];
            for (source_index, target) in targets.iter().enumerate() {
                columns[*target] = Some(batch.column(source_index).clone());
            }
            conform(&def, columns, batch.num_rows(), RowLabel::Insert, reads.zone)?
        }
        (Err(_), SetExpr::Values(values)) if plain_values => {
            Box::pin(row_by_row(db, &def, &targets, source, values, reads)).await?
        }
        (Err(e), _) => return Err(e),
    };
    Ok(Append { table_id: def.id, event_time: def.event_time, batch: rows })
}

/// True for an INSERT of one VALUES row of literals, parameters and `now()`: what an
/// application logging events prepares. Its rows are built without DataFusion (see
/// [`literal_columns`]), so it costs little besides its commit.
pub fn is_single_literal_row(insert: &Insert) -> bool {
    let Some(source) = &insert.source else { return false };
    let SetExpr::Values(values) = source.body.as_ref() else { return false };
    let parameter = |e: &Expr| matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)));
    is_plain_values(source)
        && insert.returning.is_none()
        && insert.on.is_none()
        && values.rows.len() == 1
        && values.rows[0].iter().all(|e| parameter(e) || literal(e).is_some())
}

/// VALUES alone: no WITH, ORDER BY, LIMIT, OFFSET or FETCH changes which rows it gives.
fn is_plain_values(source: &Query) -> bool {
    source.with.is_none() && source.order_by.is_none() && source.limit_clause.is_none() && source.fetch.is_none()
}

/// The fast path for the most common INSERT: VALUES rows of plain literals (numbers, strings,
/// booleans, NULL) and `now()`, which is also what an application's prepared INSERT becomes
/// once its parameters are bound. Each column
/// is built directly as one Arrow array (integers, floats, text or booleans), leaving type
/// conversion and its row-level errors to `conform`. Returns `None` for anything else
/// (expressions, casts, mixed literal kinds), which DataFusion then evaluates.
/// Fractional literals are NUMERIC, as in PostgreSQL: they become doubles only for a double
/// column (parsed from their text), and exact decimals for any other (`2.5` into an integer
/// column rounds to 3, half away from zero).
fn literal_columns<R: std::ops::Deref<Target = Vec<Expr>>>(
    rows: &[R],
    targets: &[DataType],
    now: DateTime<Utc>,
) -> Option<RecordBatch> {
    let width = rows.first()?.len();
    let now = now.timestamp_nanos_opt()?;
    let mut fields = Vec::with_capacity(width);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(width);
    for column in 0..width {
        let literals: Vec<Literal> = rows.iter().map(|row| row.get(column).and_then(literal)).collect::<Option<_>>()?;
        let array: ArrayRef = if literals.iter().all(|l| matches!(l, Literal::Null)) {
            Arc::new(arrow::array::NullArray::new(literals.len()))
        } else if literals.iter().all(|l| matches!(l, Literal::Null | Literal::Int(_))) {
            Arc::new(Int64Array::from_iter(
                literals.iter().map(|l| if let Literal::Int(i) = l { Some(*i) } else { None }),
            ))
        } else if literals.iter().all(|l| matches!(l, Literal::Null | Literal::Int(_) | Literal::Float(..)))
            && matches!(targets.get(column), Some(DataType::Float64 | DataType::Float32))
        {
            Arc::new(Float64Array::from_iter(literals.iter().map(|l| match l {
                Literal::Int(i) => Some(*i as f64),
                Literal::Float(f, _) => Some(*f),
                _ => None,
            })))
        } else if literals.iter().all(|l| matches!(l, Literal::Null | Literal::Int(_) | Literal::Float(..))) {
            numeric_column(&literals)?
        } else if literals.iter().all(|l| matches!(l, Literal::Null | Literal::Text(_))) {
            Arc::new(StringArray::from_iter(
                literals.iter().map(|l| if let Literal::Text(t) = l { Some(t.as_str()) } else { None }),
            ))
        } else if literals
            .iter()
            .all(|l| matches!(l, Literal::Null | Literal::Text(_) | Literal::Int(_) | Literal::Float(..)))
            && !(targets.get(column).is_some_and(DataType::is_integer)
                && literals.iter().any(|l| matches!(l, Literal::Float(..))))
        {
            // Strings beside numbers: PostgreSQL gives each value of an INSERT's VALUES the
            // column's type, so `('-0'), (1)` into a double is -0 and 1. Typed as one VALUES
            // column (integers, as DataFusion types it) the string lost its sign, or its
            // digits beside `1.5`. As text, each is read as the column's type by `conform`, as
            // COPY reads it. (A fractional number into an integer column is rounded, not read
            // as text: left to DataFusion.)
            Arc::new(StringArray::from_iter(literals.iter().map(|l| match l {
                Literal::Text(t) => Some(t.clone()),
                Literal::Int(i) => Some(i.to_string()),
                Literal::Float(_, text) => Some(crate::value::numeric_text::printed(text)),
                _ => None,
            })))
        } else if literals.iter().all(|l| matches!(l, Literal::Null | Literal::Now)) {
            // now() is a timestamptz; `conform` converts it to the column's type in the
            // session's zone, as it converts DataFusion's now().
            let instants = literals.iter().map(|l| matches!(l, Literal::Now).then_some(now));
            Arc::new(TimestampNanosecondArray::from_iter(instants).with_timezone(UTC_TAG))
        } else if literals.iter().all(|l| matches!(l, Literal::Null | Literal::Bool(_))) {
            Arc::new(BooleanArray::from_iter(
                literals.iter().map(|l| if let Literal::Bool(b) = l { Some(*b) } else { None }),
            ))
        } else {
            return None;
        };
        fields.push(Field::new(format!("column{}", column + 1), array.data_type().clone(), true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).ok()
}

enum Literal {
    Null,
    Int(i64),
    /// A fractional number: its value as a double, and its text.
    Float(f64, String),
    Text(String),
    Bool(bool),
    /// `now()` or `current_timestamp`: the transaction's start (`SessionReads::now`).
    Now,
}

fn literal(expr: &Expr) -> Option<Literal> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Null => Some(Literal::Null),
            Value::Boolean(b) => Some(Literal::Bool(*b)),
            Value::SingleQuotedString(s) => Some(Literal::Text(s.clone())),
            Value::Number(n, _) => number(n),
            _ => None,
        },
        Expr::Function(f) if is_now(f) => Some(Literal::Now),
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match literal(expr)? {
            Literal::Int(i) => Some(Literal::Int(i.checked_neg()?)),
            // A NUMERIC zero has no sign: `-0.0` is 0, as in PostgreSQL.
            Literal::Float(f, text) if f == 0.0 => Some(Literal::Float(f, text)),
            Literal::Float(f, text) => Some(Literal::Float(-f, format!("-{text}"))),
            _ => None,
        },
        _ => None,
    }
}

/// `now()`, `current_timestamp` (no arguments, no FILTER or OVER).
fn is_now(f: &Function) -> bool {
    let name = match f.name.0.as_slice() {
        [part] => part.as_ident().map(ident_name),
        _ => None,
    };
    let no_arguments = match &f.args {
        FunctionArguments::None => true,
        FunctionArguments::List(list) => list.args.is_empty() && list.clauses.is_empty(),
        FunctionArguments::Subquery(_) => false,
    };
    matches!(name.as_deref(), Some("now" | "current_timestamp"))
        && no_arguments
        && f.filter.is_none()
        && f.over.is_none()
        && f.within_group.is_empty()
        && matches!(f.parameters, FunctionArguments::None)
}

/// Integers that fit i64 stay exact; other numbers go through f64 only when that is exact
/// enough for DataFusion's own behaviour (it parses decimal literals as f64 too).
fn number(text: &str) -> Option<Literal> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Literal::Int(i));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return None; // too large for i64: let DataFusion decide
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| Literal::Float(f, text.to_string()))
}

/// Numbers as one exact NUMERIC column, at the largest scale written; `None` when a value
/// does not fit Decimal128 (DataFusion then evaluates the VALUES).
fn numeric_column(literals: &[Literal]) -> Option<ArrayRef> {
    let scale = literals
        .iter()
        .map(|l| match l {
            Literal::Float(_, text) if !text.contains(['e', 'E']) => text.split_once('.').map_or(0, |(_, f)| f.len()),
            Literal::Float(..) => usize::MAX,
            _ => 0,
        })
        .max()?;
    let scale = i8::try_from(scale).ok().filter(|s| *s <= 38)?;
    let texts = StringArray::from_iter(literals.iter().map(|l| match l {
        Literal::Int(i) => Some(i.to_string()),
        Literal::Float(_, text) => Some(text.clone()),
        _ => None,
    }));
    let options = CastOptions { safe: false, ..Default::default() };
    cast_with_options(&texts, &DataType::Decimal128(38, scale), &options).ok()
}

/// Runs the source query (VALUES or SELECT) as any query is planned (an ASOF JOIN too).
async fn evaluate(db: &Database, source: &Query, reads: &SessionReads<'_>) -> Result<RecordBatch> {
    let plan = db.plan_query(&SqlStatement::Query(Box::new(source.clone()))).await?;
    let rows = db.run(plan, reads)?;
    let schema = Arc::new(rows.schema().as_arrow().clone());
    let batches = rows.collect().await?;
    Ok(concat_batches(&schema, &batches)?)
}

/// A multi-row VALUES that fails as a whole, row by row. DataFusion types each column of a
/// VALUES list from all its rows (`(NULL), (1), ('infinity')` is a BIGINT column, so the
/// last row fails), where PostgreSQL types the rows of an INSERT's VALUES from the target
/// columns. Each row is evaluated and conformed to the table on its own: the first that
/// fails names itself in the error; if none fails, the rows are the INSERT's.
async fn row_by_row(
    db: &Database,
    def: &TableDef,
    targets: &[usize],
    source: &Query,
    values: &sqlparser::ast::Values,
    reads: &SessionReads<'_>,
) -> Result<RecordBatch> {
    let mut conformed = Vec::with_capacity(values.rows.len());
    for (index, row) in values.rows.iter().enumerate() {
        let mut single = source.clone();
        let mut one = values.clone();
        one.rows = vec![row.clone()];
        *single.body = SetExpr::Values(one);
        let batch = evaluate(db, &single, reads).await.map_err(|e| e.at(&format!("row {}", index + 1)))?;
        let mut columns: Vec<Option<ArrayRef>> = vec![None; def.columns.len()];
        for (source_index, target) in targets.iter().enumerate() {
            columns[*target] = batch.columns().get(source_index).cloned();
        }
        conformed.push(conform(def, columns, batch.num_rows(), RowLabel::InsertRow(index + 1), reads.zone)?);
    }
    Ok(concat_batches(&def.schema(), &conformed)?)
}

/// Indices of the table columns the statement assigns, in the order it gives values.
fn target_columns(def: &TableDef, insert: &Insert) -> Result<Vec<usize>> {
    if insert.columns.is_empty() {
        return Ok((0..def.columns.len()).collect());
    }
    let mut targets = Vec::with_capacity(insert.columns.len());
    for column in &insert.columns {
        let name = column.0.last().and_then(|p| p.as_ident()).map(ident_name).unwrap_or_default();
        let index = def.column_index(&name).ok_or_else(|| Error::undefined_column(&name, &def.name))?;
        if targets.contains(&index) {
            return Err(Error::Conflict {
                sqlstate: SqlState::DuplicateColumn,
                message: format!("column \"{name}\" specified more than once"),
            });
        }
        targets.push(index);
    }
    Ok(targets)
}

fn check_arity(given: usize, expected: usize, place: &str) -> Result<()> {
    if given > expected {
        Err(Error::invalid_input(
            SqlState::SyntaxError,
            format!("INSERT has more expressions than target columns{place}"),
        ))
    } else if given < expected {
        Err(Error::invalid_input(
            SqlState::SyntaxError,
            format!("INSERT has more target columns than expressions{place}"),
        ))
    } else {
        Ok(())
    }
}
