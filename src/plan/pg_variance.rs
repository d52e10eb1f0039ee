//! `var_samp`, `var_pop`, `stddev_samp` and `stddev_pop` (and `variance`, `stddev`) as
//! PostgreSQL computes them. Of `real` and `double precision`: a double, accumulated with the
//! Youngs-Cramer updates of PostgreSQL's `float8_accum` and `float8_combine`, so the last
//! digits agree (DataFusion's Welford updates differ there: 2.333333333333333 for
//! 2.3333333333333335). Of integers and NUMERIC: a NUMERIC with 16 decimals, as `avg`'s
//! (`plan::exact_avg`), computed exactly from the count, the sum and the sum of squares as
//! PostgreSQL's `numeric_stddev_internal` does; a variance of 10^22 or more is 0A000.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{DataType, Decimal128Type, Decimal256Type, Field, FieldRef, Float64Type, Int64Type, i256};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};

use crate::error::SqlState;

/// Decimals of a NUMERIC variance or standard deviation.
const SCALE: i8 = 16;
/// The type of a NUMERIC variance or standard deviation.
const RESULT: DataType = DataType::Decimal128(38, SCALE);

/// The four functions, in place of DataFusion's.
pub fn aggregates() -> Vec<AggregateUDF> {
    [
        ("var_samp", vec!["var", "var_sample"], Spread { sample: true, root: false }),
        ("var_pop", vec!["var_population"], Spread { sample: false, root: false }),
        ("stddev_samp", vec!["stddev"], Spread { sample: true, root: true }),
        ("stddev_pop", vec![], Spread { sample: false, root: true }),
    ]
    .into_iter()
    .map(|(name, aliases, spread)| {
        AggregateUDF::new_from_impl(Variance {
            name,
            aliases: aliases.into_iter().map(String::from).collect(),
            spread,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    })
    .collect()
}

/// Which statistic: sample or population, variance or its square root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Spread {
    sample: bool,
    root: bool,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Variance {
    name: &'static str,
    aliases: Vec<String>,
    spread: Spread,
    signature: Signature,
}

impl AggregateUDFImpl for Variance {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [t] if t.is_floating() => Ok(vec![DataType::Float64]),
            [t] if t.is_integer() || t.is_null() => Ok(vec![DataType::Decimal128(20, 0)]),
            [DataType::Decimal128(p, s)] if *s >= 0 => Ok(vec![DataType::Decimal128(*p, *s)]),
            [other] => plan_err!("function {}({other}) does not exist", self.name),
            _ => plan_err!("function {} takes one argument", self.name),
        }
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(if matches!(args, [DataType::Float64]) { DataType::Float64 } else { RESULT })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match args.expr_fields[0].data_type() {
            DataType::Decimal128(_, scale) => Ok(Box::new(NumericSpread::new(self.spread, *scale as u32))),
            _ => Ok(Box::new(FloatSpread { spread: self.spread, n: 0.0, sx: 0.0, sxx: 0.0 })),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |name: &str, ty: DataType| Arc::new(Field::new(format!("{}[{name}]", args.name), ty, true));
        Ok(match args.input_fields[0].data_type() {
            DataType::Decimal128(_, scale) => vec![
                field("count", DataType::Int64),
                field("sum", DataType::Decimal256(76, *scale)),
                field("sum_squares", DataType::Decimal256(76, scale * 2)),
            ],
            _ => vec![field("n", DataType::Float64), field("sx", DataType::Float64), field("sxx", DataType::Float64)],
        })
    }

    /// A moving frame: PostgreSQL aggregates each float frame afresh (float8 has no inverse
    /// transition), so the frame's values are kept; NUMERIC subtracts exactly.
    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match args.expr_fields[0].data_type() {
            DataType::Decimal128(..) => self.accumulator(args),
            _ => Ok(Box::new(FloatFrame { spread: self.spread, values: VecDeque::new() })),
        }
    }
}

/// PostgreSQL's float8 transition state: the count, the sum, and the sum of squared
/// differences from the running mean.
#[derive(Debug)]
struct FloatSpread {
    spread: Spread,
    n: f64,
    sx: f64,
    sxx: f64,
}

impl FloatSpread {
    /// `float8_accum`.
    fn add(&mut self, x: f64) {
        let before = self.n;
        self.n += 1.0;
        self.sx += x;
        if before > 0.0 {
            let tmp = x * self.n - self.sx;
            self.sxx += tmp * tmp / (self.n * before);
        } else if !x.is_finite() {
            self.sxx = f64::NAN;
        }
    }

    /// `float8_combine`.
    fn combine(&mut self, n: f64, sx: f64, sxx: f64) {
        if n == 0.0 {
            return;
        }
        if self.n == 0.0 {
            (self.n, self.sx, self.sxx) = (n, sx, sxx);
            return;
        }
        let total = self.n + n;
        let tmp = self.sx / self.n - sx / n;
        self.sxx = self.sxx + sxx + self.n * n * tmp * tmp / total;
        self.sx += sx;
        self.n = total;
    }
}

