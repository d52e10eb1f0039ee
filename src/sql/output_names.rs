//! Duplicate output column names, which PostgreSQL allows (`SELECT a, a FROM t`) and
//! DataFusion refuses. The outermost SELECT's items whose names would repeat get aliases
//! made unique by a suffix after [`MARKER`]; the wire layer shows clients each name without
//! it ([`client_name`]). Names follow PostgreSQL's: a column's name, a function's name, else
//! `?column?`.

use sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, Statement};

/// Starts the suffix that keeps repeated names apart inside the engine.
pub const MARKER: char = '\u{1}';

/// The name a client sees for an output column.
pub fn client_name(name: &str) -> &str {
    name.split(MARKER).next().unwrap_or(name)
}

/// Aliases the repeated output names of a query's outermost SELECT (a query's, or the
/// source of an INSERT: `INSERT INTO t SELECT x, x FROM s`).
pub fn make_unique(statement: &mut Statement) {
    let query = match statement {
        Statement::Query(query) => query,
        Statement::Insert(insert) => match insert.source.as_mut() {
            Some(source) => source,
            None => return,
        },
        _ => return,
    };
    let Some(items) = outermost_items(query) else { return };
    if items.iter().any(|item| !matches!(item, SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. })) {
        return; // wildcards: the names they expand to are not known here
    }
    let names: Vec<String> = items.iter().map(output_name).collect();
    let repeated = |name: &String| names.iter().filter(|n| n.eq_ignore_ascii_case(name)).count() > 1;
    if !names.iter().any(repeated) {
        return;
    }
    for (i, item) in items.iter_mut().enumerate() {
        if !repeated(&names[i]) {
            continue;
        }
        let alias = Ident::with_quote('"', format!("{}{MARKER}{i}", names[i]));
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

fn outermost_items(query: &mut Query) -> Option<&mut Vec<SelectItem>> {
    match query.body.as_mut() {
        SetExpr::Select(select) => Some(&mut select.projection),
        _ => None,
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
            Expr::Cast { expr, .. } => output_name(&SelectItem::UnnamedExpr(*expr.clone())),
            _ => "?column?".into(),
        },
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;

    #[test]
    fn repeated_names_get_marked_aliases() {
        let mut s = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT t.id, id, x FROM t").unwrap().remove(0);
        make_unique(&mut s);
        let text = s.to_string();
        assert!(text.contains(&format!("t.id AS \"id{MARKER}0\"")), "{text}");
        assert!(text.contains(&format!("id AS \"id{MARKER}1\"")), "{text}");
        assert!(text.ends_with("x FROM t"), "{text}");
        assert_eq!(client_name(&format!("id{MARKER}1")), "id");
        let mut s = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT a, b FROM t").unwrap().remove(0);
        make_unique(&mut s);
        assert_eq!(s.to_string(), "SELECT a, b FROM t");
    }
}
