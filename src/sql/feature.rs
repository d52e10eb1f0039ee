//! asofdb's own statements: `CREATE FEATURE`, `DROP FEATURE`, `SHOW FEATURES`, and the
//! sources that feed event tables: `CREATE SOURCE`, `DROP SOURCE`, `SHOW SOURCES`.
//!
//! ```text
//! CREATE FEATURE name [WITH (option = value, ...)] AS
//!     SELECT <keys>, <aggregates> FROM <event table> [WHERE ...] GROUP BY <keys>
//!     [WINDOW SLIDING INTERVAL 'w' [EVERY INTERVAL 'h'] | TUMBLING INTERVAL 'w'
//!            | SESSION GAP INTERVAL 'g' | LIFETIME]
//! ```
//! The SELECT is parsed by sqlparser; the trailing WINDOW clause (which standard SQL uses for
//! named windows) is cut off at the token level first and parsed here.

use sqlparser::ast::{Ident, ObjectName, Query, SqlOption};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::interval::parse_interval_micros;
use super::names::ident_name;
use crate::error::{Error, Result, SqlState};

/// The `WINDOW` clause as written; widths are in microseconds. Its meaning (which events a
/// window holds at T) is `feature::Window`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowClause {
    /// `WINDOW SLIDING INTERVAL ...`
    Sliding { width: i64 },
    /// `WINDOW SLIDING INTERVAL ... EVERY INTERVAL ...`
    Hopping { width: i64, every: i64 },
    /// `WINDOW TUMBLING INTERVAL ...`
    Tumbling { width: i64 },
    /// `WINDOW SESSION GAP INTERVAL ...`
    Session { gap: i64 },
    /// `WINDOW LIFETIME`, or no WINDOW clause.
    Lifetime,
}

#[derive(Debug, Clone)]
pub struct CreateFeature {
    pub name: String,
    pub options: Vec<SqlOption>,
    pub query: Box<Query>,
    pub window: WindowClause,
    pub if_not_exists: bool,
    /// `CREATE OR REPLACE FEATURE`.
    pub or_replace: bool,
    /// The statement as written, kept for `asofdb.features`.
    pub sql: String,
}

/// `CREATE SOURCE [IF NOT EXISTS] name INTO table FROM KAFKA | POSTGRES WITH (option = value, ...)`
/// (spec section 6). Option names are lower-cased; values are kept as written (strings
/// unquoted, numbers and booleans as their text): `execute::source` checks them.
#[derive(Debug, Clone)]
pub struct CreateSource {
    pub name: String,
    pub table: String,
    /// `kafka` or `postgres`, lower-cased; anything else is refused (22023) by `execute::source`.
    pub kind: String,
    pub options: Vec<(String, String)>,
    pub if_not_exists: bool,
}

pub fn parse_create_source(sql: &str) -> Result<CreateSource> {
    let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(sql)?;
    p.expect_keyword(Keyword::CREATE)?;
    expect_word(&mut p, "SOURCE")?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = single_name(&p.parse_object_name(false)?)?;
    p.expect_keyword(Keyword::INTO)?;
    let table = single_name(&p.parse_object_name(false)?)?;
    p.expect_keyword(Keyword::FROM)?;
    let kind = match p.next_token().token {
        Token::Word(word) => word.value.to_lowercase(),
        other => return Err(Error::syntax(format!("syntax error: expected KAFKA or POSTGRES, found {other}"))),
    };
    let mut options = Vec::new();
    if p.parse_keyword(Keyword::WITH) {
        p.expect_token(&Token::LParen)?;
        loop {
            let option = ident_name(&p.parse_identifier()?);
            p.expect_token(&Token::Eq)?;
            let value = match p.next_token().token {
                Token::SingleQuotedString(text) => text,
                Token::Number(number, _) => number,
                Token::Word(word) if ["true", "false"].contains(&word.value.to_lowercase().as_str()) => {
                    word.value.to_lowercase()
                }
                other => {
                    return Err(Error::syntax(format!("syntax error: expected a value for {option}, found {other}")));
                }
            };
            options.push((option, value));
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen)?;
    }
    expect_end(&mut p)?;
    Ok(CreateSource { name, table, kind, options, if_not_exists })
}

