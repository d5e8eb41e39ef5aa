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
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// Records read per query. A pass deletes page after page until a page comes back short or its
/// time budget is spent (the next pass goes on from there), so a backlog larger than a page
/// does not outgrow the passes.
const PAGE: usize = 1000;

#[derive(Debug, Default, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CleanupReport {
    pub dry_run: bool,
    /// What was older than this went.
    pub cutoff: DateTime<Utc>,
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub files: Vec<FileId>,
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub jobs: Vec<JobId>,
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub batches: Vec<BatchId>,
    /// Object keys.
    pub objects: Vec<String>,
    pub bytes: u64,
    /// False when the time budget ended the pass with more left to delete.
    pub complete: bool,
}

/// What one cleanup pass is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct CleanupPass {
    /// Delete what is older than this.
    pub older_than: Duration,
    /// List instead of deleting: the first page of each kind (it deletes nothing, so a second
    /// query would return the same page).
    pub dry_run: bool,
    /// No new page is started after this much time (the caller's own deadline, less a margin).
    pub budget: Duration,
}

/// Deletes (or, in a dry run, lists) what `pass` asks for, as of `now`.
pub async fn cleanup(
    ctx: &AppContext,
    pass: CleanupPass,
    now: DateTime<Utc>,
) -> Result<CleanupReport, AppError> {
    cleanup_in_pages(ctx, pass, now, PAGE).await
}

/// What one pass has removed (or, in a dry run, would remove), for lookups in constant time.
#[derive(Default)]
struct Removed {
    jobs: HashSet<JobId>,
    /// Files looked at (deleted, or kept for a live job).
    files: HashSet<FileId>,
    objects: HashSet<String>,
}

async fn cleanup_in_pages(
    ctx: &AppContext,
    pass: CleanupPass,
    now: DateTime<Utc>,
    page: usize,
) -> Result<CleanupReport, AppError> {
    let started = Instant::now();
    let dry_run = pass.dry_run;
    let cutoff = ago(now, pass.older_than);
    let mut report = CleanupReport {
        dry_run,
        cutoff,
        complete: true,
        ..CleanupReport::default()
    };
    // Whether to read another page after a full one: not in a dry run, not past the budget
    // (the check before the listings below then says the pass is not complete).
    let go_on = || !dry_run && started.elapsed() < pass.budget;
    let mut removed = Removed::default();
    let mut touched_batches = BTreeSet::new();

    for status in JobStatus::terminal() {
        loop {
            let jobs = ctx.store.list_jobs_by_status(status, cutoff, page).await?;
            let full = jobs.len() >= page;
            // An index read soon after a delete may still list what is gone (DynamoDB's
            // indexes are eventually consistent): each job is handled once, and a page of
            // nothing new ends the pass.
            let fresh: Vec<_> = jobs
                .into_iter()
                .filter(|job| !removed.jobs.contains(&job.job_id))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for job in fresh {
                // The model, its preview and its conversions all live under the job's prefix.
                for object in ctx.storage.list(&JobResult::prefix_for(job.job_id)).await? {
                    remove_object(ctx, &object.key, dry_run, &mut report, &mut removed).await?;
                }
                if !dry_run {
                    ctx.store.delete_job(job.job_id).await?;
                }
                touched_batches.extend(job.batch_id);
                removed.jobs.insert(job.job_id);
                report.jobs.push(job.job_id);
            }
            if !full || !go_on() {
                break;
            }
        }
    }
    for batch_id in touched_batches {
        let Some(batch) = ctx.store.get_batch(batch_id).await? else {
            continue;
        };
        let mut jobs_left = false;
        for id in &batch.job_ids {
            if !removed.jobs.contains(id) && ctx.store.get_job(*id).await?.is_some() {
                jobs_left = true;
                break;
            }
        }
        if !jobs_left {
            if !dry_run {
                ctx.store.delete_batch(batch_id).await?;
            }
            report.batches.push(batch_id);
        }
    }
    loop {
        let files = ctx.store.list_files_created_before(cutoff, page).await?;
        let full = files.len() >= page;
        let mut deleted_any = false;
        for file in files {
            if !removed.files.insert(file.file_id) {
                continue;
            }
            let jobs = ctx.store.list_jobs_for_file(file.file_id).await?;
            let live = jobs
                .iter()
                .any(|j| !j.status.is_terminal() && !removed.jobs.contains(&j.job_id));
            if live {
                continue;
            }
            // The record goes first: a job created from now on finds no file and fails at
            // once; one created since the check above is failed next. None waits for the file.
            if !dry_run {
                ctx.store.delete_file(file.file_id).await?;
                fail_jobs_of_deleted_file(ctx, file.file_id).await?;
            }
            remove_object(ctx, &file.object_key, dry_run, &mut report, &mut removed).await?;
            report.files.push(file.file_id);
            deleted_any = true;
        }
        // Files a live job still needs stay listed; a page of nothing but those ends the pass.
        if !full || !deleted_any || !go_on() {
            break;
        }
    }
    // Objects no record points at (an upload never recorded, a result of a deleted job): a
    // listing of everything, left for the next pass when this one is out of time.
    if started.elapsed() >= pass.budget {
        report.complete = false;
        return Ok(finish(report));
    }
    for object in ctx.storage.list(UPLOADS_PREFIX).await? {
        if object.last_modified >= cutoff || removed.objects.contains(&object.key) {
            continue;
        }
        let recorded = match UploadedFile::file_id_of_key(&object.key) {
            Some(id) => ctx.store.get_file(id).await?.is_some(),
            None => false,
        };
        if !recorded {
            remove_object(ctx, &object.key, dry_run, &mut report, &mut removed).await?;
        }
    }
    for object in ctx.storage.list(RESULTS_PREFIX).await? {
        if object.last_modified >= cutoff || removed.objects.contains(&object.key) {
            continue;
        }
        let recorded = match JobResult::job_id_of_key(&object.key) {
            Some(id) => ctx.store.get_job(id).await?.is_some(),
            None => false,
        };
        if !recorded {
            remove_object(ctx, &object.key, dry_run, &mut report, &mut removed).await?;
        }
    }
    Ok(finish(report))
}

