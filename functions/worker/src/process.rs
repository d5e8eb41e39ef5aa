//! Running one queued job: claim it (conditionally), fetch its image, generate, store the model,
//! complete it. Every step tolerates redelivery: a finished job is acknowledged, a job another
//! live worker holds is left alone, a job whose worker died is taken over.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use bytes::Bytes;
use chrono::Utc;
use futures_util::future::join_all;
use image2model_shared::AppContext;
use image2model_shared::domain::{
    FileStatus, GenerationJob, JobError, JobId, JobResult, JobStatus,
};
use image2model_shared::fal::FalClient;
use image2model_shared::metrics::record_generation;
use image2model_shared::pipeline::{
    UpdateError, WorkMessage, WorkStep, fail_job, send_work, update_job,
};
use image2model_shared::ports::{GenerationRequest, Generator, ProgressReporter, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to do with the message after handling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Acknowledge (delete) it: the job is settled or was handed on.
    Done,
    /// Leave it: it becomes visible again and is retried (ending in the dead letters).
    Retry,
}

#[derive(Clone)]
pub struct Worker {
    pub(crate) ctx: AppContext,
    generators: Vec<Arc<dyn Generator>>,
    /// Set when a FAL key is configured: every catalog model then runs at FAL.
    pub(crate) fal: Option<FalClient>,
}

/// Writes progress to the job, and notices when the job was settled elsewhere (cancelled).
pub(crate) struct JobProgress<'a> {
    pub(crate) ctx: &'a AppContext,
    pub(crate) job: &'a GenerationJob,
    pub(crate) settled: AtomicBool,
}

#[async_trait::async_trait]
impl ProgressReporter for JobProgress<'_> {
    async fn report(&self, progress: u8, message: &str) {
        let now = Utc::now();
        let result = update_job(self.ctx.store.as_ref(), self.job.job_id, |job| {
            if job.progress > progress {
                Ok(None)
            } else {
                job.report_progress(progress, message, now).map(Some)
            }
        })
        .await;
        match result {
            Ok(job) if job.status.is_terminal() => self.settled.store(true, Ordering::SeqCst),
            Ok(_) => {}
            Err(UpdateError::Transition(_) | UpdateError::NotFound) => {
                self.settled.store(true, Ordering::SeqCst)
            }
            Err(err) => {
                tracing::warn!(job_id = %self.job.job_id, error = %err, "progress not recorded")
            }
        }
    }
}

impl Worker {
    pub fn new(ctx: AppContext, generators: Vec<Arc<dyn Generator>>) -> Self {
        Self {
            ctx,
            generators,
            fal: None,
        }
    }

    /// Runs jobs through FAL.AI with `client` instead of the built-in generators.
    pub fn with_fal(mut self, client: FalClient) -> Self {
        self.fal = Some(client);
        self
    }

