//! Jobs at FAL.AI, without paying Lambda time to wait. A generate message submits the job (when
//! the circuit breaker and the in-flight cap allow), records FAL's request on the job with a
//! conditional write and returns. Poll messages, re-enqueued with a delay that backs off, and
//! verified webhooks then look at the request, doing what [`decide`] says at each answer:
//! progress from the queue position and logs, and on completion the result copied into our
//! storage and the job completed, exactly once. A job past its generation timeout is cancelled at
//! FAL and fails with `GENERATION_TIMEOUT`.

use super::fal_decision::{
    Answer, Ask, Decision, End, FalOutput, checked_mesh, decide, queued_progress,
};
use super::{JobProgress, MessageOutcome, STORAGE_UNAVAILABLE, StepResult, Worker};
use crate::app::enqueue::{WorkMessage, WorkStep};
use crate::app::error::AppError;
use crate::app::job_update::update_job;
use crate::builtin_generator::{blocking, relief_from_depth_image};
use crate::domain::models;
use crate::domain::{FalRequest, GenerationJob, JobId, UploadedFile};
use crate::fal::{Admission, FalClient, FalError, guard};
use crate::metrics::record_generation;
use crate::ports::{GeneratorError, PreviewImage, ProgressReporter};
use bytes::Bytes;
use chrono::Utc;
use std::time::Duration;

