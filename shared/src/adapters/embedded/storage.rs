//! Object storage in a directory: each object's bytes under `data/`, its content type in a
//! sidecar under `meta/`, written atomically through `tmp/`. Presigned URLs come from the
//! [`UrlSigner`], whose secret lives in the directory so URLs survive restarts.

use super::object_key::validate_key;
use super::url_signer::UrlSigner;
use crate::ports::storage::{
    ObjectMeta, ObjectStorage, PresignedPost, PresignedRequest, StorageError, StorageLocation,
    expiry_from_now,
};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone)]
pub struct DiskStorage {
    root: PathBuf,
    signer: UrlSigner,
}

#[derive(Serialize, Deserialize)]
struct SidecarMeta {
    content_type: String,
}

impl DiskStorage {
    /// Opens (creating if needed) storage under `root`; signed URLs start with `base_url`.
    pub fn open(root: &Path, base_url: &str) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root.join("data"))?;
        std::fs::create_dir_all(root.join("meta"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        // Nothing writes before the storage is open: whatever is in tmp/ was cut short.
        let removed = remove_temp_files(&root.join("tmp"), Duration::ZERO)?;
        if removed > 0 {
            tracing::warn!(removed, "partial writes from an earlier run removed");
        }
        let secret_path = root.join("signing.key");
        let secret = match std::fs::read(&secret_path) {
            Ok(secret) if secret.len() >= 32 => secret,
            _ => {
                let secret = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                )
                .into_bytes();
                write_atomically(&root.join("tmp"), &secret_path, &secret)?;
                secret
            }
        };
        Ok(Self {
            root: root.to_owned(),
            signer: UrlSigner::new(secret, base_url),
        })
    }

    /// Stores `bytes` at `key` unless an object is there already (then nothing is written and the
    /// answer is `false`): two writers of one key cannot both succeed, which is how one upload
    /// grant writes one object once.
    pub async fn put_new(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<bool, StorageError> {
        let data = self.data_path(key)?;
        let meta = self.meta_path(key)?;
        let tmp_dir = self.root.join("tmp");
        let sidecar = serde_json::to_vec(&SidecarMeta {
            content_type: content_type.to_owned(),
        })
        .map_err(|e| StorageError::Backend(e.to_string()))?;
        blocking_io(move || {
            create_parents(&[&data, &meta])?;
            let sidecar = temp_file(&tmp_dir, &sidecar)?;
            let bytes = temp_file(&tmp_dir, &bytes)?;
            // A hard link fails if the name exists: the one atomic "create if absent".
            match std::fs::hard_link(bytes.path(), &data) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(e.into()),
            }
            if let Err(e) = sidecar.persist(&meta) {
                // Bytes without their type are no object: take the link back.
                let _ = std::fs::remove_file(&data);
                return Err(e.error.into());
            }
            Ok(true)
        })
        .await
    }

    /// Removes partial writes (temp files) older than `older_than`; a write in progress is
    /// younger. Returns how many were removed.
    pub async fn remove_stale_temp_files(
        &self,
        older_than: Duration,
    ) -> Result<usize, StorageError> {
        let tmp_dir = self.root.join("tmp");
        blocking_io(move || remove_temp_files(&tmp_dir, older_than)).await
    }

    /// The signer of this storage's URLs (the local server verifies requests with it).
    pub fn signer(&self) -> &UrlSigner {
        &self.signer
    }

    fn data_path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join("data").join(key))
    }

    fn meta_path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join("meta").join(format!("{key}.json")))
    }
}

/// Removes the files of `tmp_dir` last modified more than `older_than` ago.
fn remove_temp_files(tmp_dir: &Path, older_than: Duration) -> Result<usize, StorageError> {
    let mut removed = 0;
    for entry in std::fs::read_dir(tmp_dir)? {
        let entry = entry?;
        let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
        if age >= older_than {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(removed)
}

fn write_atomically(tmp_dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    create_parents(&[target])?;
    temp_file(tmp_dir, bytes)?
        .persist(target)
        .map(drop)
        .map_err(|e| e.error)
}

fn create_parents(paths: &[&Path]) -> std::io::Result<()> {
    for parent in paths.iter().filter_map(|p| p.parent()) {
        std::fs::create_dir_all(parent)?;
    }
    Ok(())
}

/// A file under `tmp/` holding `bytes`, removed when dropped unless it was persisted (moved into
/// place): a write cut short by a full disk leaves nothing behind.
fn temp_file(tmp_dir: &Path, bytes: &[u8]) -> std::io::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::NamedTempFile::new_in(tmp_dir)?;
    file.write_all(bytes)?;
    Ok(file)
}

async fn blocking_io<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Backend(e.to_string()))?
}

