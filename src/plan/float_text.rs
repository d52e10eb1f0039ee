//! Floats as text the way PostgreSQL writes them (`1`, `1e+20`, `1e-05`, `-0`), not the way
//! Arrow's cast does (`1.0`, `1e20`, `0.00001`, `-0.0`): explicit casts to text, the casts
//! type coercion adds (`amount || ' EUR'`), and the float arguments of `concat` and
//! `concat_ws`. Runs after type coercion, so it sees the casts coercion adds.
//!
//! The text is the shortest that reads back exactly, as PostgreSQL's with its default
//! `extra_float_digits` (1); a session that lowers it still gets these digits in casts (the
//! wire's own output follows the setting).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, cast,
};
use datafusion::optimizer::AnalyzerRule;

use super::expr_rules::{columnar, input_schema, rewrite_keeping_names};
use crate::value::float_text::write_float;

/// The analyzer rule; see the module's doc.
#[derive(Debug)]
pub struct PgFloatText;

impl AnalyzerRule for PgFloatText {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let text = Arc::new(ScalarUDF::new_from_impl(FloatText::new()));
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            rewrite_keeping_names(node, |e| match e {
                Expr::Cast(Cast { expr, field }) if is_text(field.data_type()) && is_float(&expr, &schema) => {
                    let as_text = text.call(vec![*expr]);
                    Ok(Transformed::yes(if field.data_type() == &DataType::Utf8 {
                        as_text
                    } else {
                        cast(as_text, field.data_type().clone())
                    }))
                }
                Expr::ScalarFunction(ScalarFunction { func, args })
                    if matches!(func.name(), "concat" | "concat_ws") && args.iter().any(|a| is_float(a, &schema)) =>
                {
                    let args =
                        args.into_iter().map(|a| if is_float(&a, &schema) { text.call(vec![a]) } else { a }).collect();
                    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction { func, args })))
                }
                other => Ok(Transformed::no(other)),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_float_text"
    }
}

fn is_text(ty: &DataType) -> bool {
    matches!(ty, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

fn is_float(e: &Expr, schema: &DFSchema) -> bool {
    e.get_type(schema).is_ok_and(|t| matches!(t, DataType::Float32 | DataType::Float64))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FloatText {
    signature: Signature,
}

impl FloatText {
    fn new() -> Self {
        Self { signature: Signature::uniform(1, vec![DataType::Float32, DataType::Float64], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for FloatText {
    fn name(&self) -> &str {
        "float_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = ColumnarValue::values_to_arrays(&args.args)?.remove(0);
        let mut texts = StringBuilder::with_capacity(input.len(), input.len() * 8);
        let mut digits = Vec::with_capacity(32);
        let single = input.data_type() == &DataType::Float32;
        for row in 0..input.len() {
            if input.is_null(row) {
                texts.append_null();
                continue;
            }
            let value = match single {
                true => f64::from(input.as_primitive::<Float32Type>().value(row)),
                false => input.as_primitive::<Float64Type>().value(row),
            };
            digits.clear();
            write_float(&mut digits, value, single);
            // write_float writes ASCII only.
            texts.append_value(std::str::from_utf8(&digits).unwrap_or_default());
        }
        let texts: ArrayRef = Arc::new(texts.finish());
        columnar(texts, scalar)
    }
}
