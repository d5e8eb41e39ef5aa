//! Pieces of the job pipeline several functions share: the queue message that asks the worker
//! to run a job, and the optimistic-concurrency loop every job change goes through.

use crate::domain::{GenerationJob, JobId, TransitionError};
use crate::ports::{QueueError, Store, StoreError, WorkQueue};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The body of a work-queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkMessage {
    pub job_id: JobId,
}

/// Asks the worker to run `job_id`.
pub async fn enqueue_job(queue: &dyn WorkQueue, job_id: JobId) -> Result<(), QueueError> {
    let body = serde_json::to_string(&WorkMessage { job_id })
        .map_err(|e| QueueError::Backend(e.to_string()))?;
    queue.send(&body, Duration::ZERO).await.map(drop)
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("job not found")]
    NotFound,
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the job kept changing under us")]
    Contended,
}

const MAX_TRIES: usize = 8;

/// Reads the job, asks `change` for its next version and writes it conditionally, starting over
/// when another writer got there first. `change` returns `Ok(None)` when there is nothing to do;
/// the job as stored is then returned unchanged.
pub async fn update_job<F>(
    store: &dyn Store,
    id: JobId,
    mut change: F,
) -> Result<GenerationJob, UpdateError>
where
    F: FnMut(&GenerationJob) -> Result<Option<GenerationJob>, TransitionError>,
{
    for _ in 0..MAX_TRIES {
        let current = store.get_job(id).await?.ok_or(UpdateError::NotFound)?;
        let Some(next) = change(&current)? else {
            return Ok(current);
        };
        match store.update_job(&next).await {
            Ok(()) => return Ok(next),
            Err(StoreError::Conflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(UpdateError::Contended)
}

/// Fails a job with `error` unless it already ended; returns the job as stored afterwards.
pub async fn fail_job(
    store: &dyn Store,
    id: JobId,
    error: &crate::domain::JobError,
) -> Result<GenerationJob, UpdateError> {
    let now = chrono::Utc::now();
    update_job(store, id, |job| {
        if job.status.is_terminal() {
            Ok(None)
        } else {
            job.fail(error.clone(), now).map(Some)
        }
    })
    .await
}
