//! An administrator's retry: a failed or cancelled job starts over from the queue (the one way
//! out of a terminal state), and goes to the worker at once if its file is ready.

use super::access::any_job;
use super::enqueue::{Handover, enqueue_if_ready};
use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{GenerationJob, JobId};
use chrono::Utc;

/// The reopened job, and whether it was handed to the worker (its file is ready).
pub async fn retry_job(ctx: &AppContext, id: JobId) -> Result<(GenerationJob, bool), AppError> {
    let job = any_job(ctx, id).await?;
    let reopened = job
        .reopen(Utc::now())
        .map_err(|_| AppError::JobStateConflict {
            job_id: id,
            status: job.status.as_str(),
            action: "retried",
        })?;
    ctx.store.reopen_job(&reopened).await?;
    let enqueued = enqueue_if_ready(ctx, &reopened).await? == Handover::Enqueued;
    tracing::info!(job_id = %id, enqueued, "job retried by an administrator");
    Ok((reopened, enqueued))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::enqueue::WorkMessage;
    use crate::app::testing::{
        completed, context, drain, pending_file, queued_job, ready_file, stored,
    };
    use crate::domain::models::RELIEF_MODEL;
    use crate::domain::{JobError, JobStatus};

    #[tokio::test]
    async fn failed_and_cancelled_jobs_start_over_and_go_to_the_worker_when_their_file_is_ready() {
        let t = context();
        let now = Utc::now();
        let failed = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        t.store
            .update_job(
                &failed
                    .fail(
                        JobError::new(crate::domain::JobErrorCode::GenerationFailed, "boom"),
                        now,
                    )
                    .unwrap(),
            )
            .await
            .unwrap();
        let (reopened, enqueued) = retry_job(&t, failed.job_id).await.unwrap();
        assert!(enqueued);
        assert_eq!(
            (reopened.status, reopened.attempts, &reopened.error),
            (JobStatus::Queued, 0, &None)
        );
        assert_eq!(stored(&t, &failed).await, reopened);
        assert_eq!(drain(&t).await, [WorkMessage::generate(failed.job_id)]);

        let waiting = queued_job(&t, &pending_file(&t, "alice").await, RELIEF_MODEL).await;
        t.store
            .update_job(&waiting.cancel(now).unwrap())
            .await
            .unwrap();
        let (_, enqueued) = retry_job(&t, waiting.job_id).await.unwrap();
        assert!(!enqueued, "ingestion releases it");
        assert!(drain(&t).await.is_empty());
    }

    #[tokio::test]
    async fn live_or_completed_jobs_cannot_be_retried() {
        let t = context();
        let queued = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        let err = retry_job(&t, queued.job_id).await.unwrap_err();
        assert!(
            matches!(
                err,
                AppError::JobStateConflict {
                    status: "queued",
                    action: "retried",
                    ..
                }
            ),
            "{err:?}"
        );
        completed(&t, &queued).await;
        let err = retry_job(&t, queued.job_id).await.unwrap_err();
        assert!(
            matches!(
                err,
                AppError::JobStateConflict {
                    status: "completed",
                    ..
                }
            ),
            "{err:?}"
        );
        let missing = JobId::new();
        assert!(
            matches!(retry_job(&t, missing).await, Err(AppError::JobNotFound(id)) if id == missing)
        );
    }
}
