//! SQL text to statements: splitting, parsing (PostgreSQL dialect plus asofdb's own
//! statements), column types and intervals.

pub mod asof_syntax;
mod between_symmetric;
mod char_casts;
pub mod feature;
mod fetch_syntax;
pub mod function_spellings;
pub mod grant;
mod interval;
mod interval_literals;
pub mod names;
pub mod numeric_literals;
pub mod output_names;
pub mod params;
mod pg_compat;
mod precedence;
mod query_forms;
mod reset_options;
pub mod role;
mod set_all;
mod split;
pub mod types;
mod using_joins;

pub use interval::parse_interval_micros;
pub use split::split_statements;

use std::sync::Arc;

use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_pg_catalog::sql::rules::{
    CurrentUserVariableToSessionUserFunctionCall, FixVersionColumnName, RewritePgCatalogOperator,
    SqlStatementRewriteRule, StripCallableQualifier,
};
use sqlparser::ast::{ObjectType, Statement as SqlStatement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::{Error, Result};

/// One parsed statement. asofdb's own statements join this enum as they are added.
#[derive(Debug, Clone)]
pub enum Statement {
    /// Anything the PostgreSQL dialect of sqlparser parses.
    Standard(Box<SqlStatement>),
    CreateFeature(Box<feature::CreateFeature>),
    DropFeature {
        names: Vec<String>,
        if_exists: bool,
        /// Drops the views that read them too.
        cascade: bool,
    },
    ShowFeatures,
    CreateSource(Box<feature::CreateSource>),
    DropSource {
        name: String,
        if_exists: bool,
    },
    ShowSources,
    /// `CHECKPOINT`: persists a snapshot of every changed feature now.
    Checkpoint,
    /// `BACKUP TO 'directory'`: a consistent copy of the database, taken while it serves.
    Backup {
        to: String,
    },
    /// `CREATE | ALTER | DROP ROLE | USER`.
    Role(Box<role::RoleStatement>),
    /// `GRANT` or `REVOKE`.
    Grant(Box<grant::GrantStatement>),
}

impl Statement {
    /// The kind of a statement that changes the schema (CREATE, ALTER, DROP of any object).
    pub fn ddl_kind(&self) -> Option<&'static str> {
        match self {
            Statement::CreateFeature(_) => Some("CREATE FEATURE"),
            Statement::DropFeature { .. } => Some("DROP FEATURE"),
            Statement::CreateSource(_) => Some("CREATE SOURCE"),
            Statement::DropSource { .. } => Some("DROP SOURCE"),
            Statement::Role(role) => Some(match role.as_ref() {
                role::RoleStatement::Create { .. } => "CREATE ROLE",
                role::RoleStatement::Alter { .. } => "ALTER ROLE",
                role::RoleStatement::Drop { .. } => "DROP ROLE",
            }),
            Statement::Standard(sql) => match sql.as_ref() {
                SqlStatement::CreateTable(_) => Some("CREATE TABLE"),
                SqlStatement::CreateView(_) => Some("CREATE VIEW"),
                SqlStatement::AlterTable(_) => Some("ALTER TABLE"),
                SqlStatement::AlterView { .. } => Some("ALTER VIEW"),
                SqlStatement::Drop { object_type, .. } => Some(match object_type {
                    ObjectType::Table => "DROP TABLE",
                    ObjectType::View | ObjectType::MaterializedView => "DROP VIEW",
                    ObjectType::Role | ObjectType::User => "DROP ROLE",
                    ObjectType::Schema => "DROP SCHEMA",
                    ObjectType::Database => "DROP DATABASE",
                    ObjectType::Index => "DROP INDEX",
                    _ => "DROP",
                }),
                _ => None,
            },
            _ => None,
        }
    }

    /// The audited kind of a statement that did not parse, from its leading words (nothing
    /// of it ran).
    pub fn audited_words(text: &str) -> Option<&'static str> {
        const KINDS: [(&[&str], &str); 11] = [
            (&["CREATE", "ROLE"], "CREATE ROLE"),
            (&["CREATE", "USER"], "CREATE ROLE"),
            (&["ALTER", "ROLE"], "ALTER ROLE"),
            (&["ALTER", "USER"], "ALTER ROLE"),
            (&["CREATE"], "CREATE"),
            (&["ALTER"], "ALTER"),
            (&["DROP"], "DROP"),
            (&["GRANT"], "GRANT"),
            (&["REVOKE"], "REVOKE"),
            (&["DELETE"], "DELETE"),
            (&["BACKUP"], "BACKUP"),
        ];
        KINDS.iter().find(|(words, _)| feature::starts_with_words(text, words)).map(|(_, kind)| *kind)
    }

    /// The kind of a statement the audit log records: DDL, BACKUP, and the statements that
    /// erase rows or change who may do what (refused until they are built, and recorded
    /// all the same).
    pub fn audited_kind(&self) -> Option<&'static str> {
        if let Some(kind) = self.ddl_kind() {
            return Some(kind);
        }
        match self {
            Statement::Backup { .. } => Some("BACKUP"),
            Statement::Grant(grant) => Some(if grant.grant { "GRANT" } else { "REVOKE" }),
            Statement::Standard(sql) => match sql.as_ref() {
                SqlStatement::Delete(_) => Some("DELETE"),
                SqlStatement::Update { .. } => Some("UPDATE"),
                SqlStatement::Truncate { .. } => Some("TRUNCATE"),
                SqlStatement::Grant { .. } => Some("GRANT"),
                SqlStatement::Revoke { .. } => Some("REVOKE"),
                SqlStatement::CreateRole { .. } | SqlStatement::CreateUser(_) => Some("CREATE ROLE"),
                SqlStatement::AlterRole { .. } | SqlStatement::AlterUser(_) => Some("ALTER ROLE"),
                SqlStatement::Merge(_) => Some("MERGE"),
                SqlStatement::CreateIndex(_) => Some("CREATE INDEX"),
                _ => None,
            },
            _ => None,
        }
    }

    /// True for statements that only read (queries, EXPLAIN, SHOW, COPY ... TO): they may be
    /// abandoned at any await point when cancelled or timed out. Writes and DDL run to the
    /// end once started, so a cancel never leaves one half-applied.
    pub fn is_read_only(&self) -> bool {
        match self {
            Statement::Standard(sql) => match sql.as_ref() {
                SqlStatement::Query(_)
                | SqlStatement::Explain { .. }
                | SqlStatement::ShowVariable { .. }
                | SqlStatement::Declare { .. }
                | SqlStatement::Fetch { .. } => true,
                SqlStatement::Copy { to, .. } => *to,
                _ => false,
            },
            Statement::ShowFeatures | Statement::ShowSources => true,
            Statement::CreateFeature(_)
            | Statement::DropFeature { .. }
            | Statement::CreateSource(_)
            | Statement::DropSource { .. }
            | Statement::Checkpoint
            | Statement::Backup { .. }
            | Statement::Role(_)
            | Statement::Grant(_) => false,
        }
    }
}

