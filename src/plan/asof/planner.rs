//! Physical planning of [`AsofJoinNode`]s, plugged into DataFusion's default planner.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan, Operator, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use super::node::{AsofJoinNode, AsofRight};
use crate::execute::asof::{AsofFeatureExec, AsofTableExec, JoinSide, Match};

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
            Ok(JoinSide { keys, time: physical(time, schema)? })
        };
        let left_on = side(&node.left_keys, &node.left_time, left_schema)?;
        let schema = Arc::new(node.schema.as_arrow().clone());
        let left = physical_inputs[0].clone();
        let exec: Arc<dyn ExecutionPlan> = match &node.right {
            AsofRight::Table { keys, time, .. } => {
                let right_on = side(keys, time, logical_inputs[1].schema())?;
                let matching = Match { op: node.op, left_join: node.left_join };
                Arc::new(AsofTableExec::new(left, physical_inputs[1].clone(), (left_on, right_on), matching, schema))
            }
            AsofRight::Feature(feature) => {
                let strict = node.op == Operator::Gt;
                Arc::new(AsofFeatureExec::new(left, feature.clone(), left_on, (strict, node.left_join), schema))
            }
        };
        Ok(Some(exec))
    }
}
