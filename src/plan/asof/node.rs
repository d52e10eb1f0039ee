//! The ASOF join as a DataFusion logical node, and the lowering of marked joins into it.
//!
//! The marking step (`plan::asof::mark`) turns `L ASOF [kind] JOIN R ON ...` into an ordinary
//! `[kind] JOIN` whose right side scans a placeholder name registered for the statement.
//! DataFusion then resolves every name and expression as usual; [`lower`] finds those joins
//! in the planned statement (subqueries included) and replaces each with an [`AsofJoinNode`]
//! with the same output schema, so everything above the join is planned unchanged.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchemaRef, DataFusionError};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Extension, Filter, JoinType, LogicalPlan, Operator, Projection, UserDefinedLogicalNodeCore,
    build_join_schema, when,
};

use crate::error::{Error, Result, SqlState};
use crate::feature::LiveFeature;

/// What an ASOF join's placeholder stands for.
#[derive(Clone)]
pub enum AsofTarget {
    /// An event table, scanned as the join's right input.
    Table,
    /// A feature: its state is the right side, evaluated at each left row's time.
    Feature(Arc<LiveFeature>),
}

/// One marked join of a statement, by placeholder table name.
#[derive(Clone)]
pub struct AsofSpec {
    pub target: AsofTarget,
}

/// The right side of an ASOF join.
#[derive(Clone)]
pub enum AsofRight {
    Table { input: Box<LogicalPlan>, keys: Vec<Expr>, time: Expr },
    Feature(Arc<LiveFeature>),
}

/// `left ASOF [LEFT | RIGHT | FULL] JOIN right`: for each left row, the right row (or feature
/// value) with equal keys whose time is the closest satisfying `left_time op right_time`.
#[derive(Clone)]
pub struct AsofJoinNode {
    pub left: LogicalPlan,
    pub right: AsofRight,
    /// Left key expressions; for a feature, in the feature's key order.
    pub left_keys: Vec<Expr>,
    pub left_time: Expr,
    /// The comparison as `left_time op right_time`: `>=`, `>`, `<=` or `<`.
    pub op: Operator,
    /// Left rows without a match are kept (LEFT, FULL), with NULL right columns.
    pub left_join: bool,
    /// Right rows no left row matched are kept (RIGHT, FULL), with NULL left columns.
    pub right_join: bool,
    /// Conditions across both sides besides the keys and the time (a table only, over the
    /// left columns then the right ones): the match is the closest row that passes them.
    pub residual: Option<Expr>,
    /// The staleness bound against a feature (µs, inclusive): the key's latest qualifying
    /// event may lie at most this far before the left time. Against a table the bound is part
    /// of `residual`, whose "closest row that passes" means the same.
    pub max_age: Option<i64>,
    /// "Known at" against a feature: a left expression K and whether the comparison is strict
    /// (`l.k > f.known`): only events whose ingest time is at or before K (before, if strict)
    /// count.
    pub known: Option<(Expr, bool)>,
    /// The replaced join's schema: left columns, then the right side's (nullable if outer).
    pub schema: DFSchemaRef,
}

impl AsofJoinNode {
    /// The join's name in EXPLAIN.
    fn kind(&self) -> &'static str {
        match (self.left_join, self.right_join) {
            (false, false) => "AsofJoin",
            (true, false) => "AsofLeftJoin",
            (false, true) => "AsofRightJoin",
            (true, true) => "AsofFullJoin",
        }
    }

    fn feature_name(&self) -> Option<&str> {
        match &self.right {
            AsofRight::Feature(f) => Some(f.compiled().def.name.as_str()),
            AsofRight::Table { .. } => None,
        }
    }

    /// The right keys and time, then the residual condition.
    fn right_exprs(&self) -> Vec<Expr> {
        match &self.right {
            AsofRight::Table { keys, time, .. } => {
                keys.iter().cloned().chain([time.clone()]).chain(self.residual.clone()).collect()
            }
            AsofRight::Feature(_) => Vec::new(),
        }
    }
}

