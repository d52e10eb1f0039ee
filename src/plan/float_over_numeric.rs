//! Where a float meets a NUMERIC, the float's type wins, as in PostgreSQL (`float8` is the
//! preferred numeric type): `amount > 0.5` compares doubles. DataFusion prefers the decimal
//! and casts the double column to `Decimal128(30, 15)`, which loses digits past the 15th
//! decimal, fails for values above 10^15 and is slower. This analyzer rule runs *before*
//! type coercion and casts the NUMERIC operands of every such meeting to double precision:
//! operators, BETWEEN, IN lists, CASE results, COALESCE-like functions, and the columns of
//! UNION and VALUES. Arithmetic of a `real` and an integer is double precision too.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::{Case, InList, ScalarFunction};
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, Projection, Union, Values, cast, col,
};
use datafusion::optimizer::AnalyzerRule;

use super::expr_rules::{input_schema, rewrite_retyping};

/// The analyzer rule; see the module's doc.
#[derive(Debug)]
pub struct FloatOverNumeric;

impl AnalyzerRule for FloatOverNumeric {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            // A child whose column became a double changes the types this node sees.
            let node = node.recompute_schema()?;
            let node = match node {
                LogicalPlan::Union(union) => union_of_floats(union)?,
                LogicalPlan::Values(values) => values_of_floats(values)?,
                other => Transformed::no(other),
            };
            node.transform_data(|node| {
                let schema = input_schema(&node);
                rewrite_retyping(node, |e| rewrite(e, &schema))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "float_over_numeric"
    }
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

/// The types of `exprs` mix floats and decimals.
fn mixed(types: &[Option<DataType>]) -> bool {
    let flat = || types.iter().flatten();
    flat().any(is_float) && flat().any(DataType::is_decimal)
}

/// `+`, `-`, `*` or `/` of a `real` and an integer.
fn real_arithmetic_with_integer(op: Operator, types: &[Option<DataType>; 2]) -> bool {
    let real = |t: &Option<DataType>| matches!(t, Some(DataType::Float16 | DataType::Float32));
    let integer = |t: &Option<DataType>| t.as_ref().is_some_and(DataType::is_integer);
    matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide)
        && ((real(&types[0]) && integer(&types[1])) || (integer(&types[0]) && real(&types[1])))
}

/// `expr` as a double if its type is a decimal.
fn widen(expr: Expr, ty: &Option<DataType>) -> Expr {
    match ty {
        Some(t) if t.is_decimal() => cast(expr, DataType::Float64),
        _ => expr,
    }
}

fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let type_of = |e: &Expr| e.get_type(schema).ok();
    Ok(match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let types = [type_of(&left), type_of(&right)];
            if real_arithmetic_with_integer(op, &types) {
                // `real` with an integer is double precision arithmetic in PostgreSQL
                // (`1.1::real + 1` is 2.100000023841858); DataFusion keeps `real`.
                let (left, right) = (cast(*left, DataType::Float64), cast(*right, DataType::Float64));
                return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right)))));
            }
            if !mixed(&types) {
                return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })));
            }
            let [l, r] = types;
            Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(widen(*left, &l)),
                op,
                Box::new(widen(*right, &r)),
            )))
        }
        Expr::Between(Between { expr, negated, low, high }) => {
            let types = [type_of(&expr), type_of(&low), type_of(&high)];
            if !mixed(&types) {
                return Ok(Transformed::no(Expr::Between(Between { expr, negated, low, high })));
            }
            let [e, l, h] = types;
            Transformed::yes(Expr::Between(Between::new(
                Box::new(widen(*expr, &e)),
                negated,
                Box::new(widen(*low, &l)),
                Box::new(widen(*high, &h)),
            )))
        }
        Expr::InList(InList { expr, list, negated }) => {
            let types: Vec<_> = std::iter::once(&*expr).chain(&list).map(type_of).collect();
            if !mixed(&types) {
                return Ok(Transformed::no(Expr::InList(InList { expr, list, negated })));
            }
            let expr = widen(*expr, &types[0]);
            let list = list.into_iter().zip(&types[1..]).map(|(e, t)| widen(e, t)).collect();
            Transformed::yes(Expr::InList(InList::new(Box::new(expr), list, negated)))
        }
        Expr::Case(case) => {
            let results: Vec<_> =
                case.when_then_expr.iter().map(|(_, t)| &**t).chain(case.else_expr.as_deref()).map(type_of).collect();
            if !mixed(&results) {
                return Ok(Transformed::no(Expr::Case(case)));
            }
            let Case { expr, when_then_expr, else_expr } = case;
            let when_then_expr =
                when_then_expr.into_iter().zip(&results).map(|((w, t), ty)| (w, Box::new(widen(*t, ty)))).collect();
            let else_expr = else_expr.map(|e| Box::new(widen(*e, results.last().unwrap_or(&None))));
            Transformed::yes(Expr::Case(Case { expr, when_then_expr, else_expr }))
        }
        Expr::ScalarFunction(ScalarFunction { func, args })
            if matches!(func.name(), "coalesce" | "nullif" | "greatest" | "least" | "nvl" | "ifnull") =>
        {
            let types: Vec<_> = args.iter().map(type_of).collect();
            if !mixed(&types) {
                return Ok(Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args })));
            }
            let args = args.into_iter().zip(&types).map(|(e, t)| widen(e, t)).collect();
            Transformed::yes(Expr::ScalarFunction(ScalarFunction { func, args }))
        }
        other => Transformed::no(other),
    })
}

