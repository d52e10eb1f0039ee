//! Column types of event tables: the SQL names users write, and the Arrow types rows are kept in.
//!
//! Only the types of spec section 1 exist; anything else is rejected with 42704 instead of
//! silently becoming text.

use arrow::datatypes::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};
use sqlparser::ast::{DataType as SqlType, ExactNumberInfo};

use crate::error::{Error, Result, SqlState};

/// Precision and scale of an unconstrained `NUMERIC`: Arrow needs both, PostgreSQL does not.
pub const DEFAULT_NUMERIC: (u8, i8) = (38, 10);

/// The type of one column of an event table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnType {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Numeric { precision: u8, scale: i8 },
    Text,
    Varchar { max_len: Option<u32> },
    Date,
    Timestamp,
    TimestampTz,
    Bytea,
}

impl ColumnType {
    /// Resolves a type as written in `CREATE TABLE`.
    pub fn from_sql(ty: &SqlType) -> Result<Self> {
        use SqlType as S;
        Ok(match ty {
            S::Boolean | S::Bool => ColumnType::Boolean,
            S::SmallInt(_) | S::Int2(_) => ColumnType::SmallInt,
            S::Int(_) | S::Integer(_) | S::Int4(_) => ColumnType::Integer,
            S::BigInt(_) | S::Int8(_) => ColumnType::BigInt,
            S::Real | S::Float4 => ColumnType::Real,
            S::DoublePrecision | S::Float8 | S::Double(_) => ColumnType::Double,
            S::Float(info) => match float_bits(info) {
                Some(bits) if bits <= 24 => ColumnType::Real,
                _ => ColumnType::Double,
            },
            S::Numeric(info) | S::Decimal(info) | S::Dec(info) => numeric(info)?,
            S::Text | S::String(_) => ColumnType::Text,
            S::Varchar(len) | S::CharacterVarying(len) | S::CharVarying(len) => {
                ColumnType::Varchar { max_len: char_len(len.as_ref()) }
            }
            S::Date => ColumnType::Date,
            S::Timestamp(_, tz) => match tz {
                sqlparser::ast::TimezoneInfo::WithTimeZone | sqlparser::ast::TimezoneInfo::Tz => {
                    ColumnType::TimestampTz
                }
                _ => ColumnType::Timestamp,
            },
            S::TimestampNtz(_) => ColumnType::Timestamp,
            S::Bytea => ColumnType::Bytea,
            S::Custom(name, _) => match name.to_string().to_ascii_lowercase().as_str() {
                "timestamptz" => ColumnType::TimestampTz,
                "int" | "int4" => ColumnType::Integer,
                "int8" => ColumnType::BigInt,
                "int2" => ColumnType::SmallInt,
                "float8" => ColumnType::Double,
                "float4" => ColumnType::Real,
                "bool" => ColumnType::Boolean,
                other => return Err(Error::undefined_type(other)),
            },
            other => return Err(Error::undefined_type(&other.to_string().to_ascii_lowercase())),
        })
    }

    /// The Arrow type rows of this column are stored and computed as.
    pub fn arrow_type(&self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::SmallInt => DataType::Int16,
            ColumnType::Integer => DataType::Int32,
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Real => DataType::Float32,
            ColumnType::Double => DataType::Float64,
            ColumnType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            ColumnType::Text | ColumnType::Varchar { .. } => DataType::Utf8,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            ColumnType::Bytea => DataType::Binary,
        }
    }

    /// The name PostgreSQL would print for this type (`\d`, error messages).
    pub fn sql_name(&self) -> String {
        match self {
            ColumnType::Boolean => "boolean".into(),
            ColumnType::SmallInt => "smallint".into(),
            ColumnType::Integer => "integer".into(),
            ColumnType::BigInt => "bigint".into(),
            ColumnType::Real => "real".into(),
            ColumnType::Double => "double precision".into(),
            ColumnType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            ColumnType::Text => "text".into(),
            ColumnType::Varchar { max_len: Some(n) } => format!("character varying({n})"),
            ColumnType::Varchar { max_len: None } => "character varying".into(),
            ColumnType::Date => "date".into(),
            ColumnType::Timestamp => "timestamp without time zone".into(),
            ColumnType::TimestampTz => "timestamp with time zone".into(),
            ColumnType::Bytea => "bytea".into(),
        }
    }

    /// True for the two types an `event_time` column may have.
    pub fn is_timestamp(&self) -> bool {
        matches!(self, ColumnType::Timestamp | ColumnType::TimestampTz)
    }
}

fn float_bits(info: &ExactNumberInfo) -> Option<u64> {
    match info {
        ExactNumberInfo::Precision(p) | ExactNumberInfo::PrecisionAndScale(p, _) => Some(*p),
        ExactNumberInfo::None => None,
    }
}

fn numeric(info: &ExactNumberInfo) -> Result<ColumnType> {
    let (precision, scale) = match info {
        ExactNumberInfo::None => return Ok(numeric_type(DEFAULT_NUMERIC.0, DEFAULT_NUMERIC.1)),
        ExactNumberInfo::Precision(p) => (*p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
    };
    if precision == 0 || precision > 38 {
        return Err(Error::invalid_input(
            SqlState::InvalidParameterValue,
            format!("NUMERIC precision {precision} must be between 1 and 38"),
        ));
    }
    if scale < 0 || scale > precision as i64 {
        return Err(Error::invalid_input(
            SqlState::InvalidParameterValue,
            format!("NUMERIC scale {scale} must be between 0 and precision {precision}"),
        ));
    }
    Ok(numeric_type(precision as u8, scale as i8))
}

fn numeric_type(precision: u8, scale: i8) -> ColumnType {
    ColumnType::Numeric { precision, scale }
}

fn char_len(len: Option<&sqlparser::ast::CharacterLength>) -> Option<u32> {
    match len {
        Some(sqlparser::ast::CharacterLength::IntegerLength { length, .. }) => u32::try_from(*length).ok(),
        _ => None,
    }
}

/// A bytea value in PostgreSQL's hex text form (`\\x` then two digits per byte).
pub fn bytea_hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::from("\\x"), |mut text, b| {
        text.push_str(&format!("{b:02x}"));
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn parse_type(text: &str) -> Result<ColumnType> {
        let sql = format!("CREATE TABLE t (c {text})");
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, &sql).unwrap().remove(0);
        let sqlparser::ast::Statement::CreateTable(ct) = stmt else { panic!("not a create") };
        ColumnType::from_sql(&ct.columns[0].data_type)
    }

    #[test]
    fn spec_types_resolve() {
        assert_eq!(parse_type("DOUBLE PRECISION").unwrap(), ColumnType::Double);
        assert_eq!(parse_type("timestamptz").unwrap(), ColumnType::TimestampTz);
        assert_eq!(parse_type("TIMESTAMP WITH TIME ZONE").unwrap(), ColumnType::TimestampTz);
        assert_eq!(parse_type("VARCHAR(10)").unwrap(), ColumnType::Varchar { max_len: Some(10) });
        assert_eq!(parse_type("NUMERIC(10,2)").unwrap(), ColumnType::Numeric { precision: 10, scale: 2 });
        assert_eq!(parse_type("BYTEA").unwrap(), ColumnType::Bytea);
    }

    #[test]
    fn unknown_type_is_42704() {
        let err = parse_type("geometry").unwrap_err();
        assert_eq!(err.sqlstate(), "42704");
        let err = parse_type("JSONB").unwrap_err();
        assert_eq!(err.sqlstate(), "42704");
    }
}
