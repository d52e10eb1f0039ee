//! Statements prepared once and executed many times (the extended protocol): parsed and
//! planned at Parse, and planned again at Execute when DDL has changed the catalog since, as
//! PostgreSQL re-plans a cached plan, so a prepared statement never reads a dropped or
//! replaced table or feature.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, TryCast};
use datafusion::sql::parser::Statement as DfStatement;
use parking_lot::Mutex;
use sqlparser::ast::Statement as SqlStatement;

use super::{Database, check_copy};
use crate::error::{Error, Result};
use crate::plan::PointRead;
use crate::sql::Statement;
use crate::sql::names::ident_name;

/// A parsed statement as kept between Parse and Execute.
pub struct PreparedStatement {
    pub statement: Statement,
    /// DataFusion's inferred type of each parameter `$1..$n`, where it has one.
    pub inferred_types: Vec<Option<DataType>>,
    /// The columns the statement returns, if it returns rows (what Describe announced).
    pub result_schema: Option<SchemaRef>,
    /// An INSERT of one row of literals and parameters (`insert::is_single_literal_row`):
    /// cheap enough to run where its connection is served.
    pub small_write: bool,
    /// A query's plan; None for other statements, which run from their syntax at every
    /// Execute and so resolve names anew each time.
    planned: Option<Mutex<Arc<Planned>>>,
}

/// A query's plan as of one catalog generation.
pub struct Planned {
    generation: u64,
    /// The DataFusion plan of a query, with `$n` placeholders.
    pub plan: LogicalPlan,
    /// Set when the query is a feature point read, answered without the plan.
    pub point_read: Option<PointRead>,
}

impl Planned {
    async fn new(db: &Database, syntax: &SqlStatement) -> Result<Planned> {
        // Read before planning: DDL during planning leaves this plan stale, not wrongly fresh.
        let generation = db.generation();
        let plan = db.plan_query(syntax).await?;
        let point_read = PointRead::recognise(&plan);
        Ok(Planned { generation, plan, point_read })
    }
}

impl Database {
    /// Parses and, for a query, plans one statement; `None` for an empty one.
    pub async fn prepare(&self, sql: &str) -> Result<Option<PreparedStatement>> {
        let Some(statement) = self.parser.parse_single(sql)? else { return Ok(None) };
        let Statement::Standard(syntax) = &statement else {
            let schema = match statement {
                Statement::ShowFeatures => Some(crate::plan::SystemSchema::features(&self.features)?.schema()),
                Statement::ShowSources => Some(crate::plan::SystemSchema::sources(&self.catalog)?.schema()),
                _ => None,
            };
            return Ok(Some(PreparedStatement::new(statement, None, vec![], schema)));
        };
        let (planned, inferred_types, result_schema) = match syntax.as_ref() {
            SqlStatement::Query(_) | SqlStatement::Explain { .. } => {
                let planned = Planned::new(self, syntax).await?;
                let types = parameter_types(&planned.plan)?;
                let schema = self.output_schema(&planned.plan);
                (Some(planned), types, Some(schema))
            }
            SqlStatement::ShowVariable { variable } => {
                let name = variable.iter().map(ident_name).collect::<Vec<_>>().join(" ");
                (None, vec![], Some(Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]))))
            }
            SqlStatement::Insert(_) => {
                // Planning the INSERT itself (never executed) types its placeholders from
                // the target columns.
                let state = self.ctx.state();
                let types = match state.statement_to_plan(DfStatement::Statement(syntax.clone())).await {
                    Ok(plan) => parameter_types(&plan).unwrap_or_default(),
                    Err(_) => vec![],
                };
                (None, types, None)
            }
            SqlStatement::Copy { .. } => {
                check_copy(self, syntax)?;
                (None, vec![], None)
            }
            _ => (None, vec![], None),
        };
        Ok(Some(PreparedStatement::new(statement, planned, inferred_types, result_schema)))
    }
}

impl PreparedStatement {
    fn new(
        statement: Statement,
        planned: Option<Planned>,
        inferred_types: Vec<Option<DataType>>,
        result_schema: Option<SchemaRef>,
    ) -> Self {
        let planned = planned.map(|p| Mutex::new(Arc::new(p)));
        let small_write = matches!(&statement, Statement::Standard(s)
            if matches!(s.as_ref(), SqlStatement::Insert(insert) if super::insert::is_single_literal_row(insert)));
        Self { statement, inferred_types, result_schema, planned, small_write }
    }

    /// A feature point read (`plan::point_read`), as planned at Parse or since.
    pub fn is_point_read(&self) -> bool {
        self.planned.as_ref().is_some_and(|planned| planned.lock().point_read.is_some())
    }

