//! Physical planning of [`AsofJoinNode`]s, plugged into DataFusion's default planner.

use std::sync::Arc;

use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::error::DataFusionError;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, Operator, UserDefinedLogicalNode, cast};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use super::feature_exec::{AsofFeatureExec, FeatureJoin};
use super::node::{AsofJoinNode, AsofRight};
use super::probe::{JoinSide, external};
use super::table_exec::{AsofTableExec, Match};
use crate::error::{Error, SqlState};
use crate::feature::window::AsOf;

/// DataFusion's planner with the ASOF extension.
#[derive(Debug)]
pub struct AsofQueryPlanner;

#[async_trait]
impl QueryPlanner for AsofQueryPlanner {
    async fn create_physical_plan(&self, plan: &LogicalPlan, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        let planner = DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(AsofPlanner)]);
        planner.create_physical_plan(plan, session).await
    }
}

struct AsofPlanner;

#[async_trait]
impl ExtensionPlanner for AsofPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<AsofJoinNode>() else { return Ok(None) };
        let left_schema = logical_inputs[0].schema();
        let physical = |e: &Expr, schema: &DFSchema| planner.create_physical_expr(e, schema, session, planning_ctx);
        let side = |keys: &[Expr], time: &Expr, schema: &DFSchema| -> Result<JoinSide> {
            let keys = keys.iter().map(|k| physical(k, schema)).collect::<Result<Vec<_>>>()?;
            Ok(JoinSide { keys, time: physical(time, schema)?, known: None })
        };
        let schema = Arc::new(node.schema.as_arrow().clone());
        let left = physical_inputs[0].clone();
        let left_type = node.left_time.get_type(left_schema)?;
        let exec: Arc<dyn ExecutionPlan> = match &node.right {
            AsofRight::Table { keys, time, .. } => {
                let right_schema = logical_inputs[1].schema();
                let common = common_time_type(&left_type, &time.get_type(right_schema)?)?;
                let as_common = |e: &Expr| match &common {
                    Some(t) => cast(e.clone(), t.clone()),
                    None => e.clone(),
                };
                let left_on = side(&node.left_keys, &as_common(&node.left_time), left_schema)?;
                let right_on = side(keys, &as_common(time), right_schema)?;
                let matching = Match { op: node.op, left_join: node.left_join, right_join: node.right_join };
                let residual = node.residual.as_ref().map(|e| physical(e, &node.schema)).transpose()?;
                let right = physical_inputs[1].clone();
                Arc::new(AsofTableExec::new(left, right, (left_on, right_on), (matching, residual), schema))
            }
            AsofRight::Feature(feature) => {
                if !is_temporal(&left_type) {
                    return Err(not_comparable(&left_type, "a feature's time (timestamp)"));
                }
                let mut left_on = side(&node.left_keys, &node.left_time, left_schema)?;
                if let Some((k, strict)) = &node.known {
                    let k_type = k.get_type(left_schema)?;
                    if !is_temporal(&k_type) {
                        return Err(not_comparable(&k_type, "a feature's ingest time (timestamp)"));
                    }
                    left_on.known = Some((physical(k, left_schema)?, *strict));
                }
                let as_of =
                    AsOf { strict: node.op == Operator::Gt, max_age: node.max_age, known_at: node.known.is_some() };
                let join = FeatureJoin { feature: feature.clone(), left_on, as_of, left_join: node.left_join };
                // A training set's chain of features over one spine becomes one operator.
                match left.downcast_ref::<AsofFeatureExec>().and_then(|inner| inner.followed_by(&join, schema.clone()))
                {
                    Some(chained) => Arc::new(chained),
                    None => Arc::new(AsofFeatureExec::new(left, vec![join], schema)),
                }
            }
        };
        Ok(Some(exec))
    }
}

fn is_temporal(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 | DataType::Null)
}

/// The type both time columns are compared in: None for two temporal types (compared as
/// microseconds since the epoch), BIGINT for two integer types, DOUBLE PRECISION for numbers
/// of which one is floating point. A temporal and a numeric column do not compare (42804).
fn common_time_type(left: &DataType, right: &DataType) -> Result<Option<DataType>> {
    let numeric = |t: &DataType| t.is_integer() || t.is_floating() || t.is_null();
    if is_temporal(left) && is_temporal(right) {
        Ok(None)
    } else if (left.is_integer() || left.is_null()) && (right.is_integer() || right.is_null()) {
        Ok(Some(DataType::Int64))
    } else if numeric(left) && numeric(right) {
        Ok(Some(DataType::Float64))
    } else {
        Err(not_comparable(left, &right.to_string()))
    }
}

fn not_comparable(left: &DataType, right: &str) -> DataFusionError {
    external(Error::invalid_input(
        SqlState::DatatypeMismatch,
        format!(
            "ASOF JOIN cannot compare a time of type {left} with {right}: both must be integers, floating point, dates or timestamps"
        ),
    ))
}