/// Parses statements. Holds the PostgreSQL-compatibility rewrites that let client
/// introspection queries plan in DataFusion; build it once and share it.
///
/// Those rewrites change meaning (a scalar subquery in a SELECT list becomes NULL, duplicate
/// output names are renamed), which catalog lookups tolerate and user queries must not see:
/// only a statement that reads the system catalogs gets them (`pg_compat::reads_catalog`).
/// Every other statement is parsed as written, with only spelling rewrites that keep its
/// meaning (`pg_catalog.` before a function name, `current_user` without parentheses).
pub struct SqlParser {
    postgres: PostgresCompatibilityParser,
    spelling: Vec<Arc<dyn SqlStatementRewriteRule>>,
}

impl Default for SqlParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SqlParser {
    pub fn new() -> Self {
        Self {
            postgres: PostgresCompatibilityParser::new(),
            spelling: vec![
                Arc::new(StripCallableQualifier),
                Arc::new(CurrentUserVariableToSessionUserFunctionCall),
                Arc::new(RewritePgCatalogOperator),
                Arc::new(FixVersionColumnName),
            ],
        }
    }

    /// Parses every statement of a (simple-protocol) query string.
    pub fn parse_many(&self, sql: &str) -> Result<Vec<Statement>> {
        split_statements(sql).into_iter().map(|text| self.parse_one(text)).collect()
    }

    /// Parses exactly one statement (extended protocol: one statement per Parse message).
    /// Returns `None` for an empty query.
    pub fn parse_single(&self, sql: &str) -> Result<Option<Statement>> {
        let texts = split_statements(sql);
        match texts.as_slice() {
            [] => Ok(None),
            [text] => self.parse_one(text).map(Some),
            _ => Err(Error::syntax("cannot insert multiple commands into a prepared statement")),
        }
    }

