//! Pieces of the job pipeline several functions share: the queue message that asks the worker
//! to run a job, and the optimistic-concurrency loop every job change goes through.

use crate::domain::{GenerationJob, JobId, TransitionError};
use crate::ports::{QueueError, Store, StoreError, WorkQueue};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the worker is asked to do with a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkStep {
    /// Run the job (submit it to FAL, or generate it with the built-in generator).
    #[default]
    Generate,
    /// Look at the job's FAL request; the `attempt`-th poll, re-enqueued with a growing delay
    /// until the request finishes.
    Poll { attempt: u32 },
    /// FAL signalled (by a verified webhook) that the request finished; look now. `attempt`
    /// counts waits for the submission to be recorded when the webhook overtook it.
    Webhook { attempt: u32 },
}

impl WorkStep {
    fn is_generate(&self) -> bool {
        *self == Self::Generate
    }
}

/// The body of a work-queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkMessage {
    pub job_id: JobId,
    #[serde(default, skip_serializing_if = "WorkStep::is_generate")]
    pub step: WorkStep,
}

impl WorkMessage {
    pub fn generate(job_id: JobId) -> Self {
        Self {
            job_id,
            step: WorkStep::Generate,
        }
    }
}

/// Sends `message` to the worker after `delay` (SQS allows at most 15 minutes).
pub async fn send_work(
    queue: &dyn WorkQueue,
    message: &WorkMessage,
    delay: Duration,
) -> Result<(), QueueError> {
    let body = serde_json::to_string(message).map_err(|e| QueueError::Backend(e.to_string()))?;
    queue
        .send(&body, delay.min(Duration::from_secs(900)))
        .await
        .map(drop)
}

/// Asks the worker to run `job_id`.
pub async fn enqueue_job(queue: &dyn WorkQueue, job_id: JobId) -> Result<(), QueueError> {
    send_work(queue, &WorkMessage::generate(job_id), Duration::ZERO).await
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
