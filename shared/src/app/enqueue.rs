//! The messages that drive the worker, and the one way a job is handed to it:
//! [`enqueue_if_ready`], used wherever a job may become runnable (creation, ingestion of its
//! file, an administrator's retry, the sweeper's re-send).

use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{FileRejection, FileStatus, GenerationJob, JobId};
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

/// Sends `message` to the worker after `delay` (at most [`MAX_DELAY`]).
pub async fn send_work(
    queue: &dyn WorkQueue,
    message: &WorkMessage,
    delay: Duration,
) -> Result<(), QueueError> {
    let body = serde_json::to_string(message).map_err(|e| QueueError::Backend(e.to_string()))?;
    queue.send(&body, delay.min(MAX_DELAY)).await.map(drop)
}

/// What [`enqueue_if_ready`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// The file is ready: the worker was asked to run the job.
    Enqueued,
    /// The file is still pending; ingestion releases the job once it is ready.
    Waiting,
    /// The file was rejected (with its reason); the job cannot run.
    FileRejected(Option<FileRejection>),
    /// The file record is gone.
    FileGone,
}

/// Asks the worker to run `job` if its file is ready: the one hand-over of a job to the worker,
/// after creation, ingestion, an administrator's retry and the sweeper's re-send alike.
pub async fn enqueue_if_ready(ctx: &AppContext, job: &GenerationJob) -> Result<Handover, AppError> {
    let Some(file) = ctx.store.get_file(job.file_id).await? else {
        return Ok(Handover::FileGone);
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
        FileStatus::Rejected => Ok(Handover::FileRejected(file.rejection)),
    }
}
