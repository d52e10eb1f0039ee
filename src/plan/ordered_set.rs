//! PostgreSQL's ordered-set aggregates DataFusion lacks: `mode() WITHIN GROUP (ORDER BY x)`,
//! the most frequent value (of equally frequent ones, the first in the ordering), and
//! `percentile_disc(f) WITHIN GROUP (ORDER BY x)`, the first value at or past the fraction
//! `f` of the ordered values. DataFusion's planner passes the ordering expression as the
//! first argument and the ordering itself in `order_bys`; NULLs are left out, as in
//! PostgreSQL, and no value leaves NULL.

use std::sync::Arc;

use crate::error::SqlState;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};
use datafusion::physical_expr::expressions::Literal;

/// Both aggregates, to register.
pub fn aggregates() -> Vec<AggregateUDF> {
    [Kind::Mode, Kind::PercentileDisc]
        .into_iter()
        .map(|kind| {
            let arity = if kind == Kind::Mode { 1 } else { 2 };
            AggregateUDF::new_from_impl(OrderedSet { kind, signature: Signature::any(arity, Volatility::Immutable) })
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Kind {
    Mode,
    PercentileDisc,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct OrderedSet {
    kind: Kind,
    signature: Signature,
}

impl AggregateUDFImpl for OrderedSet {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Mode => "mode",
            Kind::PercentileDisc => "percentile_disc",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn supports_within_group_clause(&self) -> bool {
        true
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = Field::new_list_field(args.input_fields[0].data_type().clone(), true);
        Ok(vec![Arc::new(Field::new(format!("{}[values]", args.name), DataType::List(Arc::new(item)), true))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let descending = args.order_bys.first().is_some_and(|o| o.options.descending);
        let fraction = match self.kind {
            Kind::Mode => None,
            Kind::PercentileDisc => Some(fraction(&args)?),
        };
        Ok(Box::new(Values {
            values: Vec::new(),
            data_type: args.expr_fields[0].data_type().clone(),
            descending,
            fraction,
        }))
    }
}

/// `percentile_disc`'s fraction: a constant between 0 and 1 (22003 otherwise, as in PostgreSQL).
fn fraction(args: &AccumulatorArgs) -> Result<f64> {
    let literal = args.exprs.get(1).and_then(|e| e.downcast_ref::<Literal>()).ok_or_else(|| {
        DataFusionError::External(Box::new(crate::error::Error::unsupported(
            "percentile_disc takes a constant fraction",
        )))
    })?;
    let value = literal.value().cast_to(&DataType::Float64)?;
    let ScalarValue::Float64(Some(fraction)) = value else {
        return Err(crate::error::Error::in_datafusion(
            SqlState::NullValueNotAllowed,
            "percentile_disc of a NULL fraction",
        ));
    };
    if !(0.0..=1.0).contains(&fraction) {
        return Err(crate::error::Error::in_datafusion(
            SqlState::NumericValueOutOfRange,
            format!("percentile value {fraction} is not between 0 and 1"),
        ));
    }
    Ok(fraction)
}

/// Every non-NULL value seen; the answer is chosen once they are sorted.
#[derive(Debug)]
struct Values {
    values: Vec<ScalarValue>,
    data_type: DataType,
    descending: bool,
    /// `percentile_disc`'s; None for `mode`.
    fraction: Option<f64>,
}

impl Values {
    fn add(&mut self, array: &ArrayRef) -> Result<()> {
        for row in 0..array.len() {
            if array.is_valid(row) {
                self.values.push(ScalarValue::try_from_array(array, row)?);
            }
        }
        Ok(())
    }
}

impl Accumulator for Values {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.values.is_empty() {
            return ScalarValue::try_from(&self.data_type);
        }
        let mut sorted = self.values.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        if self.descending {
            sorted.reverse();
        }
        Ok(match self.fraction {
            // PostgreSQL: the row numbered ceil(f * n), the first for f = 0.
            Some(fraction) => {
                let row = (fraction * sorted.len() as f64).ceil() as usize;
                sorted[row.clamp(1, sorted.len()) - 1].clone()
            }
            None => {
                let (mut best, mut best_count) = (0, 0);
                let mut start = 0;
                while start < sorted.len() {
                    let end = (start..sorted.len()).find(|i| sorted[*i] != sorted[start]).unwrap_or(sorted.len());
                    if end - start > best_count {
                        (best, best_count) = (start, end - start);
                    }
                    start = end;
                }
                sorted[best].clone()
            }
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.iter().map(ScalarValue::size).sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = ScalarValue::new_list_nullable(&self.values, &self.data_type);
        Ok(vec![ScalarValue::List(list)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for row in 0..lists.len() {
            if lists.is_valid(row) {
                self.add(&lists.value(row))?;
            }
        }
        Ok(())
    }
}