/// A UNION whose column mixes floats and decimals reads each decimal input through a cast.
fn union_of_floats(union: Union) -> Result<Transformed<LogicalPlan>> {
    let width = union.schema.fields().len();
    let column_mixed: Vec<bool> = (0..width)
        .map(|i| {
            let types: Vec<_> = union.inputs.iter().map(|p| Some(p.schema().field(i).data_type().clone())).collect();
            mixed(&types)
        })
        .collect();
    if !column_mixed.iter().any(|m| *m) {
        return Ok(Transformed::no(LogicalPlan::Union(union)));
    }
    let inputs = union
        .inputs
        .into_iter()
        .map(|input| {
            let schema = input.schema().clone();
            let exprs = schema
                .iter()
                .enumerate()
                .map(|(i, (qualifier, field))| {
                    let column = col(datafusion::common::Column::from((qualifier, field)));
                    if column_mixed[i] && field.data_type().is_decimal() {
                        cast(column, DataType::Float64).alias(field.name())
                    } else {
                        column
                    }
                })
                .collect();
            Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(exprs, input)?)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Transformed::yes(LogicalPlan::Union(Union::try_new_with_loose_types(inputs)?)))
}

/// A VALUES cell without the cast the SQL planner adds when it types VALUES the Spark way
/// (a double made `Decimal128(30, 15)`, a real `Decimal128(14, 7)`, with more precision when
/// another row's decimal needs it: `(1::float8), (1e20)` makes `Decimal128(36, 15)`).
fn uncoerced(cell: &Expr) -> &Expr {
    if let Expr::Cast(datafusion::logical_expr::Cast { expr, field }) = cell
        && let Ok(from) = expr.get_type(&DFSchema::empty())
        && matches!(
            (&from, field.data_type()),
            (DataType::Float64, DataType::Decimal128(30.., 15)) | (DataType::Float32, DataType::Decimal128(14.., 7))
        )
    {
        return expr;
    }
    cell
}

/// A VALUES list whose column mixes floats and decimals casts its decimal cells.
fn values_of_floats(values: Values) -> Result<Transformed<LogicalPlan>> {
    let empty = DFSchema::empty();
    let width = values.values.first().map_or(0, Vec::len);
    let column_mixed: Vec<bool> = (0..width)
        .map(|i| {
            let types: Vec<_> = values.values.iter().map(|row| uncoerced(&row[i]).get_type(&empty).ok()).collect();
            mixed(&types)
        })
        .collect();
    if !column_mixed.iter().any(|m| *m) {
        return Ok(Transformed::no(LogicalPlan::Values(values)));
    }
    let rows: Vec<Vec<Expr>> = values
        .values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .enumerate()
                .map(|(i, e)| {
                    if !column_mixed[i] {
                        return e;
                    }
                    let e = uncoerced(&e).clone();
                    let ty = e.get_type(&empty).ok();
                    widen(e, &ty)
                })
                .collect()
        })
        .collect();
    let plan = datafusion::logical_expr::LogicalPlanBuilder::values(rows)?.build()?;
    Ok(Transformed::yes(plan))
}