impl Accumulator for FloatSpread {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        values[0].as_primitive::<Float64Type>().iter().flatten().for_each(|x| self.add(x));
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [n, sx, sxx] = [0, 1, 2].map(|i| states[i].as_primitive::<Float64Type>());
        for row in 0..n.len() {
            self.combine(n.value(row), sx.value(row), sxx.value(row));
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok([self.n, self.sx, self.sxx].map(|v| ScalarValue::Float64(Some(v))).to_vec())
    }

    /// `float8_var_samp` and its kin: NULL without enough rows, 0 for a negative rounding.
    fn evaluate(&mut self) -> Result<ScalarValue> {
        let divisor = if self.spread.sample { self.n - 1.0 } else { self.n };
        if divisor <= 0.0 {
            return Ok(ScalarValue::Float64(None));
        }
        let variance = if self.sxx <= 0.0 { 0.0 } else { self.sxx / divisor };
        Ok(ScalarValue::Float64(Some(if self.spread.root { variance.sqrt() } else { variance })))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// The float values of a moving window frame, aggregated afresh for each row.
#[derive(Debug)]
struct FloatFrame {
    spread: Spread,
    values: VecDeque<f64>,
}

impl Accumulator for FloatFrame {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.values.extend(values[0].as_primitive::<Float64Type>().iter().flatten());
        Ok(())
    }

    /// Values leave a frame in the order they entered it.
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for _ in values[0].as_primitive::<Float64Type>().iter().flatten() {
            self.values.pop_front();
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, _states: &[ArrayRef]) -> Result<()> {
        datafusion::common::internal_err!("a window frame's variance is not merged")
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.frame().state()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.frame().evaluate()
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.capacity() * size_of::<f64>()
    }
}

impl FloatFrame {
    fn frame(&self) -> FloatSpread {
        let mut spread = FloatSpread { spread: self.spread, n: 0.0, sx: 0.0, sxx: 0.0 };
        self.values.iter().for_each(|&x| spread.add(x));
        spread
    }
}

/// The exact count, sum and sum of squares of NUMERIC values of `scale` decimals.
#[derive(Debug)]
struct NumericSpread {
    spread: Spread,
    scale: u32,
    count: i64,
    sum: i256,
    squares: i256,
}

impl NumericSpread {
    fn new(spread: Spread, scale: u32) -> Self {
        Self { spread, scale, count: 0, sum: i256::ZERO, squares: i256::ZERO }
    }

    fn accumulate(&mut self, values: &ArrayRef, sign: i64) -> Result<()> {
        for x in values.as_primitive::<Decimal128Type>().iter().flatten() {
            let x = i256::from_i128(x);
            let square = x.checked_mul(x).ok_or_else(overflow)?;
            let (sum, squares) = if sign > 0 {
                (self.sum.checked_add(x), self.squares.checked_add(square))
            } else {
                (self.sum.checked_sub(x), self.squares.checked_sub(square))
            };
            (self.sum, self.squares) = (sum.ok_or_else(overflow)?, squares.ok_or_else(overflow)?);
            self.count += sign;
        }
        Ok(())
    }

