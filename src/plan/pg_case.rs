//! `upper` and `lower` one character at a time, as PostgreSQL's (`towupper` per character in
//! a UTF-8 database): Unicode's simple case mappings, so `upper('straße')` is `STRAßE`, where
//! Rust's full case mapping, which DataFusion's uses, writes `STRASSE`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, LargeStringArray, StringArray, StringViewArray};
use arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};

use super::expr_rules::columnar;

/// `upper` and `lower` in place of DataFusion's.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(CharCase { inner: datafusion::functions::string::upper(), upper: true }),
        ScalarUDF::new_from_impl(CharCase { inner: datafusion::functions::string::lower(), upper: false }),
    ]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CharCase {
    inner: Arc<ScalarUDF>,
    upper: bool,
}

impl CharCase {
    fn map(&self, text: &str) -> String {
        text.chars().map(|c| if self.upper { simple_upper(c) } else { simple_lower(c) }).collect()
    }
}

/// Unicode's simple uppercase mapping of `c`. Rust gives the full one; where that is several
/// characters, the simple one is `c` itself except for the Greek letters with
/// ypogegrammeni, whose simple uppercase has prosgegrammeni (`ᾳ` → `ᾼ`).
fn simple_upper(c: char) -> char {
    let mut full = c.to_uppercase();
    match (full.next(), full.next()) {
        (Some(one), None) => one,
        _ => match u32::from(c) {
            code @ (0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7) => char::from_u32(code + 8).unwrap_or(c),
            0x1FB3 => '\u{1FBC}',
            0x1FC3 => '\u{1FCC}',
            0x1FF3 => '\u{1FFC}',
            _ => c,
        },
    }
}

/// Unicode's simple lowercase mapping of `c`: the full one, except `İ`, whose full mapping
/// adds a combining dot (its simple one is `i`).
fn simple_lower(c: char) -> char {
    let mut full = c.to_lowercase();
    match (full.next(), full.next()) {
        (Some(one), None) => one,
        (Some(first), Some(_)) if c == '\u{130}' => first,
        _ => c,
    }
}

impl ScalarUDFImpl for CharCase {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = args.args[0].to_array(1)?;
        let ascii = match input.data_type() {
            DataType::Utf8 => input.as_string::<i32>().iter().flatten().all(|t| t.is_ascii()),
            DataType::LargeUtf8 => input.as_string::<i64>().iter().flatten().all(|t| t.is_ascii()),
            DataType::Utf8View => input.as_string_view().iter().flatten().all(|t| t.is_ascii()),
            _ => true,
        };
        // Only multi-byte characters can map to several: ASCII goes to DataFusion's, faster.
        if ascii {
            return self.inner.invoke_with_args(args);
        }
        let mapped: ArrayRef = match input.data_type() {
            DataType::Utf8 => {
                Arc::new(input.as_string::<i32>().iter().map(|t| t.map(|t| self.map(t))).collect::<StringArray>())
            }
            DataType::LargeUtf8 => {
                Arc::new(input.as_string::<i64>().iter().map(|t| t.map(|t| self.map(t))).collect::<LargeStringArray>())
            }
            _ => Arc::new(input.as_string_view().iter().map(|t| t.map(|t| self.map(t))).collect::<StringViewArray>()),
        };
        columnar(mapped, scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_map_one_to_one() {
        let [upper, lower] =
            [true, false].map(|upper| CharCase { inner: datafusion::functions::string::upper(), upper });
        assert_eq!(upper.map("straße ǆ ﬀ ᾳ ᾀ"), "STRAßE Ǆ ﬀ ᾼ ᾈ");
        assert_eq!(lower.map("ÀÉ İ ᾈ"), "àé i ᾀ");
    }
}