/// `DROP SOURCE [IF EXISTS] name`: (name, if_exists).
pub fn parse_drop_source(sql: &str) -> Result<(String, bool)> {
    let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(sql)?;
    p.expect_keyword(Keyword::DROP)?;
    expect_word(&mut p, "SOURCE")?;
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = single_name(&p.parse_object_name(false)?)?;
    expect_end(&mut p)?;
    Ok((name, if_exists))
}

/// `BACKUP TO 'directory'`: the directory.
pub fn parse_backup(sql: &str) -> Result<String> {
    let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(sql)?;
    expect_word(&mut p, "BACKUP")?;
    p.expect_keyword(Keyword::TO)?;
    let dir = p.parse_literal_string()?;
    expect_end(&mut p)?;
    Ok(dir)
}

/// True if `sql` starts with the given words (case-insensitive), skipping whitespace/comments.
pub fn starts_with_words(sql: &str, words: &[&str]) -> bool {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else { return false };
    let mut significant = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_)));
    words.iter().all(|w| matches!(significant.next(), Some(Token::Word(word)) if word.value.eq_ignore_ascii_case(w)))
}

pub fn parse_create_feature(sql: &str) -> Result<CreateFeature> {
    let tokens: Vec<Token> = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let mut depth = 0i32;
    let mut window_at = None;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 && w.keyword == Keyword::WINDOW => window_at = Some(i),
            _ => {}
        }
    }
    let (head, tail) = match window_at {
        Some(i) => (tokens[..i].to_vec(), tokens[i + 1..].to_vec()),
        None => (tokens, vec![]),
    };

    let mut p = Parser::new(&PostgreSqlDialect {}).with_tokens(head);
    p.expect_keyword(Keyword::CREATE)?;
    let or_replace = p.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
    expect_word(&mut p, "FEATURE")?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    if or_replace && if_not_exists {
        return Err(Error::syntax("CREATE OR REPLACE FEATURE cannot have IF NOT EXISTS"));
    }
    let name = single_name(&p.parse_object_name(false)?)?;
    let options = if p.peek_keyword(Keyword::WITH) { p.parse_options(Keyword::WITH)? } else { vec![] };
    p.expect_keyword(Keyword::AS)?;
    let mut query = p.parse_query()?;
    super::precedence::fix_is_distinct(&mut query);
    expect_end(&mut p)?;
    let window = if window_at.is_some() { parse_window(tail)? } else { WindowClause::Lifetime };
    Ok(CreateFeature { name, options, query, window, if_not_exists, or_replace, sql: sql.trim().to_string() })
}

/// `DROP FEATURE [IF EXISTS] name [, ...]`: the names and whether IF EXISTS was given.
/// `DROP FEATURE [IF EXISTS] names [CASCADE | RESTRICT]`: (names, if_exists, cascade).
pub fn parse_drop_feature(sql: &str) -> Result<(Vec<String>, bool, bool)> {
    let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(sql)?;
    p.expect_keyword(Keyword::DROP)?;
    expect_word(&mut p, "FEATURE")?;
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let names = p.parse_comma_separated(|p| p.parse_object_name(false))?;
    let cascade = p.parse_keyword(Keyword::CASCADE);
    let _ = cascade || p.parse_keyword(Keyword::RESTRICT);
    expect_end(&mut p)?;
    Ok((names.iter().map(single_name).collect::<Result<_>>()?, if_exists, cascade))
}

