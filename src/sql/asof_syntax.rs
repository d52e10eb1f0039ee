//! DuckDB's `ASOF [LEFT] JOIN r ON ... | USING (...)` in a form sqlparser parses.
//!
//! sqlparser knows Snowflake's `ASOF JOIN r MATCH_CONDITION (cond) ON ...`, not DuckDB's form.
//! Before parsing, the DuckDB form is rewritten at the token level into Snowflake's with a
//! marker match condition (`__asof_inner` / `__asof_left`) that `plan::asof::mark` recognizes;
//! a genuine Snowflake-form join is left as written.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use crate::error::Result;

pub const INNER_MARKER: &str = "__asof_inner";
pub const LEFT_MARKER: &str = "__asof_left";
pub const SEMI_MARKER: &str = "__asof_semi";
pub const ANTI_MARKER: &str = "__asof_anti";
pub const RIGHT_MARKER: &str = "__asof_right";
pub const FULL_MARKER: &str = "__asof_full";

/// Rewrites every DuckDB-style ASOF join in `sql`; returns `sql` unchanged if there is none.
pub fn normalize(sql: &str) -> Result<String> {
    if !sql.to_ascii_lowercase().contains("asof") {
        return Ok(sql.to_string());
    }
    let mut tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize()?;
    let mut i = 0;
    while i < tokens.len() {
        if !is_keyword(&tokens[i], Keyword::ASOF) {
            i += 1;
            continue;
        }
        // ASOF [kind [OUTER]] JOIN: drop the kind and OUTER, remember the kind.
        let mut j = next_significant(&tokens, i + 1);
        let mut marker = INNER_MARKER;
        let kind = [
            (Keyword::LEFT, LEFT_MARKER),
            (Keyword::SEMI, SEMI_MARKER),
            (Keyword::ANTI, ANTI_MARKER),
            (Keyword::RIGHT, RIGHT_MARKER),
            (Keyword::FULL, FULL_MARKER),
            (Keyword::INNER, INNER_MARKER),
        ]
        .into_iter()
        .find(|(keyword, _)| j < tokens.len() && is_keyword(&tokens[j], *keyword));
        if let Some((_, kind_marker)) = kind {
            marker = kind_marker;
            tokens.drain(i + 1..=j);
            j = next_significant(&tokens, i + 1);
            if j < tokens.len() && is_keyword(&tokens[j], Keyword::OUTER) {
                tokens.drain(i + 1..=j);
                j = next_significant(&tokens, i + 1);
            }
        }
        if j >= tokens.len() || !is_keyword(&tokens[j], Keyword::JOIN) {
            i += 1;
            continue;
        }
        // Find the ON / USING (or an existing MATCH_CONDITION) after the joined relation.
        let mut depth = 0i32;
        let mut k = j + 1;
        while k < tokens.len() {
            match &tokens[k] {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                t if depth == 0 && is_keyword(t, Keyword::MATCH_CONDITION) => break,
                t if depth == 0 && (is_keyword(t, Keyword::ON) || is_keyword(t, Keyword::USING)) => {
                    let inserted = [
                        Token::make_keyword("MATCH_CONDITION"),
                        Token::LParen,
                        Token::make_word(marker, None),
                        Token::RParen,
                        Token::Whitespace(Whitespace::Space),
                    ];
                    tokens.splice(k..k, inserted);
                    break;
                }
                _ => {}
            }
            k += 1;
        }
        i = j + 1;
    }
    Ok(tokens.iter().map(|t| t.to_string()).collect())
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none())
}

fn next_significant(tokens: &[Token], from: usize) -> usize {
    (from..tokens.len()).find(|i| !matches!(tokens[*i], Token::Whitespace(_))).unwrap_or(tokens.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdb_forms_become_marked_snowflake_joins() {
        let sql = "SELECT * FROM s ASOF LEFT JOIN f ON s.k = f.k AND s.t >= f.ts ASOF JOIN g USING (k, t)";
        assert_eq!(
            normalize(sql).unwrap(),
            "SELECT * FROM s ASOF JOIN f MATCH_CONDITION(__asof_left) ON s.k = f.k AND s.t >= f.ts \
             ASOF JOIN g MATCH_CONDITION(__asof_inner) USING (k, t)"
        );
        let snowflake = "SELECT * FROM a ASOF JOIN b MATCH_CONDITION (a.t >= b.t) ON a.k = b.k";
        assert_eq!(normalize(snowflake).unwrap(), snowflake);
        assert_eq!(normalize("SELECT 'asof'").unwrap(), "SELECT 'asof'");
    }
}