fn not_found_as(key: &str, err: std::io::Error) -> StorageError {
    if err.kind() == std::io::ErrorKind::NotFound {
        StorageError::NotFound(key.to_owned())
    } else {
        StorageError::Io(err)
    }
}

#[async_trait]
impl ObjectStorage for DiskStorage {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), StorageError> {
        let data = self.data_path(key)?;
        let meta = self.meta_path(key)?;
        let tmp = self.root.join("tmp");
        let sidecar = serde_json::to_vec(&SidecarMeta {
            content_type: content_type.to_owned(),
        })
        .map_err(|e| StorageError::Backend(e.to_string()))?;
        blocking_io(move || {
            create_parents(&[&data, &meta])?;
            // Both written before either is moved into place: a full disk changes nothing.
            let sidecar = temp_file(&tmp, &sidecar)?;
            let bytes = temp_file(&tmp, &bytes)?;
            bytes.persist(&data).map_err(|e| e.error)?;
            sidecar.persist(&meta).map_err(|e| e.error)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let data = self.data_path(key)?;
        let key = key.to_owned();
        blocking_io(move || {
            std::fs::read(&data)
                .map(Bytes::from)
                .map_err(|e| not_found_as(&key, e))
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        let data = self.data_path(key)?;
        let meta = self.meta_path(key)?;
        let key = key.to_owned();
        blocking_io(move || {
            let stat = match std::fs::metadata(&data) {
                Ok(stat) => stat,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let content_type = std::fs::read(&meta)
                .ok()
                .and_then(|raw| serde_json::from_slice::<SidecarMeta>(&raw).ok())
                .map(|m| m.content_type)
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            Ok(Some(ObjectMeta {
                key,
                size: stat.len(),
                content_type,
                last_modified: stat.modified().map(DateTime::<Utc>::from)?,
            }))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let data = self.data_path(key)?;
        let meta = self.meta_path(key)?;
        blocking_io(move || {
            for path in [data, meta] {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let root = self.root.join("data");
        let prefix = prefix.to_owned();
        let keys = blocking_io(move || {
            let mut keys = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                for entry in entries {
                    let path = entry?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if let Ok(rel) = path.strip_prefix(&root) {
                        let key = rel.to_string_lossy().replace('\\', "/");
                        if key.starts_with(&prefix) {
                            keys.push(key);
                        }
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(meta) = self.head(&key).await? {
                out.push(meta);
            }
        }
        Ok(out)
    }

    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        validate_key(key)?;
        let expires_at = expiry_from_now(expires_in);
        Ok(PresignedRequest {
            url: self.signer.signed_url(
                "PUT",
                key,
                expires_at,
                Some(content_type),
                Some(content_length),
                None,
            ),
            method: "PUT",
            headers: BTreeMap::from([
                ("Content-Type".to_owned(), content_type.to_owned()),
                ("Content-Length".to_owned(), content_length.to_string()),
            ]),
            expires_at,
        })
    }

    async fn presign_post(
        &self,
        key: &str,
        content_type: &str,
        max_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedPost, StorageError> {
        validate_key(key)?;
        let expires_at = expiry_from_now(expires_in);
        Ok(PresignedPost {
            url: self.signer.post_url(),
            method: "POST",
            fields: self
                .signer
                .post_fields(key, content_type, max_length, expires_at),
            expires_at,
        })
    }

    async fn presign_get(
        &self,
        key: &str,
        download_name: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        validate_key(key)?;
        let expires_at = expiry_from_now(expires_in);
        Ok(PresignedRequest {
            url: self
                .signer
                .signed_url("GET", key, expires_at, None, None, Some(download_name)),
            method: "GET",
            headers: BTreeMap::new(),
            expires_at,
        })
    }

    async fn ping(&self) -> Result<(), StorageError> {
        let root = self.root.clone();
        // A probe file of its own per check, so that checks at once never delete each other's;
        // removed even when the write failed halfway (a full disk keeps no probe).
        let probe = root
            .join("tmp")
            .join(format!(".ping-{}", uuid::Uuid::new_v4().simple()));
        blocking_io(move || {
            let written = std::fs::write(&probe, b"ok");
            let removed = std::fs::remove_file(&probe);
            written?;
            removed?;
            Ok(())
        })
        .await
    }

    fn location(&self) -> StorageLocation {
        StorageLocation::Directory(self.root.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readiness probes at once never make each other fail, and leave nothing behind.
    #[tokio::test]
    async fn concurrent_pings_never_collide() {
        let (dir, storage) = storage();
        for _ in 0..10 {
            let pings = (0..100).map(|_| storage.ping());
            let failed = futures_util::future::join_all(pings)
                .await
                .into_iter()
                .filter(Result::is_err)
                .count();
            assert_eq!(failed, 0);
        }
        let left = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
        assert_eq!(left, 0, "probe files left behind");
    }

    fn storage() -> (tempfile::TempDir, DiskStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = DiskStorage::open(dir.path(), "http://127.0.0.1:1").unwrap();
        (dir, storage)
    }

    fn split(url: &str) -> (String, String) {
        let rest = url
            .split_once(super::super::url_signer::SIGNED_URL_PREFIX)
            .unwrap()
            .1;
        let (key, query) = rest.split_once('?').unwrap();
        let key = percent_encoding::percent_decode_str(key)
            .decode_utf8()
            .unwrap();
        (key.into_owned(), query.to_owned())
    }

    #[tokio::test]
    async fn put_get_head_list_delete() {
        let (_dir, s) = storage();
        s.put("uploads/alice/a", Bytes::from_static(b"hello"), "image/png")
            .await
            .unwrap();
        assert_eq!(
            s.get("uploads/alice/a").await.unwrap(),
            Bytes::from_static(b"hello")
        );
        let meta = s.head("uploads/alice/a").await.unwrap().unwrap();
        assert_eq!((meta.size, meta.content_type.as_str()), (5, "image/png"));
        assert_eq!(s.list("uploads/").await.unwrap().len(), 1);
        assert!(s.list("results/").await.unwrap().is_empty());
        s.delete("uploads/alice/a").await.unwrap();
        s.delete("uploads/alice/a").await.unwrap();
        assert!(s.head("uploads/alice/a").await.unwrap().is_none());
        assert!(matches!(
            s.get("uploads/alice/a").await,
            Err(StorageError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_new_object_is_written_once_and_partial_writes_go() {
        let (dir, s) = storage();
        assert!(
            s.put_new("uploads/u/f", Bytes::from_static(b"one"), "image/png")
                .await
                .unwrap()
        );
        assert!(
            !s.put_new("uploads/u/f", Bytes::from_static(b"two"), "text/html")
                .await
                .unwrap()
        );
        assert_eq!(
            s.get("uploads/u/f").await.unwrap(),
            Bytes::from_static(b"one")
        );
        let meta = s.head("uploads/u/f").await.unwrap().unwrap();
        assert_eq!(meta.content_type, "image/png");
        let tmp = dir.path().join("tmp");
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "no temp file left"
        );

        std::fs::write(tmp.join("cut-short"), b"partial").unwrap();
        assert_eq!(
            s.remove_stale_temp_files(Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        assert_eq!(s.remove_stale_temp_files(Duration::ZERO).await.unwrap(), 1);
        std::fs::write(tmp.join("from-a-crash"), b"partial").unwrap();
        drop(DiskStorage::open(dir.path(), "http://x").unwrap());
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "opening removes them"
        );
    }

    #[tokio::test]
    async fn refuses_keys_that_escape_the_root() {
        let (_dir, s) = storage();
        for key in ["../x", "a/../../x", "/abs", "a//b", "a/./b", "a\0b", ""] {
            assert!(
                matches!(
                    s.put(key, Bytes::new(), "x").await,
                    Err(StorageError::InvalidKey(_))
                ),
                "{key:?}"
            );
        }
    }

    #[tokio::test]
    async fn presigned_requests_carry_what_the_signer_checks() {
        let (_dir, s) = storage();
        let put = s
            .presign_put("uploads/u/f", "image/png", 42, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(put.headers["Content-Length"], "42");
        let (key, query) = split(&put.url);
        let grant = s.signer().verify("PUT", &key, &query, Utc::now()).unwrap();
        assert_eq!(
            (grant.content_type.as_deref(), grant.content_length),
            (Some("image/png"), Some(42))
        );
        let post = s
            .presign_post("uploads/u/f", "image/png", 100, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(post.method, "POST");
        assert!(s.signer().verify_post(&post.fields, Utc::now()).is_ok());
        assert!(matches!(
            s.presign_get("../x", "x", Duration::from_secs(60)).await,
            Err(StorageError::InvalidKey(_))
        ));
    }

    #[tokio::test]
    async fn signing_secret_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let first = DiskStorage::open(dir.path(), "http://x").unwrap();
        let url = first
            .presign_get("results/a/b.glb", "b.glb", Duration::from_secs(60))
            .await
            .unwrap()
            .url;
        let second = DiskStorage::open(dir.path(), "http://x").unwrap();
        let (key, query) = split(&url);
        assert!(
            second
                .signer()
                .verify("GET", &key, &query, Utc::now())
                .is_ok()
        );
    }
}
