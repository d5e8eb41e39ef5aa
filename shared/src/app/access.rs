//! Ownership: a caller sees only its own files, jobs and batches; anyone else's id reads as not
//! found. The admin key sees everything.

use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{Batch, BatchId, FileId, GenerationJob, JobId, UploadedFile};
use crate::keys::Caller;

fn visible(caller: &Caller, owner: &str) -> bool {
    caller.is_admin || caller.owner == owner
}

/// Any job, whoever owns it (administrators' routes); `JobNotFound` when there is none.
pub async fn any_job(ctx: &AppContext, id: JobId) -> Result<GenerationJob, AppError> {
    ctx.store
        .get_job(id)
        .await?
        .ok_or(AppError::JobNotFound(id))
}

pub async fn owned_job(
    ctx: &AppContext,
    caller: &Caller,
    id: JobId,
) -> Result<GenerationJob, AppError> {
    match any_job(ctx, id).await? {
        job if visible(caller, &job.owner) => Ok(job),
        _ => Err(AppError::JobNotFound(id)),
    }
}

pub async fn owned_file(
    ctx: &AppContext,
    caller: &Caller,
    id: FileId,
) -> Result<UploadedFile, AppError> {
    match ctx.store.get_file(id).await? {
        Some(file) if visible(caller, &file.owner) => Ok(file),
        _ => Err(AppError::FileNotFound(id)),
    }
}

/// A task id names a job or a batch.
pub enum Task {
    Job(Box<GenerationJob>),
    Batch(Batch, Vec<GenerationJob>),
}

impl Task {
    /// Who owns the task.
    pub fn owner(&self) -> &str {
        match self {
            Self::Job(job) => &job.owner,
            Self::Batch(batch, _) => &batch.owner,
        }
    }

    /// The jobs behind the task: one for a job, every job of a batch.
    pub fn into_jobs(self) -> Vec<GenerationJob> {
        match self {
            Self::Job(job) => vec![*job],
            Self::Batch(_, jobs) => jobs,
        }
    }
}

/// Any task, whoever owns it (a token holder's or the public view, checked by the caller).
pub async fn any_task(ctx: &AppContext, id: JobId) -> Result<Task, AppError> {
    let admin = Caller {
        owner: crate::keys::ADMIN_OWNER.to_owned(),
        is_admin: true,
    };
    owned_task(ctx, &admin, id).await
}

/// Resolves a task id to the caller's job, or else to the caller's batch with its jobs.
pub async fn owned_task(ctx: &AppContext, caller: &Caller, id: JobId) -> Result<Task, AppError> {
    if let Some(job) = ctx.store.get_job(id).await? {
        return if visible(caller, &job.owner) {
            Ok(Task::Job(Box::new(job)))
        } else {
            Err(AppError::JobNotFound(id))
        };
    }
    let batch_id = BatchId::from_uuid(id.as_uuid());
    match ctx.store.get_batch(batch_id).await? {
        Some(batch) if visible(caller, &batch.owner) => {
            let mut jobs = Vec::with_capacity(batch.job_ids.len());
            for job_id in &batch.job_ids {
                if let Some(job) = ctx.store.get_job(*job_id).await? {
                    jobs.push(job);
                }
            }
            Ok(Task::Batch(batch, jobs))
        }
        _ => Err(AppError::JobNotFound(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{batch_of_two, caller, context, queued_job, ready_file};
    use crate::domain::models::RELIEF_MODEL;
    use crate::keys::ADMIN_OWNER;

    fn admin() -> Caller {
        Caller {
            owner: ADMIN_OWNER.to_owned(),
            is_admin: true,
        }
    }

    #[tokio::test]
    async fn files_and_jobs_are_seen_by_their_owner_and_the_admin_only() {
        let t = context();
        let file = ready_file(&t, "alice").await;
        let job = queued_job(&t, &file, RELIEF_MODEL).await;
        for who in [caller("alice"), admin()] {
            assert_eq!(owned_file(&t, &who, file.file_id).await.unwrap(), file);
            assert_eq!(
                owned_job(&t, &who, job.job_id).await.unwrap().job_id,
                job.job_id
            );
        }
        let bob = caller("bob");
        assert!(matches!(
            owned_file(&t, &bob, file.file_id).await,
            Err(AppError::FileNotFound(id)) if id == file.file_id
        ));
        assert!(matches!(
            owned_job(&t, &bob, job.job_id).await,
            Err(AppError::JobNotFound(id)) if id == job.job_id
        ));
        let missing = FileId::new();
        assert!(matches!(
            owned_file(&t, &admin(), missing).await,
            Err(AppError::FileNotFound(id)) if id == missing
        ));
    }

    #[tokio::test]
    async fn a_task_id_names_a_job_or_a_batch_of_its_owner() {
        let t = context();
        let file = ready_file(&t, "alice").await;
        let job = queued_job(&t, &file, RELIEF_MODEL).await;
        let (_, batch, jobs) = batch_of_two(&t, "bob").await;
        let batch_task = JobId::from_uuid(batch.batch_id.as_uuid());

        let task = owned_task(&t, &caller("alice"), job.job_id).await.unwrap();
        assert_eq!(task.owner(), "alice");
        let ids: Vec<JobId> = task.into_jobs().iter().map(|j| j.job_id).collect();
        assert_eq!(ids, [job.job_id]);

        let task = owned_task(&t, &caller("bob"), batch_task).await.unwrap();
        assert_eq!(task.owner(), "bob");
        let ids: Vec<JobId> = task.into_jobs().iter().map(|j| j.job_id).collect();
        assert_eq!(ids, jobs.iter().map(|j| j.job_id).collect::<Vec<_>>());

        // Anyone else's task, and a task that is not there, read alike.
        for (who, id) in [
            (caller("bob"), job.job_id),
            (caller("alice"), batch_task),
            (caller("alice"), JobId::new()),
        ] {
            assert!(matches!(
                owned_task(&t, &who, id).await,
                Err(AppError::JobNotFound(missing)) if missing == id
            ));
        }
        // The token and public views find any task, and say whose it is.
        assert_eq!(any_task(&t, batch_task).await.unwrap().owner(), "bob");
        assert_eq!(any_task(&t, job.job_id).await.unwrap().owner(), "alice");
    }
}
