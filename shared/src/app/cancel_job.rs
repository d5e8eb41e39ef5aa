//! A user's cancellation of one of its jobs. A job that already ended cannot be cancelled; a
//! running worker notices and discards its result, and a job at FAL is cancelled there by the
//! worker's next look.

use super::access::owned_job;
use super::error::AppError;
use super::job_update::update_job;
use crate::context::AppContext;
use crate::domain::{GenerationJob, JobId};
use crate::keys::Caller;
use chrono::Utc;

pub async fn cancel_job(
    ctx: &AppContext,
    caller: &Caller,
    id: JobId,
) -> Result<GenerationJob, AppError> {
    owned_job(ctx, caller, id).await?;
    let now = Utc::now();
    match update_job(ctx, id, |job| job.cancel(now).map(Some)).await {
        Ok(job) => {
            tracing::info!(job_id = %id, "job cancelled");
            Ok(job)
        }
        Err(AppError::Transition(_)) => {
            let status = ctx
                .store
                .get_job(id)
                .await?
                .map_or("deleted", |j| j.status.as_str());
            Err(AppError::JobStateConflict {
                job_id: id,
                status,
                action: "cancelled",
            })
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{caller, context, queued_job, ready_file, stored};
    use crate::domain::JobStatus;
    use crate::domain::models::RELIEF_MODEL;

    #[tokio::test]
    async fn owners_cancel_their_live_jobs_once_and_no_one_elses() {
        let t = context();
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        let err = cancel_job(&t, &caller("bob"), job.job_id)
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::JobNotFound(id) if id == job.job_id));
        assert_eq!(stored(&t, &job).await.status, JobStatus::Queued);

        let cancelled = cancel_job(&t, &caller("alice"), job.job_id).await.unwrap();
        assert_eq!(cancelled.status, JobStatus::Cancelled);
        assert_eq!(stored(&t, &job).await, cancelled);
        let err = cancel_job(&t, &caller("alice"), job.job_id)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                AppError::JobStateConflict {
                    status: "cancelled",
                    action: "cancelled",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
