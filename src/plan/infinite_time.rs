//! PostgreSQL's infinite timestamps: `'infinity'` and `'-infinity'` are the greatest and
//! least microsecond values (`i64::MAX`, `i64::MIN`), as PostgreSQL stores them, so they
//! compare, sort and group after and before every other time with no special case. Here:
//! reading and printing them, `isfinite`, and keeping them infinite through arithmetic.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, TypeSignature, Volatility, cast, when,
};
use datafusion::optimizer::AnalyzerRule;

use super::expr_rules::{input_schema, rewrite_keeping_names};
use crate::error::SqlState;
use crate::value::infinite::infinite_text;

/// `isfinite(timestamp | timestamptz | date | interval)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IsFinite {
    signature: Signature,
}

impl Default for IsFinite {
    fn default() -> Self {
        Self::new()
    }
}

impl IsFinite {
    pub fn new() -> Self {
        Self { signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for IsFinite {
    fn name(&self) -> &str {
        "isfinite"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 | DataType::Interval(_) | DataType::Null => {
                Ok(DataType::Boolean)
            }
            other => datafusion::common::plan_err!("No function matches isfinite({other})"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let values = args.args[0].to_array(args.number_rows)?;
        let finite: BooleanArray = match values.data_type() {
            DataType::Timestamp(..) => {
                let micros = arrow::compute::cast(&values, &DataType::Int64)?;
                micros
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .iter()
                    .map(|v| v.map(|v| infinite_text(v).is_none()))
                    .collect()
            }
            _ => (0..values.len()).map(|i| values.is_valid(i).then_some(true)).collect(),
        };
        super::expr_rules::columnar(Arc::new(finite), scalar)
    }
}

/// `finite_part_of(ts, monotonic)`: the timestamp `extract`/`date_part` takes apart, with
/// an infinite one made NULL for a field PostgreSQL gives NULL (month, hour, ...), and an
/// error for one PostgreSQL gives ±Infinity (year, epoch, ...: `monotonic`), which asofdb's
/// NUMERIC cannot hold. DataFusion's kernels would give NULL, or a huge epoch, for both.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FinitePartOf {
    signature: Signature,
}

impl Default for FinitePartOf {
    fn default() -> Self {
        Self::new()
    }
}

impl FinitePartOf {
    pub fn new() -> Self {
        Self { signature: Signature::new(TypeSignature::Any(2), Volatility::Immutable) }
    }
}

/// The fields whose value grows with time: ±Infinity of an infinite timestamp.
pub const MONOTONIC_FIELDS: &[&str] = &[
    "year",
    "years",
    "decade",
    "decades",
    "century",
    "centuries",
    "millennium",
    "millennia",
    "julian",
    "isoyear",
    "epoch",
];

impl ScalarUDFImpl for FinitePartOf {
    fn name(&self) -> &str {
        "finite_part_of"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let monotonic =
            matches!(&args.args[1], ColumnarValue::Scalar(datafusion::scalar::ScalarValue::Boolean(Some(true))));
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let values = args.args[0].to_array(args.number_rows)?;
        let DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) = values.data_type() else {
            return Ok(args.args[0].clone());
        };
        let micros = values.as_primitive::<TimestampMicrosecondType>();
        if !micros.iter().flatten().any(|v| infinite_text(v).is_some()) {
            return Ok(args.args[0].clone());
        }
        if monotonic {
            return Err(crate::error::Error::in_datafusion(
                SqlState::FeatureNotSupported,
                "extract and date_part of this field of an infinite timestamp are not supported (PostgreSQL: ±Infinity)",
            ));
        }
        let finite: arrow::array::TimestampMicrosecondArray =
            micros.iter().map(|v| v.filter(|v| infinite_text(*v).is_none())).collect();
        let finite: ArrayRef = Arc::new(finite.with_data_type(values.data_type().clone()));
        super::expr_rules::columnar(finite, scalar)
    }
}

/// Analyzer rule: `timestamp ± interval` and `date_trunc(field, timestamp)` of an infinite
/// timestamp are that timestamp, as in PostgreSQL (Arrow's kernels raise "out of range").
/// Each becomes `CASE WHEN isfinite(t) THEN <itself> ELSE t END`, which computes it only for
/// finite rows. (A zoned sum in a session outside UTC is `session_time_zone`'s, which keeps
/// infinities itself.)
#[derive(Debug)]
pub struct InfiniteStaysInfinite;

impl AnalyzerRule for InfiniteStaysInfinite {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            rewrite_keeping_names(node, |e| keep_infinite(e, &schema))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "infinite_stays_infinite"
    }
}

fn keep_infinite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let is = |e: &Expr, check: fn(&DataType) -> bool| e.get_type(schema).is_ok_and(|t| check(&t));
    let stamp = |t: &DataType| matches!(t, DataType::Timestamp(..));
    let interval = |t: &DataType| matches!(t, DataType::Interval(_));
    let time = match &expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Plus | Operator::Minus, right })
            if is(left, stamp) && is(right, interval) =>
        {
            left.as_ref().clone()
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Plus, right }) if is(left, interval) && is(right, stamp) => {
            right.as_ref().clone()
        }
        Expr::ScalarFunction(ScalarFunction { func, args })
            if func.name() == "date_trunc" && args.len() == 2 && is(&args[1], stamp) =>
        {
            args[1].clone()
        }
        _ => return Ok(Transformed::no(expr)),
    };
    let result_type = expr.get_type(schema)?;
    // In a chain (`t + i1 + i2`, `date_trunc('day', t + i)`) the operand is the guard made
    // for the link below: the chain is guarded once, by its first timestamp, so the
    // expression grows by one link, not threefold, per link.
    let (base, expr) = match guarded(&time) {
        Some((base, inner)) => {
            let link = expr.transform_down(|e| {
                Ok(if e == time {
                    Transformed::new(inner.clone(), true, TreeNodeRecursion::Jump)
                } else {
                    Transformed::no(e)
                })
            })?;
            (base, link.data)
        }
        None => (time, expr),
    };
    let unchanged = if base.get_type(schema)? == result_type { base.clone() } else { cast(base.clone(), result_type) };
    let finite = ScalarUDF::new_from_impl(IsFinite::new()).call(vec![base]);
    Ok(Transformed::yes(when(finite, expr).otherwise(unchanged)?))
}

/// `CASE WHEN isfinite(base) THEN inner ELSE ... END`, as [`keep_infinite`] writes it: its
/// base timestamp and what it computes for a finite one.
fn guarded(expr: &Expr) -> Option<(Expr, Expr)> {
    let Expr::Case(case) = expr else { return None };
    let ([(when, then)], None, Some(otherwise)) = (&case.when_then_expr[..], &case.expr, &case.else_expr) else {
        return None;
    };
    let Expr::ScalarFunction(ScalarFunction { func, args }) = when.as_ref() else { return None };
    let base = match (func.name(), &args[..]) {
        ("isfinite", [base]) => base,
        _ => return None,
    };
    let keeps_base = match otherwise.as_ref() {
        Expr::Cast(c) => c.expr.as_ref() == base,
        other => other == base,
    };
    keeps_base.then(|| (base.clone(), then.as_ref().clone()))
}
