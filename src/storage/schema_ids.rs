//! Stored schemas: a small write's value names its Arrow schema by id instead of carrying it.
//!
//! An IPC stream starts with its schema. For a one-row INSERT that was most of the value and
//! a good part of encoding it, and every reader parsed it again (issue #34). So a value of a
//! few rows holds only its record-batch message after the id of its schema (`blocks`), and
//! the schema is stored once, under `'a' <id u64>` (`keys::schema`), in the same atomic batch
//! as the first value that names it; every stored schema is loaded when the store opens.
//!
//! The id is a hash of the schema's IPC bytes, so one id means one schema in every store of
//! the process and decoding needs no store. Two schemas with one hash (never seen, but
//! possible) are not told apart by id: the second one's values carry their schema as before.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
use parking_lot::{Mutex, RwLock};

use super::{KvOp, KvStore, keys};
use crate::error::{Error, Result};

/// Every schema any store of this process has stored or loaded, by id.
static KNOWN: LazyLock<RwLock<HashMap<u64, SchemaRef>>> = LazyLock::new(Default::default);

/// The schema stored under `id`, if a store of this process has it.
pub(super) fn known(id: u64) -> Option<SchemaRef> {
    KNOWN.read().get(&id).cloned()
}

/// One store's stored schemas, and the ids of the schemas its writes have named.
#[derive(Default)]
pub(super) struct SchemaIds {
    /// Ids whose schema record is durable in this store (applied in a batch that succeeded).
    stored: Mutex<HashSet<u64>>,
    /// The id of each schema seen in a write; `None` where its hash names another schema.
    ids: Mutex<HashMap<SchemaRef, Option<Named>>>,
}

/// A schema's id and its stored record.
type Named = (u64, std::sync::Arc<[u8]>);

/// How many schemas' ids a store keeps at hand; a table has one until ADD COLUMN.
const SCHEMAS_KEPT: usize = 1024;

/// Schema records a batch of writes adds; once the batch is applied, [`SchemaIds::stored`].
pub(super) type NewSchemas = Vec<u64>;

impl SchemaIds {
    /// Loads every schema stored in `kv`.
    pub(super) fn load(kv: &dyn KvStore) -> Result<Self> {
        let loaded = Self::default();
        for pair in kv.scan(keys::SCHEMA, &keys::prefix_end(keys::SCHEMA)) {
            let (key, bytes) = pair?;
            let id = keys::be_u64(&key, keys::SCHEMA.len()).ok_or_else(|| corrupt("key"))?;
            if id_of_bytes(&bytes) != id {
                return Err(corrupt("record"));
            }
            let schema = std::sync::Arc::new(arrow::ipc::convert::try_schema_from_flatbuffer_bytes(&bytes)?);
            // Another store of this process may have named a different schema with this id
            // (a 64-bit hash collision): values would decode with the wrong one.
            if *KNOWN.write().entry(id).or_insert_with(|| schema.clone()) != schema {
                return Err(Error::Storage(format!("stored schema {id:016x} collides with another store's")));
            }
            loaded.stored.lock().insert(id);
        }
        Ok(loaded)
    }

    /// The id that values of `schema` name, adding its record to `ops` (and the id to `new`)
    /// if this store has not stored it yet. `None`: values of this schema carry it.
    pub(super) fn name(&self, schema: &SchemaRef, ops: &mut Vec<KvOp>, new: &mut NewSchemas) -> Option<u64> {
        let (id, bytes) = {
            let mut ids = self.ids.lock();
            if ids.len() >= SCHEMAS_KEPT && !ids.contains_key(schema) {
                ids.clear();
            }
            ids.entry(schema.clone()).or_insert_with(|| assign(schema)).clone()?
        };
        if !new.contains(&id) && !self.stored.lock().contains(&id) {
            ops.push(KvOp::Put(keys::schema(id), bytes.to_vec()));
            new.push(id);
        }
        Some(id)
    }

    /// Notes that the records of `new` are applied: later writes need not repeat them.
    pub(super) fn stored(&self, new: &NewSchemas) {
        self.stored.lock().extend(new.iter().copied());
    }
}

/// The id of `schema`, registered for decoding, and its record; `None` on a hash collision.
fn assign(schema: &SchemaRef) -> Option<Named> {
    let options = IpcWriteOptions::default();
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        schema,
        &mut DictionaryTracker::new(false),
        &options,
    );
    let id = id_of_bytes(&encoded.ipc_message);
    let mut known = KNOWN.write();
    let same = known.entry(id).or_insert_with(|| schema.clone());
    (same.as_ref() == schema.as_ref()).then(|| (id, encoded.ipc_message.into()))
}

/// FNV-1a over the schema's IPC bytes: stable across builds and Rust versions, unlike std's
/// hasher, because ids are stored.
fn id_of_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn corrupt(what: &str) -> Error {
    Error::Storage(format!("corrupt stored schema {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryKv;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema(name: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(name, DataType::Int64, true)]))
    }

    #[test]
    fn a_schema_is_stored_once_and_loaded_back() {
        let kv = MemoryKv::default();
        let ids = SchemaIds::load(&kv).unwrap();
        let (mut ops, mut new) = (Vec::new(), Vec::new());
        let a = ids.name(&schema("a"), &mut ops, &mut new).unwrap();
        assert_eq!(ids.name(&schema("a"), &mut ops, &mut new), Some(a));
        let b = ids.name(&schema("b"), &mut ops, &mut new).unwrap();
        assert_ne!(a, b);
        assert_eq!((ops.len(), new.clone()), (2, vec![a, b]));

        // Not applied: the next batch writes the records again.
        let (mut again, mut again_new) = (Vec::new(), Vec::new());
        ids.name(&schema("a"), &mut again, &mut again_new);
        assert_eq!(again.len(), 1);

        kv.apply(ops).unwrap();
        ids.stored(&new);
        let (mut none, mut none_new) = (Vec::new(), Vec::new());
        ids.name(&schema("b"), &mut none, &mut none_new);
        assert!(none.is_empty() && none_new.is_empty());

        let reopened = SchemaIds::load(&kv).unwrap();
        assert!(reopened.stored.lock().contains(&a) && reopened.stored.lock().contains(&b));
        assert_eq!(known(a).unwrap(), schema("a"));
    }

    #[test]
    fn opening_makes_stored_schemas_known_to_decoding() {
        // A schema this process never named: only loading can make it known.
        let unseen = schema("written_by_an_earlier_process");
        let bytes = IpcDataGenerator::default()
            .schema_to_bytes_with_dictionary_tracker(
                &unseen,
                &mut DictionaryTracker::new(false),
                &IpcWriteOptions::default(),
            )
            .ipc_message;
        let id = id_of_bytes(&bytes);
        assert!(known(id).is_none());
        let kv = MemoryKv::default();
        kv.apply(vec![KvOp::Put(keys::schema(id), bytes)]).unwrap();
        SchemaIds::load(&kv).unwrap();
        assert_eq!(known(id).unwrap(), unseen);
    }

    #[test]
    fn a_damaged_record_is_an_error() {
        let kv = MemoryKv::default();
        kv.apply(vec![KvOp::Put(keys::schema(7), b"not a schema".to_vec())]).unwrap();
        assert!(SchemaIds::load(&kv).is_err());
    }
}
