//! Cleanup: deletes (or, in a dry run, lists) uploads, results and records older than a cutoff,
//! never a file a live job still needs, and objects no record points at.

use super::enqueue::fail_jobs_of_deleted_file;
use super::error::AppError;
use super::sweep::ago;
use crate::context::AppContext;
use crate::domain::{
    BatchId, FileId, JobId, JobResult, JobStatus, RESULTS_PREFIX, UPLOADS_PREFIX, UploadedFile,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// Records examined per status (or per kind) in one pass.
const PAGE: usize = 1000;

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    pub cutoff: DateTime<Utc>,
    pub files: Vec<FileId>,
    pub jobs: Vec<JobId>,
    pub batches: Vec<BatchId>,
    pub objects: Vec<String>,
    pub bytes: u64,
}

/// Deletes (or, in a dry run, lists) what is older than `older_than`.
pub async fn cleanup(
    ctx: &AppContext,
    older_than: Duration,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<CleanupReport, AppError> {
    let cutoff = ago(now, older_than);
    let mut report = CleanupReport {
        dry_run,
        cutoff,
        ..CleanupReport::default()
    };
    let mut touched_batches = BTreeSet::new();

    for status in JobStatus::terminal() {
        for job in ctx.store.list_jobs_by_status(status, cutoff, PAGE).await? {
            if let Some(result) = &job.result {
                remove_object(ctx, &result.object_key, dry_run, &mut report).await?;
                if let Some(preview) = &result.preview_key {
                    remove_object(ctx, preview, dry_run, &mut report).await?;
                }
            }
            if !dry_run {
                ctx.store.delete_job(job.job_id).await?;
            }
            touched_batches.extend(job.batch_id);
            report.jobs.push(job.job_id);
        }
    }
    for batch_id in touched_batches {
        let Some(batch) = ctx.store.get_batch(batch_id).await? else {
            continue;
        };
        let mut remaining = 0;
        for id in &batch.job_ids {
            if !report.jobs.contains(id) && ctx.store.get_job(*id).await?.is_some() {
                remaining += 1;
            }
        }
        if remaining == 0 {
            if !dry_run {
                ctx.store.delete_batch(batch_id).await?;
            }
            report.batches.push(batch_id);
        }
    }
    for file in ctx.store.list_files_created_before(cutoff, PAGE).await? {
        let jobs = ctx.store.list_jobs_for_file(file.file_id).await?;
        let live = jobs
            .iter()
            .any(|j| !j.status.is_terminal() && !report.jobs.contains(&j.job_id));
        if live {
            continue;
        }
        // The record goes first: a job created from now on finds no file and fails at once;
        // one created since the check above is failed next. None waits for the file.
        if !dry_run {
            ctx.store.delete_file(file.file_id).await?;
            fail_jobs_of_deleted_file(ctx, file.file_id).await?;
        }
        remove_object(ctx, &file.object_key, dry_run, &mut report).await?;
        report.files.push(file.file_id);
    }
    // Objects no record points at (an upload never recorded, a result of a deleted job).
    for object in ctx.storage.list(UPLOADS_PREFIX).await? {
        if object.last_modified >= cutoff || report.objects.contains(&object.key) {
            continue;
        }
        let recorded = match UploadedFile::file_id_of_key(&object.key) {
            Some(id) => ctx.store.get_file(id).await?.is_some(),
            None => false,
        };
        if !recorded {
            remove_object(ctx, &object.key, dry_run, &mut report).await?;
        }
    }
    for object in ctx.storage.list(RESULTS_PREFIX).await? {
        if object.last_modified >= cutoff || report.objects.contains(&object.key) {
            continue;
        }
        let recorded = match JobResult::job_id_of_key(&object.key) {
            Some(id) => ctx.store.get_job(id).await?.is_some(),
            None => false,
        };
        if !recorded {
            remove_object(ctx, &object.key, dry_run, &mut report).await?;
        }
    }
    tracing::info!(
        dry_run,
        files = report.files.len(),
        jobs = report.jobs.len(),
        objects = report.objects.len(),
        bytes = report.bytes,
        "cleanup"
    );
    Ok(report)
}

async fn remove_object(
    ctx: &AppContext,
    key: &str,
    dry_run: bool,
    report: &mut CleanupReport,
) -> Result<(), AppError> {
    if let Some(meta) = ctx.storage.head(key).await? {
        if !dry_run {
            ctx.storage.delete(key).await?;
        }
        report.bytes += meta.size;
        report.objects.push(key.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::create_job::create_batch;
    use crate::app::testing::{completed, context, queued_job, ready_file};
    use crate::domain::models::{self, DEFAULT_MODEL};
    use crate::domain::{JobOptions, JobResult};
    use bytes::Bytes;

    const HOUR: Duration = Duration::from_secs(3600);

    /// Two hours from now, with a cutoff of an hour: everything made before the test is old.
    fn later() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::hours(2)
    }

    #[tokio::test]
    async fn old_ended_work_goes_with_its_objects_and_live_work_stays() {
        let t = context();
        // A batch of one completed job, with its model.
        let done_file = ready_file(&t, "alice").await;
        let model = models::find(DEFAULT_MODEL).unwrap();
        let (batch, jobs) = create_batch(
            &t,
            "alice",
            std::slice::from_ref(&done_file),
            model,
            &JobOptions::default(),
        )
        .await
        .unwrap();
        let completed = completed(&t, &jobs[0]).await;
        let key = JobResult::object_key_for(jobs[0].job_id, "glb");
        // A live job keeps its file however old.
        let live_file = ready_file(&t, "alice").await;
        let live = queued_job(&t, &live_file, DEFAULT_MODEL).await;
        // Objects no record points at.
        let orphans = [
            format!("uploads/alice/{}", FileId::new()),
            JobResult::object_key_for(JobId::new(), "glb"),
        ];
        for orphan in &orphans {
            t.storage
                .put(orphan, Bytes::from_static(b"x"), "image/png")
                .await
                .unwrap();
        }

        let dry = cleanup(&t, HOUR, true, later()).await.unwrap();
        assert_eq!(
            (dry.jobs.clone(), dry.files.clone(), dry.batches.clone()),
            (
                vec![completed.job_id],
                vec![done_file.file_id],
                vec![batch.batch_id]
            )
        );
        assert_eq!(dry.objects.len(), 4, "{:?}", dry.objects);
        assert!(
            t.store.get_job(completed.job_id).await.unwrap().is_some(),
            "a dry run deletes nothing"
        );
        assert!(t.storage.head(&key).await.unwrap().is_some());

        let real = cleanup(&t, HOUR, false, later()).await.unwrap();
        assert_eq!(
            (real.jobs, real.files, real.objects.len()),
            (dry.jobs, dry.files, 4)
        );
        assert!(t.store.get_job(completed.job_id).await.unwrap().is_none());
        assert!(t.store.get_batch(batch.batch_id).await.unwrap().is_none());
        assert!(t.store.get_file(done_file.file_id).await.unwrap().is_none());
        for object in orphans.iter().chain([&key, &done_file.object_key]) {
            assert!(t.storage.head(object).await.unwrap().is_none(), "{object}");
        }
        assert!(t.store.get_job(live.job_id).await.unwrap().is_some());
        assert!(
            t.storage
                .head(&live_file.object_key)
                .await
                .unwrap()
                .is_some()
        );
        // With the cutoff an hour ago, everything left is too young to go.
        let nothing = cleanup(&t, HOUR, false, Utc::now()).await.unwrap();
        assert!(nothing.jobs.is_empty() && nothing.files.is_empty() && nothing.objects.is_empty());
    }
}
