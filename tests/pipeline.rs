//! The job pipeline without HTTP, on the embedded adapters, where it crosses what one service's
//! unit tests see: concurrent deliveries of one job racing on the real generator, messages that
//! always fail ending in the dead letters, the sweeper's finds run on by the worker and
//! ingestion, and cleanup after the worker's results. (Redelivery, takeover of a dead worker's
//! job and retries are the worker's own unit tests, in `shared/src/app/work/mod.rs`.)

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{Duration as Span, Utc};
use image2model_shared::AppContext;
use image2model_shared::adapters::embedded::EmbeddedAdapters;
use image2model_shared::app::cleanup::{CleanupPass, cleanup};
use image2model_shared::app::enqueue::WorkMessage;
use image2model_shared::app::work::{MessageOutcome, Worker};
use image2model_shared::builtin_generator::BuiltinGenerator;
use image2model_shared::config::Config;
use image2model_shared::domain::{FileStatus, GenerationJob, JobStatus, UploadedFile};
use image2model_shared::ports::{
    GeneratedModel, GenerationRequest, Generator, GeneratorError, ProgressReporter,
};
use image2model_tests::contract::{file, insert_job, job};
use image2model_tests::send_generate;
use image2model_tests::{png, test_config};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The built-in generator, counting how often it runs.
struct Counting {
    inner: BuiltinGenerator,
    runs: AtomicUsize,
}

#[async_trait]
impl Generator for Counting {
    fn supports(&self, model_type: &str) -> bool {
        self.inner.supports(model_type)
    }
    async fn generate(
        &self,
        request: GenerationRequest,
        progress: &dyn ProgressReporter,
    ) -> Result<GeneratedModel, GeneratorError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.inner.generate(request, progress).await
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    ctx: AppContext,
    generator: Arc<Counting>,
    worker: Worker,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let adapters = EmbeddedAdapters::open(&config, "http://127.0.0.1:1").unwrap();
    let ctx = image2model_shared::wiring::embedded_context(config, &adapters).unwrap();
    let generator = Arc::new(Counting {
        inner: BuiltinGenerator::new(Config::default().image_limits()),
        runs: AtomicUsize::new(0),
    });
    let worker = Worker::new(ctx.clone(), vec![generator.clone()]);
    Setup {
        _dir: dir,
        ctx,
        generator,
        worker,
    }
}

async fn ready_file(ctx: &AppContext) -> UploadedFile {
    let bytes = png(48, 32);
    let image =
        image2model_shared::validation::inspect_image(&bytes, ctx.config.image_limits()).unwrap();
    let now = Utc::now();
    let ready = UploadedFile::ready("alice", "a.png", image, now, ctx.config.expires_at(now));
    ctx.storage
        .put(&ready.object_key, Bytes::from(bytes), "image/png")
        .await
        .unwrap();
    ctx.store.create_file(&ready).await.unwrap();
    ready
}

async fn stored_job(ctx: &AppContext, job: &GenerationJob) -> GenerationJob {
    ctx.store.get_job(job.job_id).await.unwrap().unwrap()
}

fn body(job: &GenerationJob) -> String {
    serde_json::to_string(&WorkMessage::generate(job.job_id)).unwrap()
}

#[tokio::test]
async fn concurrent_deliveries_run_the_job_once() {
    let s = setup();
    let f = ready_file(&s.ctx).await;
    let j = job("alice", f.file_id);
    insert_job(s.ctx.store.as_ref(), &j).await;
    let message = body(&j);
    let outcomes =
        futures_util::future::join_all((0..4).map(|_| s.worker.handle_message(&message))).await;
    assert_eq!(s.generator.runs.load(Ordering::SeqCst), 1, "{outcomes:?}");
    let done = stored_job(&s.ctx, &j).await;
    assert_eq!((done.status, done.attempts), (JobStatus::Completed, 1));
}

#[tokio::test]
async fn a_message_that_always_fails_ends_in_the_dead_letters_after_the_receive_limit() {
    let s = setup();
    s.ctx.queue.send("{not json", Duration::ZERO).await.unwrap();
    for _ in 0..=s.ctx.config.jobs.max_receives {
        for m in s.ctx.queue.receive(10, Duration::ZERO).await.unwrap() {
            assert_eq!(
                s.worker.handle_message(&m.body).await,
                MessageOutcome::Retry
            );
        }
    }
    let dead = s.ctx.queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].receive_count, s.ctx.config.jobs.max_receives);
}

