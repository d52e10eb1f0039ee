//! Feature definitions as catalog entries of the store: read at startup, written by CREATE
//! FEATURE, removed (with the feature's stored state) by DROP FEATURE.

use std::sync::Arc;

use super::def::FeatureDef;
use super::snapshot::stored_chunk_keys;
use crate::error::Result;
use crate::storage::{CatalogKind, Commit, EventStore, keys};

/// Every persisted feature definition.
pub fn stored_definitions(store: &EventStore) -> Result<Vec<FeatureDef>> {
    store.catalog_entries(CatalogKind::Feature)?.iter().map(|e| Ok(serde_json::from_slice(e)?)).collect()
}

/// Persists a feature definition (durably).
pub async fn persist_definition(store: &Arc<EventStore>, def: &FeatureDef) -> Result<()> {
    // A new feature starts with no grants, whatever a GRANT racing an earlier feature's drop
    // may have left under its name.
    let grants = crate::catalog::Securable::Feature(def.name.clone()).grants_key();
    let commit =
        Commit { catalog_puts: vec![definition_entry(def)?], catalog_deletes: vec![grants], ..Default::default() };
    store.commit(commit).await?;
    Ok(())
}

/// The catalog entry (key, value) of a feature definition.
pub(super) fn definition_entry(def: &FeatureDef) -> Result<(Vec<u8>, Vec<u8>)> {
    Ok((CatalogKind::Feature.key(&def.name), serde_json::to_vec(def)?))
}

/// Removes a feature's definition, snapshot and stored state (durably).
pub async fn forget_definition(store: &Arc<EventStore>, name: &str) -> Result<()> {
    let grants = crate::catalog::Securable::Feature(name.to_string()).grants_key();
    let mut deletes = vec![CatalogKind::Feature.key(name), keys::feature_snapshot(name), grants];
    deletes.extend(stored_chunk_keys(store, &keys::feature_state_prefix(name))?);
    store.commit(Commit { catalog_deletes: deletes, ..Default::default() }).await?;
    Ok(())
}
