//! Jobs at FAL.AI, without paying Lambda time to wait. A generate message submits the job (when
//! the circuit breaker and the in-flight cap allow), records FAL's request on the job with a
//! conditional write and returns. Poll messages, re-enqueued with a delay that backs off, and
//! verified webhooks then look at the request: progress from the queue position and logs, and on
//! completion the result is copied into our storage and the job completed, exactly once. A job
//! past its generation timeout is cancelled at FAL and fails with `GENERATION_TIMEOUT`.

use crate::builtin::{blocking, glb_from_depth_image};
use crate::process::{JobProgress, MessageOutcome, Worker};
use bytes::Bytes;
use chrono::Utc;
use image2model_shared::domain::models::{self, ModelOutput, ModelSpec};
use image2model_shared::domain::{FalRequest, GenerationJob, JobId, JobStatus, UploadedFile};
use image2model_shared::fal::{Admission, FalClient, FalError, QueueStatus, guard};
use image2model_shared::metrics::record_generation;
use image2model_shared::pipeline::{UpdateError, WorkMessage, WorkStep, update_job};
use image2model_shared::ports::{GeneratorError, ProgressReporter};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// How often a webhook that overtook its submission's record waits for it.
const WEBHOOK_WAITS: u32 = 5;
const WEBHOOK_WAIT: Duration = Duration::from_secs(2);
const GLB_CONTENT_TYPE: &str = "model/gltf-binary";

/// Progress while waiting in FAL's queue: 5 at the back, 10 at the front.
fn queued_progress(position: Option<u32>) -> (u8, String) {
    match position {
        Some(p) => (
            10 - p.min(5) as u8,
            format!("Waiting in the FAL.AI queue (position {p})"),
        ),
        None => (5, "Waiting in the FAL.AI queue".to_owned()),
    }
}

/// Progress while running: 15, then 5 more per log line up to 80; the message is the last log.
fn running_progress(logs: &[String]) -> (u8, String) {
    let steps = logs.len().min(13) as u8;
    let message = logs.last().map_or_else(
        || "Generating at FAL.AI".to_owned(),
        |l| {
            format!(
                "Generating at FAL.AI: {}",
                l.chars().take(200).collect::<String>()
            )
        },
    );
    (15 + 5 * steps, message)
}

/// Whether `bytes` is a glTF 2.0 binary whose header length matches.
fn is_glb(bytes: &[u8]) -> bool {
    bytes.len() >= 20
        && &bytes[0..4] == b"glTF"
        && bytes[4..8] == 2u32.to_le_bytes()
        && u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize == bytes.len()
}

/// Our webhook URL for `job_id`.
fn webhook_for(base: &str, job_id: JobId) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}job_id={job_id}")
}

impl Worker {
    fn poll_delay(&self, attempt: u32) -> Duration {
        let fal = &self.ctx.config.fal;
        fal.poll_initial
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(fal.poll_max)
    }

    async fn report(&self, job: &GenerationJob, (progress, message): (u8, String)) {
        let reporter = JobProgress {
            ctx: &self.ctx,
            job,
            settled: AtomicBool::new(false),
        };
        reporter.report(progress, &message).await;
    }

    async fn release_slot(&self, job_id: JobId) {
        if let Err(err) = guard::release_slot(self.ctx.store.as_ref(), job_id).await {
            tracing::warn!(job_id = %job_id, error = %err, "FAL slot not released; it is reclaimed when needed");
        }
    }