fn finish(report: CleanupReport) -> CleanupReport {
    tracing::info!(
        dry_run = report.dry_run,
        complete = report.complete,
        files = report.files.len(),
        jobs = report.jobs.len(),
        objects = report.objects.len(),
        bytes = report.bytes,
        "cleanup"
    );
    report
}

async fn remove_object(
    ctx: &AppContext,
    key: &str,
    dry_run: bool,
    report: &mut CleanupReport,
    removed: &mut Removed,
) -> Result<(), AppError> {
    if let Some(meta) = ctx.storage.head(key).await? {
        if !dry_run {
            ctx.storage.delete(key).await?;
        }
        report.bytes += meta.size;
        report.objects.push(key.to_owned());
        removed.objects.insert(key.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::create_job::create_batch;
    use crate::app::testing::{batch_of_two, completed, context, png, queued_job, ready_file};
    use crate::domain::models::{self, RELIEF_MODEL};
    use crate::domain::{JobOptions, JobResult};
    use bytes::Bytes;

    const HOUR: Duration = Duration::from_secs(3600);

    /// Older than an hour, with all the time it needs.
    fn pass(dry_run: bool) -> CleanupPass {
        CleanupPass {
            older_than: HOUR,
            dry_run,
            budget: Duration::from_secs(600),
        }
    }

    /// Two hours from now, with a cutoff of an hour: everything made before the test is old.
    fn later() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::hours(2)
    }

    #[tokio::test]
    async fn old_ended_work_goes_with_its_objects_and_live_work_stays() {
        let t = context();
        // A batch of one completed job, with its model.
        let done_file = ready_file(&t, "alice").await;
        let model = models::find(RELIEF_MODEL).unwrap();
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
        let live = queued_job(&t, &live_file, RELIEF_MODEL).await;
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

        let dry = cleanup(&t, pass(true), later()).await.unwrap();
        assert_eq!(
            (dry.jobs.clone(), dry.files.clone(), dry.batches.clone()),
            (
                vec![completed.job_id],
                vec![done_file.file_id],
                vec![batch.batch_id]
            )
        );
        assert_eq!(dry.objects.len(), 4, "{:?}", dry.objects);
        // The two orphans, the model and the upload.
        assert_eq!(dry.bytes, 1 + 1 + 4 + done_file.size);
        assert!(
            t.store.get_job(completed.job_id).await.unwrap().is_some(),
            "a dry run deletes nothing"
        );
        assert!(t.storage.head(&key).await.unwrap().is_some());
        assert!(t.store.get_batch(batch.batch_id).await.unwrap().is_some());

        let real = cleanup(&t, pass(false), later()).await.unwrap();
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
        let nothing = cleanup(&t, pass(false), Utc::now()).await.unwrap();
        assert!(nothing.jobs.is_empty() && nothing.files.is_empty() && nothing.objects.is_empty());
    }

    #[tokio::test]
    async fn young_objects_and_batches_with_a_live_job_stay() {
        let t = context();
        // A batch with one job ended and one still queued.
        let (_, batch, jobs) = batch_of_two(&t, "alice").await;
        let ended = completed(&t, &jobs[0]).await;
        // Objects no record points at, but younger than the cutoff.
        let young = [
            format!("uploads/alice/{}", FileId::new()),
            JobResult::object_key_for(JobId::new(), "glb"),
        ];
        for object in &young {
            t.storage
                .put(object, Bytes::from_static(b"x"), "image/png")
                .await
                .unwrap();
        }

        let nothing = cleanup(&t, pass(false), Utc::now()).await.unwrap();
        assert!(nothing.objects.is_empty(), "{nothing:?}");
        for object in &young {
            assert!(t.storage.head(object).await.unwrap().is_some(), "{object}");
        }

        let at = later();
        let dry = cleanup(&t, pass(true), at).await.unwrap();
        assert!(dry.dry_run);
        assert_eq!(dry.cutoff, at - chrono::Duration::hours(1));
        let report = cleanup(&t, pass(false), at).await.unwrap();
        assert!(!report.dry_run);
        assert_eq!(report.jobs, [ended.job_id]);
        assert!(report.batches.is_empty(), "{report:?}");
        assert!(t.store.get_batch(batch.batch_id).await.unwrap().is_some());
    }

    /// An old file whose job ended recently is no longer needed: it goes, the job stays.
    #[tokio::test]
    async fn an_old_file_goes_once_its_jobs_ended_even_if_they_are_young() {
        let t = context();
        let bytes = png(48, 32);
        let image = crate::validation::inspect_image(&bytes, t.config.image_limits()).unwrap();
        let created = Utc::now() - chrono::Duration::hours(2);
        let file = UploadedFile::ready("alice", "photo.png", image, created, later());
        t.storage
            .put(&file.object_key, Bytes::from(bytes), "image/png")
            .await
            .unwrap();
        t.store.create_file(&file).await.unwrap();
        let job = completed(&t, &queued_job(&t, &file, RELIEF_MODEL).await).await;

        let report = cleanup(&t, pass(false), Utc::now()).await.unwrap();
        assert_eq!((report.files, report.jobs), (vec![file.file_id], vec![]));
        assert!(t.store.get_file(file.file_id).await.unwrap().is_none());
        assert!(t.storage.head(&file.object_key).await.unwrap().is_none());
        assert!(t.store.get_job(job.job_id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn one_pass_removes_a_backlog_of_many_pages() {
        let t = context();
        let mut ended = Vec::new();
        for _ in 0..7 {
            let file = ready_file(&t, "alice").await;
            let job = queued_job(&t, &file, RELIEF_MODEL).await;
            ended.push((file.clone(), completed(&t, &job).await));
        }
        // An old file a live job still needs, listed among the others on every page.
        let live_file = ready_file(&t, "alice").await;
        let live = queued_job(&t, &live_file, RELIEF_MODEL).await;

        let dry = cleanup_in_pages(&t, pass(true), later(), 3).await.unwrap();
        assert_eq!(
            (dry.jobs.len(), dry.files.len()),
            (3, 3),
            "a dry run lists one page"
        );

        let report = cleanup_in_pages(&t, pass(false), later(), 3).await.unwrap();
        assert_eq!((report.jobs.len(), report.files.len()), (7, 7));
        for (file, job) in &ended {
            assert!(t.store.get_job(job.job_id).await.unwrap().is_none());
            assert!(t.store.get_file(file.file_id).await.unwrap().is_none());
            assert!(t.storage.head(&file.object_key).await.unwrap().is_none());
        }
        assert!(t.store.get_job(live.job_id).await.unwrap().is_some());
        assert!(t.store.get_file(live_file.file_id).await.unwrap().is_some());
        assert!(report.complete);
    }

    /// Old files a live job still needs fill the first page of every listing: a page of
    /// nothing else ends the pass at once rather than reading it again until time is up.
    #[tokio::test]
    async fn a_page_of_files_still_in_use_ends_the_pass() {
        let t = context();
        for _ in 0..3 {
            queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        }
        let pass = CleanupPass {
            budget: Duration::from_secs(2),
            ..pass(false)
        };
        let report = cleanup_in_pages(&t, pass, later(), 3).await.unwrap();
        assert!(report.files.is_empty());
        assert!(report.complete, "the pass ran out its time: {report:?}");
    }

    /// Out of time, a pass finishes the page it is on and says it did not get through; the
    /// next pass goes on from there.
    #[tokio::test]
    async fn a_pass_out_of_time_stops_between_pages_and_says_so() {
        let t = context();
        for _ in 0..7 {
            let file = ready_file(&t, "alice").await;
            completed(&t, &queued_job(&t, &file, RELIEF_MODEL).await).await;
        }
        let orphan = JobResult::object_key_for(JobId::new(), "glb");
        t.storage
            .put(&orphan, Bytes::from_static(b"x"), "model/gltf-binary")
            .await
            .unwrap();
        let hurried = CleanupPass {
            budget: Duration::ZERO,
            ..pass(false)
        };
        let first = cleanup_in_pages(&t, hurried, later(), 3).await.unwrap();
        assert_eq!((first.jobs.len(), first.files.len()), (3, 3));
        assert!(!first.complete);
        assert!(
            t.storage.head(&orphan).await.unwrap().is_some(),
            "the listing of every object waits for a pass with time"
        );
        let rest = cleanup_in_pages(&t, pass(false), later(), 3).await.unwrap();
        assert_eq!((rest.jobs.len(), rest.files.len()), (4, 4));
        assert!(rest.complete);
        assert!(t.storage.head(&orphan).await.unwrap().is_none());
    }
}
