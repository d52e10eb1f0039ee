//! ASOF JOIN in DataFusion: the logical node, its lowering from marked joins, and the
//! extension planner that turns it into an execution plan.

mod node;
mod planner;

pub use node::{AsofJoinNode, AsofRight, AsofSpec, AsofTarget, lower};
pub use planner::AsofQueryPlanner;