impl fmt::Debug for AsofJoinNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_for_explain(f)
    }
}

impl PartialEq for AsofJoinNode {
    fn eq(&self, other: &Self) -> bool {
        let same_right = match (&self.right, &other.right) {
            (AsofRight::Table { input: a, .. }, AsofRight::Table { input: b, .. }) => a == b,
            (AsofRight::Feature(a), AsofRight::Feature(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same_right
            && self.left == other.left
            && self.left_keys == other.left_keys
            && self.left_time == other.left_time
            && self.right_exprs() == other.right_exprs()
            && self.op == other.op
            && self.left_join == other.left_join
            && self.right_join == other.right_join
            && self.max_age == other.max_age
            && self.known == other.known
            && self.schema == other.schema
    }
}

impl Eq for AsofJoinNode {}

impl Hash for AsofJoinNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.left.hash(state);
        self.left_keys.hash(state);
        self.left_time.hash(state);
        self.right_exprs().hash(state);
        self.feature_name().hash(state);
        self.op.hash(state);
        self.left_join.hash(state);
        self.right_join.hash(state);
        self.max_age.hash(state);
        self.known.hash(state);
    }
}

impl PartialOrd for AsofJoinNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self == other {
            return Some(Ordering::Equal);
        }
        match (&self.left_keys, &self.left_time).partial_cmp(&(&other.left_keys, &other.left_time)) {
            Some(Ordering::Equal) | None => None,
            unequal => unequal,
        }
    }
}

