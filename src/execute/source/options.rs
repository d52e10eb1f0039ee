//! A Kafka source's `WITH (...)` options, checked once at CREATE SOURCE (22023 for an
//! unknown option or a bad value) and read again from the catalog when it resumes.

use std::collections::BTreeMap;

use crate::catalog::TableDef;
use crate::error::{Error, Result, SqlState};

/// The payload formats a Kafka source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per message; keys are column names.
    Json,
    /// One or more CSV lines per message, fields in `columns` order.
    Csv,
}

#[derive(Debug, Clone)]
pub struct KafkaOptions {
    pub brokers: String,
    pub topic: String,
    pub format: Format,
    /// The table columns a CSV line's fields go to, in order.
    pub columns: Vec<usize>,
    /// Where a partition without a stored position starts: the earliest offset, or the end.
    pub from_earliest: bool,
    pub batch_rows: usize,
    pub batch_ms: u64,
}

const KNOWN: [&str; 7] = ["brokers", "topic", "format", "columns", "start", "batch_rows", "batch_ms"];

fn bad(message: String) -> Error {
    Error::invalid_input(SqlState::InvalidParameterValue, message)
}

fn number(options: &BTreeMap<String, String>, name: &str, default: u64, least: u64) -> Result<u64> {
    let Some(text) = options.get(name) else { return Ok(default) };
    match text.trim().parse::<u64>() {
        Ok(value) if value >= least => Ok(value),
        _ => Err(bad(format!("invalid value for source option \"{name}\": \"{text}\" (an integer ≥ {least})"))),
    }
}

impl KafkaOptions {
    pub fn parse(options: &BTreeMap<String, String>, table: &TableDef) -> Result<Self> {
        if let Some(unknown) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(format!(
                "unknown option \"{unknown}\" for a KAFKA source (options: {})",
                KNOWN.join(", ")
            )));
        }
        let required = |name: &str| {
            options
                .get(name)
                .filter(|v| !v.trim().is_empty())
                .cloned()
                .ok_or_else(|| bad(format!("a KAFKA source needs the option \"{name}\"")))
        };
        let format = match options.get("format").map(|f| f.to_lowercase()).as_deref() {
            None | Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some(other) => return Err(bad(format!("unknown source format \"{other}\" (json or csv)"))),
        };
        let columns = match options.get("columns") {
            None => (0..table.columns.len()).collect(),
            Some(list) => list
                .split(',')
                .map(|name| {
                    let name = name.trim().to_lowercase();
                    table.column_index(&name).ok_or_else(|| Error::undefined_column(&name, &table.name))
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let from_earliest = match options.get("start").map(|s| s.to_lowercase()).as_deref() {
            None | Some("earliest") => true,
            Some("latest") => false,
            Some(other) => {
                return Err(bad(format!(
                    "invalid value for source option \"start\": \"{other}\" (earliest or latest)"
                )));
            }
        };
        Ok(KafkaOptions {
            brokers: required("brokers")?,
            topic: required("topic")?,
            format,
            columns,
            from_earliest,
            batch_rows: number(options, "batch_rows", 10_000, 1)? as usize,
            batch_ms: number(options, "batch_ms", 5, 0)?,
        })
    }
}
