//! The messages that drive the worker, and the one way a job is handed to it:
//! [`enqueue_if_ready`], used wherever a job may become runnable (creation, ingestion of its
//! file, an administrator's retry, the sweeper's re-send).

use super::error::AppError;
use super::job_update::fail_job;
use crate::context::AppContext;
use crate::domain::{
    FileId, FileStatus, GenerationJob, JobError, JobErrorCode, JobId, ModelFormat,
};
use crate::ports::{QueueError, WorkQueue};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// SQS delays messages by at most 15 minutes.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

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
    /// Convert the completed job's model to `format` (asked for by a first download of it).
    Convert { format: ModelFormat },
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

    pub fn convert(job_id: JobId, format: ModelFormat) -> Self {
        Self {
            job_id,
            step: WorkStep::Convert { format },
        }
    }
}

/// Sends `message` to the worker after `delay` (at most [`MAX_DELAY`]).
pub async fn send_work(
    queue: &dyn WorkQueue,
    message: &WorkMessage,
    delay: Duration,
) -> Result<(), QueueError> {
    let body = serde_json::to_string(message).map_err(|e| QueueError::Backend(e.to_string()))?;
    queue.send(&body, delay.min(MAX_DELAY)).await.map(drop)
}

/// What [`enqueue_if_ready`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Handover {
    /// The file is ready: the worker was asked to run the job.
    Enqueued,
    /// The file is still pending; ingestion releases the job once it is ready.
    Waiting,
    /// The file was rejected or is gone (a cleanup won a race with the job's creation): the job
    /// cannot run and was failed (`FILE_NOT_FOUND`, or the rejection's code), as stored now.
    Failed(Box<GenerationJob>),
}

/// Asks the worker to run `job` if its file is ready: the one hand-over of a job to the worker,
/// after creation, ingestion, an administrator's retry and the sweeper's re-send alike. A job
/// whose file is rejected or gone is failed here, so none waits for a file that will never come.
pub async fn enqueue_if_ready(ctx: &AppContext, job: &GenerationJob) -> Result<Handover, AppError> {
    let failed = |error: JobError| async move {
        fail_job(ctx, job.job_id, &error)
            .await
            .map(|job| Handover::Failed(Box::new(job)))
    };
    let Some(file) = ctx.store.get_file(job.file_id).await? else {
        return failed(JobError::from(JobErrorCode::FileNotFound)).await;
    };
    match file.status {
        FileStatus::Ready => {
            send_work(
                ctx.queue.as_ref(),
                &WorkMessage::generate(job.job_id),
                Duration::ZERO,
            )
            .await?;
            Ok(Handover::Enqueued)
        }
        FileStatus::Pending => Ok(Handover::Waiting),
        FileStatus::Rejected => {
            failed(file.rejection.map_or_else(
                || JobError::from(JobErrorCode::FileRejected),
                |r| JobError::new(r.code, r.message),
            ))
            .await
        }
    }
}

/// After a file's record was deleted: fails the live jobs that still name it (a job created
/// while the deletion was deciding the file was unused), so none waits for a file that is gone.
/// Returns how many were failed.
pub async fn fail_jobs_of_deleted_file(
    ctx: &AppContext,
    file_id: FileId,
) -> Result<usize, AppError> {
    let mut failed = 0;
    for job in ctx.store.list_jobs_for_file(file_id).await? {
        if !job.status.is_terminal()
            && matches!(enqueue_if_ready(ctx, &job).await?, Handover::Failed(_))
        {
            tracing::warn!(job_id = %job.job_id, %file_id, "job created while its file was deleted: failed");
            failed += 1;
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::sweep::sweep;
    use crate::app::testing::{context, queued_job, ready_file};
    use crate::domain::JobStatus;
    use crate::domain::models::RELIEF_MODEL;

    #[test]
    fn a_generate_message_is_the_job_id_alone_and_other_steps_name_themselves() {
        let id = JobId::new();
        let generate = serde_json::to_value(WorkMessage::generate(id)).unwrap();
        assert_eq!(generate, serde_json::json!({"job_id": id.to_string()}));
        let poll = WorkMessage {
            job_id: id,
            step: WorkStep::Poll { attempt: 2 },
        };
        let body = serde_json::to_string(&poll).unwrap();
        assert!(body.contains("step"), "{body}");
        assert_eq!(serde_json::from_str::<WorkMessage>(&body).unwrap(), poll);
    }

    /// The interleavings of a deletion deciding a file is unused while a job is being created on
    /// it: the job's own hand-over, the deletion's re-check and the sweeper each fail a job whose
    /// file is gone, so whichever runs last, no job waits for it.
    #[tokio::test]
    async fn a_job_whose_file_is_gone_is_failed_wherever_it_is_handed_over() {
        let t = context();
        let failed = |job: GenerationJob| {
            assert_eq!(job.status, JobStatus::Failed, "{job:?}");
            assert_eq!(job.error.unwrap().code, "FILE_NOT_FOUND");
        };
        // The creation hands the job over after the record went.
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        t.store.delete_file(job.file_id).await.unwrap();
        match enqueue_if_ready(&t, &job).await.unwrap() {
            Handover::Failed(job) => failed(*job),
            other => panic!("{other:?}"),
        }
        // The deletion re-checks after the creation handed the job over (it was enqueued).
        let file = ready_file(&t, "alice").await;
        let job = queued_job(&t, &file, RELIEF_MODEL).await;
        assert_eq!(
            enqueue_if_ready(&t, &job).await.unwrap(),
            Handover::Enqueued
        );
        let other = queued_job(&t, &file, RELIEF_MODEL).await;
        t.store.delete_file(file.file_id).await.unwrap();
        assert_eq!(
            fail_jobs_of_deleted_file(&t, file.file_id).await.unwrap(),
            2
        );
        failed(t.store.get_job(job.job_id).await.unwrap().unwrap());
        failed(t.store.get_job(other.job_id).await.unwrap().unwrap());
        assert_eq!(
            fail_jobs_of_deleted_file(&t, file.file_id).await.unwrap(),
            0
        );
        // A job nobody re-checked: the sweeper's re-send fails it instead of waiting forever.
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        t.store.delete_file(job.file_id).await.unwrap();
        let later = chrono::Utc::now() + t.config.jobs.visibility_timeout * 2;
        sweep(&t, later).await.unwrap();
        failed(t.store.get_job(job.job_id).await.unwrap().unwrap());
    }
}
