//! A source's `WITH (...)` options (Kafka or PostgreSQL), checked once at CREATE SOURCE
//! (22023 for an unknown option or a bad value) and read again from the catalog when it
//! resumes.

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
const KNOWN_POSTGRES: [&str; 6] = ["conninfo", "table", "publication", "snapshot", "batch_rows", "batch_ms"];

/// A PostgreSQL source's options.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub conninfo: Conninfo,
    /// The upstream table: schema (default `public`) and name, as PostgreSQL spells them.
    pub schema: String,
    pub table: String,
    /// The publication the slot reads.
    pub publication: String,
    /// True when asofdb created the publication (and so drops it with the source).
    pub own_publication: bool,
    /// Copy the table's existing rows first, in one consistent snapshot.
    pub snapshot: bool,
    /// The replication slot: `asofdb_<source>`.
    pub slot: String,
    pub batch_rows: usize,
    pub batch_ms: u64,
}

/// The parts of a libpq `conninfo` string (`key=value ...`, values optionally single-quoted)
/// a replication connection uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Conninfo {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: String,
    /// `disable` (the default), `prefer`, `require`, `verify-ca` or `verify-full`.
    pub sslmode: String,
    pub sslrootcert: Option<String>,
}

const SSL_MODES: [&str; 5] = ["disable", "prefer", "require", "verify-ca", "verify-full"];

impl Conninfo {
    pub fn parse(text: &str) -> Result<Self> {
        let mut info = Conninfo {
            host: "127.0.0.1".into(),
            port: 5432,
            dbname: String::new(),
            user: "postgres".into(),
            password: String::new(),
            sslmode: "disable".into(),
            sslrootcert: None,
        };
        for (key, value) in conninfo_pairs(text)? {
            match key.as_str() {
                "host" | "hostaddr" => info.host = value,
                "port" => {
                    info.port =
                        value.parse().map_err(|_| bad(format!("invalid port \"{value}\" in the source's conninfo")))?
                }
                "dbname" => info.dbname = value,
                "user" => info.user = value,
                "password" => info.password = value,
                "sslmode" if SSL_MODES.contains(&value.as_str()) => info.sslmode = value,
                "sslmode" => {
                    return Err(bad(format!("invalid sslmode \"{value}\" (one of {})", SSL_MODES.join(", "))));
                }
                "sslrootcert" => info.sslrootcert = Some(value),
                "application_name" | "connect_timeout" => {}
                other => return Err(bad(format!("conninfo keyword \"{other}\" is not supported by sources"))),
            }
        }
        if info.dbname.is_empty() {
            info.dbname = info.user.clone();
        }
        Ok(info)
    }
}

/// The `key=value` pairs of a conninfo string; a value may be single-quoted, with `\'` and
/// `\\` inside.
fn conninfo_pairs(text: &str) -> Result<Vec<(String, String)>> {
    let malformed = || bad(format!("malformed conninfo \"{text}\" (key=value pairs, as libpq reads them)"));
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') || key.is_empty() {
            return Err(malformed());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().ok_or_else(malformed)?),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(malformed()),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        pairs.push((key.to_lowercase(), value));
    }
}

impl PostgresOptions {
    pub fn parse(source: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        only_known("POSTGRES", &KNOWN_POSTGRES, options)?;
        let required = |name: &str| required("POSTGRES", options, name);
        let conninfo = Conninfo::parse(&required("conninfo")?)?;
        let table = required("table")?;
        let (schema, table) = match table.split_once('.') {
            Some((schema, table)) => (schema.trim().to_string(), table.trim().to_string()),
            None => ("public".to_string(), table.trim().to_string()),
        };
        let snapshot = match options.get("snapshot").map(|s| s.trim().to_lowercase()).as_deref() {
            None | Some("true" | "on" | "yes" | "1") => true,
            Some("false" | "off" | "no" | "0") => false,
            Some(other) => {
                return Err(bad(format!("invalid value for source option \"snapshot\": \"{other}\" (true or false)")));
            }
        };
        let own = format!("asofdb_{source}");
        // The slot is named after the source, and PostgreSQL's slot names are narrow.
        if own.len() > 63 || !own.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(bad(format!(
                "source name \"{source}\" cannot name its replication slot \"{own}\" (a POSTGRES source's name \
                 is lowercase letters, digits and underscores, at most 56 of them)"
            )));
        }
        Ok(PostgresOptions {
            conninfo,
            schema,
            table,
            publication: options.get("publication").cloned().unwrap_or_else(|| own.clone()),
            own_publication: !options.contains_key("publication"),
            snapshot,
            slot: own,
            batch_rows: number(options, "batch_rows", 10_000, 1)? as usize,
            batch_ms: number(options, "batch_ms", 5, 0)?,
        })
    }
}

fn bad(message: String) -> Error {
    Error::invalid_input(SqlState::InvalidParameterValue, message)
}

/// 22023 for an option `kind`'s sources do not take.
fn only_known(kind: &str, known: &[&str], options: &BTreeMap<String, String>) -> Result<()> {
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => {
            Err(bad(format!("unknown option \"{unknown}\" for a {kind} source (options: {})", known.join(", "))))
        }
        None => Ok(()),
    }
}

/// Option `name`'s value, 22023 if it is missing or blank.
fn required(kind: &str, options: &BTreeMap<String, String>, name: &str) -> Result<String> {
    options
        .get(name)
        .filter(|v| !v.trim().is_empty())
        .cloned()
        .ok_or_else(|| bad(format!("a {kind} source needs the option \"{name}\"")))
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
        only_known("KAFKA", &KNOWN, options)?;
        let required = |name: &str| required("KAFKA", options, name);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_reads_as_libpq_writes_it() {
        let info = Conninfo::parse("host=10.0.0.1 port = 5433 dbname=app user=rep password='it\\'s a b'").unwrap();
        assert_eq!((info.host.as_str(), info.port, info.dbname.as_str()), ("10.0.0.1", 5433, "app"));
        assert_eq!(info.password, "it's a b");
        assert_eq!(Conninfo::parse("user=rep").unwrap().dbname, "rep");
        assert!(Conninfo::parse("sslmode=maybe").is_err());
        assert!(Conninfo::parse("host").is_err());
        assert!(Conninfo::parse("gssencmode=disable").is_err());
    }
}