    /// Handles an SQS batch as Lambda delivers it, its messages concurrently (a slow FAL
    /// submission does not hold up the quick polls beside it), reporting only the failed
    /// message ids.
    pub async fn handle_sqs_event(&self, event: SqsEvent) -> SqsBatchResponse {
        let outcomes = join_all(
            event
                .records
                .iter()
                .map(|record| self.handle_message(record.body.as_deref().unwrap_or_default())),
        )
        .await;
        let mut response = SqsBatchResponse::default();
        for (record, outcome) in event.records.into_iter().zip(outcomes) {
            if outcome == MessageOutcome::Retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Handles one message body.
    pub async fn handle_message(&self, body: &str) -> MessageOutcome {
        let message: WorkMessage = match serde_json::from_str(body) {
            Ok(message) => message,
            Err(err) => {
                tracing::error!(error = %err, "malformed work message; it will end in the dead letters");
                return MessageOutcome::Retry;
            }
        };
        let job_id = message.job_id;
        match self.run(message).await {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!(job_id = %job_id, error = %err, "job step failed; message will be redelivered");
                MessageOutcome::Retry
            }
        }
    }

    pub(crate) async fn fail(
        &self,
        job: &GenerationJob,
        code: &str,
        message: String,
    ) -> Result<MessageOutcome, UpdateError> {
        let error = JobError::new(code, message);
        let result = fail_job(self.ctx.store.as_ref(), job.job_id, &error).await;
        match result {
            Ok(_) | Err(UpdateError::NotFound) => {
                tracing::info!(job_id = %job.job_id, code, "job failed");
                Ok(MessageOutcome::Done)
            }
            Err(e) => Err(e),
        }
    }

    async fn run(&self, message: WorkMessage) -> Result<MessageOutcome, UpdateError> {
        match message.step {
            WorkStep::Generate => self.generate(message.job_id).await,
            step => self.check_at_fal(message.job_id, step).await,
        }
    }

    async fn generate(&self, job_id: JobId) -> Result<MessageOutcome, UpdateError> {
        let config = &self.ctx.config;
        let Some(job) = self.ctx.store.get_job(job_id).await? else {
            return Ok(MessageOutcome::Done);
        };
        if job.status.is_terminal() {
            return Ok(MessageOutcome::Done);
        }
        if job.fal.is_some() {
            // Redelivered (or re-sent by the sweeper) after the submission was recorded: never
            // submit twice, look instead. Polls write a heartbeat, so a job updated within the
            // lease has a live poll chain and this look starts no second one.
            let lease = chrono::Duration::from_std(config.visibility_timeout).unwrap_or_default();
            let step = if job.updated_at > Utc::now() - lease {
                WorkStep::Webhook { attempt: 0 }
            } else {
                WorkStep::Poll { attempt: 0 }
            };
            return self.check_at_fal(job_id, step).await;
        }
        let lease = chrono::Duration::from_std(config.visibility_timeout).unwrap_or_default();
        if job.status == JobStatus::Processing && job.updated_at > Utc::now() - lease {
            // Another worker holds a live lease; let the message come back later.
            return Ok(MessageOutcome::Retry);
        }
        if job.attempts >= config.max_attempts {
            return self
                .fail(
                    &job,
                    "GENERATION_FAILED",
                    format!("gave up after {} attempts", job.attempts),
                )
                .await;
        }
        let file = match self.ctx.store.get_file(job.file_id).await? {
            Some(file) if file.status == FileStatus::Ready => file,
            Some(file) if file.status == FileStatus::Pending => return Ok(MessageOutcome::Done),
            _ => {
                return self
                    .fail(
                        &job,
                        "FILE_NOT_FOUND",
                        "the uploaded file is gone".to_owned(),
                    )
                    .await;
            }
        };
        if let Some(client) = &self.fal {
            return self.submit_to_fal(client, &job, &file).await;
        }
        let Some(generator) = self
            .generators
            .iter()
            .find(|g| g.supports(&job.model_type))
            .cloned()
        else {
            return self
                .fail(
                    &job,
                    "MODEL_UNAVAILABLE",
                    format!("no generator serves {:?}", job.model_type),
                )
                .await;
        };

        let claimed = match self.claim(&job).await? {
            Ok(claimed) => claimed,
            Err(outcome) => return Ok(outcome),
        };

        let image = match self.ctx.storage.get(&file.object_key).await {
            Ok(bytes) => bytes,
            Err(image2model_shared::ports::StorageError::NotFound(_)) => {
                return self
                    .fail(
                        &claimed,
                        "FILE_NOT_FOUND",
                        "the uploaded bytes are gone".to_owned(),
                    )
                    .await;
            }
            Err(err) => {
                return self
                    .retry_later(&claimed, "GENERATION_FAILED", &err.to_string(), None)
                    .await;
            }
        };
        let progress = JobProgress {
            ctx: &self.ctx,
            job: &claimed,
            settled: AtomicBool::new(false),
        };
        let request = GenerationRequest {
            model_type: claimed.model_type.clone(),
            options: claimed.options.clone(),
            image,
        };
        let started = Instant::now();
        let generated = generator.generate(request, &progress).await;
        let outcome = if generated.is_ok() {
            "success"
        } else {
            "error"
        };
        record_generation(&claimed.model_type, outcome, started.elapsed());
        match generated {
            Ok(model) => {
                if progress.settled.load(Ordering::SeqCst) {
                    tracing::info!(job_id = %claimed.job_id, "job settled elsewhere during generation; result discarded");
                    return Ok(MessageOutcome::Done);
                }
                self.store_result(
                    &claimed,
                    &file.filename,
                    model.bytes,
                    model.content_type,
                    model.file_extension,
                )
                .await
            }
            Err(err) if err.is_retryable() => {
                self.retry_later(&claimed, err.code(), &err.to_string(), None)
                    .await
            }
            Err(err) => self.fail(&claimed, err.code(), err.to_string()).await,
        }
    }

    /// Claims the job with one conditional write on the version we read: of several deliveries
    /// of the same job, exactly one wins; the others find it changed and stand down (with the
    /// outcome for their message).
    pub(crate) async fn claim(
        &self,
        job: &GenerationJob,
    ) -> Result<Result<GenerationJob, MessageOutcome>, UpdateError> {
        let Ok(claimed) = job.start(Utc::now()) else {
            return Ok(Err(MessageOutcome::Done));
        };
        match self.ctx.store.update_job(&claimed).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(Err(MessageOutcome::Retry)),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(job_id = %claimed.job_id, attempt = claimed.attempts, model_type = %claimed.model_type, "job started");
        Ok(Ok(claimed))
    }

    pub(crate) async fn store_result(
        &self,
        job: &GenerationJob,
        source_name: &str,
        bytes: Bytes,
        content_type: &str,
        extension: &str,
    ) -> Result<MessageOutcome, UpdateError> {
        let key = format!("results/{}/model.{extension}", job.job_id);
        let stem = source_name
            .rsplit_once('.')
            .map_or(source_name, |(stem, _)| stem);
        let result = JobResult {
            object_key: key.clone(),
            filename: format!("{stem}.{extension}"),
            size: bytes.len() as u64,
            content_type: content_type.to_owned(),
            preview_key: None,
        };
        if let Err(err) = self.ctx.storage.put(&key, bytes, content_type).await {
            return self
                .retry_later(job, "GENERATION_FAILED", &err.to_string(), None)
                .await;
        }
        let now = Utc::now();
        match update_job(self.ctx.store.as_ref(), job.job_id, |j| {
            j.complete(result.clone(), now).map(Some)
        })
        .await
        {
            Ok(done) => {
                tracing::info!(job_id = %done.job_id, size = result.size, "job completed");
                Ok(MessageOutcome::Done)
            }
            Err(UpdateError::Transition(_) | UpdateError::NotFound) => {
                // Settled while we worked. If another delivery completed it (a webhook and a
                // poll can both get here), the object is that result; otherwise the job was
                // cancelled or deleted and the model is not wanted.
                let completed_here = self
                    .ctx
                    .store
                    .get_job(job.job_id)
                    .await?
                    .is_some_and(|j| j.result.as_ref().is_some_and(|r| r.object_key == key));
                if !completed_here && let Err(err) = self.ctx.storage.delete(&key).await {
                    tracing::warn!(key, error = %err, "could not remove an unwanted result");
                }
                Ok(MessageOutcome::Done)
            }
            Err(e) => Err(e),
        }
    }

    /// A transient failure: back to the queue after `retry_after` (or a growing delay), or
    /// failed with `code` after the last attempt.
    pub(crate) async fn retry_later(
        &self,
        job: &GenerationJob,
        code: &str,
        reason: &str,
        retry_after: Option<Duration>,
    ) -> Result<MessageOutcome, UpdateError> {
        if job.attempts >= self.ctx.config.max_attempts {
            return self
                .fail(
                    job,
                    code,
                    format!("failed after {} attempts: {reason}", job.attempts),
                )
                .await;
        }
        let now = Utc::now();
        let message = format!("Attempt {} failed; retrying: {reason}", job.attempts);
        match update_job(self.ctx.store.as_ref(), job.job_id, |j| {
            j.requeue(&message, now).map(Some)
        })
        .await
        {
            Ok(_) => {}
            Err(UpdateError::Transition(_) | UpdateError::NotFound) => {
                return Ok(MessageOutcome::Done);
            }
            Err(e) => return Err(e),
        }
        // The server's Retry-After when it gave one; a growing delay otherwise.
        let delay =
            retry_after.unwrap_or_else(|| Duration::from_secs(5 * u64::from(job.attempts.min(12))));
        self.send(WorkMessage::generate(job.job_id), delay).await
    }

    /// Enqueues `message`; when that fails, the current message is retried instead.
    pub(crate) async fn send(
        &self,
        message: WorkMessage,
        delay: Duration,
    ) -> Result<MessageOutcome, UpdateError> {
        match send_work(self.ctx.queue.as_ref(), &message, delay).await {
            Ok(()) => Ok(MessageOutcome::Done),
            Err(err) => {
                tracing::warn!(job_id = %message.job_id, error = %err, "follow-up not enqueued; redelivery will retry");
                Ok(MessageOutcome::Retry)
            }
        }
    }
}
