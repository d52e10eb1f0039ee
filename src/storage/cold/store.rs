//! Where cold files live: an `object_store` (local directory by default), behind blocking calls.
//!
//! Scans and moves run on threads that are not async (sled iterators, the committer, backfill),
//! so every object-store call is spawned on a small runtime of its own and waited for; this
//! works whether or not the caller is itself inside a tokio runtime.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Error, Result, SqlState};

/// The cold tier's object store.
pub struct ColdStore {
    objects: Arc<dyn ObjectStore>,
    /// Set for a local directory: written files are fsynced there before the manifest names them.
    local_root: Option<PathBuf>,
    /// The URL it was opened from, for a remote store.
    url: Option<String>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ColdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ColdStore({})", self.objects)
    }
}

fn storage_error(e: object_store::Error) -> Error {
    // A full local disk shows as an I/O error somewhere down the chain.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && crate::error::is_disk_full(io)
        {
            return Error::DiskFull(format!("could not write to the cold tier: {io}"));
        }
        cause = c.source();
    }
    Error::Storage(format!("cold tier: {e}"))
}

impl ColdStore {
    /// The cold tier at `url`: a local directory as `file:///dir` or a plain path, or an S3
    /// (or S3-compatible) bucket as `s3://bucket[/prefix]`, configured by the usual `AWS_*`
    /// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, and
    /// `AWS_ENDPOINT` with `AWS_ALLOW_HTTP=true` for a local MinIO, for example).
    pub fn open(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::invalid_input(
                    SqlState::InvalidParameterValue,
                    format!("cold tier URL \"{url}\" names no bucket"),
                ));
            }
            let s3 = AmazonS3Builder::from_env().with_bucket_name(bucket).build().map_err(|e| {
                Error::invalid_input(SqlState::InvalidParameterValue, format!("cold tier URL \"{url}\": {e}"))
            })?;
            let prefix = prefix.trim_matches('/');
            let objects: Arc<dyn ObjectStore> =
                if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix)) };
            let mut store = Self::new(objects, None)?;
            store.url = Some(url.to_string());
            return Ok(store);
        }
        if url.contains("://") && !url.starts_with("file://") {
            return Err(Error::invalid_input(
                SqlState::InvalidParameterValue,
                format!("unsupported cold tier URL \"{url}\": use file:///dir, a path, or s3://bucket/prefix"),
            ));
        }
        Self::local(PathBuf::from(url.strip_prefix("file://").unwrap_or(url)))
    }

    /// A cold tier in a local directory (created if missing).
    pub fn local(root: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&root)?;
        let objects = LocalFileSystem::new_with_prefix(&root).map_err(storage_error)?;
        Self::new(Arc::new(objects), Some(root))
    }

    /// A cold tier in any object store (for example an S3 bucket).
    pub fn new(objects: Arc<dyn ObjectStore>, local_root: Option<PathBuf>) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("asofdb-cold")
            .enable_all()
            .build()?;
        Ok(Self { objects, local_root, url: None, runtime: Some(runtime) })
    }

    /// A description of where files go, for logs and docs.
    pub fn location(&self) -> String {
        match (&self.local_root, &self.url) {
            (Some(root), _) => root.display().to_string(),
            (None, Some(url)) => url.clone(),
            (None, None) => self.objects.to_string(),
        }
    }

    fn wait<T: Send + 'static>(
        &self,
        work: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> Result<T> {
        let runtime = self.runtime.as_ref().ok_or_else(|| Error::internal("cold tier runtime stopped"))?;
        let (reply, outcome) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = reply.send(work.await);
        });
        outcome.recv().map_err(|_| Error::internal("cold tier task lost"))?.map_err(storage_error)
    }

    /// The directory of a local cold tier (`None` for a bucket).
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// Whether the files are on this machine's disk (not in a bucket).
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// Writes a whole object atomically; once this returns the object is durable.
    pub fn put(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        let (objects, location) = (self.objects.clone(), ObjectPath::from(path));
        self.wait(async move { objects.put(&location, PutPayload::from(bytes)).await.map(|_| ()) })?;
        if let Some(root) = &self.local_root {
            // object_store renames a staged file into place but does not fsync it. On disk its
            // name is the object path's, with characters like `~` or `%` percent-encoded.
            let file = root.join(ObjectPath::from(path).as_ref());
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Reads a whole object.
    pub fn get(&self, path: &str) -> Result<Bytes> {
        let (objects, location) = (self.objects.clone(), ObjectPath::from(path));
        self.wait(async move { objects.get(&location).await?.bytes().await })
    }

    /// Removes an object (missing is fine).
    pub fn delete(&self, path: &str) -> Result<()> {
        let (objects, location) = (self.objects.clone(), ObjectPath::from(path));
        self.wait(async move {
            match objects.delete(&location).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        })
    }

    /// Every object's path, as [`ColdStore::put`] was given it (not percent-encoded).
    pub fn list(&self) -> Result<Vec<String>> {
        let objects = self.objects.clone();
        self.wait(async move {
            let metas: Vec<_> = objects.list(None).try_collect().await?;
            Ok(metas.into_iter().map(|m| logical_path(&m.location)).collect())
        })
    }
}

/// The path `put` was given for the object at `location`: object_store percent-encodes some
/// characters of each part (`~`, `%`, `#`, a part that is `..`), which a table's name may hold.
fn logical_path(location: &ObjectPath) -> String {
    let parts: Vec<String> = location
        .parts()
        .map(|part| percent_encoding::percent_decode_str(part.as_ref()).decode_utf8_lossy().into_owned())
        .collect();
    parts.join("/")
}

impl Drop for ColdStore {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's async context panics; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_object_store() {
        let dir = tempfile::tempdir().unwrap();
        let local = ColdStore::open(&format!("file://{}", dir.path().display())).unwrap();
        local.put("t/1.parquet", b"x".to_vec()).unwrap();
        assert_eq!(local.list().unwrap(), vec!["t/1.parquet".to_string()]);
        assert_eq!(local.get("t/1.parquet").unwrap().as_ref(), b"x");

        // Table names become path parts; object_store encodes some of their characters.
        for name in ["a~b", "x%y", "..", "q#r", "c d"] {
            let path = format!("{name}/2.parquet");
            local.put(&path, name.as_bytes().to_vec()).unwrap();
            assert_eq!(local.get(&path).unwrap().as_ref(), name.as_bytes());
            assert!(local.list().unwrap().contains(&path), "{path} in {:?}", local.list());
        }
        // A bucket is configured, not contacted, at open.
        let bucket = ColdStore::open("s3://my-bucket/asofdb/cold").unwrap();
        assert!(bucket.location().contains("my-bucket"), "{}", bucket.location());
        for bad in ["s3://", "gs://bucket/x", "http://host/x"] {
            let err = ColdStore::open(bad).err().unwrap();
            assert_eq!(err.sqlstate(), "22023", "{bad}: {err}");
        }
    }
}
