//! A cast to `varchar(n)` or `char(n)` keeps the first n characters, as PostgreSQL's explicit
//! casts do (`'abcdef'::varchar(3)` is `abc`); DataFusion ignored the length, and refused
//! `character varying(n)`. Rewritten as `left(CAST(x AS VARCHAR), n)`. A `char(n)` is not
//! padded with spaces (PostgreSQL's `bpchar` prints them; its length and `||` ignore them).

use std::ops::ControlFlow;

use sqlparser::ast::{CastKind, CharacterLength, DataType, Expr, Statement, Value, visit_expressions_mut};

/// Rewrites every such cast in `statement` in place.
pub fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Cast { kind: CastKind::Cast | CastKind::DoubleColon, expr: inner, data_type, .. } = expr
            && let Some(length) = bounded_length(data_type)
        {
            let text = Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(std::mem::replace(inner.as_mut(), Expr::value(Value::Null))),
                data_type: DataType::Varchar(None),
                format: None,
                array: false,
            };
            *expr = left(text, length);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The n of `varchar(n)`, `character varying(n)`, `char(n)` and their kin.
fn bounded_length(data_type: &DataType) -> Option<u64> {
    match data_type {
        DataType::Varchar(Some(CharacterLength::IntegerLength { length, .. }))
        | DataType::CharacterVarying(Some(CharacterLength::IntegerLength { length, .. }))
        | DataType::CharVarying(Some(CharacterLength::IntegerLength { length, .. }))
        | DataType::Char(Some(CharacterLength::IntegerLength { length, .. }))
        | DataType::Character(Some(CharacterLength::IntegerLength { length, .. })) => Some(*length),
        _ => None,
    }
}

fn left(text: Expr, length: u64) -> Expr {
    super::function_spellings::call("left", vec![text, Expr::value(Value::Number(length.to_string(), false))])
}