/// How often a webhook that overtook its submission's record waits for it.
const WEBHOOK_WAITS: u32 = 5;
const WEBHOOK_WAIT: Duration = Duration::from_secs(2);
const GLB_CONTENT_TYPE: &str = "model/gltf-binary";

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
        JobProgress::new(&self.ctx, job)
            .report(progress, &message)
            .await;
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
    async fn fail_at_fal(&self, job: &GenerationJob, code: &str, message: String) -> StepResult {
        let outcome = self.fail(job, code, message).await;
        self.release_slot(job.job_id).await;
        outcome
    }

    async fn cancel_at_fal(&self, client: &FalClient, job_id: JobId, request: &FalRequest) {
        if let Err(err) = client.cancel(&request.cancel_url).await {
            tracing::warn!(job_id = %job_id, error = %err, "FAL cancel failed");
        }
    }

    /// Sends the generate message again later without touching the job (it stays queued).
    async fn defer(&self, job_id: JobId, delay: Duration, why: &str) -> StepResult {
        tracing::info!(job_id = %job_id, delay_s = delay.as_secs_f64(), why, "submission deferred");
        self.send(
            WorkMessage::generate(job_id),
            delay.max(Duration::from_secs(1)),
        )
        .await
    }

    pub(super) async fn submit_to_fal(
        &self,
        client: &FalClient,
        job: &GenerationJob,
        file: &UploadedFile,
    ) -> StepResult {
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
                return self.storage_failed(&claimed, &err).await;
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
                    AppError::Transition(_) | AppError::JobNotFound(_) => Ok(MessageOutcome::Done),
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
    async fn next_poll(&self, job_id: JobId, step: WorkStep) -> StepResult {
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

    /// Looks at a job's FAL request (a poll, or a webhook's signal): asks FAL what [`decide`]
    /// wants to know until it decides how this look ends.
    pub(super) async fn check_at_fal(&self, job_id: JobId, step: WorkStep) -> StepResult {
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
        let model = models::find(&job.model_type);
        let timeout = self.ctx.config.fal.generation_timeout;
        let now = Utc::now();
        let mut answer = Answer::NotAsked;
        let mut preview_url = None;
        loop {
            answer = match decide(&job, &request, model, answer, now, timeout) {
                Decision::Next(Ask::Status) => {
                    let status = client.status(&request.status_url).await;
                    self.record_answer(status.as_ref().err()).await;
                    Answer::Status(status)
                }
                Decision::Next(Ask::Result) => {
                    self.report(&job, (85, "Fetching the result from FAL.AI".to_owned()))
                        .await;
                    let result = client.result(&request.response_url).await;
                    self.record_answer(result.as_ref().err()).await;
                    Answer::Result(result)
                }
                Decision::Next(Ask::File {
                    url,
                    preview_url: preview,
                }) => {
                    preview_url = preview;
                    Answer::File(client.download(&url).await)
                }
                Decision::End(end) => {
                    return self
                        .end_look(client, &job, &request, step, end, preview_url)
                        .await;
                }
            };
        }
    }

    /// Does what ends a look at FAL (`preview_url`: FAL's picture of a completed mesh).
    async fn end_look(
        &self,
        client: &FalClient,
        job: &GenerationJob,
        request: &FalRequest,
        step: WorkStep,
        end: End,
        preview_url: Option<String>,
    ) -> StepResult {
        let job_id = job.job_id;
        match end {
            End::Stop { cancel_at_fal } => {
                if cancel_at_fal {
                    self.cancel_at_fal(client, job_id, request).await;
                }
                self.release_slot(job_id).await;
                Ok(MessageOutcome::Done)
            }
            End::TimedOut { message } => {
                self.cancel_at_fal(client, job_id, request).await;
                self.fail_at_fal(job, "GENERATION_TIMEOUT", message).await
            }
            End::Progress { progress, message } => {
                self.report(job, (progress, message)).await;
                self.next_poll(job_id, step).await
            }
            End::PollLater => {
                tracing::info!(job_id = %job_id, "FAL could not answer; polling again later");
                self.next_poll(job_id, step).await
            }
            End::Rerun { code, message } => {
                self.release_slot(job_id).await;
                self.retry_later(job, code, &message, None).await
            }
            End::Fail { code, message } => self.fail_at_fal(job, code, message).await,
            End::Complete(output) => {
                self.complete_from_fal(client, job, request, output, preview_url)
                    .await
            }
        }
    }

    /// Makes our model of FAL's output, stores it and completes the job, freeing its slot.
    async fn complete_from_fal(
        &self,
        client: &FalClient,
        job: &GenerationJob,
        request: &FalRequest,
        output: FalOutput,
        preview_url: Option<String>,
    ) -> StepResult {
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
        let (model_bytes, preview) = match output {
            FalOutput::Mesh { field, bytes } => match checked_mesh(field, bytes) {
                Ok(mesh) => (mesh, self.rendered_image(client, job, preview_url).await),
                Err((code, message)) => return self.fail_at_fal(job, code, message).await,
            },
            FalOutput::DepthMap(depth_map) => {
                match self.relief_from_depth_map(job, &file, depth_map).await {
                    Ok((relief, preview)) => (relief, Some(PreviewImage::png(preview))),
                    Err(err) if err.is_retryable() => {
                        return self
                            .retry_later(job, err.code(), &err.to_string(), None)
                            .await;
                    }
                    Err(err) => return self.fail_at_fal(job, err.code(), err.to_string()).await,
                }
            }
        };
        let outcome = self
            .store_result(
                job,
                &file.filename,
                model_bytes,
                GLB_CONTENT_TYPE,
                "glb",
                preview,
            )
            .await;
        let at_fal = (Utc::now() - request.submitted_at)
            .to_std()
            .unwrap_or_default();
        record_generation(&job.model_type, "success", at_fal);
        self.release_slot(job.job_id).await;
        outcome
    }

    /// FAL's picture of the mesh, copied so that it outlives FAL's URL: best effort, as a model
    /// without its picture is still the model.
    async fn rendered_image(
        &self,
        client: &FalClient,
        job: &GenerationJob,
        url: Option<String>,
    ) -> Option<PreviewImage> {
        let bytes = match client.download(&url?).await {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(job_id = %job.job_id, error = %err, "FAL's rendered image could not be fetched");
                return None;
            }
        };
        let image = PreviewImage::sniffed(bytes);
        if image.is_none() {
            tracing::warn!(job_id = %job.job_id, "FAL's rendered image is not a PNG, JPEG or WebP");
        }
        image
    }

    /// Our relief mesh shaped by FAL's depth map, textured with the job's photo.
    async fn relief_from_depth_map(
        &self,
        job: &GenerationJob,
        file: &UploadedFile,
        depth_map: Bytes,
    ) -> Result<(Bytes, Bytes), GeneratorError> {
        let photo = self
            .ctx
            .storage
            .get(&file.object_key)
            .await
            .map_err(|err| {
                tracing::warn!(job_id = %job.job_id, error = %err, "the photo could not be read");
                GeneratorError::Transient(STORAGE_UNAVAILABLE.to_owned())
            })?;
        let limits = self.ctx.config.image_limits();
        let face_limit = job.options.face_limit;
        let _decoding = self.decode_permit().await?;
        blocking(move || relief_from_depth_image(&photo, &depth_map, limits, face_limit))
            .await
            .map(|m| (Bytes::from(m.glb), Bytes::from(m.preview_png)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
