//! A transaction's own pending rows, made visible to its statements: scans of the tables it
//! wrote, and of features over them, are rewritten to read those rows too (PostgreSQL's
//! read-your-writes inside `BEGIN ... COMMIT`). Other sessions' plans never see them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::Transformed;
use datafusion::datasource::{ViewTable, provider_as_source, source_as_provider};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;

use super::EventTable;
use super::asof::{AsofJoinNode, AsofRight};
use super::feature_table::FeatureTable;
use crate::error::{Error, Result};

/// Rows written and not yet committed, by table id.
pub type PendingRows = HashMap<u64, Vec<RecordBatch>>;

/// `plan` reading `pending` as well as the stored rows.
pub fn with_pending(plan: LogicalPlan, pending: &PendingRows) -> Result<LogicalPlan> {
    if pending.is_empty() {
        return Ok(plan);
    }
    let rewritten = plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::TableScan(mut scan) => {
            let provider = source_as_provider(&scan.source)?;
            match with_pending_rows(provider.as_ref(), pending)? {
                Some(replaced) => {
                    scan.source = provider_as_source(replaced);
                    Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
                }
                None => Ok(Transformed::no(LogicalPlan::TableScan(scan))),
            }
        }
        LogicalPlan::Extension(extension) => {
            if let Some(AsofJoinNode { right: AsofRight::Feature(feature), .. }) =
                extension.node.as_any().downcast_ref::<AsofJoinNode>()
                && pending.contains_key(&feature.compiled().table.id)
            {
                return Err(DataFusionError::External(Box::new(Error::unsupported(format!(
                    "an ASOF JOIN against feature \"{}\" inside a transaction that wrote to its table \"{}\" is not supported; commit first, or join the table itself",
                    feature.compiled().def.name,
                    feature.compiled().table.name
                )))));
            }
            Ok(Transformed::no(LogicalPlan::Extension(extension)))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(rewritten.data)
}

/// The provider reading `pending` too, if it reads a table that has pending rows.
fn with_pending_rows(
    provider: &dyn TableProvider,
    pending: &PendingRows,
) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
    let any: &dyn std::any::Any = provider;
    if let Some(table) = any.downcast_ref::<EventTable>() {
        return Ok(pending.get(&table.def().id).map(|rows| Arc::new(table.with_pending(rows.clone())) as _));
    }
    if let Some(feature) = any.downcast_ref::<FeatureTable>() {
        let table = feature.feature().compiled().table.id;
        return Ok(pending.get(&table).map(|rows| Arc::new(feature.with_pending(rows.clone())) as _));
    }
    if let Some(view) = any.downcast_ref::<ViewTable>() {
        // A query on the right of an ASOF JOIN is read as a view, inlined after this rewrite.
        let inner =
            with_pending(view.logical_plan().clone(), pending).map_err(|e| DataFusionError::External(Box::new(e)))?;
        return Ok(Some(Arc::new(ViewTable::new(inner, view.definition().cloned()))));
    }
    Ok(None)
}
