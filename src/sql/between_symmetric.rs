//! `x [NOT] BETWEEN SYMMETRIC a AND b`, which sqlparser does not parse: the word is blanked
//! out before parsing, where it stood is remembered, and the BETWEEN found there is written as
//! PostgreSQL defines it, `(x BETWEEN a AND b OR x BETWEEN b AND a)`. `BETWEEN ASYMMETRIC`
//! (the default, spelled out) is plain BETWEEN.

use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, Spanned, Statement, UnaryOperator, visit_expressions_mut};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::error::Result;

/// `sql` with SYMMETRIC and ASYMMETRIC after BETWEEN blanked out (same length, so every
/// other token keeps its place), and where each SYMMETRIC stood.
pub fn blank_out(sql: &str) -> Result<(String, Vec<Location>)> {
    if !sql.to_ascii_lowercase().contains("symmetric") {
        return Ok((sql.to_string(), Vec::new()));
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location()?;
    let mut text = sql.to_string();
    let mut symmetric = Vec::new();
    let mut previous_word: Option<Keyword> = None;
    for token in &tokens {
        match &token.token {
            Token::Word(word)
                if previous_word == Some(Keyword::BETWEEN)
                    && matches!(word.keyword, Keyword::SYMMETRIC | Keyword::ASYMMETRIC) =>
            {
                if word.keyword == Keyword::SYMMETRIC {
                    symmetric.push(token.span.start);
                }
                if let Some(at) = byte_offset(sql, token.span.start) {
                    let width = word.value.len();
                    text.replace_range(at..at + width, &" ".repeat(width));
                }
                previous_word = None;
            }
            Token::Word(word) => previous_word = Some(word.keyword),
            Token::Whitespace(_) => {}
            _ => previous_word = None,
        }
    }
    Ok((text, symmetric))
}

/// The byte offset of a (1-based) line and column in `text`.
fn byte_offset(text: &str, at: Location) -> Option<usize> {
    let mut line_start = 0;
    for _ in 1..at.line {
        line_start += text[line_start..].find('\n')? + 1;
    }
    let column = usize::try_from(at.column).ok()?.checked_sub(1)?;
    text[line_start..].char_indices().nth(column).map(|(i, _)| line_start + i)
}

/// Rewrites each BETWEEN whose keyword was followed by SYMMETRIC at one of `places`.
pub fn rewrite(statement: &mut Statement, places: &[Location]) {
    if places.is_empty() {
        return;
    }
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Between { expr: value, negated, low, high } = expr
            && places.iter().any(|p| after(&value.span().end, p) && after(p, &low.span().start))
        {
            let between = |low: &Expr, high: &Expr| Expr::Between {
                expr: value.clone(),
                negated: false,
                low: Box::new(low.clone()),
                high: Box::new(high.clone()),
            };
            let either = Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(between(low, high)),
                op: BinaryOperator::Or,
                right: Box::new(between(high, low)),
            }));
            *expr = if *negated { Expr::UnaryOp { op: UnaryOperator::Not, expr: Box::new(either) } } else { either };
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `a` is at or before `b` in the text.
fn after(a: &Location, b: &Location) -> bool {
    (a.line, a.column) <= (b.line, b.column)
}
