//! An administrator's deletion of a job: a live job is cancelled first (so a running worker
//! discards its result instead of completing), then its model (with its preview and conversions) and its record are deleted.

use super::access::any_job;
use super::error::AppError;
use super::job_update::update_job;
use crate::context::AppContext;
use crate::domain::{JobId, JobResult, JobStatus};
use chrono::Utc;

/// Deletes the job; returns its status before the deletion.
pub async fn delete_job(ctx: &AppContext, id: JobId) -> Result<JobStatus, AppError> {
    let job = any_job(ctx, id).await?;
    if !job.status.is_terminal() {
        let now = Utc::now();
        let cancelled = update_job(ctx, id, |j| {
            if j.status.is_terminal() {
                Ok(None)
            } else {
                j.cancel(now).map(Some)
            }
        })
        .await;
        match cancelled {
            Ok(_) | Err(AppError::JobNotFound(_)) => {}
            Err(AppError::Transition(_)) => return Err(AppError::Conflict),
            Err(err) => return Err(err),
        }
    }
    let settled = ctx.store.get_job(id).await?.unwrap_or(job);
    // The model, its preview and its conversions all live under the job's prefix.
    for object in ctx.storage.list(&JobResult::prefix_for(id)).await? {
        ctx.storage.delete(&object.key).await?;
    }
    ctx.store.delete_job(id).await?;
    tracing::info!(job_id = %id, "job deleted by an administrator");
    Ok(settled.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{completed, context, queued_job, ready_file};
    use crate::domain::models::RELIEF_MODEL;

    #[tokio::test]
    async fn a_running_job_is_cancelled_then_deleted_with_its_model() {
        let t = context();
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        let running = job.start(Utc::now()).unwrap();
        t.store.update_job(&running).await.unwrap();
        assert_eq!(
            delete_job(&t, job.job_id).await.unwrap(),
            JobStatus::Cancelled
        );
        assert!(t.store.get_job(job.job_id).await.unwrap().is_none());

        let done = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        let key = completed(&t, &done).await.result.unwrap().object_key;
        assert_eq!(
            delete_job(&t, done.job_id).await.unwrap(),
            JobStatus::Completed
        );
        assert!(t.storage.head(&key).await.unwrap().is_none());
        assert!(matches!(
            delete_job(&t, done.job_id).await,
            Err(AppError::JobNotFound(_))
        ));
    }
}
