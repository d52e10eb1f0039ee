//! Output column names as PostgreSQL gives them: a column's name, a function's name
//! (`count(*)` is `count`), `case`, `exists`, a cast's operand's name or else its type's
//! (`1::int` is `int4`), else `?column?`; and duplicates, which PostgreSQL allows (`SELECT
//! a, a FROM t`) and DataFusion refuses. The outermost SELECT's items PostgreSQL names
//! otherwise than DataFusion get that name as an alias, and those whose names would repeat
//! aliases made unique by a suffix after [`MARKER`]; the wire layer shows clients each name
//! without it ([`client_name`]).

use sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, Statement};

/// Starts the suffix that keeps repeated names apart inside the engine.
pub const MARKER: char = '\u{1}';

/// The name a client sees for an output column.
pub fn client_name(name: &str) -> &str {
    name.split(MARKER).next().unwrap_or(name)
}

/// The names of a statement's outermost SELECT items as written, before asofdb's rewrites
/// change the expressions (`sign(x)` becomes `signum(x)`, but the column is `sign`). None if
/// a wildcard's names are not known here.
pub fn names_as_written(statement: &mut Statement) -> Option<Vec<String>> {
    let items = outermost_items(outermost_query(statement)?)?;
    if items.iter().any(|item| !matches!(item, SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. })) {
        return None;
    }
    Some(items.iter().map(output_name).collect())
}

/// Gives the outermost SELECT's items PostgreSQL's names (`written`, from
/// [`names_as_written`]) where DataFusion would name them otherwise, and aliases repeated
/// names apart (a query's, or the source of an INSERT: `INSERT INTO t SELECT x, x FROM s`).
pub fn make_unique(statement: &mut Statement, written: Option<Vec<String>>) {
    let Some(names) = written else { return };
    let Some(items) = outermost_query(statement).and_then(outermost_items) else { return };
    if items.len() != names.len() {
        return;
    }
    let repeated = |name: &String| names.iter().filter(|n| n.eq_ignore_ascii_case(name)).count() > 1;
    for (i, item) in items.iter_mut().enumerate() {
        let renamed = match item {
            SelectItem::UnnamedExpr(e) => {
                named_by_postgres_otherwise(e) || output_name(&SelectItem::UnnamedExpr(e.clone())) != names[i]
            }
            _ => false,
        };
        if !repeated(&names[i]) && !renamed {
            continue;
        }
        let alias = if repeated(&names[i]) {
            Ident::with_quote('"', format!("{}{MARKER}{i}", names[i]))
        } else {
            Ident::with_quote('"', names[i].clone())
        };
        let expr = match std::mem::replace(item, SelectItem::UnnamedExpr(Expr::value(sqlparser::ast::Value::Null))) {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
            other => {
                *item = other;
                continue;
            }
        };
        *item = SelectItem::ExprWithAlias { expr, alias };
    }
}

fn outermost_query(statement: &mut Statement) -> Option<&mut Query> {
    match statement {
        Statement::Query(query) => Some(query),
        Statement::Insert(insert) => insert.source.as_deref_mut(),
        Statement::CreateView(create) => Some(&mut create.query),
        Statement::Declare { stmts } => match stmts.as_mut_slice() {
            [declare] => declare.for_query.as_deref_mut(),
            _ => None,
        },
        _ => None,
    }
}

fn outermost_items(query: &mut Query) -> Option<&mut Vec<SelectItem>> {
    match query.body.as_mut() {
        SetExpr::Select(select) => Some(&mut select.projection),
        _ => None,
    }
}

/// An expression PostgreSQL names otherwise than DataFusion does: `count(*)` is `count`,
/// `CASE ...` is `case`, `x::int` is `x`.
fn named_by_postgres_otherwise(expr: &Expr) -> bool {
    match expr {
        Expr::Function(_) | Expr::Case { .. } | Expr::Exists { .. } | Expr::Extract { .. } => true,
        Expr::Cast { .. } | Expr::Nested(_) | Expr::TypedString(_) => {
            output_name(&SelectItem::UnnamedExpr(expr.clone())) != "?column?"
        }
        _ => false,
    }
}

/// PostgreSQL's name for a SELECT item (folded to lower case unless quoted).
pub(super) fn output_name(item: &SelectItem) -> String {
    let ident = |i: &Ident| if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() };
    match item {
        SelectItem::ExprWithAlias { alias, .. } => ident(alias),
        SelectItem::UnnamedExpr(expr) => match expr {
            Expr::Identifier(i) => ident(i),
            Expr::CompoundIdentifier(parts) => parts.last().map(ident).unwrap_or_default(),
            Expr::Function(f) => f.name.0.last().and_then(|p| p.as_ident()).map(ident).unwrap_or_default(),
            Expr::Cast { expr, data_type, .. } => match output_name(&SelectItem::UnnamedExpr(*expr.clone())) {
                name if name == "?column?" => type_name(data_type).map_or(name, str::to_string),
                name => name,
            },
            Expr::Nested(inner) => output_name(&SelectItem::UnnamedExpr(*inner.clone())),
            Expr::Case { .. } => "case".into(),
            Expr::Exists { .. } => "exists".into(),
            Expr::Extract { .. } => "extract".into(),
            Expr::TypedString(typed) => type_name(&typed.data_type).unwrap_or("?column?").to_string(),
            _ => "?column?".into(),
        },
        _ => String::new(),
    }
}

/// How PostgreSQL names a column that is a cast to `data_type` of an unnamed value.
fn type_name(data_type: &sqlparser::ast::DataType) -> Option<&'static str> {
    use sqlparser::ast::DataType as T;
    Some(match data_type {
        T::Int(_) | T::Integer(_) | T::Int4(_) => "int4",
        T::BigInt(_) | T::Int8(_) => "int8",
        T::SmallInt(_) | T::Int2(_) => "int2",
        T::Text => "text",
        T::Varchar(_) | T::CharacterVarying(_) | T::CharVarying(_) => "varchar",
        T::Char(_) | T::Character(_) => "bpchar",
        T::Numeric(_) | T::Decimal(_) => "numeric",
        T::DoublePrecision | T::Float8 | T::Double(_) => "float8",
        T::Real | T::Float4 => "float4",
        T::Boolean | T::Bool => "bool",
        T::Date => "date",
        T::Timestamp(_, sqlparser::ast::TimezoneInfo::WithTimeZone | sqlparser::ast::TimezoneInfo::Tz) => "timestamptz",
        T::Timestamp(..) => "timestamp",
        T::Interval { .. } => "interval",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;

    #[test]
    fn repeated_names_get_marked_aliases() {
        let mut s = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT t.id, id, x FROM t").unwrap().remove(0);
        let names = names_as_written(&mut s);
        make_unique(&mut s, names);
        let text = s.to_string();
        assert!(text.contains(&format!("t.id AS \"id{MARKER}0\"")), "{text}");
        assert!(text.contains(&format!("id AS \"id{MARKER}1\"")), "{text}");
        assert!(text.ends_with("x FROM t"), "{text}");
        assert_eq!(client_name(&format!("id{MARKER}1")), "id");
        let mut s = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT a, b FROM t").unwrap().remove(0);
        let names = names_as_written(&mut s);
        make_unique(&mut s, names);
        assert_eq!(s.to_string(), "SELECT a, b FROM t");
    }
}
