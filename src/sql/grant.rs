//! `GRANT` and `REVOKE` (spec section 8), parsed here: sqlparser has no `ON FEATURE`.
//!
//! ```text
//! GRANT  privilege [, ...] | ALL [PRIVILEGES] ON { [TABLE] name [, ...] | FEATURE name [, ...] | SCHEMA public }
//!        TO grantee [, ...]
//! REVOKE privilege [, ...] | ALL [PRIVILEGES] ON ... FROM grantee [, ...] [CASCADE | RESTRICT]
//! grantee: [GROUP] role | PUBLIC
//! ```

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::feature::{eat_word, expect_end, expect_word};
use super::names::ident_name;
use crate::error::{Error, Result};

/// What a grant is on, as written.
#[derive(Debug, Clone, PartialEq)]
pub enum GrantTarget {
    /// `ON [TABLE] names`: tables, or features named as relations.
    Relations(Vec<String>),
    /// `ON FEATURE names`.
    Features(Vec<String>),
    /// `ON SCHEMA name` (only `public` exists).
    Schema(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GrantStatement {
    /// False for REVOKE.
    pub grant: bool,
    /// Upper-case privilege names as written; empty for ALL.
    pub privileges: Vec<String>,
    pub target: GrantTarget,
    /// Role names, `public` for PUBLIC.
    pub grantees: Vec<String>,
}

impl GrantStatement {
    pub fn starts(text: &str) -> bool {
        super::feature::starts_with_words(text, &["GRANT"]) || super::feature::starts_with_words(text, &["REVOKE"])
    }

    pub fn parse(text: &str) -> Result<Self> {
        let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(text)?;
        let grant = matches!(p.next_token().token, Token::Word(w) if w.keyword == Keyword::GRANT);
        if !grant && eat_word(&mut p, "GRANT") {
            return Err(Error::unsupported("REVOKE GRANT OPTION FOR: asofdb has no grant options"));
        }
        let mut privileges = Vec::new();
        if p.parse_keyword(Keyword::ALL) {
            eat_word(&mut p, "PRIVILEGES");
        } else {
            loop {
                let Token::Word(word) = p.next_token().token else {
                    return Err(Error::syntax("syntax error: expected a privilege"));
                };
                privileges.push(word.value.to_ascii_uppercase());
                if p.peek_token().token == Token::LParen {
                    return Err(Error::unsupported("column privileges are not supported"));
                }
                if !p.consume_token(&Token::Comma) {
                    break;
                }
            }
        }
        p.expect_keyword(Keyword::ON)?;
        let target = if eat_word(&mut p, "FEATURE") {
            GrantTarget::Features(names(&mut p)?)
        } else if eat_word(&mut p, "SCHEMA") {
            GrantTarget::Schema(ident_name(&p.parse_identifier()?))
        } else {
            for other in ["DATABASE", "SEQUENCE", "FUNCTION", "LANGUAGE", "TYPE", "DOMAIN", "ALL", "FOREIGN"] {
                if eat_word(&mut p, other) {
                    return Err(Error::unsupported(format!("privileges ON {other} are not supported")));
                }
            }
            eat_word(&mut p, "TABLE");
            GrantTarget::Relations(names(&mut p)?)
        };
        if grant {
            p.expect_keyword(Keyword::TO)?;
        } else {
            p.expect_keyword(Keyword::FROM)?;
        }
        let mut grantees = Vec::new();
        loop {
            eat_word(&mut p, "GROUP");
            grantees.push(ident_name(&p.parse_identifier()?));
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        if grant && eat_word(&mut p, "WITH") {
            expect_word(&mut p, "GRANT")?;
            return Err(Error::unsupported("WITH GRANT OPTION: asofdb has no grant options"));
        }
        if eat_word(&mut p, "GRANTED") {
            return Err(Error::unsupported("GRANTED BY is not supported"));
        }
        if !grant {
            // No grant options, so nothing depends on a grant: both mean the same.
            let _ = eat_word(&mut p, "CASCADE") || eat_word(&mut p, "RESTRICT");
        }
        expect_end(&mut p)?;
        Ok(GrantStatement { grant, privileges, target, grantees })
    }
}

/// `name [, name ...]`, each optionally `public.`-qualified.
fn names(p: &mut Parser) -> Result<Vec<String>> {
    let mut out = Vec::new();
    loop {
        out.push(super::names::table_name(&p.parse_object_name(false)?)?);
        if !p.consume_token(&Token::Comma) {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_as_postgresql_writes_them() {
        let g = GrantStatement::parse("GRANT SELECT, insert ON TABLE public.tx, Other TO alice, PUBLIC").unwrap();
        assert_eq!(
            g,
            GrantStatement {
                grant: true,
                privileges: vec!["SELECT".into(), "INSERT".into()],
                target: GrantTarget::Relations(vec!["tx".into(), "other".into()]),
                grantees: vec!["alice".into(), "public".into()],
            }
        );
        let r = GrantStatement::parse("REVOKE ALL PRIVILEGES ON FEATURE f FROM GROUP \"Bob\" CASCADE").unwrap();
        assert_eq!((r.grant, r.privileges.len(), r.grantees), (false, 0, vec!["Bob".to_string()]));
        assert_eq!(r.target, GrantTarget::Features(vec!["f".into()]));
        let s = GrantStatement::parse("GRANT CREATE ON SCHEMA public TO a").unwrap();
        assert_eq!(s.target, GrantTarget::Schema("public".into()));
        for unsupported in [
            "GRANT SELECT ON t TO a WITH GRANT OPTION",
            "GRANT SELECT (a) ON t TO a",
            "GRANT CONNECT ON DATABASE asofdb TO a",
            "REVOKE GRANT OPTION FOR SELECT ON t FROM a",
        ] {
            assert_eq!(GrantStatement::parse(unsupported).unwrap_err().sqlstate(), "0A000", "{unsupported}");
        }
        assert_eq!(GrantStatement::parse("GRANT SELECT ON t a").unwrap_err().sqlstate(), "42601");
    }
}
