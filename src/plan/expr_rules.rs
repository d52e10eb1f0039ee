//! What asofdb's analyzer rules share: the columns a plan node's expressions can name,
//! rewriting a node's expressions bottom up without renaming its output columns, and the
//! shape of the functions they call to write PostgreSQL's text of a value.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};

/// The columns `node`'s expressions can name: its inputs' (all of a join's sides).
pub fn input_schema(node: &LogicalPlan) -> DFSchema {
    let mut schema = DFSchema::empty();
    for input in node.inputs() {
        schema.merge(input.schema());
    }
    schema
}

/// Whether `expr` itself evaluates its operands for some rows only (CASE, AND, OR, COALESCE
/// and its kin): what sits under it may be a value PostgreSQL never computes.
pub fn evaluates_for_some_rows(expr: &Expr) -> bool {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    match expr {
        Expr::Case(_) => true,
        Expr::BinaryExpr(BinaryExpr { op: Operator::And | Operator::Or, .. }) => true,
        Expr::ScalarFunction(f) => matches!(f.func.name(), "coalesce" | "nullif" | "nvl" | "nvl2" | "ifnull"),
        _ => false,
    }
}

/// Rewrites every expression of `node` bottom up with `rewrite`; output columns keep their
/// names (a projection's `a < b` is still called that after its operands change).
pub fn rewrite_keeping_names(
    node: LogicalPlan,
    rewrite: impl Fn(Expr) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    let names = NamePreserver::new(&node);
    node.map_expressions(|expr| {
        let name = names.save(&expr);
        expr.transform_up(&rewrite).map(|t| t.update_data(|e| name.restore(e)))
    })
}

/// [`rewrite_keeping_names`] for a rule that may change expression types: the node's schema
/// is computed again from its new expressions (a VALUES list is built again).
pub fn rewrite_retyping(
    node: LogicalPlan,
    rewrite: impl Fn(Expr) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    let rewritten = rewrite_keeping_names(node, rewrite)?;
    if !rewritten.transformed {
        return Ok(rewritten);
    }
    rewritten.map_data(|node| match node {
        LogicalPlan::Values(values) => LogicalPlanBuilder::values(values.values)?.build(),
        other => other.recompute_schema(),
    })
}

/// A scalar function's result: one value if every argument was one (`scalar`), else the array.
pub fn columnar(result: arrow::array::ArrayRef, scalar: bool) -> Result<datafusion::logical_expr::ColumnarValue> {
    use datafusion::logical_expr::ColumnarValue;
    Ok(if scalar {
        ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&result, 0)?)
    } else {
        ColumnarValue::Array(result)
    })
}

/// A function of one argument to text, `texts` applied to the argument's array: the one
/// shape of the functions asofdb's rules call to write or read PostgreSQL's text of a value.
/// Its name tells two apart (plans compare functions), so each `texts` has its own name.
#[derive(Debug)]
pub struct TextFunction {
    name: &'static str,
    signature: datafusion::logical_expr::Signature,
    texts: fn(&arrow::array::ArrayRef) -> Result<arrow::array::ArrayRef>,
}

impl PartialEq for TextFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.signature == other.signature
    }
}

impl Eq for TextFunction {}

impl std::hash::Hash for TextFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.signature.hash(state);
    }
}

impl TextFunction {
    /// The function `name`, of an argument `signature` accepts.
    pub fn udf(
        name: &'static str,
        signature: datafusion::logical_expr::Signature,
        texts: fn(&arrow::array::ArrayRef) -> Result<arrow::array::ArrayRef>,
    ) -> datafusion::logical_expr::ScalarUDF {
        datafusion::logical_expr::ScalarUDF::new_from_impl(Self { name, signature, texts })
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for TextFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[arrow::datatypes::DataType]) -> Result<arrow::datatypes::DataType> {
        Ok(arrow::datatypes::DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> Result<datafusion::logical_expr::ColumnarValue> {
        use datafusion::logical_expr::ColumnarValue;
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = ColumnarValue::values_to_arrays(&args.args)?.remove(0);
        columnar((self.texts)(&input)?, scalar)
    }
}
