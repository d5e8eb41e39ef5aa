//! A verified FAL webhook: FAL says a request finished. The job's worker is asked to look now
//! (its result is fetched through the URLs recorded at submission, so a delivery can finish a
//! job at most once); deliveries for jobs that ended, or for an earlier submission, are ignored.

use super::enqueue::{WorkMessage, WorkStep, send_work};
use super::error::AppError;
use crate::context::AppContext;
use crate::domain::JobId;
use std::time::Duration;

/// What became of a verified delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The worker was asked to look at this job now.
    Accepted(JobId),
    /// Nothing to do, and why (FAL gets a 200 all the same: retrying cannot help).
    Ignored(&'static str),
}

/// Hands the delivery for `request_id` about `job_id` (from our webhook URL) to the worker.
pub async fn accept_fal_webhook(
    ctx: &AppContext,
    job_id: Option<JobId>,
    request_id: &str,
) -> Result<WebhookOutcome, AppError> {
    let Some(job_id) = job_id else {
        return Ok(WebhookOutcome::Ignored("no job_id in the webhook URL"));
    };
    let Some(job) = ctx.store.get_job(job_id).await? else {
        return Ok(WebhookOutcome::Ignored("unknown job"));
    };
    if job.status.is_terminal() {
        return Ok(WebhookOutcome::Ignored("the job already ended"));
    }
    if let Some(fal) = &job.fal
        && fal.request_id != request_id
    {
        return Ok(WebhookOutcome::Ignored(
            "the webhook is for an earlier submission",
        ));
    }
    let message = WorkMessage {
        job_id,
        step: WorkStep::Webhook { attempt: 0 },
    };
    send_work(ctx.queue.as_ref(), &message, Duration::ZERO).await?;
    Ok(WebhookOutcome::Accepted(job_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{context, drain, queued_job, ready_file};
    use crate::domain::FalRequest;
    use crate::domain::models::DEPTH_MODEL;
    use chrono::Utc;

    #[tokio::test]
    async fn a_delivery_for_the_current_submission_asks_the_worker_to_look_now() {
        let t = context();
        let job = queued_job(&t, &ready_file(&t, "alice").await, "tripo3d").await;
        let now = Utc::now();
        let running = job.start(now).unwrap();
        t.store.update_job(&running).await.unwrap();
        let request = FalRequest {
            request_id: "r-2".into(),
            status_url: "s".into(),
            response_url: "r".into(),
            cancel_url: "c".into(),
            submitted_at: now,
        };
        let submitted = running.record_submission(request, now).unwrap();
        t.store.update_job(&submitted).await.unwrap();

        let accept = |id, request| accept_fal_webhook(&t, id, request);
        assert_eq!(
            accept(Some(job.job_id), "r-1").await.unwrap(),
            WebhookOutcome::Ignored("the webhook is for an earlier submission")
        );
        assert_eq!(
            accept(None, "r-2").await.unwrap(),
            WebhookOutcome::Ignored("no job_id in the webhook URL")
        );
        assert_eq!(
            accept(Some(JobId::new()), "r-2").await.unwrap(),
            WebhookOutcome::Ignored("unknown job")
        );
        assert!(drain(&t).await.is_empty());
        assert_eq!(
            accept(Some(job.job_id), "r-2").await.unwrap(),
            WebhookOutcome::Accepted(job.job_id)
        );
        let look = WorkMessage {
            job_id: job.job_id,
            step: WorkStep::Webhook { attempt: 0 },
        };
        assert_eq!(drain(&t).await, [look]);

        let ended = queued_job(&t, &ready_file(&t, "alice").await, DEPTH_MODEL).await;
        t.store
            .update_job(&ended.cancel(now).unwrap())
            .await
            .unwrap();
        assert_eq!(
            accept(Some(ended.job_id), "r-3").await.unwrap(),
            WebhookOutcome::Ignored("the job already ended")
        );
    }
}
