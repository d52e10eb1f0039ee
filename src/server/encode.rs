//! Result rows as DataRows: RowDescription fields, and each batch encoded in the client's
//! formats with PostgreSQL's text where arrow-pg's differs (`pg_text`, `interval`, `numeric`,
//! `array_text`, `infinite`).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::array::timezone::Tz;
use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::{DataType, Decimal128Type, UInt64Type};
use arrow_pg::encoder::{Encoder, encode_value};
use datafusion::dataframe::DataFrame;
use futures::StreamExt;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;

use super::cancel::CancelFlag;
use super::errors::to_pgwire;
use super::executor::Executor;
use super::numeric::Numeric;
use super::pg_text::PgText;
use crate::sql::output_names::client_name;
use crate::value::interval_text::interval_at;
use crate::value::time_zone::{UTC_TAG, zoned_text};

/// Streams a result set as DataRows in the client's formats; a cancel request ends it. The
/// plan runs, and its rows are encoded, on `executor`, a batch at a time.
/// The RowDescription fields of `schema`, each named as the client is to see it
/// (`sql::output_names`: repeated names are told apart inside the engine only).
pub fn pg_fields(
    schema: &arrow::datatypes::Schema,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Vec<FieldInfo>> {
    // UInt64 (DataFusion's row_number, rank, ...) is sent as bigint, PostgreSQL's type for
    // them (arrow-pg would describe it as numeric); see `encode_batch`.
    let renamed: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| {
            let field = f.as_ref().clone().with_name(client_name(f.name()));
            if field.data_type() == &DataType::UInt64 { field.with_data_type(DataType::Int64) } else { field }
        })
        .collect();
    arrow_pg::datatypes::arrow_schema_to_pg_fields(&arrow::datatypes::Schema::new(renamed), format, options)
}

/// TIMESTAMPTZ values are shown in `zone`, the session's time zone.
pub async fn encode_rows(
    executor: &Executor,
    frame: DataFrame,
    format: &Format,
    format_options: Arc<FormatOptions>,
    cancel: Arc<CancelFlag>,
    zone: Tz,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(pg_fields(frame.schema().as_arrow(), format, Some(format_options))?);
    let batches = start(executor, frame).await?;
    let batches = cancel.guard(batches.map(|b| b.map_err(|e| to_pgwire(e.into()))));
    let row_fields = fields.clone();
    let rows = executor.stream(batches.map(move |batch| match batch {
        Ok(batch) => encode_batch(&batch, &row_fields, &zone),
        Err(e) => vec![Err(e)],
    }));
    Ok(QueryResponse::new(fields, rows.flat_map(futures::stream::iter)))
}

/// Plans `frame` physically and starts it, on `executor`: an error up to here is the
/// statement's error, before any row description.
pub async fn start(
    executor: &Executor,
    frame: DataFrame,
) -> PgWireResult<datafusion::physical_plan::SendableRecordBatchStream> {
    executor.run(async move { Ok(frame.execute_stream().await?) }).await.map_err(to_pgwire)
}

/// A result set already in memory as DataRows in the client's formats.
pub fn encode_batch_rows(
    batch: RecordBatch,
    format: &Format,
    format_options: Arc<FormatOptions>,
    zone: Tz,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(pg_fields(batch.schema().as_ref(), format, Some(format_options))?);
    let rows = encode_batch(&batch, &fields, &zone);
    Ok(QueryResponse::new(fields, futures::stream::iter(rows)))
}

fn encode_batch(batch: &RecordBatch, fields: &Arc<Vec<FieldInfo>>, zone: &Tz) -> Vec<PgWireResult<DataRow>> {
    encode_with(&mut PgText(DataRowEncoder::new(fields.clone())), batch, fields, zone)
}

