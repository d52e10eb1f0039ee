//! `avg` of integers and NUMERIC as PostgreSQL has it: NUMERIC with 16 decimals (DataFusion:
//! double precision for integers, and 4 decimals more than a NUMERIC's). `plan::pg_numeric`
//! gives such calls [`ExactAvg`] and the argument as `NUMERIC(38,13)`; this wraps
//! DataFusion's decimal `avg`, asked for one decimal more than shown (it truncates), and
//! rounds its result half away from zero, as NUMERIC rounds. PostgreSQL shows more decimals
//! below 1 and fewer above 10,000 (docs/sql.md); the value is the same to 16 decimals.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// Whether `avg` of a `t` is this one: integers, and NUMERICs that fit [`ARGUMENT`].
pub fn applies_to(t: &DataType) -> bool {
    match t {
        // DataFusion's averager checks its result at (38,17): 21 integer digits.
        DataType::Decimal128(p, s) => *s >= 0 && *s <= 13 && i16::from(*p) - i16::from(*s) <= 21,
        t => t.is_integer(),
    }
}

/// The argument's type: integers, exactly, with room for the average's digits.
pub const ARGUMENT: DataType = DataType::Decimal128(38, 13);
/// The result's type, PostgreSQL's scale for averages below 10,000.
const RESULT: DataType = DataType::Decimal128(38, 16);
/// What DataFusion's `avg` computes before rounding.
const UNROUNDED: DataType = DataType::Decimal128(38, 17);

/// See the module's doc.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ExactAvg {
    signature: Signature,
}

impl ExactAvg {
    pub fn udaf() -> Arc<AggregateUDF> {
        Arc::new(AggregateUDF::new_from_impl(Self {
            signature: Signature::exact(vec![ARGUMENT], Volatility::Immutable),
        }))
    }
}

fn inner() -> Arc<AggregateUDF> {
    datafusion::functions_aggregate::average::avg_udaf()
}

fn unrounded(field: &FieldRef) -> FieldRef {
    Arc::new(Field::new(field.name(), UNROUNDED, field.is_nullable()))
}

impl AggregateUDFImpl for ExactAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(RESULT)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let args = AccumulatorArgs { return_field: unrounded(&args.return_field), ..args };
        Ok(Box::new(Rounded(inner().accumulator(args)?)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        inner().state_fields(StateFieldsArgs { return_field: unrounded(&args.return_field), ..args })
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        inner().groups_accumulator_supported(AccumulatorArgs { return_field: unrounded(&args.return_field), ..args })
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let args = AccumulatorArgs { return_field: unrounded(&args.return_field), ..args };
        Ok(Box::new(RoundedGroups(inner().create_groups_accumulator(args)?)))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let args = AccumulatorArgs { return_field: unrounded(&args.return_field), ..args };
        Ok(Box::new(Rounded(inner().create_sliding_accumulator(args)?)))
    }
}

fn round(values: &ArrayRef) -> Result<ArrayRef> {
    Ok(arrow::compute::cast(values, &RESULT)?)
}

#[derive(Debug)]
struct Rounded(Box<dyn Accumulator>);

impl Accumulator for Rounded {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.update_batch(values)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.evaluate()?.cast_to(&RESULT)
    }

    fn size(&self) -> usize {
        self.0.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.merge_batch(states)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.retract_batch(values)
    }

    fn supports_retract_batch(&self) -> bool {
        self.0.supports_retract_batch()
    }
}

struct RoundedGroups(Box<dyn GroupsAccumulator>);

impl GroupsAccumulator for RoundedGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&arrow::array::BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.update_batch(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        round(&self.0.evaluate(emit_to)?)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.0.state(emit_to)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.0.merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&arrow::array::BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.0.convert_to_state(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}
