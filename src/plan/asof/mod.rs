//! ASOF JOIN in DataFusion: the logical node, its lowering from marked joins, the extension
//! planner that turns it into an execution plan, and the two operators it plans: against a
//! table (an index of the right side, searched per left row) and against a feature (its
//! state evaluated at each left row's time). (`sql::asof_syntax` reads the syntax and
//! `execute::asof` marks the joins of a statement before DataFusion plans it.)

mod feature_exec;
mod groups;
mod node;
mod planner;
mod probe;
mod residual;
mod table_exec;
mod time_index;

pub use node::{AsofJoinNode, AsofRight, AsofSpec, AsofTarget, lower};
pub use planner::AsofQueryPlanner;
