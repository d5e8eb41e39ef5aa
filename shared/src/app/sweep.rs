//! The sweeper makes every job end: queued or running jobs whose message was lost are handed to
//! the worker again, jobs past the deadline fail with `JOB_DEADLINE_EXCEEDED`, and uploads whose
//! object-created event never arrived are ingested (the local server also does this once at
//! start, for uploads its previous process stored but did not ingest).

use super::enqueue::{Handover, enqueue_if_ready};
use super::error::AppError;
use super::ingest::ingest_object;
use super::job_update::fail_job;
use crate::context::AppContext;
use crate::domain::{FileId, JobError, JobErrorCode, JobId, JobStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// Records examined per status in one pass.
const PAGE: usize = 1000;
/// A pending upload gets this long for its object-created event before the sweeper ingests it.
const PENDING_GRACE: Duration = Duration::from_secs(120);

/// `d` before `now`.
pub(super) fn ago(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(d).unwrap_or_default()
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SweepReport {
    /// Jobs whose lost messages were sent again.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub requeued: Vec<JobId>,
    /// Jobs failed for passing their deadline.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub timed_out: Vec<JobId>,
    /// Files whose upload event was missed, ingested now.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub ingested: Vec<FileId>,
}

pub async fn sweep(ctx: &AppContext, now: DateTime<Utc>) -> Result<SweepReport, AppError> {
    let config = &ctx.config;
    let mut report = SweepReport::default();
    let deadline = ago(now, config.jobs.job_deadline);
    let stale = ago(now, config.jobs.visibility_timeout);
    for status in [JobStatus::Queued, JobStatus::Processing] {
        for job in ctx.store.list_jobs_by_status(status, now, PAGE).await? {
            if job.created_at < deadline {
                let error = JobError::new(
                    JobErrorCode::JobDeadlineExceeded,
                    format!(
                        "the job did not finish within {} s",
                        config.jobs.job_deadline.as_secs()
                    ),
                );
                match fail_job(ctx, job.job_id, &error).await {
                    Ok(_) | Err(AppError::JobNotFound(_)) => report.timed_out.push(job.job_id),
                    Err(e) => return Err(e),
                }
                continue;
            }
            if job.updated_at >= stale {
                continue;
            }
            if enqueue_if_ready(ctx, &job).await? == Handover::Enqueued {
                report.requeued.push(job.job_id);
            }
        }
    }
    report.ingested = ingest_stored_uploads(ctx, ago(now, PENDING_GRACE)).await?;
    if report != SweepReport::default() {
        tracing::info!(
            requeued = report.requeued.len(),
            timed_out = report.timed_out.len(),
            ingested = report.ingested.len(),
            "sweep"
        );
    }
    Ok(report)
}

/// Ingests the uploads still pending that were created before `created_before` and whose
/// object is stored: their object-created event never came, or (the local server) the process
/// that stored them stopped before ingesting them, which its next start finds at once.
pub async fn ingest_stored_uploads(
    ctx: &AppContext,
    created_before: DateTime<Utc>,
) -> Result<Vec<FileId>, AppError> {
    let mut ingested = Vec::new();
    for file in ctx.store.list_pending_files(created_before, PAGE).await? {
        if ctx.storage.head(&file.object_key).await?.is_some() {
            ingest_object(ctx, &file.object_key).await?;
            ingested.push(file.file_id);
        }
    }
    Ok(ingested)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::enqueue::WorkMessage;
    use crate::app::testing::{
        context, context_with, drain, pending_file, queued_job, ready_file, stored, upload_bytes,
    };
    use crate::domain::FileStatus;
    use crate::domain::models::RELIEF_MODEL;

    fn later(seconds: i64) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(seconds)
    }

    #[tokio::test]
    async fn jobs_past_the_deadline_fail_whatever_their_state() {
        let t = context_with(|c| c.jobs.job_deadline = Duration::from_secs(60));
        let queued = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        let running = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        t.store
            .update_job(&running.start(Utc::now()).unwrap())
            .await
            .unwrap();
        assert_eq!(sweep(&t, later(30)).await.unwrap(), SweepReport::default());
        // Exactly at its deadline a job still has its time.
        let at_deadline = queued.created_at + chrono::Duration::seconds(60);
        assert!(sweep(&t, at_deadline).await.unwrap().timed_out.is_empty());
        let report = sweep(&t, later(61)).await.unwrap();
        assert_eq!(report.timed_out.len(), 2);
        for job in [queued, running] {
            let failed = stored(&t, &job).await;
            assert_eq!(failed.status, JobStatus::Failed);
            assert_eq!(failed.error.unwrap().code, "JOB_DEADLINE_EXCEEDED");
        }
    }

    #[tokio::test]
    async fn jobs_whose_message_was_lost_go_to_the_worker_again_once_their_lease_lapsed() {
        let t = context();
        let lost = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        let waiting = queued_job(&t, &pending_file(&t, "alice").await, RELIEF_MODEL).await;
        // Within the lease (the visibility timeout) a job may still be on its way.
        assert!(sweep(&t, Utc::now()).await.unwrap().requeued.is_empty());
        let lease = t.config.jobs.visibility_timeout.as_secs() as i64;
        let report = sweep(&t, later(lease + 1)).await.unwrap();
        assert_eq!(report.requeued, [lost.job_id]);
        assert_eq!(drain(&t).await, [WorkMessage::generate(lost.job_id)]);
        assert_eq!(stored(&t, &waiting).await.status, JobStatus::Queued);
    }

    #[tokio::test]
    async fn uploads_whose_event_never_came_are_ingested_after_a_grace_period() {
        let t = context();
        let arrived = pending_file(&t, "alice").await;
        upload_bytes(&t, &arrived).await;
        let never_sent = pending_file(&t, "alice").await;
        assert!(
            sweep(&t, later(60)).await.unwrap().ingested.is_empty(),
            "in grace"
        );
        let report = sweep(&t, later(121)).await.unwrap();
        assert_eq!(report.ingested, [arrived.file_id]);
        for (file, status) in [
            (arrived, FileStatus::Ready),
            (never_sent, FileStatus::Pending),
        ] {
            let stored_file = t.store.get_file(file.file_id).await.unwrap().unwrap();
            assert_eq!(stored_file.status, status);
        }
    }

    #[tokio::test]
    async fn stored_uploads_are_ingested_at_once_by_the_start_pass() {
        let t = context();
        let stored_before = pending_file(&t, "alice").await;
        upload_bytes(&t, &stored_before).await;
        let never_sent = pending_file(&t, "alice").await;
        let ingested = ingest_stored_uploads(&t, later(0)).await.unwrap();
        assert_eq!(ingested, [stored_before.file_id]);
        let file = t.store.get_file(never_sent.file_id).await.unwrap().unwrap();
        assert_eq!(file.status, FileStatus::Pending);
    }
}
