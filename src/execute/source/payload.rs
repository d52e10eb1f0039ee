//! One message's payload to rows of text, one field per target column: a JSON object (keys
//! are column names, missing keys NULL, other keys ignored) or CSV lines. A payload that
//! cannot be read gives the reason, which becomes its `asofdb.source_errors` row.

use arrow::array::{Array, AsArray};
use serde_json::Value;
use sqlparser::ast::{CopyOption, Ident};

use super::options::Format;
use crate::execute::copy_format::{CopyFormat, Position, decode_chunk};

/// The text fields of one row, in target-column order (`None` is NULL).
pub type TextRow = Vec<Option<String>>;

/// Reads payloads of one format into rows for the columns `names`.
pub struct PayloadReader {
    format: Format,
    names: Vec<String>,
    csv: CopyFormat,
}

impl PayloadReader {
    pub fn new(format: Format, names: Vec<String>) -> Self {
        let csv =
            CopyFormat::from_options(&[CopyOption::Format(Ident::new("csv"))], &[]).expect("CSV is a COPY format");
        PayloadReader { format, names, csv }
    }

    /// The rows of one message, or why it has none.
    pub fn rows(&self, payload: Option<&[u8]>) -> Result<Vec<TextRow>, String> {
        let Some(payload) = payload.filter(|p| !p.is_empty()) else {
            return Err("the message is empty".into());
        };
        match self.format {
            Format::Json => self.json_row(payload).map(|row| vec![row]),
            Format::Csv => self.csv_rows(payload),
        }
    }

    fn json_row(&self, payload: &[u8]) -> Result<TextRow, String> {
        let object = match serde_json::from_slice::<Value>(payload) {
            Ok(Value::Object(object)) => object,
            Ok(other) => return Err(format!("a JSON {}, not an object", json_kind(&other))),
            Err(e) => return Err(format!("not JSON: {e}")),
        };
        self.names
            .iter()
            .map(|name| match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(Value::Number(number)) => Ok(Some(number.to_string())),
                Some(Value::Bool(flag)) => Ok(Some(flag.to_string())),
                Some(other) => {
                    Err(format!("key \"{name}\" holds a JSON {}, not a value of column \"{name}\"", json_kind(other)))
                }
            })
            .collect()
    }

    fn csv_rows(&self, payload: &[u8]) -> Result<Vec<TextRow>, String> {
        let mut position = Position::default();
        let (decoded, _) =
            decode_chunk(payload, &self.csv, &self.names, &mut position, true).map_err(|e| e.to_string())?;
        let columns: Vec<_> = decoded.columns.iter().map(|c| c.as_string::<i32>()).collect();
        Ok((0..decoded.lines.len())
            .map(|row| columns.iter().map(|c| c.is_valid(row).then(|| c.value(row).to_string())).collect())
            .collect())
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(format: Format) -> PayloadReader {
        PayloadReader::new(format, vec!["card".into(), "amount".into(), "ts".into()])
    }

    #[test]
    fn json_objects_give_one_row_and_other_json_a_reason() {
        let json = reader(Format::Json);
        let row = json.rows(Some(br#"{"card": "c1", "amount": 2.5, "extra": [1]}"#)).unwrap();
        assert_eq!(row, vec![vec![Some("c1".into()), Some("2.5".into()), None]]);
        assert!(json.rows(Some(b"[1, 2]")).unwrap_err().contains("array"));
        assert!(json.rows(Some(b"{oops")).unwrap_err().starts_with("not JSON"));
        assert!(json.rows(Some(br#"{"card": {"a": 1}}"#)).unwrap_err().contains("object"));
        assert!(json.rows(None).is_err());
    }

    #[test]
    fn csv_lines_give_rows_and_a_short_line_a_reason() {
        let csv = reader(Format::Csv);
        let rows = csv.rows(Some(b"c1,2.5,2026-01-01 00:00:00\nc2,,2026-01-02 00:00:00\n")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][1], None);
        assert!(csv.rows(Some(b"c1,2.5")).unwrap_err().contains("missing data"));
    }
}
