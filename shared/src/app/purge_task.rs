//! An administrator's removal of a task (a job, or a batch and its jobs) with its files: each
//! job deleted as `delete_job.rs` does (a live one cancelled first), every object under its
//! results folder (model, preview), and each uploaded image no remaining job uses.

use super::access::{Task, any_task};
use super::delete_job::delete_job;
use super::enqueue::fail_jobs_of_deleted_file;
use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{FileId, GenerationJob, JobId, RESULTS_PREFIX};
use serde::Serialize;
use std::collections::BTreeSet;

/// What a purge removed.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PurgeReport {
    pub jobs: Vec<JobId>,
    pub files: Vec<FileId>,
    /// Object keys deleted.
    pub objects: Vec<String>,
    pub bytes: u64,
}

/// Removes task `id` and its files; `JobNotFound` when no job or batch has that id.
pub async fn purge_task(ctx: &AppContext, id: JobId) -> Result<PurgeReport, AppError> {
    let task = any_task(ctx, id).await?;
    let batch = match &task {
        Task::Batch(batch, _) => Some(batch.batch_id),
        Task::Job(_) => None,
    };
    let jobs = task.into_jobs();
    let mut report = PurgeReport::default();
    for job in &jobs {
        purge_job(ctx, job, &mut report).await?;
    }
    let file_ids: BTreeSet<FileId> = jobs.iter().map(|j| j.file_id).collect();
    for file_id in file_ids {
        purge_file_if_unused(ctx, file_id, &mut report).await?;
    }
    if let Some(batch_id) = batch {
        ctx.store.delete_batch(batch_id).await?;
    }
    tracing::info!(task_id = %id, jobs = report.jobs.len(), objects = report.objects.len(), bytes = report.bytes, "task purged by an administrator");
    Ok(report)
}

async fn purge_job(
    ctx: &AppContext,
    job: &GenerationJob,
    report: &mut PurgeReport,
) -> Result<(), AppError> {
    // Everything under the job's folder (model, preview), measured before anything goes.
    let objects = ctx
        .storage
        .list(&format!("{RESULTS_PREFIX}{}/", job.job_id))
        .await?;
    match delete_job(ctx, job.job_id).await {
        Ok(_) | Err(AppError::JobNotFound(_)) => {}
        Err(err) => return Err(err),
    }
    for object in objects {
        ctx.storage.delete(&object.key).await?;
        report.bytes += object.size;
        report.objects.push(object.key);
    }
    report.jobs.push(job.job_id);
    Ok(())
}

async fn purge_file_if_unused(
    ctx: &AppContext,
    file_id: FileId,
    report: &mut PurgeReport,
) -> Result<(), AppError> {
    if !ctx.store.list_jobs_for_file(file_id).await?.is_empty() {
        return Ok(());
    }
    let Some(file) = ctx.store.get_file(file_id).await? else {
        return Ok(());
    };
    // The record goes first, then any job created meanwhile is failed (see cleanup.rs).
    ctx.store.delete_file(file_id).await?;
    fail_jobs_of_deleted_file(ctx, file_id).await?;
    if let Some(meta) = ctx.storage.head(&file.object_key).await? {
        ctx.storage.delete(&file.object_key).await?;
        report.bytes += meta.size;
        report.objects.push(file.object_key.clone());
    }
    report.files.push(file_id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{batch_of_two, completed, context, queued_job};
    use crate::domain::models::RELIEF_MODEL;

    #[tokio::test]
    async fn a_batch_goes_with_its_models_and_the_uploads_no_other_job_uses() {
        let t = context();
        let (files, batch, jobs) = batch_of_two(&t, "alice").await;
        let done = completed(&t, &jobs[0]).await;
        let model_key = done.result.as_ref().unwrap().object_key.clone();
        // A second job on the first file keeps that upload alive.
        let other = queued_job(&t, &files[0], RELIEF_MODEL).await;

        let report = purge_task(&t, JobId::from_uuid(batch.batch_id.as_uuid()))
            .await
            .unwrap();
        assert_eq!(report.jobs.len(), 2);
        assert_eq!(report.files, [files[1].file_id]);
        assert!(report.objects.contains(&model_key), "{report:?}");
        assert!(report.objects.contains(&files[1].object_key));
        assert_eq!(report.objects.len(), 2, "{report:?}");
        assert_eq!(report.bytes, files[1].size + done.result.unwrap().size);
        assert!(t.storage.head(&model_key).await.unwrap().is_none());
        assert!(
            t.storage
                .head(&files[1].object_key)
                .await
                .unwrap()
                .is_none()
        );
        assert!(t.store.get_file(files[1].file_id).await.unwrap().is_none());
        assert!(
            t.storage
                .head(&files[0].object_key)
                .await
                .unwrap()
                .is_some()
        );
        assert!(t.store.get_batch(batch.batch_id).await.unwrap().is_none());
        for job in &jobs {
            assert!(t.store.get_job(job.job_id).await.unwrap().is_none());
        }

        // The remaining job alone: it and its (now unused) upload go.
        let report = purge_task(&t, other.job_id).await.unwrap();
        assert_eq!(report.files, [files[0].file_id]);
        assert_eq!(report.bytes, files[0].size);
        assert!(
            t.storage
                .head(&files[0].object_key)
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            purge_task(&t, other.job_id).await,
            Err(AppError::JobNotFound(_))
        ));
    }
}
