//! The work step: what the worker does with one queue message, read top to bottom here.
//! [`Worker::handle`] reads the message and runs its step: `generate.rs` (a queued job checked,
//! claimed and run on the built-in generator), `fal.rs` (a job submitted to FAL.AI, then looked at
//! by polls and webhooks, as the pure `fal_decision.rs` decides) or a format conversion. Every step
//! returns one [`Outcome`], which [`Worker::act`] carries out: `finish.rs` completes or fails the
//! job, `retry.rs` queues it again under the [`RetryPolicy`]. A step of a job at FAL also says
//! whether the job's FAL slot is free afterwards, and `handle` releases it: the one exit. Every
//! step tolerates redelivery: a finished job is acknowledged, a job another live worker holds is
//! left alone, a job whose worker died is taken over once its lease lapses.

mod fal;
pub mod fal_decision;
mod finish;
mod generate;
mod progress;
mod retry;

pub use retry::RetryPolicy;

use super::enqueue::{WorkMessage, WorkStep, send_work};
use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{GenerationJob, JobError, JobErrorCode, JobId, ModelFormat};
use crate::ports::{FalQueue, GeneratedModel, Generator, StorageError, StoreError};
use chrono::Utc;
use futures_util::FutureExt;
use progress::JobProgress;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// What to do with the message after handling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Acknowledge (delete) it: the job is settled or was handed on.
    Done,
    /// Leave it: it becomes visible again and is retried (ending in the dead letters).
    Retry,
}

/// What a job's message says when object storage failed under it (the error is logged).
const STORAGE_UNAVAILABLE: &str = "object storage is unavailable";

/// What a step decided. [`Worker::act`] carries it out; carrying out one may lead to another
/// (a model that cannot be stored retries the job, a job out of attempts fails).
#[derive(Debug)]
enum Outcome {
    /// Nothing more to do: acknowledge the message.
    Done,
    /// Leave the message for redelivery (another live worker holds the job).
    Redeliver,
    /// Store the model (named after the photo `source_name`) and complete the job.
    Complete {
        job: Box<GenerationJob>,
        model: GeneratedModel,
        source_name: String,
    },
    /// A failure a later attempt may not meet: queue the job again (after `after`, or the
    /// policy's wait), or fail it with `code` after its last attempt.
    RetryLater {
        job: Box<GenerationJob>,
        code: JobErrorCode,
        reason: String,
        after: Option<Duration>,
    },
    /// Fail the job.
    Fail {
        job: Box<GenerationJob>,
        error: JobError,
    },
    /// Send `message` after the delay: a poll, a deferred submission, a webhook's wait.
    Later(WorkMessage, Duration),
}

impl Outcome {
    fn fail(job: &GenerationJob, code: JobErrorCode, message: impl Into<String>) -> Self {
        Self::Fail {
            job: Box::new(job.clone()),
            error: JobError::new(code, message),
        }
    }

    fn retry(job: &GenerationJob, code: JobErrorCode, reason: impl Into<String>) -> Self {
        Self::RetryLater {
            job: Box::new(job.clone()),
            code,
            reason: reason.into(),
            after: None,
        }
    }

    /// Object storage failed under a running job: the error goes to the log, the job is retried
    /// later with a message that names no backend detail.
    fn storage_failed(job: &GenerationJob, err: &StorageError) -> Self {
        tracing::warn!(job_id = %job.job_id, error = %err, "object storage failed");
        Self::retry(job, JobErrorCode::GenerationFailed, STORAGE_UNAVAILABLE)
    }
}

/// A step's outcome, and whether the job's FAL slot is free once it is carried out.
struct Step {
    outcome: Outcome,
    frees_slot: bool,
}

impl Step {
    /// An outcome after which the job's FAL slot is free.
    fn freeing(outcome: Outcome) -> Self {
        Self {
            outcome,
            frees_slot: true,
        }
    }
}

impl From<Outcome> for Step {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            frees_slot: false,
        }
    }
}

#[derive(Clone)]
pub struct Worker {
    ctx: AppContext,
    generators: Vec<Arc<dyn Generator>>,
    /// Set when a FAL key is configured: every catalog model then runs at FAL.
    fal: Option<Arc<dyn FalQueue>>,
    retries: RetryPolicy,
}

