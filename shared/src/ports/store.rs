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

/// Where a job listing goes on: the creation time and id of the last job of the previous page.
/// Clients see it as an opaque hex string; both stores read and write this one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobCursor {
    pub created_at: DateTime<Utc>,
    pub job_id: JobId,
}

impl JobCursor {
    /// The cursor of the page that follows `last`.
    pub fn after(last: &GenerationJob) -> Self {
        Self {
            created_at: last.created_at,
            job_id: last.job_id,
        }
    }

    pub fn encode(&self) -> String {
        hex::encode(format!(
            "{}|{}",
            self.created_at.timestamp_micros(),
            self.job_id
        ))
    }

    /// Reads a client's cursor; anything this module did not write is [`StoreError::InvalidCursor`].
    pub fn decode(raw: &str) -> Result<Self, StoreError> {
        let raw = String::from_utf8(hex::decode(raw).map_err(|_| StoreError::InvalidCursor)?)
            .map_err(|_| StoreError::InvalidCursor)?;
        let (at, id) = raw.split_once('|').ok_or(StoreError::InvalidCursor)?;
        let created_at = at
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or(StoreError::InvalidCursor)?;
        let job_id = id.parse().map_err(|_| StoreError::InvalidCursor)?;
        Ok(Self { created_at, job_id })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<GenerationJob>,
    pub next_cursor: Option<String>,
}

impl JobPage {
    /// A page of `limit` jobs from a query that asked for one more: when it got it, there is a
    /// next page, which starts after the last job kept.
    pub fn from_overfetched(mut jobs: Vec<GenerationJob>, limit: usize) -> Self {
        let next_cursor = if jobs.len() > limit {
            jobs.truncate(limit);
            jobs.last().map(|last| JobCursor::after(last).encode())
        } else {
            None
        };
        Self { jobs, next_cursor }
    }
}

/// Result of creating jobs under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// The idempotency key was used before, for this job.
    Existing(JobId),
}

/// A state document with the version conditional writes check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: String,
    pub version: u64,
}

/// How long an idempotency key names the job it created.
pub const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

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
    /// used before, nothing is written and the earlier job id is returned. A key is honoured for
    /// [`IDEMPOTENCY_WINDOW`] after the job it created, and only while that job exists.
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
    /// Writes a completed job again (its result naming a format made since); conditional on the
    /// version and on the stored job being completed, and `job` still being so.
    async fn amend_completed_job(&self, job: &GenerationJob) -> Result<(), StoreError>;
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

    /// Adds `delta` (which may be negative) to the counter `key` and returns the new value; the
    /// counter lives until `expires_at` (a fixed window: a minute, a day).
    async fn add_to_counter(
        &self,
        key: &str,
        delta: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<i64, StoreError>;
    /// The counter's value; 0 when it never counted or expired.
    async fn get_counter(&self, key: &str) -> Result<i64, StoreError>;

    /// A small shared state document (a circuit breaker, a set of slots) and its version.
    async fn get_state(&self, key: &str) -> Result<Option<Versioned>, StoreError>;
    /// Writes `state`, conditional on the stored version being `state.version - 1` (on there
    /// being none when `state.version` is 1); [`StoreError::Conflict`] otherwise.
    async fn put_state(&self, key: &str, state: &Versioned) -> Result<(), StoreError>;

    async fn ping(&self) -> Result<(), StoreError>;
}

/// Reads the state document `key` (the default when absent), lets `change` modify it, and writes
/// it back conditionally, starting over when another writer got there first. `change` returns
/// whether it changed anything; nothing is written otherwise. Returns the state as stored.
pub async fn update_state<T, R>(
    store: &dyn Store,
    key: &str,
    mut change: impl FnMut(&mut T) -> (bool, R),
) -> Result<(T, R), StoreError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Default,
{
    const MAX_TRIES: usize = 16;
    for _ in 0..MAX_TRIES {
        let stored = store.get_state(key).await?;
        let (mut state, version) = match &stored {
            Some(v) => (
                serde_json::from_str(&v.value)
                    .map_err(|e| StoreError::Backend(format!("corrupt state {key}: {e}")))?,
                v.version,
            ),
            None => (T::default(), 0),
        };
        let (changed, answer) = change(&mut state);
        if !changed {
            return Ok((state, answer));
        }
        let value = serde_json::to_string(&state)
            .map_err(|e| StoreError::Backend(format!("state {key} not serializable: {e}")))?;
        match store
            .put_state(
                key,
                &Versioned {
                    value,
                    version: version + 1,
                },
            )
            .await
        {
            Ok(()) => return Ok((state, answer)),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

/// Reads the state document `key`, the default when absent.
pub async fn read_state<T>(store: &dyn Store, key: &str) -> Result<T, StoreError>
where
    T: serde::de::DeserializeOwned + Default,
{
    match store.get_state(key).await? {
        Some(v) => serde_json::from_str(&v.value)
            .map_err(|e| StoreError::Backend(format!("corrupt state {key}: {e}"))),
        None => Ok(T::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let cursor = JobCursor {
            created_at: DateTime::from_timestamp_micros(1_795_608_000_123_456).unwrap(),
            job_id: JobId::new(),
        };
        assert_eq!(JobCursor::decode(&cursor.encode()).unwrap(), cursor);
        for raw in [
            "",
            "zz",
            &hex::encode("1|not-an-id"),
            &hex::encode("x|y"),
            &hex::encode(format!("{}", cursor.job_id)),
        ] {
            assert!(
                matches!(JobCursor::decode(raw), Err(StoreError::InvalidCursor)),
                "{raw}"
            );
        }
    }
}
