//! Key groups of an ASOF table index: every distinct right-side key gets a dense number.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use arrow::row::{RowConverter, SortField};
use datafusion::error::{DataFusionError, Result};

/// The key → group map, typed for the common single-BIGINT key (ids), row-encoded otherwise.
pub enum GroupKeys {
    /// No key columns: every row is in group 0 (once a right row exists).
    Unkeyed {
        seen: bool,
    },
    Int(HashMap<i64, u32, ahash::RandomState>),
    Rows {
        converter: RowConverter,
        groups: HashMap<Box<[u8]>, u32, ahash::RandomState>,
    },
}

impl GroupKeys {
    pub fn new(types: &[DataType]) -> Result<Self> {
        if types.is_empty() {
            return Ok(GroupKeys::Unkeyed { seen: false });
        }
        if types == [DataType::Int64] {
            return Ok(GroupKeys::Int(HashMap::default()));
        }
        let converter = RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())?;
        Ok(GroupKeys::Rows { converter, groups: HashMap::default() })
    }

    pub fn len(&self) -> usize {
        match self {
            GroupKeys::Unkeyed { seen } => usize::from(*seen),
            GroupKeys::Int(groups) => groups.len(),
            GroupKeys::Rows { groups, .. } => groups.len(),
        }
    }

    /// The group of each of `n` rows, numbering keys not seen before; `None` for a NULL in
    /// any key.
    pub fn assign(&mut self, keys: &[ArrayRef], n: usize) -> Result<Vec<Option<u32>>> {
        let null = |row: usize| keys.iter().any(|k| k.is_null(row));
        Ok(match self {
            GroupKeys::Unkeyed { seen } => {
                *seen |= n > 0;
                vec![Some(0); n]
            }
            GroupKeys::Int(groups) => {
                let values = keys[0].as_primitive::<Int64Type>();
                (0..n)
                    .map(|row| {
                        let next = groups.len() as u32;
                        (!null(row)).then(|| *groups.entry(values.value(row)).or_insert(next))
                    })
                    .collect()
            }
            GroupKeys::Rows { converter, groups } => {
                let rows = converter.convert_columns(keys)?;
                (0..n)
                    .map(|row| {
                        let next = groups.len() as u32;
                        (!null(row)).then(|| *groups.entry(rows.row(row).as_ref().into()).or_insert(next))
                    })
                    .collect()
            }
        })
    }

    /// Takes in the keys of `other` (built over other rows with the same key types): the
    /// group here of each of its groups, numbering keys not seen before.
    pub fn absorb(&mut self, other: &GroupKeys) -> Result<Vec<u32>> {
        let mut mapping = vec![0u32; other.len()];
        match (self, other) {
            (GroupKeys::Unkeyed { seen }, GroupKeys::Unkeyed { seen: theirs }) => *seen |= theirs,
            (GroupKeys::Int(groups), GroupKeys::Int(theirs)) => {
                for (key, local) in theirs {
                    let next = groups.len() as u32;
                    mapping[*local as usize] = *groups.entry(*key).or_insert(next);
                }
            }
            (GroupKeys::Rows { groups, .. }, GroupKeys::Rows { groups: theirs, .. }) => {
                for (key, local) in theirs {
                    let next = groups.len() as u32;
                    mapping[*local as usize] = *groups.entry(key.clone()).or_insert(next);
                }
            }
            _ => return Err(DataFusionError::Internal("ASOF key groups of different key types".into())),
        }
        Ok(mapping)
    }

    /// The group of each of `n` rows whose key exists (consecutive equal keys are looked up
    /// once).
    pub fn find(&self, keys: &[ArrayRef], n: usize) -> Result<Vec<Option<u32>>> {
        let null = |row: usize| keys.iter().any(|k| k.is_null(row));
        let mut found = Vec::with_capacity(n);
        match self {
            GroupKeys::Unkeyed { seen } => found.resize(n, seen.then_some(0)),
            GroupKeys::Int(groups) => {
                let values = keys[0].as_primitive::<Int64Type>();
                let mut last: Option<(i64, Option<u32>)> = None;
                for row in 0..n {
                    if null(row) {
                        found.push(None);
                        continue;
                    }
                    let v = values.value(row);
                    let group = match last {
                        Some((previous, group)) if previous == v => group,
                        _ => groups.get(&v).copied(),
                    };
                    last = Some((v, group));
                    found.push(group);
                }
            }
            GroupKeys::Rows { converter, groups } => {
                let rows = converter.convert_columns(keys)?;
                let mut last: Option<(usize, Option<u32>)> = None;
                for row in 0..n {
                    if null(row) {
                        found.push(None);
                        continue;
                    }
                    let group = match last {
                        Some((previous, group)) if rows.row(previous) == rows.row(row) => group,
                        _ => groups.get(rows.row(row).as_ref()).copied(),
                    };
                    last = Some((row, group));
                    found.push(group);
                }
            }
        }
        Ok(found)
    }
}
