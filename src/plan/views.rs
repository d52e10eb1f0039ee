//! Temporary views: a query planned once at CREATE TEMPORARY VIEW and read as a table until
//! the session that made it ends (or drops it). The planner inlines the view's plan into each
//! query that names it (DataFusion's `InlineTableScan`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{ViewTable, source_as_provider};
use datafusion::logical_expr::LogicalPlan;
use parking_lot::RwLock;
use sqlparser::ast::Query;

use super::EventTable;
use super::asof::{AsofJoinNode, AsofRight};
use super::feature_table::FeatureTable;

/// One temporary view.
#[derive(Debug)]
pub struct TemporaryView {
    /// Set by [`TemporaryViews::insert`].
    pub name: String,
    /// Tells this view from a later one of the same name (a session drops only its own).
    pub id: u64,
    pub table: Arc<ViewTable>,
    /// Its query and column names as written, to plan it again when a view it reads is
    /// replaced (DataFusion inlines a view's plan into the plans that read it).
    pub query: Box<Query>,
    pub columns: Vec<String>,
    /// The tables, features and views its query reads: none of them can be dropped while
    /// the view exists, except with CASCADE, which drops the view too.
    pub reads: BTreeSet<String>,
}

impl TemporaryView {
    /// A view reading `plan`, planned from `query`; `reads` as [`TemporaryViews::reads`]
    /// finds them, plus the views `query` names.
    pub fn new(plan: LogicalPlan, query: Box<Query>, columns: Vec<String>, reads: BTreeSet<String>) -> Self {
        let table = Arc::new(ViewTable::new(plan, Some(query.to_string())));
        Self { name: String::new(), id: 0, table, query, columns, reads }
    }
}

/// The temporary views of every session, by name. Names are shared with tables and features
/// (one namespace, as the `public` schema is one); a view is dropped by its session.
#[derive(Debug, Default)]
pub struct TemporaryViews {
    views: RwLock<BTreeMap<String, Arc<TemporaryView>>>,
    next_id: AtomicU64,
    /// Counts creations and drops; see `execute::Database::generation`.
    changes: AtomicU64,
}

impl TemporaryViews {
    pub fn get(&self, name: &str) -> Option<Arc<TemporaryView>> {
        self.views.read().get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.views.read().keys().cloned().collect()
    }

    pub fn generation(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// The tables and features `plan` reads, by name. The views it reads are not among them:
    /// DataFusion inlines a view's plan where the query names it (`execute::views` finds them
    /// in the query's text).
    pub fn reads(&self, plan: &LogicalPlan) -> BTreeSet<String> {
        reads(plan)
    }

    /// Adds (or replaces) view `name`; returns its id.
    pub fn insert(&self, name: &str, view: TemporaryView) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let view = Arc::new(TemporaryView { name: name.to_string(), id, ..view });
        self.views.write().insert(name.to_string(), view);
        self.changes.fetch_add(1, Ordering::SeqCst);
        id
    }

    /// View `name` planned again, if it is still view `id` (which it stays).
    pub fn replan(&self, name: &str, id: u64, view: TemporaryView) {
        let mut views = self.views.write();
        if views.get(name).is_some_and(|v| v.id == id) {
            views.insert(name.to_string(), Arc::new(TemporaryView { name: name.to_string(), id, ..view }));
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Drops view `name` if it exists (and is view `id`, when given). True if dropped.
    pub fn remove(&self, name: &str, id: Option<u64>) -> bool {
        let mut views = self.views.write();
        let matches = views.get(name).is_some_and(|v| id.is_none_or(|id| v.id == id));
        if matches {
            views.remove(name);
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
        matches
    }

    /// The views that read any of `names`, directly or through other views, in an order in
    /// which they can be dropped (a view before the views it reads).
    pub fn depending_on(&self, names: &[String]) -> Vec<String> {
        let views = self.views.read();
        let mut gone: BTreeSet<String> = names.iter().cloned().collect();
        let mut found = Vec::new();
        loop {
            let more: Vec<String> = views
                .values()
                .filter(|v| !gone.contains(&v.name) && v.reads.iter().any(|r| gone.contains(r)))
                .map(|v| v.name.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            gone.extend(more.iter().cloned());
            found.extend(more);
        }
        found.reverse();
        found
    }
}

/// The names of the tables and features `plan` reads, looking through views it reads by value
/// (the query on the right of an ASOF JOIN).
fn reads(plan: &LogicalPlan) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                // By provider, not by the name in the plan: an ASOF JOIN's right side is
                // planned under a placeholder name.
                let Ok(provider) = source_as_provider(&scan.source) else { return Ok(TreeNodeRecursion::Continue) };
                let any: &dyn std::any::Any = provider.as_ref();
                if let Some(table) = any.downcast_ref::<EventTable>() {
                    names.insert(table.def().name.clone());
                } else if let Some(feature) = any.downcast_ref::<FeatureTable>() {
                    names.insert(feature.feature().compiled().def.name.clone());
                } else if let Some(view) = any.downcast_ref::<ViewTable>() {
                    names.extend(reads(view.logical_plan()));
                }
            }
            LogicalPlan::Extension(extension) => {
                if let Some(AsofJoinNode { right: AsofRight::Feature(feature), .. }) =
                    extension.node.as_any().downcast_ref::<AsofJoinNode>()
                {
                    names.insert(feature.compiled().def.name.clone());
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
}