fn parse_window(tokens: Vec<Token>) -> Result<WindowClause> {
    let mut p = Parser::new(&PostgreSqlDialect {}).with_tokens(tokens);
    let window = if eat_word(&mut p, "SLIDING") {
        let width = interval(&mut p)?;
        if eat_word(&mut p, "EVERY") {
            let every = interval(&mut p)?;
            WindowClause::Hopping { width, every }
        } else {
            WindowClause::Sliding { width }
        }
    } else if eat_word(&mut p, "TUMBLING") {
        WindowClause::Tumbling { width: interval(&mut p)? }
    } else if eat_word(&mut p, "SESSION") {
        expect_word(&mut p, "GAP")?;
        WindowClause::Session { gap: interval(&mut p)? }
    } else if eat_word(&mut p, "LIFETIME") {
        WindowClause::Lifetime
    } else {
        return Err(Error::syntax(format!(
            "syntax error: expected SLIDING, TUMBLING, SESSION GAP or LIFETIME after WINDOW, found {}",
            p.peek_token()
        )));
    };
    expect_end(&mut p)?;
    Ok(window)
}

/// `INTERVAL '1 hour'` (or `INTERVAL '1' HOUR`) as a positive number of microseconds.
fn interval(p: &mut Parser) -> Result<i64> {
    p.expect_keyword(Keyword::INTERVAL)?;
    let mut text = p.parse_literal_string()?;
    if let Token::Word(unit) = p.peek_token().token
        && !unit.value.eq_ignore_ascii_case("every")
    {
        p.next_token();
        text = format!("{text} {}", unit.value);
    }
    let micros = parse_interval_micros(&text)?;
    if micros <= 0 {
        return Err(Error::invalid_input(
            SqlState::InvalidParameterValue,
            format!("window interval '{text}' must be positive"),
        ));
    }
    Ok(micros)
}

pub(super) fn eat_word(p: &mut Parser, word: &str) -> bool {
    match p.peek_token().token {
        Token::Word(w) if w.value.eq_ignore_ascii_case(word) => {
            p.next_token();
            true
        }
        _ => false,
    }
}

pub(super) fn expect_word(p: &mut Parser, word: &str) -> Result<()> {
    if eat_word(p, word) {
        Ok(())
    } else {
        Err(Error::syntax(format!("syntax error: expected {word}, found {}", p.peek_token())))
    }
}

pub(super) fn expect_end(p: &mut Parser) -> Result<()> {
    while p.peek_token().token == Token::SemiColon {
        p.next_token();
    }
    match p.peek_token().token {
        Token::EOF => Ok(()),
        other => Err(Error::syntax(format!("syntax error at or near \"{other}\""))),
    }
}

