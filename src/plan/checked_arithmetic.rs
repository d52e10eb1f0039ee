//! PostgreSQL's errors where Arrow's arithmetic is lenient. DataFusion adds, subtracts and
//! multiplies integers with wrapping kernels (`2147483647 + 1` is -2147483648); PostgreSQL
//! raises 22003 ("integer out of range"). This analyzer rule, run after type coercion (when
//! both operands have one type), replaces those operators by functions on Arrow's checked
//! kernels, which work a whole array at a time as the wrapping ones do.
//!
//! Floating-point division by zero raises 22012 too (Arrow gives ±Infinity or NaN), as
//! integer division does. A guard such as `y <> 0 AND x / y > 1` still protects the
//! division, as in PostgreSQL: `plan::guarded_evaluation` evaluates the right side of an
//! `AND` only on the rows its left side leaves undecided.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Datum};
use arrow::compute::kernels::numeric;
use arrow::datatypes::{DataType, Float64Type};
use arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;

use super::expr_rules::{input_schema, rewrite_keeping_names};
use datafusion::common::{DFSchema, Result, exec_err};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule; see the module's doc.
#[derive(Debug)]
pub struct CheckedArithmetic;

impl AnalyzerRule for CheckedArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let functions = Functions::new();
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            rewrite_keeping_names(node, |e| functions.rewrite(e, &schema))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "checked_arithmetic"
    }
}

struct Functions {
    add: Arc<ScalarUDF>,
    sub: Arc<ScalarUDF>,
    mul: Arc<ScalarUDF>,
    div: Arc<ScalarUDF>,
}

impl Functions {
    fn new() -> Self {
        let udf = |op| Arc::new(ScalarUDF::new_from_impl(Checked::new(op)));
        Self {
            add: udf(Operator::Plus),
            sub: udf(Operator::Minus),
            mul: udf(Operator::Multiply),
            div: udf(Operator::Divide),
        }
    }

    fn rewrite(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else { return Ok(Transformed::no(expr)) };
        let types = (left.get_type(schema), right.get_type(schema));
        let same = match &types {
            (Ok(l), Ok(r)) if l == r => Some(l.clone()),
            _ => None,
        };
        let function = match (same, op) {
            (Some(t), Operator::Plus) if t.is_integer() => Some(&self.add),
            (Some(t), Operator::Minus) if t.is_integer() => Some(&self.sub),
            (Some(t), Operator::Multiply) if t.is_integer() => Some(&self.mul),
            (Some(t), Operator::Divide) if t.is_floating() => Some(&self.div),
            (Some(t), Operator::Plus) if t.is_floating() => Some(&self.add),
            (Some(t), Operator::Minus) if t.is_floating() => Some(&self.sub),
            (Some(t), Operator::Multiply) if t.is_floating() => Some(&self.mul),
            _ => None,
        };
        Ok(match function {
            Some(function) => Transformed::yes(function.call(vec![*left, *right])),
            None => Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })),
        })
    }
}

/// One checked operator on two operands of one numeric type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    op: Operator,
    signature: Signature,
}

impl Checked {
    fn new(op: Operator) -> Self {
        Self { op, signature: Signature::any(2, Volatility::Immutable) }
    }
}

/// Some row divides a non-NULL, non-NaN float by zero, or by -0 (either side may be one value
/// for every row): PostgreSQL's 22012. `NaN / 0` is NaN there, as here.
fn divides_by_zero(left: &ArrayRef, right: &ArrayRef) -> Result<bool> {
    let as_f64 = |a: &ArrayRef| arrow::compute::cast(a, &DataType::Float64);
    let (left, right) = (as_f64(left)?, as_f64(right)?);
    let (left, right) = (left.as_primitive::<Float64Type>(), right.as_primitive::<Float64Type>());
    if left.is_empty() || right.is_empty() {
        return Ok(false);
    }
    let rows = left.len().max(right.len());
    let at = |a: &arrow::array::Float64Array, i: usize| {
        let i = if a.len() == 1 { 0 } else { i };
        a.is_valid(i).then(|| a.value(i))
    };
    Ok((0..rows).any(|i| matches!((at(left, i), at(right, i)), (Some(l), Some(r)) if r == 0.0 && !l.is_nan())))
}

/// PostgreSQL's name for an integer type in "... out of range".
fn pg_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        _ => "bigint",
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        match self.op {
            Operator::Plus => "checked_add",
            Operator::Minus => "checked_sub",
            Operator::Divide => "checked_div",
            _ => "checked_mul",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalars = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let operand = |v: &ColumnarValue| -> Result<ArrayRef> {
            Ok(match v {
                ColumnarValue::Array(a) => a.clone(),
                ColumnarValue::Scalar(s) => s.to_array_of_size(1)?,
            })
        };
        let (left, right) = (operand(&args.args[0])?, operand(&args.args[1])?);
        let datum = |a: &ArrayRef, v: &ColumnarValue| -> Box<dyn Datum> {
            match v {
                ColumnarValue::Scalar(_) => Box::new(arrow::array::Scalar::new(a.clone())),
                ColumnarValue::Array(_) => Box::new(a.clone()),
            }
        };
        let (l, r) = (datum(&left, &args.args[0]), datum(&right, &args.args[1]));
        if self.op == Operator::Divide && divides_by_zero(&left, &right)? {
            return exec_err!("division by zero");
        }
        let result = match self.op {
            Operator::Plus => numeric::add(l.as_ref(), r.as_ref()),
            Operator::Minus => numeric::sub(l.as_ref(), r.as_ref()),
            Operator::Divide => numeric::div(l.as_ref(), r.as_ref()),
            _ => numeric::mul(l.as_ref(), r.as_ref()),
        };
        let result = match result {
            Ok(result) => result,
            Err(ArrowError::ArithmeticOverflow(_)) => {
                return exec_err!("{} out of range", pg_name(left.data_type()));
            }
            Err(e) => return Err(e.into()),
        };
        if result.data_type().is_floating()
            && let Some(problem) = float_out_of_range(&result, &left, &right, self.op)?
        {
            return exec_err!("value out of range: {problem}");
        }
        super::expr_rules::columnar(result, scalars)
    }
}

/// PostgreSQL's float errors: a finite computation that gives ±Infinity overflows, and a
/// product or quotient of non-zero values that gives 0 underflows (22003 both).
fn float_out_of_range(
    result: &ArrayRef,
    left: &ArrayRef,
    right: &ArrayRef,
    op: Operator,
) -> Result<Option<&'static str>> {
    let as_f64 = |a: &ArrayRef| arrow::compute::cast(a, &DataType::Float64);
    let (result, left, right) = (as_f64(result)?, as_f64(left)?, as_f64(right)?);
    let (result, left, right) =
        (result.as_primitive::<Float64Type>(), left.as_primitive::<Float64Type>(), right.as_primitive::<Float64Type>());
    let at = |a: &arrow::array::Float64Array, i: usize| {
        let i = if a.len() == 1 { 0 } else { i };
        a.is_valid(i).then(|| a.value(i))
    };
    for (i, v) in result.values().iter().enumerate() {
        if v.is_finite() && (*v != 0.0 || !matches!(op, Operator::Multiply | Operator::Divide)) {
            continue;
        }
        if !result.is_valid(i) {
            continue;
        }
        let (Some(l), Some(r)) = (at(left, i), at(right, i)) else { continue };
        if !l.is_finite() || !r.is_finite() {
            continue;
        }
        if !v.is_finite() {
            return Ok(Some("overflow"));
        }
        if l != 0.0 && r != 0.0 {
            return Ok(Some("underflow"));
        }
    }
    Ok(None)
}
