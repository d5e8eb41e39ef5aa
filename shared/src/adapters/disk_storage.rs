//! Object storage in a directory, with HMAC-SHA256 signed, expiring URLs that the local server
//! serves. A signed PUT fixes the content type and exact length; a signed GET fixes the
//! download filename. The signing secret lives in the data directory so URLs survive restarts.

use crate::ports::storage::{
    ObjectMeta, ObjectStorage, PresignedPost, PresignedRequest, StorageError, expiry_from_now,
    key_prefix,
};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The path prefix under which the local server serves signed URLs.
pub const SIGNED_URL_PREFIX: &str = "/local-storage/";
/// The path of the local server's form-upload endpoint (the stand-in for S3's POST).
pub const FORM_UPLOAD_PATH: &str = "/local-storage";

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct DiskStorage {
    root: PathBuf,
    base_url: String,
    secret: Vec<u8>,
}

/// Why a signed URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedUrlError {
    #[error("the URL is not a complete signed URL")]
    Malformed,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the URL expired")]
    Expired,
}

/// What a verified signed URL allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedGrant {
    pub method: String,
    pub key: String,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub download_name: Option<String>,
}

/// What a verified form-upload policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPostGrant {
    pub key_prefix: String,
    pub content_type: String,
    pub max_length: u64,
}

#[derive(Deserialize)]
struct SignedQuery {
    method: String,
    expires: i64,
    content_type: Option<String>,
    content_length: Option<u64>,
    download_name: Option<String>,
    signature: String,
}

#[derive(serde::Serialize, Deserialize)]
struct SidecarMeta {
    content_type: String,
}

impl DiskStorage {
    /// Opens (creating if needed) storage under `root`; URLs start with `base_url`.
    pub fn open(root: &Path, base_url: &str) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root.join("data"))?;
        std::fs::create_dir_all(root.join("meta"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
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
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret,
        })
    }

    fn data_path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join("data").join(key))
    }

    fn meta_path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join("meta").join(format!("{key}.json")))
    }

    fn sign(&self, parts: &[&str]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts any key size");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        hex::encode(mac.finalize().into_bytes())
    }

    fn signed_url(
        &self,
        method: &'static str,
        key: &str,
        expires_at: DateTime<Utc>,
        content_type: Option<&str>,
        content_length: Option<u64>,
        download_name: Option<&str>,
    ) -> String {
        let expires = expires_at.timestamp().to_string();
        let length = content_length.map(|n| n.to_string());
        let signature = self.sign(&[
            method,
            key,
            &expires,
            content_type.unwrap_or_default(),
            length.as_deref().unwrap_or_default(),
            download_name.unwrap_or_default(),
        ]);
        let mut query = vec![("method", method.to_owned()), ("expires", expires)];
        if let Some(ct) = content_type {
            query.push(("content_type", ct.to_owned()));
        }
        if let Some(len) = length {
            query.push(("content_length", len));
        }
        if let Some(name) = download_name {
            query.push(("download_name", name.to_owned()));
        }
        query.push(("signature", signature));
        let query = serde_urlencoded::to_string(query).unwrap_or_default();
        let path: Vec<String> = key
            .split('/')
            .map(|s| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string())
            .collect();
        format!(
            "{}{}{}?{}",
            self.base_url,
            SIGNED_URL_PREFIX,
            path.join("/"),
            query
        )
    }

    /// Checks the signed fields of a form upload (every field but the file).
    pub fn verify_post(
        &self,
        fields: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<SignedPostGrant, SignedUrlError> {
        let field = |name: &str| fields.get(name).ok_or(SignedUrlError::Malformed);
        let (prefix, content_type) = (field("key_prefix")?, field("Content-Type")?);
        let (expires, max_length) = (field("expires")?, field("max_length")?);
        let expected =
            hex::decode(self.sign(&["POST", prefix, expires, content_type, max_length, ""]))
                .map_err(|_| SignedUrlError::BadSignature)?;
        let given = hex::decode(field("signature")?).map_err(|_| SignedUrlError::BadSignature)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_slice(),
            expected.as_slice(),
        )) {
            return Err(SignedUrlError::BadSignature);
        }
        let expires: i64 = expires.parse().map_err(|_| SignedUrlError::Malformed)?;
        if now.timestamp() > expires {
            return Err(SignedUrlError::Expired);
        }
        Ok(SignedPostGrant {
            key_prefix: prefix.clone(),
            content_type: content_type.clone(),
            max_length: max_length.parse().map_err(|_| SignedUrlError::Malformed)?,
        })
    }

    /// Checks a signed request for `method` on `key` with the raw query string.
    pub fn verify(
        &self,
        method: &str,
        key: &str,
        raw_query: &str,
        now: DateTime<Utc>,
    ) -> Result<SignedGrant, SignedUrlError> {
        let query: SignedQuery =
            serde_urlencoded::from_str(raw_query).map_err(|_| SignedUrlError::Malformed)?;
        if validate_key(key).is_err() {
            return Err(SignedUrlError::Malformed);
        }
        let length = query.content_length.map(|n| n.to_string());
        let expected = self.sign(&[
            &query.method,
            key,
            &query.expires.to_string(),
            query.content_type.as_deref().unwrap_or_default(),
            length.as_deref().unwrap_or_default(),
            query.download_name.as_deref().unwrap_or_default(),
        ]);
        let given = hex::decode(&query.signature).map_err(|_| SignedUrlError::BadSignature)?;
        let expected = hex::decode(expected).map_err(|_| SignedUrlError::BadSignature)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_slice(),
            expected.as_slice(),
        )) || query.method != method
        {
            return Err(SignedUrlError::BadSignature);
        }
        if now.timestamp() > query.expires {
            return Err(SignedUrlError::Expired);
        }
        Ok(SignedGrant {
            method: query.method,
            key: key.to_owned(),
            content_type: query.content_type,
            content_length: query.content_length,
            download_name: query.download_name,
        })
    }
}

