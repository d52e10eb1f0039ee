//! Session settings: `SET` and `SHOW`, with the values PostgreSQL clients ask about.
//!
//! asofdb has few real knobs yet; clients still send `SET extra_float_digits = 3`,
//! `SET application_name ...` or `SHOW transaction_isolation` on connect and expect an answer,
//! so every setting is stored and echoed back.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use sqlparser::ast::{Expr, Set, Value};

use crate::error::{Error, Result};
use crate::sql::names::ident_name;

/// The values `SHOW` reports before any `SET`.
const DEFAULTS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("extra_float_digits", "1"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("is_superuser", "on"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("max_identifier_length", "63"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", "16.0"),
    ("server_version_num", "160000"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
];

#[derive(Debug, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    /// Records a `SET`. Unknown names are accepted, as PostgreSQL accepts custom `a.b` names.
    pub fn set(&mut self, set: &Set) -> Result<()> {
        match set {
            Set::SingleAssignment { variable, values, .. } => {
                let name = variable.0.iter().filter_map(|p| p.as_ident()).map(ident_name).collect::<Vec<_>>().join(".");
                let value = values.iter().map(setting_text).collect::<Vec<_>>().join(", ");
                self.values.insert(name, value);
            }
            Set::SetTimeZone { value, .. } => {
                self.values.insert("timezone".into(), setting_text(value));
            }
            Set::SetNames { charset_name, .. } => {
                self.values.insert("client_encoding".into(), charset_name.value.clone());
            }
            _ => {}
        }
        Ok(())
    }

    /// The current value of a setting, as `SHOW name` returns it.
    pub fn get(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.values
            .get(&name)
            .cloned()
            .or_else(|| DEFAULTS.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    /// `SHOW name` as a one-row result.
    pub fn show(&self, name: &str) -> Result<RecordBatch> {
        // PostgreSQL's SQL-standard spelling (SQLAlchemy sends it on connect).
        let name =
            if name.eq_ignore_ascii_case("transaction isolation level") { "transaction_isolation" } else { name };
        let value = self.get(name).ok_or_else(|| Error::NotFound {
            sqlstate: "42704",
            message: format!("unrecognized configuration parameter \"{name}\""),
        })?;
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
        Ok(RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec![value]))])?)
    }
}

fn setting_text(expr: &Expr) -> String {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}
