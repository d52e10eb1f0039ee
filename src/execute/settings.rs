//! Session settings: `SET` and `SHOW`, with the values PostgreSQL clients ask about.
//!
//! asofdb has few real knobs yet; clients still send `SET extra_float_digits = 3`,
//! `SET application_name ...` or `SHOW transaction_isolation` on connect and expect an answer,
//! so every setting is stored and echoed back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use sqlparser::ast::{Expr, Set, Value};

use crate::catalog::RoleDef;
use crate::error::{Error, Result, SqlState};
use crate::sql::names::ident_name;
use crate::value::time_zone::SessionZone;

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

/// Settings that report the session's role, which `SET` does not change.
const ROLE_SETTINGS: [&str; 2] = ["is_superuser", "session_authorization"];

#[derive(Debug, Default, Clone)]
pub struct Settings {
    values: BTreeMap<String, String>,
    /// `TimeZone`, which the session's queries compute in (`plan::session_time_zone`).
    zone: SessionZone,
    /// What the client's startup message set: what `RESET` returns to, as in PostgreSQL.
    startup: Option<Box<Settings>>,
}

impl Settings {
    /// Records a `SET`. Unknown names are accepted, as PostgreSQL accepts custom `a.b` names.
    pub fn set(&mut self, set: &Set) -> Result<()> {
        match set {
            Set::SingleAssignment { variable, values, .. } => {
                let name = variable.0.iter().filter_map(|p| p.as_ident()).map(ident_name).collect::<Vec<_>>().join(".");
                let value = values.iter().map(setting_text).collect::<Vec<_>>().join(", ");
                self.set_named(&name, &value)?;
            }
            Set::SetTimeZone { value, .. } => {
                let zone = match hours_east(value) {
                    Some(hours) => SessionZone::from_hours_east(hours),
                    None => SessionZone::from_setting(&setting_text(value)),
                };
                self.set_zone(zone, &setting_text(value))?;
            }
            Set::SetNames { charset_name, .. } => {
                self.values.insert("client_encoding".into(), charset_name.value.clone());
            }
            _ => {}
        }
        Ok(())
    }

    /// Sets `name` to `value` as `SET name = 'value'` does. The settings that report the
    /// session's role are the role's to set ([`Settings::set_role`]), not a client's.
    pub fn set_named(&mut self, name: &str, value: &str) -> Result<()> {
        let name = name.to_ascii_lowercase();
        if ROLE_SETTINGS.contains(&name.as_str()) {
            return Err(Error::invalid_input(
                SqlState::CantChangeRuntimeParam,
                format!("parameter \"{name}\" cannot be changed"),
            ));
        }
        if name == "timezone" {
            return self.set_zone(SessionZone::from_setting(value), value);
        }
        if value.eq_ignore_ascii_case("default") {
            self.values.remove(&name);
            return Ok(());
        }
        if name == "statement_timeout" {
            parse_timeout(value)?;
        }
        self.values.insert(name, value.to_string());
        Ok(())
    }

    /// `RESET name` or `RESET ALL`: back to what the startup message set, else the default.
    pub fn reset(&mut self, reset: &sqlparser::ast::Reset) {
        let baseline = self.startup.as_deref().cloned().unwrap_or_default();
        match reset {
            sqlparser::ast::Reset::ALL => {
                let startup = self.startup.take();
                *self = Settings { startup, ..baseline };
            }
            sqlparser::ast::Reset::ConfigurationParameter(name) => {
                let name = name.0.iter().filter_map(|p| p.as_ident()).map(ident_name).collect::<Vec<_>>().join(".");
                let name = name.to_ascii_lowercase();
                if name == "timezone" {
                    self.zone = baseline.zone.clone();
                }
                match baseline.values.get(&name) {
                    Some(value) => self.values.insert(name, value.clone()),
                    None => self.values.remove(&name),
                };
            }
        }
    }

