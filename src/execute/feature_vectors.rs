//! Feature vectors (spec section 7, `POST /v1/features`): several features' values for a
//! batch of entities, each feature read at its table's watermark by the point read's own
//! evaluation (`LiveFeature::read_point`, behind `SELECT ... FROM feature WHERE key = $1`).

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;

use super::database::Database;
use crate::error::{Error, Result, SqlState};
use crate::feature::{LiveFeature, PointValue};
use crate::storage::EventStore;

/// The features of one request, found once for all its entities.
pub struct FeatureVectors {
    features: Vec<Arc<LiveFeature>>,
    store: Arc<EventStore>,
}

/// What a caller needs to know of one feature to ask for its values and name them.
pub struct VectorShape<'a> {
    pub name: &'a str,
    /// Key column names, in the feature's key order.
    pub keys: Vec<&'a str>,
    /// Value columns (name, type), in the feature's order.
    pub values: Vec<(&'a str, &'a DataType)>,
}

/// One feature's answer for one entity.
pub enum VectorValue {
    /// The values, one per value column.
    Values(Vec<ScalarValue>),
    /// No qualifying event for the key: every value is NULL.
    Missing,
    /// A write is being applied to the feature; read it again with `wait`.
    Busy,
}

impl Database {
    /// The named features, in order; 42P01 naming the first that does not exist, 42501 the
    /// first `role` may not read.
    pub fn feature_vectors(&self, role: &str, names: &[String]) -> Result<FeatureVectors> {
        let features = names
            .iter()
            .map(|name| {
                let feature = self.features.get(name).ok_or_else(|| Error::NotFound {
                    sqlstate: SqlState::UndefinedTable,
                    message: format!("feature \"{name}\" does not exist"),
                })?;
                self.require(
                    role,
                    &crate::catalog::Securable::Feature(name.clone()),
                    crate::catalog::Privilege::Select,
                )?;
                Ok(feature)
            })
            .collect::<Result<_>>()?;
        Ok(FeatureVectors { features, store: self.catalog.store().clone() })
    }
}

impl FeatureVectors {
    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The `i`th feature's name, key columns and value columns.
    pub fn shape(&self, i: usize) -> VectorShape<'_> {
        let compiled = self.features[i].compiled();
        let fields = compiled.schema.fields();
        let keys = compiled.def.keys.len();
        let column = |j: usize| (fields[j].name().as_str(), fields[j].data_type());
        VectorShape {
            name: &compiled.def.name,
            keys: (0..keys).map(|j| fields[j].name().as_str()).collect(),
            values: (keys..keys + compiled.result_types.len()).map(column).collect(),
        }
    }

    /// An entity's value for key column `k` of the `i`th feature, as the column's type: a
    /// number for a numeric key (a whole one for an integer key), a boolean for a BOOLEAN
    /// key, a string for any key that is read as a literal of its type would be (`'42'` for
    /// a BIGINT). Anything else is 22P02, a number out of the key type's range 22003; NULL
    /// matches no key.
    pub fn key_value(&self, i: usize, k: usize, value: ScalarValue) -> Result<ScalarValue> {
        let compiled = self.features[i].compiled();
        let column = &compiled.table.columns[compiled.key_columns[k]];
        let target = column.ty.arrow_type();
        let refuse = |sqlstate: SqlState, what: &str| {
            let (name, ty, feature) = (&column.name, column.ty.sql_name(), &compiled.def.name);
            Error::invalid_value(
                sqlstate,
                format!("invalid value for key column \"{name}\" ({ty}) of feature \"{feature}\": {what}"),
            )
        };
        let value = match value {
            ScalarValue::Null => return Ok(ScalarValue::try_from(&target)?),
            ScalarValue::Float64(Some(f)) if target.is_integer() => {
                // JSON writers (pandas, JavaScript) send whole numbers as floats.
                if f.fract() != 0.0 || f.abs() > 9_007_199_254_740_992.0 {
                    return Err(refuse(SqlState::InvalidTextRepresentation, &f.to_string()));
                }
                ScalarValue::Int64(Some(f as i64))
            }
            value => value,
        };
        let source = value.data_type();
        let fits = source == target
            || source == DataType::Utf8
            || (source.is_numeric() && target.is_numeric())
            || (source == DataType::Boolean && target == DataType::Boolean);
        if !fits {
            return Err(refuse(SqlState::InvalidTextRepresentation, &value.to_string()));
        }
        if source == target {
            return Ok(value);
        }
        match value.cast_to(&target) {
            Ok(cast) if !cast.is_null() => Ok(cast),
            _ if source.is_integer() => Err(refuse(SqlState::NumericValueOutOfRange, &value.to_string())),
            _ => Err(refuse(SqlState::InvalidTextRepresentation, &value.to_string())),
        }
    }

    /// The `i`th feature's values for `key` (one value per key column, of its type). With
    /// `wait`, a read waits while a write is applied (never `Busy`): not on a thread that
    /// serves other requests.
    pub fn read(&self, i: usize, key: &[ScalarValue], wait: bool) -> Result<VectorValue> {
        let feature = &self.features[i];
        if key.iter().any(ScalarValue::is_null) {
            return Ok(VectorValue::Missing);
        }
        Ok(match feature.read_point(&self.store, key, wait)? {
            PointValue::Row { mut values, .. } => {
                // Evaluation may append the greatest ingest time after the values.
                values.truncate(feature.compiled().result_types.len());
                let fields = feature.compiled().schema.fields();
                let first = key.len();
                let values = values
                    .into_iter()
                    .enumerate()
                    .map(|(j, value)| conform(value, fields[first + j].data_type()))
                    .collect::<Result<_>>()?;
                VectorValue::Values(values)
            }
            PointValue::Missing => VectorValue::Missing,
            PointValue::Busy => VectorValue::Busy,
        })
    }
}

/// A value as the feature's column types it (a point read's row is cast the same way).
fn conform(value: ScalarValue, data_type: &DataType) -> Result<ScalarValue> {
    if value.data_type() == *data_type {
        return Ok(value);
    }
    Ok(value.cast_to(data_type)?)
}