/// Keys are `/`-separated segments of `[A-Za-z0-9._-]`, never `.` or `..`.
fn validate_key(key: &str) -> Result<(), StorageError> {
    let valid = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        });
    if valid {
        Ok(())
    } else {
        Err(StorageError::InvalidKey(key.to_owned()))
    }
}

fn write_atomically(tmp_dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, target)
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
            write_atomically(&tmp, &meta, &sidecar)?;
            write_atomically(&tmp, &data, &bytes)?;
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
        let url = self.signed_url(
            "PUT",
            key,
            expires_at,
            Some(content_type),
            Some(content_length),
            None,
        );
        Ok(PresignedRequest {
            url,
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
        let (prefix, expires, max) = (
            key_prefix(key),
            expires_at.timestamp().to_string(),
            max_length.to_string(),
        );
        let signature = self.sign(&["POST", prefix, &expires, content_type, &max, ""]);
        let fields = BTreeMap::from([
            ("key".to_owned(), key.to_owned()),
            ("key_prefix".to_owned(), prefix.to_owned()),
            ("Content-Type".to_owned(), content_type.to_owned()),
            ("expires".to_owned(), expires),
            ("max_length".to_owned(), max),
            ("signature".to_owned(), signature),
        ]);
        Ok(PresignedPost {
            url: format!("{}{FORM_UPLOAD_PATH}", self.base_url),
            method: "POST",
            fields,
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
        let url = self.signed_url("GET", key, expires_at, None, None, Some(download_name));
        Ok(PresignedRequest {
            url,
            method: "GET",
            headers: BTreeMap::new(),
            expires_at,
        })
    }

    async fn ping(&self) -> Result<(), StorageError> {
        let root = self.root.clone();
        blocking_io(move || {
            let probe = root.join("tmp").join(".ping");
            std::fs::write(&probe, b"ok")?;
            std::fs::remove_file(&probe)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (tempfile::TempDir, DiskStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = DiskStorage::open(dir.path(), "http://127.0.0.1:1").unwrap();
        (dir, storage)
    }

    fn split(url: &str) -> (String, String) {
        let rest = url.split_once(SIGNED_URL_PREFIX).unwrap().1;
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
    async fn signed_urls_verify_and_refuse_tampering_and_expiry() {
        let (_dir, s) = storage();
        let put = s
            .presign_put("uploads/u/f", "image/png", 42, Duration::from_secs(60))
            .await
            .unwrap();
        let (key, query) = split(&put.url);
        let grant = s.verify("PUT", &key, &query, Utc::now()).unwrap();
        assert_eq!(grant.content_type.as_deref(), Some("image/png"));
        assert_eq!(grant.content_length, Some(42));

        assert_eq!(
            s.verify("GET", &key, &query, Utc::now()),
            Err(SignedUrlError::BadSignature)
        );
        assert_eq!(
            s.verify("PUT", "uploads/u/g", &query, Utc::now()),
            Err(SignedUrlError::BadSignature)
        );
        let longer = query.replace("content_length=42", "content_length=43");
        assert_eq!(
            s.verify("PUT", &key, &longer, Utc::now()),
            Err(SignedUrlError::BadSignature)
        );
        let later = Utc::now() + chrono::Duration::seconds(61);
        assert_eq!(
            s.verify("PUT", &key, &query, later),
            Err(SignedUrlError::Expired)
        );
        assert_eq!(
            s.verify("PUT", &key, "method=PUT", Utc::now()),
            Err(SignedUrlError::Malformed)
        );

        let get = s
            .presign_get("results/j/model.glb", "model.glb", Duration::from_secs(60))
            .await
            .unwrap();
        let (key, query) = split(&get.url);
        let grant = s.verify("GET", &key, &query, Utc::now()).unwrap();
        assert_eq!(grant.download_name.as_deref(), Some("model.glb"));
    }

    #[tokio::test]
    async fn form_policies_verify_and_refuse_tampering_and_expiry() {
        let (_dir, s) = storage();
        let post = s
            .presign_post("uploads/u/f", "image/png", 100, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            (post.method, post.fields["key_prefix"].as_str()),
            ("POST", "uploads/u/")
        );
        let grant = s.verify_post(&post.fields, Utc::now()).unwrap();
        assert_eq!(
            (grant.content_type.as_str(), grant.max_length),
            ("image/png", 100)
        );
        for (field, value) in [
            ("max_length", "1000"),
            ("Content-Type", "text/html"),
            ("key_prefix", "uploads/"),
        ] {
            let mut tampered = post.fields.clone();
            tampered.insert(field.to_owned(), value.to_owned());
            assert_eq!(
                s.verify_post(&tampered, Utc::now()),
                Err(SignedUrlError::BadSignature),
                "{field}"
            );
        }
        let later = Utc::now() + chrono::Duration::seconds(61);
        assert_eq!(
            s.verify_post(&post.fields, later),
            Err(SignedUrlError::Expired)
        );
        let mut missing = post.fields.clone();
        missing.remove("signature");
        assert_eq!(
            s.verify_post(&missing, Utc::now()),
            Err(SignedUrlError::Malformed)
        );
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
        assert!(second.verify("GET", &key, &query, Utc::now()).is_ok());
    }
}
