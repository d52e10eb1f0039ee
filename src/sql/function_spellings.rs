//! PostgreSQL functions DataFusion has under another name or as an operator: `mod(a, b)` is
//! `a % b`, `sign(x)` is `signum(x)`, `every(b)` is `bool_and(b)`, `ceiling(x)` is
//! `ceil(x)`, `variance(x)` is `var_samp(x)`, and `date_part(...)` is double precision, as
//! PostgreSQL's; `x AT TIME ZONE z` and `timezone(z, x)` are `pg_at_time_zone(x, z)`
//! (`plan::session_time_zone`). Rewritten in the syntax tree, so each keeps DataFusion's typing
//! and asofdb's analyzer rules.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Statement, visit_expressions_mut,
};

/// What `x AT TIME ZONE z` is planned as (`plan::session_time_zone` implements it).
pub const AT_TIME_ZONE: &str = "pg_at_time_zone";

/// Rewrites every such call in `statement` in place.
pub fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::AtTimeZone { timestamp, time_zone } = expr {
            *expr = call(AT_TIME_ZONE, vec![(**timestamp).clone(), (**time_zone).clone()]);
        }
        if let Expr::Function(function) = expr {
            let name = function.name.to_string().to_ascii_lowercase();
            match name.as_str() {
                "mod" | "pg_catalog.mod" => {
                    if let Some([a, b]) = plain_args(function).as_deref() {
                        *expr = Expr::Nested(Box::new(Expr::BinaryOp {
                            left: Box::new(a.clone()),
                            op: BinaryOperator::Modulo,
                            right: Box::new(b.clone()),
                        }));
                    }
                }
                "sign" => rename(function, "signum"),
                // date_part() is double precision in PostgreSQL (EXTRACT is NUMERIC).
                "date_part" | "pg_catalog.date_part" => {
                    *expr = Expr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new(Expr::Function(function.clone())),
                        data_type: DataType::DoublePrecision,
                        format: None,
                        array: false,
                    };
                }
                "every" => rename(function, "bool_and"),
                "ceiling" => rename(function, "ceil"),
                "variance" => rename(function, "var_samp"),
                "timezone" | "pg_catalog.timezone" => {
                    if let Some([zone, value]) = plain_args(function).as_deref() {
                        *expr = call(AT_TIME_ZONE, vec![value.clone(), zone.clone()]);
                    }
                }
                _ => {}
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `name(args)`.
/// A call of function `name` with positional `args`.
pub(super) fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn rename(function: &mut Function, to: &str) {
    function.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(to))]);
}

/// The arguments of a call with plain positional arguments only.
fn plain_args(function: &Function) -> Option<Vec<Expr>> {
    let FunctionArguments::List(list) = &function.args else { return None };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return None;
    }
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}