    /// The variance to [`SCALE`] decimals, rounded half away from zero as NUMERIC division is.
    fn variance(&self) -> Result<Option<i256>> {
        let n = i256::from_i128(i128::from(self.count));
        let divisor = if self.spread.sample { self.count - 1 } else { self.count };
        if divisor <= 0 {
            return Ok(None);
        }
        // N·Σx² − (Σx)², at twice the values' scale, over N·(N−1) or N².
        let numerator = n
            .checked_mul(self.squares)
            .and_then(|a| self.sum.checked_mul(self.sum).and_then(|b| a.checked_sub(b)))
            .ok_or_else(overflow)?;
        if numerator <= i256::ZERO {
            return Ok(Some(i256::ZERO));
        }
        let mut denominator = n.checked_mul(i256::from_i128(i128::from(divisor))).ok_or_else(overflow)?;
        let mut numerator = numerator;
        let target = SCALE as u32;
        let scale = self.scale * 2;
        if scale <= target {
            numerator = numerator.checked_mul(ten_to(target - scale)).ok_or_else(overflow)?;
        } else {
            denominator = denominator.checked_mul(ten_to(scale - target)).ok_or_else(overflow)?;
        }
        Ok(Some(divide_rounded(numerator, denominator)))
    }
}

fn ten_to(power: u32) -> i256 {
    i256::from_i128(10).wrapping_pow(power)
}

/// `a / b` of positive numbers, rounded half away from zero.
fn divide_rounded(a: i256, b: i256) -> i256 {
    let (quotient, remainder) = (a.wrapping_div(b), a.wrapping_rem(b));
    if remainder.wrapping_mul(i256::from_i128(2)) >= b { quotient.wrapping_add(i256::ONE) } else { quotient }
}

/// The square root of `value` (at [`SCALE`] decimals), at the same scale, rounded: PostgreSQL
/// takes the root of the rounded variance.
fn root(value: i256) -> Result<i256> {
    if value <= i256::ZERO {
        return Ok(i256::ZERO);
    }
    let radicand = value.checked_mul(ten_to(SCALE as u32)).ok_or_else(overflow)?;
    // A float's root as the first guess, then Newton's steps down to the integer root.
    let (low, high) = radicand.to_parts();
    let approximate = (high as f64 * 2f64.powi(128) + low as f64).sqrt();
    // Newton's steps decrease only from above the root: start past the float's error.
    let mut x = i256::from_f64(approximate * (1.0 + 1e-12) + 2.0).unwrap_or(radicand).max(i256::ONE);
    loop {
        let next = x.wrapping_add(radicand.wrapping_div(x)).wrapping_div(i256::from_i128(2));
        if next >= x {
            break;
        }
        x = next;
    }
    while x.wrapping_mul(x) > radicand {
        x = x.wrapping_sub(i256::ONE);
    }
    while x.wrapping_add(i256::ONE).wrapping_mul(x.wrapping_add(i256::ONE)) <= radicand {
        x = x.wrapping_add(i256::ONE);
    }
    // Round: x + ½ squared is x² + x + ¼.
    Ok(if radicand.wrapping_sub(x.wrapping_mul(x)) > x { x.wrapping_add(i256::ONE) } else { x })
}

/// Beyond 38 digits at 16 decimals, where PostgreSQL's NUMERIC has room: unsupported, not
/// wrong.
fn overflow() -> datafusion::error::DataFusionError {
    crate::error::Error::in_datafusion(
        SqlState::FeatureNotSupported,
        "a variance or standard deviation of NUMERIC of 10^22 or more is not supported (38 digits at 16 \
         decimals); cast the argument to double precision",
    )
}

impl Accumulator for NumericSpread {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.accumulate(&values[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.accumulate(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let count = states[0].as_primitive::<Int64Type>();
        let sum = states[1].as_primitive::<Decimal256Type>();
        let squares = states[2].as_primitive::<Decimal256Type>();
        for row in 0..count.len() {
            self.count += count.value(row);
            self.sum = self.sum.checked_add(sum.value(row)).ok_or_else(overflow)?;
            self.squares = self.squares.checked_add(squares.value(row)).ok_or_else(overflow)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Int64(Some(self.count)),
            ScalarValue::Decimal256(Some(self.sum), 76, self.scale as i8),
            ScalarValue::Decimal256(Some(self.squares), 76, (self.scale * 2) as i8),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let Some(variance) = self.variance()? else { return Ok(ScalarValue::Decimal128(None, 38, SCALE)) };
        let value = if self.spread.root { root(variance)? } else { variance };
        match value.to_i128().filter(|v| v.unsigned_abs() < 10u128.pow(38)) {
            Some(v) => Ok(ScalarValue::Decimal128(Some(v), 38, SCALE)),
            None => Err(overflow()),
        }
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(spread: Spread, scale: u32, values: &[i128]) -> Option<i128> {
        let mut acc = NumericSpread::new(spread, scale);
        let array: ArrayRef = Arc::new(
            arrow::array::Decimal128Array::from(values.to_vec()).with_precision_and_scale(38, scale as i8).unwrap(),
        );
        acc.update_batch(&[array]).unwrap();
        match acc.evaluate().unwrap() {
            ScalarValue::Decimal128(v, ..) => v,
            _ => None,
        }
    }

    #[test]
    fn numeric_variance_is_exact_to_sixteen_decimals() {
        let samp = Spread { sample: true, root: false };
        // var_samp(1.0, 2.0, 4.0) is 2.3333333333333333 in PostgreSQL.
        assert_eq!(numeric(samp, 1, &[10, 20, 40]), Some(23_333_333_333_333_333));
        // stddev_samp of the same: 1.5275252316519467.
        assert_eq!(numeric(Spread { sample: true, root: true }, 1, &[10, 20, 40]), Some(15_275_252_316_519_467));
        assert_eq!(numeric(samp, 0, &[5]), None);
        assert_eq!(numeric(Spread { sample: false, root: false }, 0, &[5]), Some(0));
        assert_eq!(numeric(Spread { sample: false, root: true }, 0, &[5]), Some(0));
        assert_eq!(numeric(Spread { sample: true, root: true }, 0, &[2, 2]), Some(0));
    }

    #[test]
    fn float_variance_follows_youngs_cramer() {
        let mut acc = FloatSpread { spread: Spread { sample: true, root: false }, n: 0.0, sx: 0.0, sxx: 0.0 };
        [1.0, 2.0, 4.0].into_iter().for_each(|x| acc.add(x));
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(2.3333333333333335)));
    }
}
