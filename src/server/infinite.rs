//! Infinite timestamps in binary results: PostgreSQL sends `infinity` as the greatest 64-bit
//! value and `-infinity` as the least, which is what asofdb stores. arrow-pg converts a
//! timestamp through chrono, which cannot hold them, and would send NULL.

use bytes::{BufMut, BytesMut};
use pgwire::api::Type;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql, to_sql_checked};

use crate::value::infinite::infinite_text;

/// An infinite TIMESTAMP or TIMESTAMPTZ value (its microseconds: `i64::MAX` or `i64::MIN`).
#[derive(Debug)]
pub struct InfiniteTimestamp(pub i64);

impl ToSql for InfiniteTimestamp {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_i64(self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ
    }

    to_sql_checked!();
}

impl ToSqlText for InfiniteTimestamp {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &pgwire::types::format::FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(infinite_text(self.0).unwrap_or("infinity").as_bytes());
        Ok(IsNull::No)
    }
}
