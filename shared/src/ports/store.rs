//! The job and file store. Every state change is conditional: creates fail on existing ids,
//! updates carry the version they expect, and the store itself refuses an update that would
//! move progress backwards or leave a terminal state.

use crate::domain::{Batch, BatchId, FileId, GenerationJob, JobId, JobStatus, UploadedFile};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("record already exists")]
    AlreadyExists,
    /// The expected version did not match, or the change breaks a store invariant.
    #[error("conditional update failed")]
    Conflict,
    #[error("invalid pagination cursor")]
    InvalidCursor,
    #[error("store backend failed: {0}")]
    Backend(String),
}

/// A filtered, paginated listing of jobs, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    /// `None` lists every owner (administrators).
    pub owner: Option<String>,
    pub status: Option<JobStatus>,
    pub limit: usize,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<GenerationJob>,
    pub next_cursor: Option<String>,
}

/// Result of creating jobs under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// The idempotency key was used before, for this job.
    Existing(JobId),
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn create_file(&self, file: &UploadedFile) -> Result<(), StoreError>;
    async fn get_file(&self, id: FileId) -> Result<Option<UploadedFile>, StoreError>;
    /// Replaces the file if the stored version is `file.version - 1`.
    async fn update_file(&self, file: &UploadedFile) -> Result<(), StoreError>;
    async fn delete_file(&self, id: FileId) -> Result<(), StoreError>;
    /// Files created before `before`, oldest first.
    async fn list_files_created_before(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UploadedFile>, StoreError>;
    /// Pending files created before `before`, oldest first.
    async fn list_pending_files(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UploadedFile>, StoreError>;

    /// Creates jobs (and their batch) atomically. With an idempotency key `(owner, key)` that was
    /// used before, nothing is written and the earlier job id is returned.
    async fn create_jobs(
        &self,
        jobs: &[GenerationJob],
        batch: Option<&Batch>,
        idempotency_key: Option<&str>,
    ) -> Result<CreateOutcome, StoreError>;
    async fn get_job(&self, id: JobId) -> Result<Option<GenerationJob>, StoreError>;
    /// Replaces the job if the stored version is `job.version - 1`, the stored job is not
    /// terminal and the stored progress is not above the new one.
    async fn update_job(&self, job: &GenerationJob) -> Result<(), StoreError>;
    /// Puts a failed or cancelled job back in the queue (an administrator's retry); conditional
    /// on the version and on the stored job being failed or cancelled.
    async fn reopen_job(&self, job: &GenerationJob) -> Result<(), StoreError>;
    async fn delete_job(&self, id: JobId) -> Result<(), StoreError>;
    async fn list_jobs(&self, query: &JobQuery) -> Result<JobPage, StoreError>;
    /// Jobs in `status` last updated before `updated_before`, oldest update first.
    async fn list_jobs_by_status(
        &self,
        status: JobStatus,
        updated_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<GenerationJob>, StoreError>;
    async fn list_jobs_for_file(&self, file_id: FileId) -> Result<Vec<GenerationJob>, StoreError>;
    async fn count_jobs_by_status(&self) -> Result<BTreeMap<JobStatus, u64>, StoreError>;

    async fn get_batch(&self, id: BatchId) -> Result<Option<Batch>, StoreError>;
    async fn delete_batch(&self, id: BatchId) -> Result<(), StoreError>;

    /// Adds one to the counter `key` and returns the new value; the counter lives until
    /// `expires_at` (a fixed rate-limit window).
    async fn increment_counter(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    async fn ping(&self) -> Result<(), StoreError>;
}
