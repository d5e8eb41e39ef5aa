//! Object storage: uploaded images and generated models, plus presigned URLs so browsers move
//! bytes directly to and from storage.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {0} not found")]
    NotFound(String),
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage backend failed: {0}")]
    Backend(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub content_type: String,
    pub last_modified: DateTime<Utc>,
}

/// A request a client makes on its own: method, URL and the headers it must send unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PresignedRequest {
    pub url: String,
    /// `PUT`.
    #[schema(value_type = String, example = "PUT")]
    pub method: &'static str,
    /// Headers to send exactly as given.
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// A browser form upload: POST `url` as `multipart/form-data` with every field of `fields`,
/// then the file as the last part, named `file`. The signed policy fixes the exact key, the
/// content type and the allowed length range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PresignedPost {
    pub url: String,
    /// `POST`.
    #[schema(value_type = String, example = "POST")]
    pub method: &'static str,
    /// Form fields to send before the file.
    pub fields: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// Where objects live: a directory on this machine, or a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageLocation {
    /// Objects are files under this directory (its file system can be measured).
    Directory(std::path::PathBuf),
    /// Objects are in this S3 bucket (no disk to measure).
    Bucket(String),
}

impl StorageLocation {
    /// How a prefix of the storage is named to an operator: a path, or an `s3://` URL.
    pub fn describe(&self, prefix: &str) -> String {
        match self {
            Self::Directory(root) => root.join("data").join(prefix).display().to_string(),
            Self::Bucket(bucket) => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// When a URL signed now for `expires_in` expires, in whole seconds (as signatures carry it).
pub fn expiry_from_now(expires_in: Duration) -> DateTime<Utc> {
    let secs = i64::try_from(expires_in.as_secs()).unwrap_or(i64::MAX / 2);
    DateTime::from_timestamp(Utc::now().timestamp().saturating_add(secs), 0).unwrap_or_default()
}

#[async_trait]
pub trait ObjectStorage: Send + Sync {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), StorageError>;
    async fn get(&self, key: &str) -> Result<Bytes, StorageError>;
    /// `None` when the object does not exist.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError>;
    /// Deleting a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Objects under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError>;
    /// A PUT URL that only accepts exactly `content_length` bytes of `content_type`.
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError>;
    /// A POST form for `key`: a policy with exactly that key, `content_type` and
    /// `content-length-range` 1..=`max_length`.
    async fn presign_post(
        &self,
        key: &str,
        content_type: &str,
        max_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedPost, StorageError>;
    /// A GET URL that downloads the object as an attachment named `download_name`.
    async fn presign_get(
        &self,
        key: &str,
        download_name: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError>;
    /// A cheap round trip proving the backend answers.
    async fn ping(&self) -> Result<(), StorageError>;
    /// Where the objects live.
    fn location(&self) -> StorageLocation;
}
