//! Role statements (spec section 8): `CREATE ROLE | USER`, `ALTER ROLE | USER`,
//! `DROP ROLE | USER`, parsed here as PostgreSQL writes them (sqlparser's forms follow other
//! dialects: it refuses `CREATE USER name WITH PASSWORD`).
//!
//! ```text
//! CREATE ROLE | USER name [[WITH] option ...]
//! ALTER ROLE | USER name [WITH] option ... | SET setting {TO | =} value | RESET setting | RESET ALL
//! DROP ROLE | USER [IF EXISTS] name [, ...]
//! option: SUPERUSER | NOSUPERUSER | LOGIN | NOLOGIN | [ENCRYPTED] PASSWORD 'p' | PASSWORD NULL
//!       | CONNECTION LIMIT n | INHERIT | NOCREATEDB | NOCREATEROLE | NOREPLICATION | NOBYPASSRLS
//! ```
//! PostgreSQL's other options (CREATEDB, CREATEROLE, REPLICATION, BYPASSRLS, VALID UNTIL,
//! NOINHERIT, IN ROLE, ROLE, ADMIN, SYSID) are 0A000, named, rather than ignored.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::feature::{eat_word, expect_end, expect_word};
use super::names::ident_name;
use crate::error::{Error, Result};

/// Attributes a role statement sets; `None`: left as they are (or the default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleOptions {
    pub superuser: Option<bool>,
    pub login: Option<bool>,
    /// `Some(None)`: `PASSWORD NULL`. The text is a password or a SCRAM verifier.
    pub password: Option<Option<String>>,
    pub connection_limit: Option<i32>,
    /// `SET name = value` (Some) or `RESET name` (None), names lower-cased.
    pub settings: Vec<(String, Option<String>)>,
    /// `RESET ALL`.
    pub reset_all: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RoleStatement {
    /// `CREATE ROLE` (`user`: `CREATE USER`, which logs in unless told NOLOGIN).
    Create {
        name: String,
        user: bool,
        options: RoleOptions,
    },
    Alter {
        name: String,
        options: RoleOptions,
    },
    Drop {
        names: Vec<String>,
        if_exists: bool,
    },
}

impl RoleStatement {
    /// True if `text` starts as a role statement does.
    pub fn starts(text: &str) -> bool {
        ["CREATE", "ALTER", "DROP"]
            .iter()
            .any(|verb| ["ROLE", "USER"].iter().any(|noun| super::feature::starts_with_words(text, &[verb, noun])))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(text)?;
        let verb = p.next_token().token.to_string().to_ascii_uppercase();
        let user = p.next_token().token.to_string().eq_ignore_ascii_case("USER");
        let statement = match verb.as_str() {
            "CREATE" => {
                let name = role_name(&mut p)?;
                let options = parse_options(&mut p)?;
                RoleStatement::Create { name, user, options }
            }
            "ALTER" => {
                let name = role_name(&mut p)?;
                let options = if eat_word(&mut p, "SET") {
                    let setting = ident_name(&p.parse_identifier()?);
                    if !p.consume_token(&Token::Eq) {
                        p.expect_keyword(Keyword::TO)?;
                    }
                    RoleOptions { settings: vec![(setting, Some(setting_value(&mut p)?))], ..Default::default() }
                } else if eat_word(&mut p, "RESET") {
                    if p.parse_keyword(Keyword::ALL) {
                        RoleOptions { reset_all: true, ..Default::default() }
                    } else {
                        RoleOptions { settings: vec![(ident_name(&p.parse_identifier()?), None)], ..Default::default() }
                    }
                } else if eat_word(&mut p, "RENAME") {
                    return Err(Error::unsupported("ALTER ROLE ... RENAME is not supported"));
                } else if eat_word(&mut p, "IN") {
                    return Err(Error::unsupported("ALTER ROLE ... IN DATABASE is not supported"));
                } else {
                    parse_options(&mut p)?
                };
                RoleStatement::Alter { name, options }
            }
            _ => {
                let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
                let mut names = vec![role_name(&mut p)?];
                while p.consume_token(&Token::Comma) {
                    names.push(role_name(&mut p)?);
                }
                RoleStatement::Drop { names, if_exists }
            }
        };
        expect_end(&mut p)?;
        Ok(statement)
    }
}