    /// The settings of a session's start: its role's (`ALTER ROLE ... SET`), then those the
    /// client sent in its startup message (`TimeZone`, which pgjdbc and libpq's `PGTZ` send,
    /// `application_name`, `options=-c name=value`), as PostgreSQL applies them. A value
    /// PostgreSQL would refuse is ignored: the connection is already accepted when it is read.
    pub fn apply_startup(&mut self, role: &RoleDef, parameters: &std::collections::HashMap<String, String>) {
        const NOT_SETTINGS: &[&str] = &["user", "database", "options", "replication"];
        self.set_role(role.superuser, Some(&role.name));
        let mut pairs: Vec<(String, String)> = role.settings.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        pairs.extend(
            parameters
                .iter()
                .filter(|(name, _)| !NOT_SETTINGS.contains(&name.as_str()))
                .map(|(n, v)| (n.clone(), v.clone())),
        );
        if let Some(options) = parameters.get("options") {
            pairs.extend(command_line_settings(options));
        }
        for (name, value) in pairs {
            if let Err(e) = self.set_named(&name, &value) {
                tracing::debug!("startup parameter {name} ignored: {e}");
            }
        }
        self.startup = Some(Box::new(Settings { startup: None, ..self.clone() }));
    }

    /// What `is_superuser` and (given `session`) `session_authorization` show.
    pub fn set_role(&mut self, superuser: bool, session: Option<&str>) {
        self.values.insert("is_superuser".into(), if superuser { "on" } else { "off" }.into());
        if let Some(name) = session {
            self.values.insert("session_authorization".into(), name.into());
        }
    }

    /// The session's time zone.
    pub fn zone(&self) -> &SessionZone {
        &self.zone
    }

    fn set_zone(&mut self, zone: Option<SessionZone>, text: &str) -> Result<()> {
        let zone = zone.ok_or_else(|| {
            Error::invalid_input(
                SqlState::InvalidParameterValue,
                format!("invalid value for parameter \"TimeZone\": \"{text}\""),
            )
        })?;
        self.values.insert("timezone".into(), zone.shown.clone());
        self.zone = zone;
        Ok(())
    }

    /// `statement_timeout` as a duration; None for 0, no limit.
    pub fn statement_timeout(&self) -> Option<Duration> {
        parse_timeout(&self.get("statement_timeout")?).ok().flatten()
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
            sqlstate: SqlState::UndefinedObject,
            message: format!("unrecognized configuration parameter \"{name}\""),
        })?;
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
        Ok(RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec![value]))])?)
    }
}

/// A PostgreSQL time setting: an integer in milliseconds, or with a unit (`us`, `ms`, `s`,
/// `min`, `h`, `d`). `0` is no limit.
fn parse_timeout(text: &str) -> Result<Option<Duration>> {
    let invalid = || {
        Error::invalid_input(
            SqlState::InvalidParameterValue,
            format!("invalid value for parameter \"statement_timeout\": \"{text}\""),
        )
    };
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let millis = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => number,
        "us" => number / 1000.0,
        "s" => number * 1000.0,
        "min" => number * 60_000.0,
        "h" => number * 3_600_000.0,
        "d" => number * 86_400_000.0,
        _ => return Err(invalid()),
    };
    if !(0.0..=i32::MAX as f64).contains(&millis) {
        return Err(invalid());
    }
    // As PostgreSQL: a positive value under a millisecond rounds up to one.
    Ok((millis > 0.0).then(|| Duration::from_micros((millis.max(1.0) * 1000.0) as u64)))
}

/// `-c name=value` and `--name=value` pairs of a startup `options` string.
fn command_line_settings(options: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let assignment = match word {
            "-c" => words.next(),
            w => w.strip_prefix("-c").filter(|r| !r.is_empty()).or_else(|| w.strip_prefix("--")),
        };
        if let Some((name, value)) = assignment.and_then(|a| a.split_once('=')) {
            pairs.push((name.replace('-', "_"), value.to_string()));
        }
    }
    pairs
}

/// `SET TIME ZONE 5.5`, `-7` or `INTERVAL '+05:30' HOUR TO MINUTE`: hours east of UTC.
fn hours_east(value: &Expr) -> Option<f64> {
    match value {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp { op: sqlparser::ast::UnaryOperator::Minus, expr } => hours_east(expr).map(|h| -h),
        Expr::UnaryOp { op: sqlparser::ast::UnaryOperator::Plus, expr } => hours_east(expr),
        Expr::Interval(interval) => {
            let text = setting_text(&interval.value);
            let (sign, rest) = match text.trim().strip_prefix('-') {
                Some(rest) => (-1.0, rest.to_string()),
                None => (1.0, text.trim().trim_start_matches('+').to_string()),
            };
            let mut parts = rest.split(':').map(|p| p.parse::<f64>().ok());
            let hours = parts.next()??;
            let minutes = parts.next().flatten().unwrap_or(0.0);
            Some(sign * (hours + minutes / 60.0))
        }
        _ => None,
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