    /// Records how FAL answered on the shared circuit breaker: an outage counts against it,
    /// any other answer proves FAL is up.
    async fn record_answer(&self, error: Option<&FalError>) {
        let breaker = self.ctx.config.fal.breaker();
        let store = self.ctx.store.as_ref();
        let now = Utc::now();
        let result = match error {
            Some(err) if err.is_outage() => {
                breaker.record_failure(store, &err.to_string(), now).await
            }
            _ => breaker.record_success(store, now).await,
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "circuit breaker not updated");
        }
    }

    /// Ends a FAL job with an error and frees its slot.
    async fn fail_at_fal(
        &self,
        job: &GenerationJob,
        code: &str,
        message: String,
    ) -> Result<MessageOutcome, UpdateError> {
        let outcome = self.fail(job, code, message).await;
        self.release_slot(job.job_id).await;
        outcome
    }

    /// Sends the generate message again later without touching the job (it stays queued).
    async fn defer(
        &self,
        job_id: JobId,
        delay: Duration,
        why: &str,
    ) -> Result<MessageOutcome, UpdateError> {
        tracing::info!(job_id = %job_id, delay_s = delay.as_secs_f64(), why, "submission deferred");
        self.send(
            WorkMessage::generate(job_id),
            delay.max(Duration::from_secs(1)),
        )
        .await
    }

    pub(crate) async fn submit_to_fal(
        &self,
        client: &FalClient,
        job: &GenerationJob,
        file: &UploadedFile,
    ) -> Result<MessageOutcome, UpdateError> {
        let settings = &self.ctx.config.fal;
        let store = self.ctx.store.as_ref();
        let Some(model) = models::find(&job.model_type) else {
            return self
                .fail(
                    job,
                    "MODEL_UNAVAILABLE",
                    format!("unknown model type {:?}", job.model_type),
                )
                .await;
        };
        if let Admission::Wait(left) = settings.breaker().admit(store, Utc::now()).await? {
            return self
                .defer(job.job_id, left, "FAL circuit breaker is open")
                .await;
        }
        let job_id = job.job_id;
        if !guard::acquire_slot(store, job_id, settings.max_in_flight, Utc::now()).await? {
            return self
                .defer(job_id, settings.poll_initial, "every FAL slot is taken")
                .await;
        }
        let claimed = match self.claim(job).await? {
            Ok(claimed) => claimed,
            Err(outcome) => {
                self.release_slot(job_id).await;
                return Ok(outcome);
            }
        };
        // The input URL must outlive queueing, the whole generation and retries.
        let input_expiry = settings.generation_timeout + Duration::from_secs(15 * 60);
        let image_url = match self
            .ctx
            .storage
            .presign_get(&file.object_key, &file.filename, input_expiry)
            .await
        {
            Ok(presigned) => presigned.url,
            Err(err) => {
                self.release_slot(job_id).await;
                return self
                    .retry_later(&claimed, "GENERATION_FAILED", &err.to_string(), None)
                    .await;
            }
        };
        let input = model.fal_input(&image_url, &claimed.options);
        let webhook = settings
            .webhook_url
            .as_deref()
            .map(|u| webhook_for(u, job_id));
        let submitted = client
            .submit(model.fal_app, &input, webhook.as_deref())
            .await;
        self.record_answer(submitted.as_ref().err()).await;
        let submission = match submitted {
            Ok(submission) => submission,
            Err(err) => {
                self.release_slot(job_id).await;
                tracing::warn!(job_id = %job_id, error = %err, "FAL submission failed");
                return if err.is_retryable() {
                    self.retry_later(&claimed, err.code(), &err.to_string(), err.retry_after())
                        .await
                } else {
                    self.fail(&claimed, err.code(), err.to_string()).await
                };
            }
        };
        if let Err(err) = guard::record_run(store, model.id, Utc::now()).await {
            tracing::warn!(error = %err, "FAL run not counted");
        }
        let request = FalRequest {
            request_id: submission.request_id.clone(),
            status_url: submission.status_url.clone(),
            response_url: submission.response_url.clone(),
            cancel_url: submission.cancel_url.clone(),
            submitted_at: Utc::now(),
        };
        let now = Utc::now();
        let recorded = update_job(store, job_id, |j| {
            j.record_submission(request.clone(), now).map(Some)
        })
        .await;
        match recorded {
            Ok(job) => {
                tracing::info!(job_id = %job_id, request_id = %request.request_id, app = model.fal_app, "submitted to FAL");
                self.report(&job, queued_progress(submission.queue_position))
                    .await;
            }
            Err(err) => {
                // Cancelled (or changed beyond recognition) meanwhile: FAL must not run it.
                tracing::warn!(job_id = %job_id, error = %err, "submission not recorded; cancelling it at FAL");
                if let Err(cancel) = client.cancel(&request.cancel_url).await {
                    tracing::warn!(job_id = %job_id, error = %cancel, "FAL cancel failed");
                }
                self.release_slot(job_id).await;
                return match err {
                    UpdateError::Transition(_) | UpdateError::NotFound => Ok(MessageOutcome::Done),
                    other => Err(other),
                };
            }
        }
        self.send(
            WorkMessage {
                job_id,
                step: WorkStep::Poll { attempt: 0 },
            },
            self.poll_delay(0),
        )
        .await
    }

    /// The next poll of a poll chain; webhooks start no chain of their own.
    async fn next_poll(
        &self,
        job_id: JobId,
        step: WorkStep,
    ) -> Result<MessageOutcome, UpdateError> {
        match step {
            WorkStep::Poll { attempt } => {
                let attempt = attempt.saturating_add(1);
                self.send(
                    WorkMessage {
                        job_id,
                        step: WorkStep::Poll { attempt },
                    },
                    self.poll_delay(attempt),
                )
                .await
            }
            WorkStep::Webhook { .. } | WorkStep::Generate => Ok(MessageOutcome::Done),
        }
    }

    /// Looks at a job's FAL request (a poll, or a webhook's signal).
    pub(crate) async fn check_at_fal(
        &self,
        job_id: JobId,
        step: WorkStep,
    ) -> Result<MessageOutcome, UpdateError> {
        let Some(job) = self.ctx.store.get_job(job_id).await? else {
            self.release_slot(job_id).await;
            return Ok(MessageOutcome::Done);
        };
        let Some(client) = self.fal.as_ref() else {
            tracing::warn!(job_id = %job_id, "a FAL step arrived but no FAL key is configured");
            return Ok(MessageOutcome::Done);
        };
        let Some(request) = job.fal.clone() else {
            if let WorkStep::Webhook { attempt } = step
                && attempt < WEBHOOK_WAITS
                && !job.status.is_terminal()
            {
                // The webhook overtook the record of its submission; look again shortly.
                let next = WorkStep::Webhook {
                    attempt: attempt + 1,
                };
                return self
                    .send(WorkMessage { job_id, step: next }, WEBHOOK_WAIT)
                    .await;
            }
            return Ok(MessageOutcome::Done);
        };
        if job.status.is_terminal() {
            // Cancelled by its owner, or failed by the sweeper: FAL need not go on.
            if job.status != JobStatus::Completed
                && let Err(err) = client.cancel(&request.cancel_url).await
            {
                tracing::warn!(job_id = %job_id, error = %err, "FAL cancel failed");
            }
            self.release_slot(job_id).await;
            return Ok(MessageOutcome::Done);
        }
        let timeout = self.ctx.config.fal.generation_timeout;
        let deadline =
            request.submitted_at + chrono::Duration::from_std(timeout).unwrap_or_default();
        if Utc::now() >= deadline {
            if let Err(err) = client.cancel(&request.cancel_url).await {
                tracing::warn!(job_id = %job_id, error = %err, "FAL cancel failed");
            }
            return self
                .fail_at_fal(
                    &job,
                    "GENERATION_TIMEOUT",
                    format!(
                        "FAL.AI did not finish within {} s; the request was cancelled",
                        timeout.as_secs()
                    ),
                )
                .await;
        }
        let status = client.status(&request.status_url).await;
        self.record_answer(status.as_ref().err()).await;
        match status {
            Ok(QueueStatus::InQueue { position }) => {
                self.report(&job, queued_progress(position)).await;
                self.next_poll(job_id, step).await
            }
            Ok(QueueStatus::InProgress { logs }) => {
                self.report(&job, running_progress(&logs)).await;
                self.next_poll(job_id, step).await
            }
            Ok(QueueStatus::Completed { .. }) => self.collect(client, &job, &request, step).await,
            Err(err) if err.is_retryable() || matches!(err, FalError::Malformed(_)) => {
                tracing::info!(job_id = %job_id, error = %err, "FAL status unavailable; polling again later");
                self.next_poll(job_id, step).await
            }
            Err(err) => self.fail_at_fal(&job, err.code(), err.to_string()).await,
        }
    }

    /// Fetches a completed request's result, copies the model into our storage and completes
    /// the job.
    async fn collect(
        &self,
        client: &FalClient,
        job: &GenerationJob,
        request: &FalRequest,
        step: WorkStep,
    ) -> Result<MessageOutcome, UpdateError> {
        let Some(model) = models::find(&job.model_type) else {
            return self
                .fail_at_fal(
                    job,
                    "MODEL_UNAVAILABLE",
                    format!("unknown model type {:?}", job.model_type),
                )
                .await;
        };
        self.report(job, (85, "Fetching the result from FAL.AI".to_owned()))
            .await;
        let result = client.result(&request.response_url).await;
        self.record_answer(result.as_ref().err()).await;
        let output = match result {
            Ok(output) => output,
            Err(err) if err.is_retryable() => return self.next_poll(job.job_id, step).await,
            Err(err) => return self.fail_at_fal(job, err.code(), err.to_string()).await,
        };
        let field = model.output.field();
        let Some(url) = output
            .get(field)
            .and_then(|file| file.get("url"))
            .and_then(|url| url.as_str())
        else {
            return self
                .fail_at_fal(
                    job,
                    "FAL_OUTPUT_MISSING",
                    format!("FAL.AI completed without `{field}` in its output"),
                )
                .await;
        };
        let downloaded = match client.download(url).await {
            Ok(bytes) => bytes,
            Err(err @ FalError::Expired(_)) => {
                // FAL no longer has the file: run the job again, if attempts remain.
                self.release_slot(job.job_id).await;
                return self
                    .retry_later(job, err.code(), &err.to_string(), None)
                    .await;
            }
            Err(err) if err.is_retryable() => return self.next_poll(job.job_id, step).await,
            Err(err) => return self.fail_at_fal(job, err.code(), err.to_string()).await,
        };
        self.report(job, (90, "Storing the model".to_owned())).await;
        let Some(file) = self.ctx.store.get_file(job.file_id).await? else {
            return self
                .fail_at_fal(
                    job,
                    "FILE_NOT_FOUND",
                    "the uploaded file is gone".to_owned(),
                )
                .await;
        };
        let model_bytes = match self.model_from_output(model, job, &file, downloaded).await {
            Ok(bytes) => bytes,
            Err(err) if err.is_retryable() => {
                return self
                    .retry_later(job, err.code(), &err.to_string(), None)
                    .await;
            }
            Err(err) => return self.fail_at_fal(job, err.code(), err.to_string()).await,
        };
        let outcome = self
            .store_result(job, &file.filename, model_bytes, GLB_CONTENT_TYPE, "glb")
            .await;
        let at_fal = (Utc::now() - request.submitted_at)
            .to_std()
            .unwrap_or_default();
        record_generation(&job.model_type, "success", at_fal);
        self.release_slot(job.job_id).await;
        outcome
    }

    /// The GLB to store: FAL's mesh as served, or our relief mesh shaped by FAL's depth map.
    async fn model_from_output(
        &self,
        model: &ModelSpec,
        job: &GenerationJob,
        file: &UploadedFile,
        downloaded: Bytes,
    ) -> Result<Bytes, GeneratorError> {
        match model.output {
            ModelOutput::Mesh { .. } if is_glb(&downloaded) => Ok(downloaded),
            ModelOutput::Mesh { field } => Err(GeneratorError::InvalidInput {
                code: "FAL_BAD_OUTPUT",
                message: format!("FAL.AI's `{field}` is not a glTF 2.0 binary"),
            }),
            ModelOutput::DepthMap { .. } => {
                let photo = self
                    .ctx
                    .storage
                    .get(&file.object_key)
                    .await
                    .map_err(|e| GeneratorError::Transient(e.to_string()))?;
                let max_pixels = self.ctx.config.max_pixels;
                let face_limit = job.options.face_limit;
                blocking(move || glb_from_depth_image(&photo, &downloaded, max_pixels, face_limit))
                    .await
                    .map(Bytes::from)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_monotonic_along_the_way_to_completion() {
        let queued: Vec<u8> = [Some(9), Some(3), Some(0)]
            .into_iter()
            .map(|p| queued_progress(p).0)
            .collect();
        assert_eq!(queued, [5, 7, 10]);
        let logs: Vec<String> = (0..20).map(|i| format!("step {i}")).collect();
        let running: Vec<u8> = (0..=20).map(|n| running_progress(&logs[..n]).0).collect();
        assert!(running.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((running[0], running[20]), (15, 80));
        assert!(running_progress(&logs[..2]).1.ends_with("step 1"));
    }

    #[test]
    fn glb_headers_are_checked() {
        let mut glb = b"glTF".to_vec();
        glb.extend(2u32.to_le_bytes());
        glb.extend(20u32.to_le_bytes());
        glb.extend([0u8; 8]);
        assert!(is_glb(&glb));
        assert!(!is_glb(b"Kaydara FBX Binary  \0"));
        glb[8] = 99;
        assert!(!is_glb(&glb));
    }

    #[test]
    fn webhook_urls_carry_the_job() {
        let id = JobId::new();
        assert_eq!(
            webhook_for("https://a/hook", id),
            format!("https://a/hook?job_id={id}")
        );
        assert_eq!(
            webhook_for("https://a/hook?x=1", id),
            format!("https://a/hook?x=1&job_id={id}")
        );
    }
}