/// `text` with every string after PASSWORD blanked out, for logs: any statements, parsed or
/// not.
pub fn redact_passwords(text: &str) -> String {
    use sqlparser::tokenizer::Tokenizer;
    if !text.to_ascii_lowercase().contains("password") {
        return text.to_string();
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize() else {
        return "(a role statement that does not tokenize, not logged)".into();
    };
    let mut out = String::new();
    let mut after_password = false;
    for token in tokens {
        // Whatever follows PASSWORD (a string in any quoting: '', E'', U&'', $$) but NULL.
        let secret = after_password
            && !matches!(&token, Token::Whitespace(_))
            && !matches!(&token, Token::Word(w) if w.keyword == Keyword::NULL);
        match &token {
            _ if secret => out.push_str("'********'"),
            other => out.push_str(&other.to_string()),
        }
        match token {
            Token::Whitespace(_) => {}
            Token::Word(w) => after_password = w.value.eq_ignore_ascii_case("PASSWORD"),
            _ => after_password = false,
        }
    }
    out
}

fn role_name(p: &mut Parser) -> Result<String> {
    if eat_word(p, "CURRENT_USER") || eat_word(p, "SESSION_USER") || eat_word(p, "CURRENT_ROLE") {
        return Err(Error::unsupported("a role must be named: CURRENT_USER and SESSION_USER are not supported here"));
    }
    if eat_word(p, "ALL") {
        return Err(Error::unsupported("ALTER ROLE ALL is not supported"));
    }
    Ok(ident_name(&p.parse_identifier()?))
}

/// A setting's value: a string, a number or a word, as its text.
fn setting_value(p: &mut Parser) -> Result<String> {
    let token = p.next_token().token;
    match token {
        Token::SingleQuotedString(text) => Ok(text),
        Token::Number(text, _) => Ok(text),
        Token::Word(word) if word.keyword == Keyword::DEFAULT => {
            Err(Error::unsupported("SET ... TO DEFAULT in ALTER ROLE: use RESET"))
        }
        Token::Word(word) => Ok(word.value),
        other => Err(Error::syntax(format!("syntax error at or near \"{other}\""))),
    }
}

fn parse_options(p: &mut Parser) -> Result<RoleOptions> {
    let mut options = RoleOptions::default();
    eat_word(p, "WITH");
    while let Token::Word(word) = p.peek_token().token {
        let word = word.value.to_ascii_uppercase();
        p.next_token();
        match word.as_str() {
            "SUPERUSER" => options.superuser = Some(true),
            "NOSUPERUSER" => options.superuser = Some(false),
            "LOGIN" => options.login = Some(true),
            "NOLOGIN" => options.login = Some(false),
            // The defaults, which asofdb's roles always have.
            "INHERIT" | "NOCREATEDB" | "NOCREATEROLE" | "NOREPLICATION" | "NOBYPASSRLS" => {}
            "ENCRYPTED" | "PASSWORD" => {
                if word == "ENCRYPTED" {
                    expect_word(p, "PASSWORD")?;
                }
                options.password = Some(match p.next_token().token {
                    Token::SingleQuotedString(text) => Some(text),
                    Token::Word(w) if w.keyword == Keyword::NULL => None,
                    other => return Err(Error::syntax(format!("syntax error at or near \"{other}\""))),
                });
            }
            "CONNECTION" => {
                expect_word(p, "LIMIT")?;
                let negative = p.consume_token(&Token::Minus);
                let limit = match p.next_token().token {
                    Token::Number(n, _) => n.parse::<i32>().ok(),
                    _ => None,
                }
                .ok_or_else(|| Error::syntax("CONNECTION LIMIT takes an integer"))?;
                let limit = if negative { -limit } else { limit };
                if limit < -1 {
                    return Err(Error::invalid_input(
                        crate::error::SqlState::InvalidParameterValue,
                        format!("invalid connection limit: {limit}"),
                    ));
                }
                options.connection_limit = Some(limit);
            }
            "CREATEDB" | "CREATEROLE" | "REPLICATION" | "BYPASSRLS" | "NOINHERIT" | "VALID" | "IN" | "ROLE"
            | "ADMIN" | "USER" | "SYSID" => {
                return Err(Error::unsupported(format!("the role option {word} is not supported")));
            }
            _ => return Err(Error::syntax(format!("syntax error at or near \"{word}\""))),
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_statements_parse_as_postgresql_writes_them() {
        let create = RoleStatement::parse("CREATE USER Alice WITH PASSWORD 'pw' CONNECTION LIMIT 2").unwrap();
        let RoleStatement::Create { name, user, options } = create else { panic!() };
        assert_eq!((name.as_str(), user), ("alice", true));
        assert_eq!(options.password, Some(Some("pw".into())));
        assert_eq!(options.connection_limit, Some(2));
        let alter = RoleStatement::parse("ALTER ROLE \"Bob\" SET statement_timeout = '5s'").unwrap();
        assert_eq!(
            alter,
            RoleStatement::Alter {
                name: "Bob".into(),
                options: RoleOptions {
                    settings: vec![("statement_timeout".into(), Some("5s".into()))],
                    ..Default::default()
                }
            }
        );
        let alter = RoleStatement::parse("alter role bob nologin password null connection limit -1").unwrap();
        let RoleStatement::Alter { options, .. } = alter else { panic!() };
        assert_eq!((options.login, options.password, options.connection_limit), (Some(false), Some(None), Some(-1)));
        assert_eq!(
            RoleStatement::parse("DROP ROLE IF EXISTS a, b;").unwrap(),
            RoleStatement::Drop { names: vec!["a".into(), "b".into()], if_exists: true }
        );
        assert_eq!(RoleStatement::parse("CREATE ROLE r CREATEDB").unwrap_err().sqlstate(), "0A000");
        assert_eq!(RoleStatement::parse("CREATE ROLE r WITH LOGINS").unwrap_err().sqlstate(), "42601");
        assert_eq!(RoleStatement::parse("CREATE ROLE r CONNECTION LIMIT -2").unwrap_err().sqlstate(), "22023");
        assert_eq!(
            redact_passwords("CREATE USER a PASSWORD 'x''y' LOGIN; ALTER ROLE b ENCRYPTED PASSWORD  'z' -- c"),
            "CREATE USER a PASSWORD '********' LOGIN; ALTER ROLE b ENCRYPTED PASSWORD  '********' -- c"
        );
        for quoted in ["E'x\\'y'", "$$secret$$", "$q$secret$q$", "U&'secret'"] {
            let text = redact_passwords(&format!("CREATE USER a PASSWORD {quoted} LOGIN"));
            assert_eq!(text, "CREATE USER a PASSWORD '********' LOGIN", "{quoted}");
        }
        assert_eq!(redact_passwords("ALTER ROLE a PASSWORD NULL"), "ALTER ROLE a PASSWORD NULL");
        assert!(RoleStatement::starts("  create user x") && !RoleStatement::starts("CREATE TABLE users (a int)"));
    }
}