/// Every row of `batch` encoded by `encoder` (DataRows, or COPY binary tuples), each value as
/// its field's format has it.
pub fn encode_with<E: Encoder>(
    encoder: &mut PgText<E>,
    batch: &RecordBatch,
    fields: &Arc<Vec<FieldInfo>>,
    zone: &Tz,
) -> Vec<PgWireResult<E::Item>> {
    let batch = &zoned_as_text(batch, fields, zone);
    let schema = batch.schema();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (i, column) in batch.columns().iter().enumerate() {
            let encoded = match column.data_type() {
                DataType::Decimal128(_, scale) => {
                    let values = column.as_primitive::<Decimal128Type>();
                    let value = values.is_valid(row).then(|| Numeric { unscaled: values.value(row), scale: *scale });
                    encoder.encode_field(&value, &fields[i])
                }
                DataType::UInt64 => {
                    let values = column.as_primitive::<UInt64Type>();
                    let value = values.is_valid(row).then(|| i64::try_from(values.value(row)).unwrap_or(i64::MAX));
                    encoder.encode_field(&value, &fields[i])
                }
                DataType::Interval(unit) => {
                    let value = column.is_valid(row).then(|| interval_at(column, *unit, row));
                    encoder.encode_field(&value, &fields[i])
                }
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _)
                    if column.is_valid(row)
                        && crate::value::infinite::infinite_text(
                            column.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(row),
                        )
                        .is_some() =>
                {
                    let micros = column.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(row);
                    encoder.encode_field(&super::infinite::InfiniteTimestamp(micros), &fields[i])
                }
                _ => encode_value(encoder, column, row, schema.field(i), &fields[i]),
            };
            if let Err(e) = encoded {
                rows.push(Err(e));
                return rows;
            }
        }
        rows.push(Ok(encoder.take_row()));
    }
    rows
}

/// `batch` with each TIMESTAMPTZ column that is sent as text already printed in `zone`, the
/// session's time zone (`2024-03-01 17:30:00+05:30`; pgwire would print only the offset's
/// hours), and arrays of such values, timestamps, intervals and floats as PostgreSQL's texts. Binary values are instants, the same in every zone.
pub fn zoned_as_text(batch: &RecordBatch, fields: &[FieldInfo], zone: &Tz) -> RecordBatch {
    let text = |i: usize| fields.get(i).is_some_and(|f| f.format() == FieldFormat::Text);
    let columns_where =
        |wanted: &dyn Fn(usize) -> bool| -> Vec<bool> { (0..batch.num_columns()).map(wanted).collect() };
    // TIMESTAMPTZ, and TIMESTAMP holding `infinity` or years before 1 AD, which arrow-pg
    // cannot print as PostgreSQL does. Each column is scanned once.
    let zoned = columns_where(&|i| match batch.schema().field(i).data_type() {
        DataType::Timestamp(_, Some(_)) => text(i),
        DataType::Timestamp(_, None) => text(i) && crate::value::datetime_text::needs_pg_text(batch.column(i)),
        _ => false,
    });
    // Dates before 1 AD, which arrow-pg prints with year 0 and negative years.
    let bc_dates = columns_where(&|i| {
        text(i)
            && batch
                .column(i)
                .as_primitive_opt::<arrow::datatypes::Date32Type>()
                .is_some_and(|days| days.iter().flatten().any(|d| d < crate::value::FIRST_AD_DAY))
    });
    let list = columns_where(&|i| matches!(batch.schema().field(i).data_type(), DataType::List(_)) && text(i));
    if !(0..batch.num_columns()).any(|i| zoned[i] || list[i] || bc_dates[i]) {
        return batch.clone();
    }
    let mut columns = batch.columns().to_vec();
    let mut schema_fields: Vec<arrow::datatypes::FieldRef> = batch.schema().fields().iter().cloned().collect();
    for i in (0..batch.num_columns()).filter(|i| list[*i]) {
        if let Some(texts) = super::array_text::list_as_text(&columns[i], zone) {
            schema_fields[i] = Arc::new(schema_fields[i].as_ref().clone().with_data_type(texts.data_type().clone()));
            columns[i] = texts;
        }
    }
    for i in (0..batch.num_columns()).filter(|i| bc_dates[*i]) {
        let days = columns[i].as_primitive::<arrow::datatypes::Date32Type>();
        let texts: StringArray = days.iter().map(|d| Some(crate::value::date_text(d?))).collect();
        columns[i] = Arc::new(texts);
        schema_fields[i] = Arc::new(schema_fields[i].as_ref().clone().with_data_type(DataType::Utf8));
    }
    for i in (0..batch.num_columns()).filter(|i| zoned[*i]) {
        let local = matches!(columns[i].data_type(), DataType::Timestamp(_, None));
        let tag = if local { None } else { Some(UTC_TAG.into()) };
        let Ok(micros) =
            arrow::compute::cast(&columns[i], &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, tag))
        else {
            continue;
        };
        let texts: StringArray = micros
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .iter()
            .map(|v| if local { Some(crate::value::timestamp_text(v?, false)) } else { zoned_text(v?, zone) })
            .collect();
        columns[i] = Arc::new(texts);
        schema_fields[i] = Arc::new(schema_fields[i].as_ref().clone().with_data_type(DataType::Utf8));
    }
    let schema = Arc::new(arrow::datatypes::Schema::new(schema_fields));
    RecordBatch::try_new(schema, columns).unwrap_or_else(|_| batch.clone())
}
