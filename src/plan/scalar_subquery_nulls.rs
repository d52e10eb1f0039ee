//! A scalar subquery is NULL when it yields no row, so its value may be NULL whatever its
//! column's nullability. DataFusion types `(SELECT 1 WHERE false)` by the subquery's column,
//! which cannot be NULL, and then fails at run time ("declared as non-nullable but contains
//! null values"). This analyzer rule wraps each scalar subquery in an identity function whose
//! result may be NULL, so the plan's schema says so.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use super::expr_rules::rewrite_keeping_names;

const NAME: &str = "pg_maybe_null";

/// The analyzer rule; see the module's doc.
#[derive(Debug)]
pub struct ScalarSubqueryNulls;

impl AnalyzerRule for ScalarSubqueryNulls {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let maybe_null = Arc::new(ScalarUDF::new_from_impl(MaybeNull::new()));
        plan.transform_up_with_subqueries(|node| {
            rewrite_keeping_names(node, |e| match e {
                Expr::ScalarSubquery(_) => Ok(Transformed::yes(maybe_null.call(vec![e]))),
                // Analysed again (a view's plan): one wrapping is enough.
                Expr::ScalarFunction(ScalarFunction { func, mut args })
                    if func.name() == NAME
                        && matches!(&args[..], [Expr::ScalarFunction(inner)] if inner.func.name() == NAME) =>
                {
                    Ok(Transformed::yes(args.remove(0)))
                }
                other => Ok(Transformed::no(other)),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "scalar_subquery_nulls"
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MaybeNull {
    signature: Signature,
}

impl MaybeNull {
    fn new() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for MaybeNull {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(self.name(), args.arg_fields[0].data_type().clone(), true)))
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args.remove(0))
    }
}
