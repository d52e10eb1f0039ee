//! ASOF JOIN in DataFusion: the logical node, its lowering from marked joins, the extension
//! planner that turns it into an execution plan, and the two operators it plans: against a
//! table (an index of the right side, searched per left row) and against a feature (its
//! state evaluated at each left row's time). Before DataFusion plans a statement, its ASOF joins are marked (`mark`); `sql::asof_syntax`
//! reads the syntax.

mod feature_exec;
mod groups;
mod mark;
mod node;
mod planner;
mod probe;
mod residual;
mod table_exec;
mod time_index;

pub use mark::{Placeholders, RightSide, has_asof, mark};
pub use node::{AsofJoinNode, AsofRight, AsofSpec, AsofTarget, lower};
pub use planner::AsofQueryPlanner;
