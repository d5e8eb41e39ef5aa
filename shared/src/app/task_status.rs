//! Where a task stands at one moment: a job as it is, or a batch aggregated over its jobs. The
//! status function shows it as JSON and streams its changes, to the owner's key, to a holder of
//! the task's status token, or (when `PUBLIC_TASK_STATUS` is on) to anyone with the id, whose
//! view is reduced.

use super::access::{Task, any_task, owned_task};
use super::error::AppError;
use super::status_token;
use crate::context::AppContext;
use crate::domain::{GenerationJob, JobError, JobErrorCode, JobId, JobStatus};
use crate::keys::Caller;
use chrono::{DateTime, Utc};

/// Who asks about a task.
#[derive(Debug, Clone)]
pub enum Viewer {
    /// A key: its owner's tasks (every task for the admin key).
    Caller(Caller),
    /// A status token: the one task it was signed for.
    Token(String),
    /// No credential, with `PUBLIC_TASK_STATUS` on: any task by id, reduced.
    Public,
}

impl Viewer {
    /// Whether this viewer sees the reduced view: no results, filenames, owner or error text.
    pub fn is_public(&self) -> bool {
        matches!(self, Self::Public)
    }
}

/// Task `id` as `viewer` may see it now.
pub async fn task_snapshot(
    ctx: &AppContext,
    viewer: &Viewer,
    id: JobId,
) -> Result<Snapshot, AppError> {
    let task = match viewer {
        Viewer::Caller(caller) => owned_task(ctx, caller, id).await?,
        Viewer::Token(token) => {
            let task = any_task(ctx, id).await?;
            status_token::verify(ctx.status_secret(), id, task.owner(), token, Utc::now())?;
            task
        }
        Viewer::Public => any_task(ctx, id).await?,
    };
    Ok(Snapshot::of(id, task))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub task_id: JobId,
    pub status: JobStatus,
    pub progress: u8,
    pub message: String,
    /// Jobs behind the task: one for a job, every job of a batch.
    pub jobs: Vec<GenerationJob>,
    pub is_batch: bool,
    /// Who owns the task.
    pub owner: String,
}

/// How many of a task's jobs there are, and how many ended each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskCounts {
    pub total: usize,
    pub completed: usize,
    pub failed: usize,
    pub cancelled: usize,
}

impl TaskCounts {
    pub fn of(jobs: &[GenerationJob]) -> Self {
        let count = |s: JobStatus| jobs.iter().filter(|j| j.status == s).count();
        Self {
            total: jobs.len(),
            completed: count(JobStatus::Completed),
            failed: count(JobStatus::Failed),
            cancelled: count(JobStatus::Cancelled),
        }
    }

    /// Jobs that ended, whichever way.
    pub fn ended(&self) -> usize {
        self.completed + self.failed + self.cancelled
    }
}

/// A batch is completed when every job ended and at least one completed; failed when every
/// job ended and none completed; otherwise processing once any job started, else queued.
fn aggregate(jobs: &[GenerationJob]) -> (JobStatus, u8, String) {
    let total = jobs.len().max(1);
    let progress = (jobs.iter().map(|j| u32::from(j.progress)).sum::<u32>() / total as u32) as u8;
    let counts = TaskCounts::of(jobs);
    let status = if counts.ended() == jobs.len() {
        if counts.completed > 0 {
            JobStatus::Completed
        } else {
            JobStatus::Failed
        }
    } else if jobs.iter().any(|j| j.status != JobStatus::Queued) {
        JobStatus::Processing
    } else {
        JobStatus::Queued
    };
    let progress = if status == JobStatus::Completed {
        100
    } else {
        progress.min(99)
    };
    let message = format!(
        "{} of {} completed, {} failed or cancelled",
        counts.completed,
        jobs.len(),
        counts.failed + counts.cancelled
    );
    (status, progress, message)
}