impl UserDefinedLogicalNodeCore for AsofJoinNode {
    fn name(&self) -> &str {
        "AsofJoin"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        match &self.right {
            AsofRight::Table { input, .. } => vec![&self.left, input.as_ref()],
            AsofRight::Feature(_) => vec![&self.left],
        }
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    /// Left keys, left time, the known-at expression, then (for a table) right keys, right
    /// time and the residual.
    fn expressions(&self) -> Vec<Expr> {
        let mut exprs = self.left_keys.clone();
        exprs.push(self.left_time.clone());
        exprs.extend(self.known.iter().map(|(k, _)| k.clone()));
        exprs.extend(self.right_exprs());
        exprs
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let kind = self.kind();
        let keys: Vec<String> = self.left_keys.iter().map(|k| k.to_string()).collect();
        match &self.right {
            AsofRight::Table { keys: right_keys, time, .. } => {
                let right: Vec<String> = right_keys.iter().map(|k| k.to_string()).collect();
                write!(
                    f,
                    "{kind}: keys [{}] = [{}], {} {} {time}",
                    keys.join(", "),
                    right.join(", "),
                    self.left_time,
                    self.op
                )?;
                match &self.residual {
                    Some(residual) => write!(f, ", passing {residual}"),
                    None => Ok(()),
                }
            }
            AsofRight::Feature(feature) => {
                let name = &feature.compiled().def.name;
                write!(
                    f,
                    "{kind}: feature {name}, keys [{}], {} {} {name}.time",
                    keys.join(", "),
                    self.left_time,
                    self.op
                )?;
                if let Some((k, strict)) = &self.known {
                    write!(f, ", known at {k}{}", if *strict { " (strict)" } else { "" })?;
                }
                match self.max_age {
                    Some(age) => write!(f, ", no older than {age} µs"),
                    None => Ok(()),
                }
            }
        }
    }

    fn with_exprs_and_inputs(
        &self,
        mut exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> datafusion::error::Result<Self> {
        let n = self.left_keys.len();
        let mut residual = None;
        let right = match &self.right {
            AsofRight::Table { keys, .. } => {
                let input =
                    inputs.pop().ok_or_else(|| DataFusionError::Internal("ASOF join lost its right input".into()))?;
                residual = match self.residual {
                    Some(_) => exprs.pop(),
                    None => None,
                };
                let time =
                    exprs.pop().ok_or_else(|| DataFusionError::Internal("ASOF join lost its right time".into()))?;
                let right_keys = exprs.split_off(exprs.len() - keys.len());
                AsofRight::Table { input: Box::new(input), keys: right_keys, time }
            }
            AsofRight::Feature(f) => AsofRight::Feature(f.clone()),
        };
        let left = inputs.pop().ok_or_else(|| DataFusionError::Internal("ASOF join lost its left input".into()))?;
        let known = match &self.known {
            Some((_, strict)) => Some((
                exprs.pop().ok_or_else(|| DataFusionError::Internal("ASOF join lost its known-at time".into()))?,
                *strict,
            )),
            None => None,
        };
        let left_time = exprs.pop().ok_or_else(|| DataFusionError::Internal("ASOF join lost its left time".into()))?;
        exprs.truncate(n);
        Ok(Self {
            left,
            right,
            left_keys: exprs,
            left_time,
            op: self.op,
            left_join: self.left_join,
            right_join: self.right_join,
            residual,
            max_age: self.max_age,
            known,
            schema: self.schema.clone(),
        })
    }
}

/// Replaces every join whose right side scans a placeholder of `specs` by an [`AsofJoinNode`].
pub fn lower(plan: LogicalPlan, specs: &HashMap<String, AsofSpec>) -> Result<LogicalPlan> {
    let lowered = plan.transform_up_with_subqueries(|plan| {
        let LogicalPlan::Join(join) = &plan else { return Ok(Transformed::no(plan)) };
        let Some(spec) = placeholder(&join.right, specs) else { return Ok(Transformed::no(plan)) };
        let (node, right_time) = lower_join(join, spec).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let asof = LogicalPlan::Extension(Extension { node: Arc::new(node) });
        // SEMI keeps the left rows an inner ASOF join matches, ANTI those a LEFT one does not
        // (a matched row's time is never NULL); both show the left columns only.
        let left_columns = || join.left.schema().columns().into_iter().map(Expr::Column).collect::<Vec<_>>();
        Ok(Transformed::yes(match join.join_type {
            JoinType::LeftSemi => LogicalPlan::Projection(Projection::try_new(left_columns(), Arc::new(asof))?),
            JoinType::LeftAnti => {
                let unmatched = LogicalPlan::Filter(Filter::try_new(right_time.is_null(), Arc::new(asof))?);
                LogicalPlan::Projection(Projection::try_new(left_columns(), Arc::new(unmatched))?)
            }
            _ => asof,
        }))
    })?;
    // A marked join left as an ordinary join would silently return every match. (A CTE's
    // plan is copied to each use, so a join may be lowered any number of times.)
    let mut unlowered = false;
    lowered.data.apply_with_subqueries(|plan| {
        if let LogicalPlan::Join(join) = plan
            && placeholder(&join.right, specs).is_some()
        {
            unlowered = true;
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    if unlowered {
        return Err(Error::unsupported(
            "this ASOF JOIN could not be planned as one (its right side was rewritten by the planner); \
             name a table, a feature, a CTE or a subquery on its right",
        ));
    }
    Ok(lowered.data)
}

/// The spec of the placeholder `plan` scans, if it is one.
fn placeholder<'a>(plan: &LogicalPlan, specs: &'a HashMap<String, AsofSpec>) -> Option<&'a AsofSpec> {
    match plan {
        // A view (a CTE or subquery on the right) is inlined as its plan under an alias
        // named like the placeholder.
        LogicalPlan::SubqueryAlias(alias) => {
            specs.get(alias.alias.table()).or_else(|| placeholder(&alias.input, specs))
        }
        LogicalPlan::TableScan(scan) => specs.get(scan.table_name.table()),
        _ => None,
    }
}

#[derive(PartialEq)]
enum Side {
    Left,
    Right(String),
    Neither,
}

/// The node for one marked join, and the right time column in its output.
fn lower_join(join: &datafusion::logical_expr::Join, spec: &AsofSpec) -> Result<(AsofJoinNode, Expr)> {
    let side = |e: &Expr| -> Side {
        let columns = e.column_refs();
        if columns.iter().all(|c| join.left.schema().has_column(c)) {
            return Side::Left;
        }
        match e {
            Expr::Column(c) if join.right.schema().has_column(c) => Side::Right(c.name.clone()),
            _ => Side::Neither,
        }
    };
    let mut conjuncts: Vec<Expr> = join.on.iter().map(|(l, r)| l.clone().eq(r.clone())).collect();
    if let Some(filter) = &join.filter {
        conjuncts.extend(split_conjunction_owned(filter.clone()));
    }
    let mut keys: Vec<(Expr, String)> = Vec::new();
    // Inequalities between a left expression and a right column: (left expr, op, column,
    // whether the left expression names a left column).
    let mut inequalities: Vec<(Expr, Operator, String, bool)> = Vec::new();
    let mut right_only: Vec<Expr> = Vec::new();
    let mut left_only: Vec<Expr> = Vec::new();
    let mut across: Vec<Expr> = Vec::new();
    let in_right = |c: &Expr| {
        let columns = c.column_refs();
        !columns.is_empty() && columns.iter().all(|col| join.right.schema().has_column(col))
    };
    let compare = |c: &Expr| match c {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (side(left), side(right)) {
            (Side::Left, Side::Right(column)) => Some(((**left).clone(), *op, column)),
            (Side::Right(column), Side::Left) => Some(((**right).clone(), flip(*op), column)),
            _ => None,
        },
        _ => None,
    };
    let mut staleness: Vec<Staleness> = Vec::new();
    for c in conjuncts {
        let c = match staleness_bound(c, &side) {
            Ok(bound) => {
                staleness.push(bound);
                continue;
            }
            Err(c) => c,
        };
        match compare(&c) {
            Some((left_expr, Operator::Eq, column)) => keys.push((left_expr, column)),
            Some((left_expr, op @ (Operator::GtEq | Operator::Gt | Operator::LtEq | Operator::Lt), column)) => {
                let names_left = !left_expr.column_refs().is_empty();
                inequalities.push((left_expr, op, column, names_left));
            }
            _ if in_right(&c) => right_only.push(c),
            _ if c.column_refs().iter().all(|col| join.left.schema().has_column(col)) => left_only.push(c),
            _ => across.push(c),
        }
    }
    // `r.t >= l.t - INTERVAL '1 hour'` alone is the join's time inequality, not a bound.
    if !inequalities.iter().any(|i| i.3) {
        for bound in staleness.drain(..) {
            match compare(&bound.condition) {
                Some((left_expr, op @ (Operator::GtEq | Operator::Gt | Operator::LtEq | Operator::Lt), column)) => {
                    inequalities.push((left_expr, op, column, true))
                }
                _ => across.push(bound.condition),
            }
        }
    }
    // Against a feature of a table with an ingest-time column, `l.k >= f.<ingest column>` (or
    // `>`) asks for the value known at K, not for a second time inequality.
    let mut known = None;
    if let AsofTarget::Feature(feature) = &spec.target
        && let Some(ingest) = feature.compiled().ingest
    {
        let column = &feature.compiled().table.columns[ingest].name;
        if let Some(at) = inequalities.iter().position(|i| &i.2 == column && i.3) {
            let (k, op, _, _) = inequalities.remove(at);
            if !matches!(op, Operator::GtEq | Operator::Gt) {
                return Err(asof_error(format!(
                    "a known-at condition reads l.t >= f.{column} (or >): the feature's value as the events known at \
                     the left time made it"
                )));
            }
            known = Some((k, op == Operator::Gt));
        }
    }
    // The time inequality compares a left expression with a right column; a comparison of a
    // right column with a constant is one only when there is no other.
    let time = match inequalities.iter().filter(|i| i.3).count() {
        0 if inequalities.len() == 1 => inequalities.pop(),
        0 => None,
        1 => {
            let at = inequalities.iter().position(|i| i.3).unwrap_or(0);
            let time = inequalities.remove(at);
            // The rest compare a right column with a constant: filters of the right side.
            for (constant, op, column, _) in inequalities.drain(..) {
                let (qualifier, field) = join.right.schema().qualified_field_with_unqualified_name(&column)?;
                let column = Expr::Column(datafusion::common::Column::new(qualifier.cloned(), field.name()));
                right_only.push(Expr::BinaryExpr(BinaryExpr::new(Box::new(constant), op, Box::new(column))));
            }
            Some(time)
        }
        _ => {
            return Err(Error::unsupported(
                "ASOF JOIN with more than one inequality between its sides is not supported",
            ));
        }
    }
    .map(|(e, op, column, _)| (e, op, column));
    let (left_time, op, time_column) = time.ok_or_else(|| {
        asof_error("an ASOF JOIN needs one inequality (>=, >, <=, <) between the time columns".into())
    })?;
    let (left_join, right_join) = match join.join_type {
        JoinType::Inner | JoinType::LeftSemi => (false, false),
        JoinType::Left | JoinType::LeftAnti => (true, false),
        JoinType::Right => (false, true),
        JoinType::Full => (true, true),
        other => return Err(Error::internal(format!("ASOF join planned as {other}"))),
    };
    // SEMI and ANTI plans show the left columns; the node underneath shows both sides.
    let schema = match join.join_type {
        JoinType::LeftSemi | JoinType::LeftAnti => {
            Arc::new(build_join_schema(join.left.schema(), join.right.schema(), &JoinType::Left)?)
        }
        _ => join.schema.clone(),
    };
    let (qualifier, field) = join.right.schema().qualified_field_with_unqualified_name(&time_column)?;
    let right_time = Expr::Column(datafusion::common::Column::new(qualifier.cloned(), field.name()));
    // A row a condition on its side alone turns away cannot match. Where the join keeps such
    // rows (the left side of LEFT, FULL and ANTI, the right of RIGHT and FULL) its time becomes
    // NULL, which never matches; elsewhere the row is filtered out before the search.
    let unless_admitted = |predicate: Expr, time: Expr| when(predicate, time).end();
    // A bound measures the join's own times: `l.t` must be the left time (else it is an
    // ordinary condition across both sides).
    let (staleness, not_bounds): (Vec<_>, Vec<_>) =
        staleness.into_iter().partition(|b| strip_casts(&b.left) == strip_casts(&left_time));
    across.extend(not_bounds.into_iter().map(|b| b.condition));
    let mut staleness = staleness;
    let mut max_age = None;
    if let AsofTarget::Feature(feature) = &spec.target {
        for Staleness { condition: bound, age, column, ahead, .. } in staleness.drain(..) {
            if column != time_column || ahead {
                return Err(asof_error(format!(
                    "the staleness bound {bound} of an ASOF JOIN against feature \"{}\" must bound how far the \
                     feature's time lies before the left time, as in l.t - f.ts <= INTERVAL '1 hour'",
                    feature.compiled().def.name
                )));
            }
            max_age = Some(max_age.map_or(age, |a: i64| a.min(age)));
        }
    }
    // Against a table the bound is a condition across both sides: the closest row that passes
    // it is the closest row, if that one is recent enough.
    across.extend(staleness.into_iter().map(|b| b.condition));
    let (left_keys, right) = match &spec.target {
        AsofTarget::Table => {
            let right_column = |name: &str| -> Result<Expr> {
                let (qualifier, field) = join.right.schema().qualified_field_with_unqualified_name(name)?;
                Ok(Expr::Column(datafusion::common::Column::new(qualifier.cloned(), field.name())))
            };
            let right_keys = keys.iter().map(|(_, c)| right_column(c)).collect::<Result<Vec<_>>>()?;
            let time = right_column(&time_column)?;
            let left_keys = keys.into_iter().map(|(e, _)| e).collect();
            let (input, time) = match conjunction(right_only) {
                Some(predicate) if right_join => ((*join.right).clone(), unless_admitted(predicate, time)?),
                Some(predicate) => (LogicalPlan::Filter(Filter::try_new(predicate, join.right.clone())?), time),
                None => ((*join.right).clone(), time),
            };
            (left_keys, AsofRight::Table { input: Box::new(input), keys: right_keys, time })
        }
        AsofTarget::Feature(feature) if right_join => {
            return Err(Error::unsupported(format!(
                "ASOF RIGHT and FULL JOIN against a feature (\"{}\") are not supported",
                feature.compiled().def.name
            )));
        }
        AsofTarget::Feature(_) if !across.is_empty() => {
            return Err(Error::unsupported(format!(
                "ASOF JOIN against a feature with a condition across both sides other than the keys and the time \
                 is not supported: {}",
                across[0]
            )));
        }
        AsofTarget::Feature(_) if !right_only.is_empty() => {
            return Err(Error::unsupported(format!(
                "ASOF JOIN against a feature with a condition on the feature's columns is not supported: {}",
                right_only[0]
            )));
        }
        AsofTarget::Feature(feature) => {
            (feature_keys(feature, keys, op, &time_column)?, AsofRight::Feature(feature.clone()))
        }
    };
    let (left, left_time) = match conjunction(left_only) {
        Some(predicate) if left_join => ((*join.left).clone(), unless_admitted(predicate, left_time)?),
        Some(predicate) => (LogicalPlan::Filter(Filter::try_new(predicate, join.left.clone())?), left_time),
        None => ((*join.left).clone(), left_time),
    };
    let residual = conjunction(across);
    let node =
        AsofJoinNode { left, right, left_keys, left_time, op, left_join, right_join, residual, max_age, known, schema };
    Ok((node, right_time))
}

/// The left key expressions in the feature's key order, after checking the join fits it.
fn feature_keys(
    feature: &LiveFeature,
    keys: Vec<(Expr, String)>,
    op: Operator,
    time_column: &str,
) -> Result<Vec<Expr>> {
    let compiled = feature.compiled();
    let name = &compiled.def.name;
    if !matches!(op, Operator::GtEq | Operator::Gt) {
        return Err(asof_error("only >= and > are valid against a feature (its value as of the left time)".into()));
    }
    if time_column != compiled.table.columns[compiled.event_time].name {
        return Err(Error::undefined_column(time_column, name));
    }
    if keys.len() != compiled.def.keys.len() {
        return Err(asof_error(format!(
            "an ASOF JOIN against feature \"{name}\" has one equality per feature key ({})",
            compiled.def.keys.join(", ")
        )));
    }
    compiled
        .def
        .keys
        .iter()
        .map(|key| {
            keys.iter().find(|(_, c)| c == key).map(|(e, _)| e.clone()).ok_or_else(|| {
                asof_error(format!("an ASOF JOIN against feature \"{name}\" needs an equality on key {key}"))
            })
        })
        .collect()
}

/// A candidate staleness bound (spec section 3) and the condition it was read from.
struct Staleness {
    condition: Expr,
    /// The left expression it measures from (the join's left time, for a bound).
    left: Expr,
    /// Inclusive, in µs (`< d` is `<= d - 1µs`).
    age: i64,
    /// The right column it measures to.
    column: String,
    /// It bounds a right time after the left one (the `<=` direction).
    ahead: bool,
}

/// A staleness bound between the join's times: `l - r <= d` or `< d`, `r >= l - d` or
/// `> l - d` (either side order), with `l` an expression of left columns, `r` a right column
/// and `d` a constant interval; for `<=` joins `r - l <= d` and `r <= l + d`. The caller
/// checks that `l` is the join's left time.
fn staleness_bound(c: Expr, side: &dyn Fn(&Expr) -> Side) -> std::result::Result<Staleness, Expr> {
    match bound_parts(&c, side) {
        Some((left, age, column, ahead)) => Ok(Staleness { condition: c, left, age, column, ahead }),
        None => Err(c),
    }
}

/// What [`staleness_bound`] reads from a condition: (l, age, column, ahead).
fn bound_parts(c: &Expr, side: &dyn Fn(&Expr) -> Side) -> Option<(Expr, i64, String, bool)> {
    let bound = |left: &Expr, age: i64, column: String, ahead: bool| {
        let left = strip_casts(left).clone();
        (!left.column_refs().is_empty()).then_some((left, age, column, ahead))
    };
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = c else { return None };
    let (left, op, right) = (strip_casts(left), *op, strip_casts(right));
    let inclusive = |op: Operator, d: i64| if op == Operator::LtEq { Some(d) } else { Some(d.checked_sub(1)?) };
    // `a - b <= d` with one side left and the other a right column.
    let difference = |e: &Expr| -> Option<(Expr, String, bool)> {
        let Expr::BinaryExpr(BinaryExpr { left: a, op: Operator::Minus, right: b }) = strip_casts(e) else {
            return None;
        };
        match (side(strip_casts(a)), side(strip_casts(b))) {
            (Side::Left, Side::Right(column)) => Some(((**a).clone(), column, false)),
            (Side::Right(column), Side::Left) => Some(((**b).clone(), column, true)),
            _ => None,
        }
    };
    match op {
        Operator::LtEq | Operator::Lt => {
            if let (Some((l, column, ahead)), Some(d)) = (difference(left), interval_micros(right)) {
                return bound(&l, inclusive(op, d)?, column, ahead);
            }
        }
        Operator::GtEq | Operator::Gt => {
            if let (Some((l, column, ahead)), Some(d)) = (difference(right), interval_micros(left)) {
                return bound(&l, inclusive(flip(op), d)?, column, ahead);
            }
        }
        _ => {}
    }
    // `r >= l - d` (or `l - d <= r`), and `r <= l + d` for the other direction.
    let (column, op, shifted) = match (side(left), side(right)) {
        (Side::Right(column), Side::Left) => (column, op, right),
        (Side::Left, Side::Right(column)) => (column, flip(op), left),
        _ => return None,
    };
    let Expr::BinaryExpr(BinaryExpr { left: l, op: shift, right: d }) = strip_casts(shifted) else { return None };
    if side(strip_casts(l)) != Side::Left {
        return None;
    }
    let d = interval_micros(strip_casts(d))?;
    match (op, *shift) {
        (Operator::GtEq, Operator::Minus) => bound(l, d, column, false),
        (Operator::Gt, Operator::Minus) => bound(l, d.checked_sub(1)?, column, false),
        (Operator::LtEq, Operator::Plus) => bound(l, d, column, true),
        (Operator::Lt, Operator::Plus) => bound(l, d.checked_sub(1)?, column, true),
        _ => None,
    }
}

fn strip_casts(e: &Expr) -> &Expr {
    match e {
        Expr::Cast(cast) => strip_casts(&cast.expr),
        Expr::TryCast(cast) => strip_casts(&cast.expr),
        other => other,
    }
}

/// A constant interval's length in µs, normalised as PostgreSQL compares intervals
/// (1 month = 30 days, 1 day = 24 hours).
fn interval_micros(e: &Expr) -> Option<i64> {
    use datafusion::scalar::ScalarValue;
    const DAY: i64 = 86_400_000_000;
    let Expr::Literal(value, _) = strip_casts(e) else { return None };
    match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) => {
            (v.months as i64 * 30 + v.days as i64).checked_mul(DAY)?.checked_add(v.nanoseconds.div_euclid(1000))
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            (v.days as i64).checked_mul(DAY)?.checked_add(v.milliseconds as i64 * 1000)
        }
        ScalarValue::IntervalYearMonth(Some(months)) => (*months as i64 * 30).checked_mul(DAY),
        ScalarValue::DurationMicrosecond(Some(us)) => Some(*us),
        ScalarValue::DurationMillisecond(Some(ms)) => ms.checked_mul(1000),
        ScalarValue::DurationSecond(Some(s)) => s.checked_mul(1_000_000),
        ScalarValue::DurationNanosecond(Some(ns)) => Some(ns.div_euclid(1000)),
        _ => None,
    }
}

fn flip(op: Operator) -> Operator {
    match op {
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        other => other,
    }
}

fn asof_error(message: String) -> Error {
    Error::invalid_input(SqlState::SyntaxError, message)
}