    fn parse_one(&self, text: &str) -> Result<Statement> {
        if feature::starts_with_words(text, &["CREATE", "FEATURE"])
            || feature::starts_with_words(text, &["CREATE", "OR", "REPLACE", "FEATURE"])
        {
            return Ok(Statement::CreateFeature(Box::new(feature::parse_create_feature(text)?)));
        }
        if feature::starts_with_words(text, &["DROP", "FEATURE"]) {
            let (names, if_exists, cascade) = feature::parse_drop_feature(text)?;
            return Ok(Statement::DropFeature { names, if_exists, cascade });
        }
        if feature::starts_with_words(text, &["SHOW", "FEATURES"]) {
            return Ok(Statement::ShowFeatures);
        }
        if feature::starts_with_words(text, &["CREATE", "SOURCE"]) {
            return Ok(Statement::CreateSource(Box::new(feature::parse_create_source(text)?)));
        }
        if feature::starts_with_words(text, &["DROP", "SOURCE"]) {
            let (name, if_exists) = feature::parse_drop_source(text)?;
            return Ok(Statement::DropSource { name, if_exists });
        }
        if feature::starts_with_words(text, &["SHOW", "SOURCES"]) {
            return Ok(Statement::ShowSources);
        }
        if grant::GrantStatement::starts(text) {
            return Ok(Statement::Grant(Box::new(grant::GrantStatement::parse(text)?)));
        }
        if role::RoleStatement::starts(text) {
            return Ok(Statement::Role(Box::new(role::RoleStatement::parse(text)?)));
        }
        if feature::starts_with_words(text, &["BACKUP"]) {
            return Ok(Statement::Backup { to: feature::parse_backup(text)? });
        }
        if text.trim().trim_end_matches(';').trim().eq_ignore_ascii_case("checkpoint") {
            return Ok(Statement::Checkpoint);
        }
        let text = asof_syntax::normalize(text)?;
        let text = reset_options::normalize(&text).unwrap_or(text);
        // Only a FETCH sqlparser refuses is spelled out (so its comments stay where they were).
        let text = match fetch_syntax::normalize(&text) {
            Some(spelled) if Parser::parse_sql(&PostgreSqlDialect {}, &text).is_err() => spelled,
            _ => text,
        };
        let (text, symmetric) = between_symmetric::blank_out(&text)?;
        let mut statement = match Parser::parse_sql(&PostgreSqlDialect {}, &text) {
            Ok(parsed) => {
                let mut statement = single(parsed)?;
                if pg_compat::reads_catalog(&statement) {
                    let text = if pg_compat::before_compatibility_parser(&mut statement) {
                        statement.to_string()
                    } else {
                        text
                    };
                    single(self.postgres.parse(&text)?)?
                } else {
                    self.spelling.iter().fold(statement, |s, rule| rule.rewrite(s))
                }
            }
            // What sqlparser refuses may be a client's catalog query that the compatibility
            // parser substitutes whole, or `ABORT`; else sqlparser's error stands.
            Err(error) => match self.postgres.parse(&text) {
                Ok(parsed) => single(parsed)?,
                Err(_) => return Err(error.into()),
            },
        };
        let written_names = output_names::names_as_written(&mut statement);
        between_symmetric::rewrite(&mut statement, &symmetric);
        precedence::fix_is_distinct(&mut statement);
        pg_compat::rewrite(&mut statement);
        numeric_literals::rewrite(&mut statement);
        interval_literals::rewrite(&mut statement);
        function_spellings::rewrite(&mut statement);
        char_casts::rewrite(&mut statement);
        query_forms::rewrite(&mut statement);
        set_all::rewrite(&mut statement)?;
        using_joins::rewrite(&mut statement)?;
        output_names::make_unique(&mut statement, written_names);
        Ok(Statement::Standard(Box::new(statement)))
    }
}

/// The one statement of a parse (the text was split into statements first).
fn single(mut parsed: Vec<SqlStatement>) -> Result<SqlStatement> {
    match parsed.len() {
        1 => Ok(parsed.remove(0)),
        0 => Err(Error::syntax("empty statement")),
        _ => Err(Error::internal("statement splitter and parser disagree")),
    }
}