impl Snapshot {
    pub fn of(task_id: JobId, task: Task) -> Self {
        match task {
            Task::Job(job) => Self {
                task_id,
                status: job.status,
                progress: job.progress,
                message: job.message.clone(),
                owner: job.owner.clone(),
                jobs: vec![*job],
                is_batch: false,
            },
            Task::Batch(batch, jobs) => {
                let (status, progress, message) = aggregate(&jobs);
                Self {
                    task_id,
                    status,
                    progress,
                    message,
                    jobs,
                    is_batch: true,
                    owner: batch.owner,
                }
            }
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// A number that grows with every change of the task's jobs (the sum of their record
    /// versions): the stream's event id, so a reconnecting client says what it saw last.
    pub fn version(&self) -> u64 {
        self.jobs.iter().map(|j| j.version).sum()
    }

    /// When the task was created (its first job) and last changed.
    pub fn times(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (
            self.jobs.iter().map(|j| j.created_at).min(),
            self.jobs.iter().map(|j| j.updated_at).max(),
        )
    }

    /// The task's jobs counted by how they ended.
    pub fn counts(&self) -> TaskCounts {
        TaskCounts::of(&self.jobs)
    }

    /// Whether a client watching `self` should hear about `next`.
    pub fn changed(&self, next: &Snapshot) -> bool {
        (self.status, self.progress, &self.message) != (next.status, next.progress, &next.message)
    }

    /// The jobs of the task that completed with a model.
    pub fn completed_jobs(&self) -> impl Iterator<Item = &GenerationJob> {
        self.jobs
            .iter()
            .filter(|j| j.status == JobStatus::Completed && j.result.is_some())
    }

    /// The job a terminal event names: the job itself, or the batch's id.
    pub fn terminal_job_id(&self) -> JobId {
        if self.is_batch {
            self.task_id
        } else {
            self.jobs.first().map_or(self.task_id, |j| j.job_id)
        }
    }

    /// Why a task that ended without a model ended: its first job's error, or a cancellation.
    pub fn error(&self) -> Option<JobError> {
        if self.status.is_terminal() && self.status != JobStatus::Completed {
            let error = self.jobs.iter().find_map(|j| j.error.clone());
            Some(error.unwrap_or_else(|| JobError::from(JobErrorCode::Cancelled)))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Batch, FileId, JobOptions, JobResult};
    use chrono::Utc;

    fn job() -> GenerationJob {
        GenerationJob::new(
            FileId::new(),
            "o",
            crate::domain::models::RELIEF_MODEL,
            JobOptions::default(),
            None,
            Utc::now(),
        )
    }

    /// The snapshot of a task that is this one job.
    fn single(job: &GenerationJob) -> Snapshot {
        Snapshot::of(job.job_id, Task::Job(Box::new(job.clone())))
    }

    /// The snapshot of a batch of these jobs.
    fn batch(jobs: Vec<GenerationJob>) -> Snapshot {
        let owner = Batch {
            batch_id: Default::default(),
            owner: "o".into(),
            job_ids: vec![],
            created_at: Utc::now(),
        };
        Snapshot::of(JobId::new(), Task::Batch(owner, jobs))
    }

    #[test]
    fn only_a_viewer_without_credentials_gets_the_public_view() {
        let caller = Caller {
            owner: "o".into(),
            is_admin: true,
        };
        assert!(Viewer::Public.is_public());
        assert!(!Viewer::Caller(caller).is_public());
        assert!(!Viewer::Token("t".into()).is_public());
    }

    #[test]
    fn batch_aggregates_its_jobs() {
        let now = Utc::now();
        let queued = job();
        let running = job()
            .start(now)
            .unwrap()
            .report_progress(50, "x", now)
            .unwrap();
        let result = JobResult {
            object_key: "k".into(),
            filename: "a.glb".into(),
            size: 3,
            content_type: "model/gltf-binary".into(),
            preview_key: None,
            ..JobResult::default()
        };
        let done = job().start(now).unwrap().complete(result, now).unwrap();
        let failed = job()
            .fail(JobError::from(JobErrorCode::GenerationFailed), now)
            .unwrap();

        assert_eq!(
            aggregate(&[queued.clone(), queued.clone()]).0,
            JobStatus::Queued
        );
        let (status, progress, _) = aggregate(&[queued, running]);
        assert_eq!((status, progress), (JobStatus::Processing, 25));
        let (status, progress, message) = aggregate(&[done.clone(), failed.clone()]);
        assert_eq!((status, progress), (JobStatus::Completed, 100));
        assert!(message.starts_with("1 of 2 completed"));
        assert_eq!(aggregate(&[failed]).0, JobStatus::Failed);
        let cancelled = job().cancel(now).unwrap();
        assert_eq!(
            TaskCounts::of(&[done.clone(), cancelled.clone()]).ended(),
            2
        );
        assert_eq!(
            aggregate(&[done.clone(), cancelled]).0,
            JobStatus::Completed
        );

        let batch = batch(vec![done]);
        assert_eq!(batch.status, JobStatus::Completed);
        assert!(batch.is_terminal());
        assert!(batch.version() > 0);
        assert_eq!(
            batch.version(),
            batch.jobs.iter().map(|j| j.version).sum::<u64>()
        );
        assert_eq!(batch.completed_jobs().count(), 1);
        assert_eq!(batch.terminal_job_id(), batch.task_id);
        assert_eq!(batch.error(), None);
    }

    #[test]
    fn a_task_that_ended_without_a_model_says_why() {
        let now = Utc::now();
        let failed = job()
            .fail(JobError::new(JobErrorCode::InvalidImage, "no"), now)
            .unwrap();
        let cancelled = job().cancel(now).unwrap();
        assert_eq!(single(&failed).error().unwrap().code, "INVALID_IMAGE");
        assert_eq!(single(&cancelled).error().unwrap().code, "CANCELLED");
        assert_eq!(single(&failed).terminal_job_id(), failed.job_id);
        assert_eq!(single(&job()).error(), None);
        assert!(single(&failed).is_terminal());
        assert!(!single(&job()).is_terminal());
    }

    #[test]
    fn a_snapshot_versions_times_and_compares_by_what_a_watcher_sees() {
        let now = Utc::now();
        let first = job();
        let second = job()
            .start(now)
            .unwrap()
            .report_progress(40, "x", now)
            .unwrap();
        let both = batch(vec![first.clone(), second.clone()]);
        assert_eq!(both.version(), first.version + second.version);
        assert!(both.version() >= 2, "{}", both.version());
        assert_eq!(
            both.times(),
            (
                Some(first.created_at.min(second.created_at)),
                Some(first.updated_at.max(second.updated_at))
            )
        );
        assert!(!both.changed(&both.clone()));
        let further = second.report_progress(80, "x", now).unwrap();
        assert!(both.changed(&batch(vec![first.clone(), further])));
        let renamed = second.report_progress(40, "y", now).unwrap();
        assert!(
            single(&second).changed(&single(&renamed)),
            "the message changed"
        );
    }
}