#[tokio::test]
async fn the_sweeper_fails_overdue_jobs_and_requeues_lost_ones() {
    let s = setup();
    let f = ready_file(&s.ctx).await;
    let mut overdue = job("alice", f.file_id);
    overdue.created_at = Utc::now() - Span::hours(2);
    overdue.updated_at = overdue.created_at;
    let mut lost = job("alice", f.file_id);
    lost.updated_at = Utc::now() - Span::minutes(5);
    lost.created_at = lost.updated_at;
    let fresh = job("alice", f.file_id);
    s.ctx
        .store
        .create_jobs(&[overdue.clone(), lost.clone(), fresh.clone()], None, None)
        .await
        .unwrap();

    let report = image2model_shared::app::sweep::sweep(&s.ctx, Utc::now())
        .await
        .unwrap();
    assert_eq!(report.timed_out, [overdue.job_id]);
    assert_eq!(report.requeued, [lost.job_id]);
    let failed = stored_job(&s.ctx, &overdue).await;
    assert_eq!(
        (failed.status, failed.error.unwrap().code.as_str()),
        (JobStatus::Failed, "JOB_DEADLINE_EXCEEDED")
    );
    let delivered = s
        .ctx
        .queue
        .receive(10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        s.worker.handle_message(&delivered[0].body).await,
        MessageOutcome::Done
    );
    assert_eq!(stored_job(&s.ctx, &lost).await.status, JobStatus::Completed);
    assert_eq!(
        stored_job(&s.ctx, &fresh).await.status,
        JobStatus::Queued,
        "a fresh job is left to its message"
    );
}

#[tokio::test]
async fn the_sweeper_ingests_uploads_whose_event_never_came() {
    let s = setup();
    let mut pending = file("alice");
    pending.created_at = Utc::now() - Span::minutes(5);
    let bytes = png(20, 20);
    pending.size = bytes.len() as u64;
    s.ctx.store.create_file(&pending).await.unwrap();
    s.ctx
        .storage
        .put(&pending.object_key, Bytes::from(bytes), "image/png")
        .await
        .unwrap();
    let waiting = job("alice", pending.file_id);
    insert_job(s.ctx.store.as_ref(), &waiting).await;

    let report = image2model_shared::app::sweep::sweep(&s.ctx, Utc::now())
        .await
        .unwrap();
    assert_eq!(report.ingested, [pending.file_id]);
    assert_eq!(
        s.ctx
            .store
            .get_file(pending.file_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        FileStatus::Ready
    );
    let released = s
        .ctx
        .queue
        .receive(10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(released.len(), 1, "the waiting job was released");
}

#[tokio::test]
async fn cleanup_deletes_old_uploads_results_and_records_but_not_live_work() {
    let s = setup();
    let old_file = ready_file(&s.ctx).await;
    let j = job("alice", old_file.file_id);
    insert_job(s.ctx.store.as_ref(), &j).await;
    s.worker.handle_message(&body(&j)).await;
    let done = stored_job(&s.ctx, &j).await;
    let result_key = done.result.clone().unwrap().object_key;

    let busy_file = ready_file(&s.ctx).await;
    let live = job("alice", busy_file.file_id);
    insert_job(s.ctx.store.as_ref(), &live).await;
    s.ctx
        .storage
        .put(
            "uploads/alice/orphan",
            Bytes::from_static(b"x"),
            "image/png",
        )
        .await
        .unwrap();
    send_generate(s.ctx.queue.as_ref(), live.job_id)
        .await
        .unwrap();

    let later = Utc::now() + Span::hours(48);
    let dry = cleanup(
        &s.ctx,
        CleanupPass {
            older_than: Duration::from_secs(24 * 3600),
            dry_run: true,
            budget: Duration::from_secs(600),
        },
        later,
    )
    .await
    .unwrap();
    assert_eq!(dry.jobs, [j.job_id]);
    assert_eq!(dry.files, [old_file.file_id]);
    assert!(dry.objects.contains(&result_key) && dry.objects.contains(&old_file.object_key));
    assert!(dry.objects.contains(&"uploads/alice/orphan".to_owned()));
    assert!(
        s.ctx.storage.head(&result_key).await.unwrap().is_some(),
        "a dry run deletes nothing"
    );
    assert!(s.ctx.store.get_job(j.job_id).await.unwrap().is_some());

    let real = cleanup(
        &s.ctx,
        CleanupPass {
            older_than: Duration::from_secs(24 * 3600),
            dry_run: false,
            budget: Duration::from_secs(600),
        },
        later,
    )
    .await
    .unwrap();
    assert_eq!(
        (real.jobs.clone(), real.files.clone(), real.bytes),
        (dry.jobs, dry.files, dry.bytes)
    );
    assert!(s.ctx.storage.head(&result_key).await.unwrap().is_none());
    assert!(
        s.ctx
            .storage
            .head(&old_file.object_key)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.ctx
            .storage
            .head("uploads/alice/orphan")
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.ctx.store.get_job(j.job_id).await.unwrap().is_none());
    assert!(
        s.ctx
            .store
            .get_file(old_file.file_id)
            .await
            .unwrap()
            .is_none()
    );
    // The queued job's file survives, bytes and all.
    assert!(
        s.ctx
            .store
            .get_file(busy_file.file_id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.ctx
            .storage
            .head(&busy_file.object_key)
            .await
            .unwrap()
            .is_some()
    );
}