impl Worker {
    pub fn new(ctx: AppContext, generators: Vec<Arc<dyn Generator>>) -> Self {
        let retries = RetryPolicy::of(&ctx.config);
        Self {
            ctx,
            generators,
            fal: None,
            retries,
        }
    }

    /// Runs jobs through FAL.AI's queue `fal` instead of the built-in generators.
    pub fn with_fal(mut self, fal: impl FalQueue + 'static) -> Self {
        self.fal = Some(Arc::new(fal));
        self
    }

    /// Handles one message body; a panic on the way fails this message alone (it is retried,
    /// and ends in the dead letters if it always panics), never the process or a batch.
    pub async fn handle_message(&self, body: &str) -> MessageOutcome {
        AssertUnwindSafe(self.handle(body))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!("the worker panicked on a message; it will be redelivered");
                MessageOutcome::Retry
            })
    }

    /// Runs the message's step, frees the job's FAL slot when the step says so (the one place a
    /// slot is released), and carries out the step's outcome. The slot goes first: an outcome
    /// that queues the job again may be delivered at once, and must find the slot free to take
    /// it. An error of a port leaves the message for redelivery.
    async fn handle(&self, body: &str) -> MessageOutcome {
        let message: WorkMessage = match serde_json::from_str(body) {
            Ok(message) => message,
            Err(err) => {
                tracing::error!(error = %err, "malformed work message; it will end in the dead letters");
                return MessageOutcome::Retry;
            }
        };
        let job_id = message.job_id;
        let step = match message.step {
            WorkStep::Generate => self.generate(job_id).await,
            WorkStep::Convert { format } => self.convert(job_id, format).await.map(Step::from),
            step => self.check_at_fal(job_id, step).await,
        };
        let result = match step {
            Ok(step) => {
                if step.frees_slot {
                    self.release_slot(job_id).await;
                }
                self.act(step.outcome).await
            }
            Err(err) => Err(err),
        };
        result.unwrap_or_else(|err| {
            tracing::warn!(job_id = %job_id, error = %err, "job step failed; message will be redelivered");
            MessageOutcome::Retry
        })
    }

    /// Carries out what a step decided, and what that leads to, until the message is settled.
    async fn act(&self, mut outcome: Outcome) -> Result<MessageOutcome, AppError> {
        loop {
            outcome = match outcome {
                Outcome::Done => return Ok(MessageOutcome::Done),
                Outcome::Redeliver => return Ok(MessageOutcome::Retry),
                Outcome::Later(message, delay) => return Ok(self.send(message, delay).await),
                Outcome::Complete {
                    job,
                    model,
                    source_name,
                } => self.complete(&job, model, &source_name).await?,
                Outcome::RetryLater {
                    job,
                    code,
                    reason,
                    after,
                } => self.retry_later(&job, code, &reason, after).await?,
                Outcome::Fail { job, error } => self.fail(&job, &error).await?,
            };
        }
    }

    /// Claims the job with one conditional write on the version we read: of several deliveries
    /// of the same job, exactly one wins; the others find it changed and stand down (with the
    /// outcome for their message).
    async fn claim(&self, job: &GenerationJob) -> Result<Result<GenerationJob, Outcome>, AppError> {
        let Ok(claimed) = job.start(Utc::now()) else {
            return Ok(Err(Outcome::Done));
        };
        match self.ctx.store.update_job(&claimed).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(Err(Outcome::Redeliver)),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(job_id = %claimed.job_id, attempt = claimed.attempts, model_type = %claimed.model_type, "job started");
        Ok(Ok(claimed))
    }

    /// One of the decode permits, held while an image is decoded and a model built from it.
    async fn decode_permit(
        &self,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, crate::ports::GeneratorError> {
        self.ctx.decodes.acquire().await.map_err(|_| {
            crate::ports::GeneratorError::Transient("the decode permits are closed".to_owned())
        })
    }

    /// Converts a completed job's model to `format` (a first download asked for it); nothing to
    /// do for a job that is gone or has no model.
    async fn convert(&self, job_id: JobId, format: ModelFormat) -> Result<Outcome, AppError> {
        let Some(job) = self.ctx.store.get_job(job_id).await? else {
            return Ok(Outcome::Done);
        };
        if let Some(result) = job.result.as_ref().filter(|_| job.status.is_terminal()) {
            let converted = crate::app::convert::convert(&self.ctx, job_id, result, format).await?;
            crate::app::job_update::record_format(self.ctx.store.as_ref(), job_id, &converted)
                .await?;
        }
        Ok(Outcome::Done)
    }

    /// Enqueues `message`; when that fails, the current message is retried instead.
    async fn send(&self, message: WorkMessage, delay: Duration) -> MessageOutcome {
        match send_work(self.ctx.queue.as_ref(), &message, delay).await {
            Ok(()) => MessageOutcome::Done,
            Err(err) => {
                tracing::warn!(job_id = %message.job_id, error = %err, "follow-up not enqueued; redelivery will retry");
                MessageOutcome::Retry
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::job_update::update_job;
    use crate::app::testing::TestContext;
    use crate::app::testing::{
        context, context_with, pending_file, queued_job, ready_file, stored,
    };
    use crate::domain::models::RELIEF_MODEL;
    use crate::domain::{GenerationJob, JobId, JobOptions, JobStatus, ModelFormat, RESULTS_PREFIX};
    use crate::ports::{GenerationRequest, GeneratorError, ProgressReporter};
    use bytes::Bytes;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A generator that answers from a script, counts its runs, and may cancel the job it runs
    /// (as its owner would, mid-generation).
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<(), GeneratorError>>>,
        runs: AtomicUsize,
        cancel_during_run: Mutex<Option<(AppContext, JobId)>>,
    }

    impl Scripted {
        fn answering(answers: impl IntoIterator<Item = Result<(), GeneratorError>>) -> Arc<Self> {
            Arc::new(Self {
                answers: Mutex::new(answers.into_iter().collect()),
                ..Self::default()
            })
        }

        fn runs(&self) -> usize {
            self.runs.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl Generator for Scripted {
        fn supports(&self, model_type: &str) -> bool {
            model_type == RELIEF_MODEL
        }

        async fn generate(
            &self,
            _request: GenerationRequest,
            progress: &dyn ProgressReporter,
        ) -> Result<GeneratedModel, GeneratorError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let cancel = self.cancel_during_run.lock().unwrap().clone();
            if let Some((ctx, job_id)) = cancel {
                let now = Utc::now();
                update_job(&ctx, job_id, |j| j.cancel(now).map(Some))
                    .await
                    .unwrap();
            }
            progress.report(50, "halfway").await;
            let answer = self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()));
            answer.map(|()| GeneratedModel {
                bytes: Bytes::from_static(b"glTF model bytes"),
                content_type: "model/gltf-binary",
                file_extension: "glb",
                preview: None,
            })
        }
    }

    fn transient() -> Result<(), GeneratorError> {
        Err(GeneratorError::Transient("disk hiccup".into()))
    }

    fn generate_message(job_id: JobId) -> String {
        serde_json::to_string(&WorkMessage::generate(job_id)).unwrap()
    }

    async fn results(ctx: &AppContext) -> usize {
        ctx.storage.list(RESULTS_PREFIX).await.unwrap().len()
    }

    #[tokio::test]
    async fn a_generate_message_claims_runs_stores_and_completes_the_job_once() {
        let t = context();
        let generator = Scripted::answering([]);
        let worker = Worker::new(t.ctx.clone(), vec![generator.clone()]);
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;

        assert_eq!(
            worker.handle_message(&generate_message(job.job_id)).await,
            MessageOutcome::Done
        );
        let done = stored(&t, &job).await;
        assert_eq!(
            (done.status, done.progress, done.attempts),
            (JobStatus::Completed, 100, 1)
        );
        let result = done.result.unwrap();
        assert_eq!(
            (result.filename.as_str(), result.content_type.as_str()),
            ("photo.glb", "model/gltf-binary")
        );
        let stored_model = t.storage.get(&result.object_key).await.unwrap();
        assert_eq!(stored_model, Bytes::from_static(b"glTF model bytes"));
        assert_eq!(
            result.size,
            stored_model.len() as u64,
            "the size recorded is the model's"
        );
        // A redelivery of the same message finds the job ended and runs nothing.
        assert_eq!(
            worker.handle_message(&generate_message(job.job_id)).await,
            MessageOutcome::Done
        );
        assert_eq!(generator.runs(), 1);
    }

    /// A queued job of the relief on a new ready file, asking for `formats`; stored.
    async fn job_asking_for(t: &TestContext, formats: Vec<ModelFormat>) -> GenerationJob {
        let file = ready_file(t, "alice").await;
        let options = JobOptions {
            formats: Some(formats),
            ..JobOptions::default()
        };
        let job = GenerationJob::new(
            file.file_id,
            "alice",
            RELIEF_MODEL,
            options,
            None,
            Utc::now(),
        );
        t.store
            .create_jobs(std::slice::from_ref(&job), None, None)
            .await
            .unwrap();
        job
    }

    #[tokio::test]
    async fn the_formats_a_job_asks_for_are_made_before_it_completes_and_named_in_its_result() {
        use crate::builtin_generator::BuiltinGenerator;
        let t = context();
        let generator = Arc::new(BuiltinGenerator::new(t.config.image_limits()));
        let worker = Worker::new(t.ctx.clone(), vec![generator]);
        let job = job_asking_for(
            &t,
            vec![ModelFormat::Stl, ModelFormat::Usdz, ModelFormat::Stl],
        )
        .await;

        assert_eq!(
            worker.handle_message(&generate_message(job.job_id)).await,
            MessageOutcome::Done
        );
        let result = stored(&t, &job).await.result.expect("completed");
        assert_eq!(
            result.formats.iter().map(|f| f.format).collect::<Vec<_>>(),
            [ModelFormat::Usdz, ModelFormat::Stl],
            "each format asked for once, besides the GLB"
        );
        assert!(result.format_failures.is_empty());
        for made in &result.formats {
            let kept = t.storage.head(&made.object_key).await.unwrap().unwrap();
            assert_eq!(
                (kept.size, kept.content_type.as_str()),
                (made.size, made.format.content_type())
            );
        }
    }

    #[tokio::test]
    async fn formats_that_cannot_be_made_are_named_with_their_reason_and_the_job_completes() {
        let t = context();
        let worker = Worker::new(t.ctx.clone(), vec![Scripted::answering([])]);
        let job = job_asking_for(&t, vec![ModelFormat::Glb, ModelFormat::Obj]).await;
        worker.handle_message(&generate_message(job.job_id)).await;
        let done = stored(&t, &job).await;
        assert_eq!(done.status, JobStatus::Completed);
        let result = done.result.unwrap();
        assert!(result.formats.is_empty());
        assert_eq!(result.format_failures.len(), 1);
        assert_eq!(result.format_failures[0].format, ModelFormat::Obj);
        assert!(
            result.format_failures[0].reason.contains("glTF"),
            "{:?}",
            result.format_failures
        );
    }

    /// A generator that panics, in its own code or on the blocking pool.
    struct Panicking {
        on_blocking_pool: bool,
        runs: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Generator for Panicking {
        fn supports(&self, model_type: &str) -> bool {
            model_type == RELIEF_MODEL
        }

        async fn generate(
            &self,
            _request: GenerationRequest,
            _progress: &dyn ProgressReporter,
        ) -> Result<GeneratedModel, GeneratorError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            if self.on_blocking_pool {
                crate::builtin_generator::blocking(|| -> Result<GeneratedModel, _> {
                    panic!("this photo breaks the mesher")
                })
                .await
            } else {
                panic!("this photo breaks the generator")
            }
        }
    }

    /// A photo that panics the generator would panic it on every attempt: its job fails at
    /// once with `GENERATOR_CRASHED` (as validation refuses a photo that panics the decoder),
    /// and nothing is retried.
    #[tokio::test]
    async fn a_photo_that_panics_the_generator_fails_its_job_once() {
        for on_blocking_pool in [false, true] {
            let t = context();
            let generator = Arc::new(Panicking {
                on_blocking_pool,
                runs: AtomicUsize::new(0),
            });
            let worker = Worker::new(t.ctx.clone(), vec![generator.clone()]);
            let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
            assert_eq!(
                worker.handle_message(&generate_message(job.job_id)).await,
                MessageOutcome::Done
            );
            let failed = stored(&t, &job).await;
            assert_eq!(
                (failed.status, failed.attempts),
                (JobStatus::Failed, 1),
                "{on_blocking_pool}"
            );
            assert_eq!(failed.error.unwrap().code, "GENERATOR_CRASHED");
            assert_eq!(generator.runs.load(Ordering::SeqCst), 1);
            assert!(crate::app::testing::take_queued(&t).is_empty(), "no retry");
            assert_eq!(
                t.decodes.available_permits(),
                t.config.limits.max_concurrent_decodes
            );
        }
    }

    #[tokio::test]
    async fn a_job_a_live_worker_holds_is_left_alone_and_a_dead_ones_is_taken_over() {
        let t = context();
        let generator = Scripted::answering([]);
        let worker = Worker::new(t.ctx.clone(), vec![generator.clone()]);
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        let held = job.start(Utc::now()).unwrap();
        t.store.update_job(&held).await.unwrap();
        assert_eq!(
            worker.handle_message(&generate_message(job.job_id)).await,
            MessageOutcome::Retry
        );
        assert_eq!((generator.runs(), stored(&t, &job).await.attempts), (0, 1));

        // With a lease of zero every holder's lease has lapsed: the job is taken over.
        let lapsed = context_with(|c| c.jobs.visibility_timeout = Duration::ZERO);
        let worker = Worker::new(lapsed.ctx.clone(), vec![generator.clone()]);
        let job = queued_job(&lapsed, &ready_file(&lapsed, "alice").await, RELIEF_MODEL).await;
        let held = job.start(Utc::now()).unwrap();
        lapsed.store.update_job(&held).await.unwrap();
        assert_eq!(
            worker.handle_message(&generate_message(job.job_id)).await,
            MessageOutcome::Done
        );
        let done = stored(&lapsed, &job).await;
        assert_eq!((done.status, done.attempts), (JobStatus::Completed, 2));
    }

    /// A job whose last attempt died with its worker (its lease lapsed, its attempts spent) is
    /// failed when its message comes back, never run once more.
    #[tokio::test]
    async fn a_job_whose_attempts_are_spent_is_failed_not_run_again() {
        let t = context_with(|c| {
            c.jobs.max_attempts = 1;
            c.jobs.visibility_timeout = Duration::ZERO;
        });
        let generator = Scripted::answering([]);
        let worker = Worker::new(t.ctx.clone(), vec![generator.clone()]);
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        t.store
            .update_job(&job.start(Utc::now()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            worker.handle_message(&generate_message(job.job_id)).await,
            MessageOutcome::Done
        );
        let failed = stored(&t, &job).await;
        assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 1));
        let error = failed.error.unwrap();
        assert_eq!(error.code, "GENERATION_FAILED");
        assert_eq!(error.message, "gave up after 1 attempts");
        assert_eq!(generator.runs(), 0);
    }

    #[tokio::test]
    async fn transient_failures_queue_the_job_again_later_until_the_last_attempt_fails_it() {
        let t = context_with(|c| c.jobs.max_attempts = 2);
        let generator = Scripted::answering([transient(), transient()]);
        let worker = Worker::new(t.ctx.clone(), vec![generator.clone()]);
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;

        assert_eq!(
            worker.handle_message(&generate_message(job.job_id)).await,
            MessageOutcome::Done
        );
        let retried = stored(&t, &job).await;
        assert_eq!((retried.status, retried.attempts), (JobStatus::Queued, 1));
        assert!(
            retried.message.starts_with("Attempt 1 failed; retrying"),
            "{}",
            retried.message
        );
        assert_eq!(retried.progress, 50, "progress is kept across attempts");
        let depth = t.queue.depth().await.unwrap();
        assert_eq!(
            (depth.visible, depth.delayed),
            (0, 1),
            "the next attempt waits"
        );

        assert_eq!(
            worker.handle_message(&generate_message(job.job_id)).await,
            MessageOutcome::Done
        );
        let failed = stored(&t, &job).await;
        assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 2));
        let error = failed.error.unwrap();
        assert_eq!(error.code, "GENERATION_FAILED");
        assert!(
            error.message.starts_with("failed after 2 attempts"),
            "{}",
            error.message
        );
        assert_eq!(results(&t).await, 0);
    }

    #[tokio::test]
    async fn input_the_generator_cannot_use_fails_at_once() {
        let t = context();
        let refused = Err(GeneratorError::InvalidInput {
            code: JobErrorCode::InvalidImage,
            message: "no subject".into(),
        });
        let worker = Worker::new(t.ctx.clone(), vec![Scripted::answering([refused])]);
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        assert_eq!(
            worker.handle_message(&generate_message(job.job_id)).await,
            MessageOutcome::Done
        );
        let failed = stored(&t, &job).await;
        assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 1));
        assert_eq!(failed.error.unwrap().code, "INVALID_IMAGE");
        let depth = t.queue.depth().await.unwrap();
        assert_eq!((depth.visible, depth.delayed), (0, 0), "nothing is retried");
    }

    #[tokio::test]
    async fn a_job_cancelled_during_generation_keeps_no_result() {
        let t = context();
        let generator = Scripted::answering([]);
        let worker = Worker::new(t.ctx.clone(), vec![generator.clone()]);
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        *generator.cancel_during_run.lock().unwrap() = Some((t.ctx.clone(), job.job_id));
        assert_eq!(
            worker.handle_message(&generate_message(job.job_id)).await,
            MessageOutcome::Done
        );
        assert_eq!(stored(&t, &job).await.status, JobStatus::Cancelled);
        assert_eq!(results(&t).await, 0);
    }

    #[tokio::test]
    async fn messages_for_unready_files_unknown_models_or_no_job_settle_without_running() {
        let t = context();
        let generator = Scripted::answering([]);
        let worker = Worker::new(t.ctx.clone(), vec![generator.clone()]);
        let waiting = queued_job(&t, &pending_file(&t, "alice").await, RELIEF_MODEL).await;
        assert_eq!(
            worker
                .handle_message(&generate_message(waiting.job_id))
                .await,
            MessageOutcome::Done
        );
        assert_eq!(
            stored(&t, &waiting).await.status,
            JobStatus::Queued,
            "ingestion releases it"
        );

        // A file that ingestion refused is not waited for: the job fails.
        let refused = pending_file(&t, "alice").await;
        let rejection = crate::domain::FileRejection {
            code: JobErrorCode::InvalidFileType,
            message: "not an image".into(),
        };
        t.store
            .update_file(&refused.reject(rejection).unwrap())
            .await
            .unwrap();
        let on_refused = queued_job(&t, &refused, RELIEF_MODEL).await;
        worker
            .handle_message(&generate_message(on_refused.job_id))
            .await;
        assert_eq!(
            stored(&t, &on_refused).await.error.unwrap().code,
            "FILE_NOT_FOUND"
        );

        let elsewhere = queued_job(&t, &ready_file(&t, "alice").await, "tripo3d").await;
        assert_eq!(
            worker
                .handle_message(&generate_message(elsewhere.job_id))
                .await,
            MessageOutcome::Done
        );
        assert_eq!(
            stored(&t, &elsewhere).await.error.unwrap().code,
            "MODEL_UNAVAILABLE"
        );

        let orphan = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        t.store.delete_file(orphan.file_id).await.unwrap();
        assert_eq!(
            worker
                .handle_message(&generate_message(orphan.job_id))
                .await,
            MessageOutcome::Done
        );
        assert_eq!(
            stored(&t, &orphan).await.error.unwrap().code,
            "FILE_NOT_FOUND"
        );

        assert_eq!(
            worker.handle_message(&generate_message(JobId::new())).await,
            MessageOutcome::Done
        );
        assert_eq!(
            worker.handle_message("{\"job\":1}").await,
            MessageOutcome::Retry
        );
        assert_eq!(generator.runs(), 0);
    }
}
