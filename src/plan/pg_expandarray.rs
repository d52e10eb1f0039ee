//! `pg_expandarray_elements(v)`: the elements of an `int2vector`/`oidvector` catalog column
//! (text such as `'1 2'`) or of an integer array, each with its 1-based position, as a list
//! of `{x, n}` structs. `information_schema._pg_expandarray(v)`, the set-returning function
//! pgjdbc's `getPrimaryKeys` and `getIndexInfo` call, is rewritten to `unnest` of it
//! (`sql::pg_compat`), which yields PostgreSQL's rows.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Builder, ListBuilder, StructBuilder};
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::cast::{as_list_array, as_string_array};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::error::{Error, SqlState};

/// The function's name after the rewrite.
pub const NAME: &str = "pg_expandarray_elements";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgExpandarray {
    signature: Signature,
}

impl PgExpandarray {
    pub fn new() -> Self {
        let list = DataType::new_list(DataType::Int64, true);
        let signature = Signature::one_of(
            vec![TypeSignature::Exact(vec![DataType::Utf8]), TypeSignature::Exact(vec![list])],
            Volatility::Immutable,
        );
        Self { signature }
    }
}

fn element_fields() -> Fields {
    Fields::from(vec![Field::new("x", DataType::Int64, true), Field::new("n", DataType::Int64, false)])
}

impl ScalarUDFImpl for PgExpandarray {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Struct(element_fields()), true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let fields = element_fields();
        let struct_builder =
            StructBuilder::new(fields.clone(), vec![Box::new(Int64Builder::new()), Box::new(Int64Builder::new())]);
        let mut out =
            ListBuilder::new(struct_builder).with_field(Field::new_list_field(DataType::Struct(fields), true));
        for row in 0..input.len() {
            if input.is_null(row) {
                out.append(false);
                continue;
            }
            for (i, x) in elements(&input, row)?.into_iter().enumerate() {
                let s = out.values();
                s.field_builder::<Int64Builder>(0).expect("x").append_option(x);
                s.field_builder::<Int64Builder>(1).expect("n").append_value(i as i64 + 1);
                s.append(true);
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

/// The elements of row `row`: space-separated integers for text, the values of a list.
fn elements(input: &ArrayRef, row: usize) -> Result<Vec<Option<i64>>> {
    if let DataType::Utf8 = input.data_type() {
        return as_string_array(input)?
            .value(row)
            .split_whitespace()
            .map(|v| {
                v.parse::<i64>().map(Some).map_err(|_| {
                    Error::in_datafusion(
                        SqlState::InvalidTextRepresentation,
                        format!("invalid input syntax for type smallint: \"{v}\""),
                    )
                })
            })
            .collect();
    }
    let values = as_list_array(input)?.value(row);
    let values = datafusion::common::cast::as_int64_array(&values)?;
    Ok((0..values.len()).map(|i| values.is_valid(i).then(|| values.value(i))).collect())
}