fn single_name(name: &ObjectName) -> Result<String> {
    let idents: Vec<&Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
    match idents.as_slice() {
        [ident] => Ok(ident_name(ident)),
        [schema, ident] if ident_name(schema) == "public" => Ok(ident_name(ident)),
        _ => Err(Error::syntax(format!("invalid name {name}: asofdb has one schema, public"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_window_kind_parses() {
        let base = "CREATE FEATURE f AS SELECT card, count(*) AS n FROM tx GROUP BY card";
        let cases = [
            ("", WindowClause::Lifetime),
            (" WINDOW LIFETIME", WindowClause::Lifetime),
            (" WINDOW SLIDING INTERVAL '1 hour'", WindowClause::Sliding { width: 3_600_000_000 }),
            (
                " WINDOW SLIDING INTERVAL '1 day' EVERY INTERVAL '5 minutes'",
                WindowClause::Hopping { width: 86_400_000_000, every: 300_000_000 },
            ),
            (" window tumbling interval '1 day'", WindowClause::Tumbling { width: 86_400_000_000 }),
            (" WINDOW SESSION GAP INTERVAL '20 minutes'", WindowClause::Session { gap: 1_200_000_000 }),
            (" WINDOW SLIDING INTERVAL '1' HOUR", WindowClause::Sliding { width: 3_600_000_000 }),
        ];
        for (suffix, window) in cases {
            let parsed = parse_create_feature(&format!("{base}{suffix}")).unwrap();
            assert_eq!(parsed.window, window, "{suffix}");
            assert_eq!(parsed.name, "f");
            assert!(!parsed.or_replace);
        }
        assert!(
            parse_create_feature(&format!("create or replace feature f{}", &base["CREATE FEATURE f".len()..]))
                .unwrap()
                .or_replace
        );
    }

    #[test]
    fn options_filters_and_subqueries_survive_the_window_cut() {
        let sql = "CREATE FEATURE Fx WITH (tile = '1 minute') AS SELECT card, count(*) FILTER (WHERE status = 'x') AS n \
                   FROM tx WHERE amt > (SELECT 1) GROUP BY card WINDOW SLIDING INTERVAL '1 hour'";
        let parsed = parse_create_feature(sql).unwrap();
        assert_eq!(parsed.name, "fx");
        assert_eq!(parsed.options.len(), 1);
        assert!(parsed.query.to_string().contains("FILTER (WHERE status = 'x')"));
    }

    #[test]
    fn malformed_definitions_are_syntax_errors() {
        for sql in [
            "CREATE FEATURE f AS SELECT a FROM t WINDOW SLIDING",
            "CREATE FEATURE f AS SELECT a FROM t WINDOW HOURLY",
            "CREATE FEATURE f AS SELECT a FROM t WINDOW SLIDING INTERVAL '1 hour' junk",
            "CREATE FEATURE AS SELECT 1",
            "CREATE OR REPLACE FEATURE IF NOT EXISTS f AS SELECT a, count(*) FROM t GROUP BY a",
            "CREATE REPLACE FEATURE f AS SELECT a, count(*) FROM t GROUP BY a",
        ] {
            assert!(parse_create_feature(sql).is_err(), "{sql}");
        }
        assert_eq!(
            parse_create_feature("CREATE FEATURE f AS SELECT a FROM t WINDOW SLIDING INTERVAL '0 hours'")
                .unwrap_err()
                .sqlstate(),
            "22023"
        );
    }

    #[test]
    fn sources_parse_with_their_options() {
        let parsed = parse_create_source(
            "CREATE SOURCE S1 INTO public.Tx FROM kafka WITH (brokers = '127.0.0.1:9092', Batch_Rows = 500, x = TRUE)",
        )
        .unwrap();
        assert_eq!((parsed.name.as_str(), parsed.table.as_str(), parsed.kind.as_str()), ("s1", "tx", "kafka"));
        let expected = [("brokers", "127.0.0.1:9092"), ("batch_rows", "500"), ("x", "true")];
        assert_eq!(parsed.options, expected.map(|(k, v)| (k.to_string(), v.to_string())));
        assert!(parse_create_source("CREATE SOURCE IF NOT EXISTS s INTO t FROM postgres").unwrap().if_not_exists);
        for bad in [
            "CREATE SOURCE s FROM KAFKA",
            "CREATE SOURCE s INTO t FROM 'kafka'",
            "CREATE SOURCE s INTO t FROM KAFKA WITH (a)",
            "CREATE SOURCE s INTO t FROM KAFKA WITH (a = 'b') junk",
        ] {
            assert_eq!(parse_create_source(bad).unwrap_err().sqlstate(), "42601", "{bad}");
        }
        assert_eq!(parse_drop_source("drop source if exists S").unwrap(), ("s".to_string(), true));
    }

    #[test]
    fn drop_and_detection() {
        assert_eq!(
            parse_drop_feature("DROP FEATURE IF EXISTS a, b").unwrap(),
            (vec!["a".into(), "b".into()], true, false)
        );
        assert!(starts_with_words("  create   Feature x", &["CREATE", "FEATURE"]));
        assert!(!starts_with_words("CREATE TABLE x", &["CREATE", "FEATURE"]));
    }
}
