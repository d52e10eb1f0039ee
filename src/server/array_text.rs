//! The text of arrays whose elements PostgreSQL prints otherwise than arrow-pg: timestamps
//! (no padded fraction; TIMESTAMPTZ in the session's zone), dates before 1 AD, times,
//! intervals and floats.
//! Such a list column is turned into a list of PostgreSQL's texts, which arrow-pg quotes
//! as array elements (`{"2024-01-01 00:00:00+00",NULL}`).

use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray};
use arrow::datatypes::{DataType, Field, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::pg_text::{float_text, trim_fraction};
use crate::value::interval_text::interval_at;
use crate::value::time_zone::{UTC_TAG, zoned_text};
use crate::value::{FIRST_AD_DAY, date_text, timestamp_text};

/// `column` as a list of PostgreSQL's texts, if it is a list whose elements need them.
pub fn list_as_text(column: &ArrayRef, zone: &Tz) -> Option<ArrayRef> {
    let list = column.as_list_opt::<i32>()?;
    let texts = element_texts(list.values(), zone)?;
    let field = Arc::new(Field::new("item", DataType::Utf8, true));
    let texts = ListArray::try_new(field, list.offsets().clone(), Arc::new(texts), list.nulls().cloned()).ok()?;
    Some(Arc::new(texts))
}

/// Each value's text, or None if arrow-pg's own text is PostgreSQL's for this type.
fn element_texts(values: &ArrayRef, zone: &Tz) -> Option<StringArray> {
    let micros = |tagged: Option<Arc<str>>| {
        arrow::compute::cast(values, &DataType::Timestamp(TimeUnit::Microsecond, tagged)).ok()
    };
    let each = |text: &dyn Fn(usize) -> Option<String>| -> StringArray {
        (0..values.len()).map(|i| if values.is_valid(i) { text(i) } else { None }).collect()
    };
    match values.data_type() {
        DataType::Timestamp(_, Some(_)) => {
            let instants = micros(Some(UTC_TAG.into()))?;
            let instants = instants.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            Some(each(&|i| zoned_text(instants.value(i), zone)))
        }
        DataType::Timestamp(_, None) => {
            let locals = micros(None)?;
            let locals = locals.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            Some(each(&|i| Some(timestamp_text(locals.value(i), false))))
        }
        // Years before 1 AD (PostgreSQL writes `BC`, Arrow a year 0 or below).
        DataType::Date32 => {
            let days = values.as_primitive::<arrow::datatypes::Date32Type>();
            days.iter().flatten().any(|d| d < FIRST_AD_DAY).then(|| each(&|i| Some(date_text(days.value(i)))))
        }
        DataType::Interval(unit) => Some(each(&|i| Some(interval_at(values, *unit, i).text()))),
        DataType::Float64 | DataType::Float32 | DataType::Time32(_) | DataType::Time64(_) => {
            let formatter = ArrayFormatter::try_new(values.as_ref(), &FormatOptions::default()).ok()?;
            let digits = if values.data_type() == &DataType::Float32 { 6 } else { 15 };
            let float = matches!(values.data_type(), DataType::Float64 | DataType::Float32);
            Some(each(&|i| {
                let text = formatter.value(i).to_string();
                if float { float_text(&text, digits).or(Some(text)) } else { Some(trim_fraction(&text)) }
            }))
        }
        _ => None,
    }
}
