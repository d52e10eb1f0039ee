//! Feature vectors as JSON: the request (`{"features": [...], "entities": [{...}, ...]}`),
//! entities' key values to typed keys, and the values back as JSON, as PostgreSQL's
//! `to_json` writes them (numbers as numbers, non-finite floats and times as strings).

use datafusion::scalar::ScalarValue;
use serde_json::Value;

use crate::error::{Error, Result, SqlState};
use crate::execute::{FeatureVectors, VectorValue};

/// A parsed `POST /v1/features` body.
pub(super) struct VectorRequest {
    pub features: Vec<String>,
    entities: Vec<serde_json::Map<String, Value>>,
}

fn bad_request(message: impl Into<String>) -> Error {
    Error::invalid_input(SqlState::InvalidParameterValue, message)
}

impl VectorRequest {
    pub fn parse(body: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            Error::invalid_value(SqlState::InvalidTextRepresentation, format!("invalid JSON in the request body: {e}"))
        })?;
        let Value::Object(mut body) = value else {
            return Err(bad_request("the request body must be a JSON object with \"features\" and \"entities\""));
        };
        let features = match body.remove("features") {
            Some(Value::Array(names)) if !names.is_empty() => names
                .into_iter()
                .map(|name| match name {
                    Value::String(name) => Ok(name),
                    other => Err(bad_request(format!("\"features\" must name features as strings, not {other}"))),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(bad_request("\"features\" must be a non-empty array of feature names")),
        };
        let entities = match body.remove("entities") {
            Some(Value::Array(entities)) => entities
                .into_iter()
                .enumerate()
                .map(|(n, entity)| match entity {
                    Value::Object(columns) => Ok(columns),
                    _ => Err(bad_request(format!("entity {n} must be a JSON object of key columns"))),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(bad_request("\"entities\" must be an array of objects")),
        };
        if let Some(twice) = features.iter().enumerate().find_map(|(i, f)| features[..i].contains(f).then_some(f)) {
            return Err(bad_request(format!("feature \"{twice}\" is named twice in \"features\"")));
        }
        if let Some(other) = body.keys().next() {
            return Err(bad_request(format!("unknown field \"{other}\": a request has \"features\" and \"entities\"")));
        }
        Ok(Self { features, entities })
    }

    /// Each entity's key for each feature, its values of the feature's key columns (by
    /// name) typed as the columns: 42703 naming a missing one, 22P02 for a wrong value.
    pub fn keys(&self, vectors: &FeatureVectors) -> Result<Vec<Vec<Vec<ScalarValue>>>> {
        let shapes: Vec<_> = (0..vectors.len()).map(|i| vectors.shape(i)).collect();
        self.entities
            .iter()
            .enumerate()
            .map(|(n, entity)| {
                shapes
                    .iter()
                    .enumerate()
                    .map(|(i, shape)| {
                        shape
                            .keys
                            .iter()
                            .enumerate()
                            .map(|(k, column)| {
                                let value = entity.get(*column).ok_or_else(|| Error::NotFound {
                                    sqlstate: SqlState::UndefinedColumn,
                                    message: format!(
                                        "entity {n} lacks \"{column}\", a key column of feature \"{}\"",
                                        shape.name
                                    ),
                                })?;
                                vectors.key_value(i, k, scalar(value, column)?)
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }
}

/// A JSON key value as a scalar, before it is typed as its key column.
fn scalar(value: &Value, column: &str) -> Result<ScalarValue> {
    Ok(match value {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => ScalarValue::Int64(Some(i)),
            (None, Some(u), _) => ScalarValue::UInt64(Some(u)),
            (None, None, f) => ScalarValue::Float64(f),
        },
        Value::Array(_) | Value::Object(_) => {
            return Err(Error::invalid_value(
                SqlState::InvalidTextRepresentation,
                format!("key column \"{column}\" must be a number, string, boolean or null, not {value}"),
            ));
        }
    })
}

/// `{"results": [...]}`: per entity, in request order, an object of `"feature.column"`
/// values in the features' and their columns' order; a key without a qualifying event gets
/// `null` for each of its feature's values.
pub(super) fn write_results(vectors: &FeatureVectors, values: &[Vec<VectorValue>]) -> String {
    let shapes: Vec<_> = (0..vectors.len()).map(|i| vectors.shape(i)).collect();
    let names: Vec<Vec<String>> = shapes
        .iter()
        .map(|shape| shape.values.iter().map(|(column, _)| json_string(&format!("{}.{column}", shape.name))).collect())
        .collect();
    let mut out = String::from("{\"results\":[");
    for (n, row) in values.iter().enumerate() {
        out.push_str(if n == 0 { "{" } else { ",{" });
        let mut first = true;
        for (i, value) in row.iter().enumerate() {
            for (j, name) in names[i].iter().enumerate() {
                out.push_str(if first { "" } else { "," });
                first = false;
                out.push_str(name);
                out.push(':');
                match value {
                    VectorValue::Values(values) => write_value(&mut out, &values[j]),
                    VectorValue::Missing | VectorValue::Busy => out.push_str("null"),
                }
            }
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// One value as JSON, as PostgreSQL's `to_json` writes it.
fn write_value(out: &mut String, value: &ScalarValue) {
    use std::fmt::Write;
    if value.is_null() {
        out.push_str("null");
        return;
    }
    match value {
        ScalarValue::Boolean(Some(b)) => out.push_str(if *b { "true" } else { "false" }),
        ScalarValue::Float64(Some(f)) => write_float(out, *f),
        // f32's own shortest text: widened, 0.1 would print as 0.10000000149011612.
        ScalarValue::Float32(Some(f)) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        ScalarValue::Float32(Some(f)) => write_float(out, f64::from(*f)),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Decimal128(..) => {
            let _ = write!(out, "{value}");
        }
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            out.push_str(&json_string(s))
        }
        ScalarValue::TimestampMicrosecond(Some(micros), zone) => {
            out.push_str(&json_string(&timestamp_text(*micros, zone.is_some())))
        }
        ScalarValue::Date32(Some(days)) => {
            out.push_str(&json_string(&crate::value::date_text(*days)));
        }
        ScalarValue::List(list) => {
            out.push('[');
            let values = list.value(0);
            for i in 0..values.len() {
                if i > 0 {
                    out.push(',');
                }
                match ScalarValue::try_from_array(&values, i) {
                    Ok(element) => write_value(out, &element),
                    Err(_) => out.push_str("null"),
                }
            }
            out.push(']');
        }
        other => out.push_str(&json_string(&other.to_string())),
    }
}

/// A float as JSON: finite ones as numbers, the others as PostgreSQL's `to_json` spells them.
fn write_float(out: &mut String, f: f64) {
    use std::fmt::Write;
    match f {
        f if f.is_nan() => out.push_str("\"NaN\""),
        f if f == f64::INFINITY => out.push_str("\"Infinity\""),
        f if f == f64::NEG_INFINITY => out.push_str("\"-Infinity\""),
        f => {
            let _ = write!(out, "{f}");
        }
    }
}

/// ISO 8601 with a `T`, as `to_json` writes a timestamp (fraction without trailing zeros,
/// `+00:00` for TIMESTAMPTZ, which is shown in UTC); the infinities as `infinity`.
fn timestamp_text(micros: i64, with_zone: bool) -> String {
    let offset = if with_zone { "+00:00" } else { "" };
    match crate::value::datetime_text::timestamp_text_with(micros, offset) {
        text if text.ends_with("infinity") => text,
        text => text.replacen(' ', "T", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn json(value: ScalarValue) -> String {
        let mut out = String::new();
        write_value(&mut out, &value);
        out
    }

    #[test]
    fn values_are_written_as_to_json_writes_them() {
        assert_eq!(json(ScalarValue::Float64(Some(120.5))), "120.5");
        assert_eq!(json(ScalarValue::Float32(Some(0.1))), "0.1");
        assert_eq!(json(ScalarValue::Float64(Some(f64::NAN))), "\"NaN\"");
        assert_eq!(json(ScalarValue::Int64(Some(-3))), "-3");
        assert_eq!(json(ScalarValue::Int64(None)), "null");
        assert_eq!(json(ScalarValue::Utf8(Some("a\"b".into()))), "\"a\\\"b\"");
        assert_eq!(json(ScalarValue::Decimal128(Some(1250), 10, 2)), "12.50");
        assert_eq!(json(ScalarValue::TimestampMicrosecond(Some(1_500_000), None)), "\"1970-01-01T00:00:01.5\"");
        assert_eq!(
            json(ScalarValue::TimestampMicrosecond(Some(0), Some("UTC".into()))),
            "\"1970-01-01T00:00:00+00:00\""
        );
        assert_eq!(json(ScalarValue::TimestampMicrosecond(Some(i64::MAX), None)), "\"infinity\"");
        let list = ScalarValue::List(Arc::new(arrow::array::ListArray::from_iter_primitive::<
            arrow::datatypes::Int64Type,
            _,
            _,
        >(vec![Some(vec![Some(1), None])])));
        assert_eq!(json(list), "[1,null]");
    }

    #[test]
    fn a_request_must_have_features_and_entities() {
        assert!(VectorRequest::parse(br#"{"features": ["f"], "entities": [{"k": 1}]}"#).is_ok());
        for bad in [
            &b"{"[..],
            br#"[]"#,
            br#"{"features": [], "entities": []}"#,
            br#"{"features": [1], "entities": []}"#,
            br#"{"features": ["f"]}"#,
            br#"{"features": ["f"], "entities": [1]}"#,
            br#"{"features": ["f"], "entities": [], "extra": 1}"#,
            br#"{"features": ["f", "f"], "entities": []}"#,
        ] {
            let error = VectorRequest::parse(bad).err().expect("refused");
            assert_eq!(error.http_status(), 400, "{error}");
        }
    }
}