    /// The statement with `parameters` put in as literals (a statement other than a query).
    pub fn bound(&self, parameters: &ParamValues) -> Result<Statement> {
        let mut statement = self.statement.clone();
        if let (Statement::Standard(syntax), ParamValues::List(values)) = (&mut statement, parameters)
            && !values.is_empty()
        {
            let scalars: Vec<_> = values.iter().map(|v| v.value.clone()).collect();
            crate::sql::params::bind_parameters(syntax, &scalars)?;
        }
        Ok(statement)
    }

    /// True if the statement is a query, answered from a plan.
    pub fn is_query(&self) -> bool {
        self.planned.is_some()
    }

    /// The query's plan if it was made since the catalog last changed; else None (see
    /// [`PreparedStatement::replan`]). Cheap: the point-read path calls it on every Execute.
    pub fn current(&self, db: &Database) -> Option<Arc<Planned>> {
        let planned = self.planned.as_ref()?.lock().clone();
        (planned.generation == db.generation()).then_some(planned)
    }

    /// Plans the query again against the current catalog. Fails with 0A000, as PostgreSQL
    /// does, if its columns are no longer those Describe announced.
    pub async fn replan(&self, db: &Database) -> Result<Arc<Planned>> {
        let (Statement::Standard(syntax), Some(kept)) = (&self.statement, &self.planned) else {
            return Err(Error::internal("only queries are planned"));
        };
        let planned = Planned::new(db, syntax).await?;
        if let Some(announced) = &self.result_schema
            && !same_columns(announced, &db.output_schema(&planned.plan))
        {
            return Err(Error::unsupported("cached plan must not change result type"));
        }
        let planned = Arc::new(planned);
        *kept.lock() = planned.clone();
        Ok(planned)
    }

    /// The query's plan as of the current catalog: the one kept, or a new one.
    pub async fn plan(&self, db: &Database) -> Result<Arc<Planned>> {
        match self.current(db) {
            Some(planned) => Ok(planned),
            None => self.replan(db).await,
        }
    }
}

/// Same column names and types (nullability may change with the data a plan reads).
fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields()).all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// Placeholder types `$1..$n` of a plan, in order. DataFusion infers a type from comparisons
/// and INSERT targets. A placeholder it leaves untyped is typed as PostgreSQL would type it
/// from its use: by a cast (`$1::BIGINT`), or by the numeric literal it is computed with
/// (`$1 / 100.0`).
fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>> {
    let by_name = plan.get_parameter_types()?;
    let count = by_name.keys().filter_map(|k| k.strip_prefix('$')?.parse::<usize>().ok()).max().unwrap_or(0);
    let mut from_use: HashMap<String, DataType> = HashMap::new();
    plan.apply_with_subqueries(|node| {
        let schema = crate::plan::input_schema(node);
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Some((id, data_type)) = placeholder_type_from_use(e, &schema) {
                    from_use.entry(id).or_insert(data_type);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok((1..=count)
        .map(|i| {
            let id = format!("${i}");
            by_name.get(&id).cloned().flatten().or_else(|| from_use.get(&id).cloned())
        })
        .collect())
}

/// The type `expr` gives an untyped placeholder directly inside it, if any. `x = ANY($1)`
/// (planned as `array_has($1, x)`, or `array_min`/`array_max` of `$1` for the other
/// comparisons) makes `$1` an array of `x`'s type, as PostgreSQL does.
fn placeholder_type_from_use(expr: &Expr, schema: &DFSchema) -> Option<(String, DataType)> {
    let untyped = |e: &Expr| match e {
        Expr::Placeholder(p) if p.field.is_none() => Some(p.id.clone()),
        _ => None,
    };
    let array_of = |e: &Expr| {
        let element = e.get_type(schema).ok().filter(|t| !t.is_null())?;
        Some(DataType::new_list(element, true))
    };
    let bound_of_untyped = |e: &Expr| match e {
        Expr::ScalarFunction(f) if matches!(f.func.name(), "array_min" | "array_max") && f.args.len() == 1 => {
            untyped(&f.args[0])
        }
        _ => None,
    };
    match expr {
        Expr::ScalarFunction(f) if f.func.name() == "array_has" && f.args.len() == 2 => {
            Some((untyped(&f.args[0])?, array_of(&f.args[1])?))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if op.supports_propagation() => {
            match (bound_of_untyped(left), bound_of_untyped(right)) {
                (Some(id), None) => Some((id, array_of(right)?)),
                (None, Some(id)) => Some((id, array_of(left)?)),
                _ => None,
            }
        }
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            Some((untyped(expr)?, field.data_type().clone()))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if op.is_numerical_operators() => {
            let (id, other) = match (untyped(left), untyped(right)) {
                (Some(id), None) => (id, right),
                (None, Some(id)) => (id, left),
                _ => return None,
            };
            match other.as_ref() {
                Expr::Literal(value, _) if value.data_type().is_numeric() => Some((id, value.data_type())),
                _ => None,
            }
        }
        _ => None,
    }
}
