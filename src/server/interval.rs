//! INTERVAL values on the wire: PostgreSQL's binary form, and its text
//! (`value::interval_text`). The encoder arrow-pg uses prints `-1 years -5 mons 75 days`
//! where PostgreSQL prints `-1 years -5 mons +75 days` and keeps six fraction digits.

use bytes::{BufMut, BytesMut};
use pgwire::api::Type;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql, to_sql_checked};

use crate::value::interval_text::Interval;

impl ToSql for Interval {
    /// PostgreSQL's binary INTERVAL: microseconds, days, months.
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_i64(self.micros);
        out.put_i32(self.days);
        out.put_i32(self.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

impl ToSqlText for Interval {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &pgwire::types::format::FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(self.text().as_bytes());
        Ok(IsNull::No)
    }
}
