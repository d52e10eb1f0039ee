//! `INTERVAL '...'` literals in PostgreSQL's own output form (`INTERVAL '2 days 03:00:00'`,
//! `INTERVAL '-1 years -2 mons +3 days'`) rewritten into the unit form DataFusion's parser
//! reads (`value::interval_text::arrow_readable`), so what PostgreSQL and asofdb print reads
//! back as the same interval instead of failing to parse. DataFusion reads these while
//! planning; casts of text (`'01:30:00'::interval`) are `plan::interval_input`'s.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Statement, Value, visit_expressions_mut};

use crate::value::interval_text::arrow_readable;

/// Rewrites every such literal in `statement` in place.
pub fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        let literal = match expr {
            Expr::Interval(interval) if interval.leading_field.is_none() => Some(interval.value.as_mut()),
            _ => None,
        };
        if let Some(Expr::Value(v)) = literal
            && let Value::SingleQuotedString(text) = &mut v.value
            && let Some(readable) = arrow_readable(text)
        {
            *text = readable;
        }
        ControlFlow::<()>::Continue(())
    });
}
