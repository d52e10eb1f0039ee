//! PostgreSQL's values outside any plan: the text of dates, timestamps, floats, numerics,
//! intervals and infinities, and time zones. Every stage uses them (the wire prints results, execute reads
//! COPY and parameters, plan casts), so they sit beside `sql` and `error` at the bottom.

pub mod datetime_text;
pub mod float_text;
pub mod infinite;
pub mod interval_text;
pub mod numeric_text;
pub mod time_zone;
mod zone_abbreviations;

pub use datetime_text::{FIRST_AD_DAY, date_text, timestamp_text, with_seconds};
