//! Maintenance. The sweeper makes every job end: queued or running jobs whose message was lost
//! are enqueued again, jobs past the deadline fail with `JOB_DEADLINE_EXCEEDED`, and uploads
//! whose object-created event never arrived are ingested. Cleanup deletes uploads, results and
//! records older than a cutoff (never a file a live job still needs), and orphaned objects.

use chrono::{DateTime, Utc};
use image2model_ingest::{IngestError, ingest_object, parse_upload_key};
use image2model_shared::AppContext;
use image2model_shared::domain::{BatchId, FileId, FileStatus, JobError, JobId, JobStatus};
use image2model_shared::pipeline::{UpdateError, enqueue_job, fail_job};
use image2model_shared::ports::{QueueError, StorageError, StoreError};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// Records examined per status (or per kind) in one pass.
const PAGE: usize = 1000;
/// A pending upload gets this long for its object-created event before the sweeper ingests it.
const PENDING_GRACE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Update(#[from] UpdateError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    pub requeued: Vec<JobId>,
    pub timed_out: Vec<JobId>,
    pub ingested: Vec<FileId>,
}

fn ago(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(d).unwrap_or_default()
}

pub async fn sweep(ctx: &AppContext, now: DateTime<Utc>) -> Result<SweepReport, MaintenanceError> {
    let config = &ctx.config;
    let mut report = SweepReport::default();
    let deadline = ago(now, config.job_deadline);
    let stale = ago(now, config.visibility_timeout);
    for status in [JobStatus::Queued, JobStatus::Processing] {
        for job in ctx.store.list_jobs_by_status(status, now, PAGE).await? {
            if job.created_at < deadline {
                let error = JobError::new(
                    "JOB_DEADLINE_EXCEEDED",
                    format!(
                        "the job did not finish within {} s",
                        config.job_deadline.as_secs()
                    ),
                );
                match fail_job(ctx.store.as_ref(), job.job_id, &error).await {
                    Ok(_) | Err(UpdateError::NotFound) => report.timed_out.push(job.job_id),
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            if job.updated_at >= stale {
                continue;
            }
            let file_ready = ctx
                .store
                .get_file(job.file_id)
                .await?
                .is_some_and(|f| f.status == FileStatus::Ready);
            if file_ready {
                enqueue_job(ctx.queue.as_ref(), job.job_id).await?;
                report.requeued.push(job.job_id);
            }
        }
    }
    for file in ctx
        .store
        .list_pending_files(ago(now, PENDING_GRACE), PAGE)
        .await?
    {
        if ctx.storage.head(&file.object_key).await?.is_some() {
            ingest_object(ctx, &file.object_key).await?;
            report.ingested.push(file.file_id);
        }
    }
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
) -> Result<CleanupReport, MaintenanceError> {
    let cutoff = ago(now, older_than);
    let mut report = CleanupReport {
        dry_run,
        cutoff,
        ..CleanupReport::default()
    };
    let mut touched_batches = BTreeSet::new();

    for status in [
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ] {
        for job in ctx.store.list_jobs_by_status(status, cutoff, PAGE).await? {
            if let Some(result) = &job.result {
                remove_object(ctx, &result.object_key, dry_run, &mut report).await?;
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
        remove_object(ctx, &file.object_key, dry_run, &mut report).await?;
        if !dry_run {
            ctx.store.delete_file(file.file_id).await?;
        }
        report.files.push(file.file_id);
    }
    // Objects no record points at (an upload never recorded, a result of a deleted job).
    for object in ctx.storage.list("uploads/").await? {
        if object.last_modified >= cutoff || report.objects.contains(&object.key) {
            continue;
        }
        let recorded = match parse_upload_key(&object.key) {
            Some(id) => ctx.store.get_file(id).await?.is_some(),
            None => false,
        };
        if !recorded {
            remove_object(ctx, &object.key, dry_run, &mut report).await?;
        }
    }
    for object in ctx.storage.list("results/").await? {
        if object.last_modified >= cutoff || report.objects.contains(&object.key) {
            continue;
        }
        let job_id = object
            .key
            .split('/')
            .nth(1)
            .and_then(|id| id.parse::<JobId>().ok());
        let recorded = match job_id {
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
) -> Result<(), MaintenanceError> {
    if let Some(meta) = ctx.storage.head(key).await? {
        if !dry_run {
            ctx.storage.delete(key).await?;
        }
        report.bytes += meta.size;
        report.objects.push(key.to_owned());
    }
    Ok(())
}
