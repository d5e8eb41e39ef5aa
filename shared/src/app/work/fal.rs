//! Jobs at FAL.AI, without paying Lambda time to wait. A generate message submits the job (when
//! the circuit breaker and the in-flight cap allow), records FAL's request on the job with a
//! conditional write and returns. Poll messages, re-enqueued with a delay that backs off, and
//! verified webhooks then look at the request, doing what [`decide`] says at each answer:
//! progress from the queue position and logs, and on completion our model made of FAL's output.
//! A job past its generation timeout is cancelled at FAL and fails with `GENERATION_TIMEOUT`.
//! A job holds one of the FAL slots from its submission until its run at FAL ends: each step says
//! whether it ended ([`Step::freeing`]), and [`Worker::release_slot`] frees it.

use super::fal_decision::{
    Answer, Ask, Decision, End, FalOutput, checked_mesh, decide, queued_progress,
};
use super::{JobProgress, Outcome, STORAGE_UNAVAILABLE, Step, Worker};
use crate::app::enqueue::{WorkMessage, WorkStep};
use crate::app::error::AppError;
use crate::app::job_update::update_job;
use crate::builtin_generator::{blocking, relief_from_depth_image};
use crate::domain::models::{self, ModelSpec};
use crate::domain::{FalRequest, GenerationJob, JobErrorCode, JobId, UploadedFile};
use crate::fal::{Admission, guard};
use crate::metrics::record_generation;
use crate::ports::{
    FalError, FalQueue, GeneratedModel, GeneratorError, PreviewImage, ProgressReporter,
    StorageError,
};
use bytes::Bytes;
use chrono::Utc;
use std::time::Duration;

const GLB_CONTENT_TYPE: &str = "model/gltf-binary";

/// Our webhook URL for `job_id`.
fn webhook_for(base: &str, job_id: JobId) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}job_id={job_id}")
}

impl Worker {
    async fn report(&self, job: &GenerationJob, (progress, message): (u8, String)) {
        JobProgress::new(&self.ctx, job)
            .report(progress, &message)
            .await;
    }

    /// Frees the FAL slot `job_id` holds (called by `handle` alone, after a step that ended the
    /// job's run at FAL). A slot that cannot be freed now is reclaimed when one is needed.
    pub(super) async fn release_slot(&self, job_id: JobId) {
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

    async fn cancel_at_fal(&self, fal: &dyn FalQueue, job_id: JobId, request: &FalRequest) {
        if let Err(err) = fal.cancel(&request.cancel_url).await {
            tracing::warn!(job_id = %job_id, error = %err, "FAL cancel failed");
        }
    }

    /// Submits the job to FAL when the breaker and a free slot allow, deferring it otherwise.
    pub(super) async fn submit_to_fal(
        &self,
        fal: &dyn FalQueue,
        job: &GenerationJob,
        file: &UploadedFile,
    ) -> Result<Step, AppError> {
        let settings = &self.ctx.config.fal;
        let store = self.ctx.store.as_ref();
        let Some(model) = models::find(&job.model_type) else {
            let message = format!("unknown model type {:?}", job.model_type);
            return Ok(Outcome::fail(job, JobErrorCode::ModelUnavailable, message).into());
        };
        let job_id = job.job_id;
        if let Admission::Wait(left) = settings.breaker().admit(store, Utc::now()).await? {
            tracing::info!(job_id = %job_id, "FAL circuit breaker is open; submission deferred");
            return Ok(self.retries.deferred(job_id, left).into());
        }
        if !guard::acquire_slot(store, job_id, settings.max_in_flight, Utc::now()).await? {
            tracing::info!(job_id = %job_id, "every FAL slot is taken; submission deferred");
            return Ok(self.retries.deferred(job_id, settings.poll_initial).into());
        }
        // A delivery that loses the claim leaves the slot to the one that won it (of the same
        // job, so `acquire_slot` answered with the winner's slot); a job that ended meanwhile
        // has its slot reclaimed when one is needed.
        let claimed = match self.claim(job).await? {
            Ok(claimed) => claimed,
            Err(outcome) => return Ok(outcome.into()),
        };
        // The job holds a slot now: every way out but a recorded submission frees it.
        match self.submit_claimed(fal, model, &claimed, file).await {
            Ok((outcome, true)) => Ok(outcome.into()),
            Ok((outcome, false)) => Ok(Step::freeing(outcome)),
            Err(err) => {
                tracing::warn!(job_id = %job_id, error = %err, "submission not completed; the message will be redelivered");
                Ok(Step::freeing(Outcome::Redeliver))
            }
        }
    }

    /// Submits the claimed job; the outcome, and whether FAL now runs the job (recorded on it,
    /// holding its slot).
    async fn submit_claimed(
        &self,
        fal: &dyn FalQueue,
        model: &ModelSpec,
        claimed: &GenerationJob,
        file: &UploadedFile,
    ) -> Result<(Outcome, bool), AppError> {
        let settings = &self.ctx.config.fal;
        let job_id = claimed.job_id;
        // The input URL must outlive queueing, the whole generation and retries.
        let input_expiry = settings.generation_timeout + Duration::from_secs(15 * 60);
        let image_url = match self
            .ctx
            .storage
            .presign_get(&file.object_key, &file.filename, input_expiry)
            .await
        {
            Ok(presigned) => presigned.url,
            Err(err) => return Ok((Outcome::storage_failed(claimed, &err), false)),
        };
        let input = model.fal_input(&image_url, &claimed.options);
        let webhook = settings
            .webhook_url
            .as_deref()
            .map(|u| webhook_for(u, job_id));
        let submitted = fal.submit(model.fal_app, &input, webhook.as_deref()).await;
        self.record_answer(submitted.as_ref().err()).await;
        let submission = match submitted {
            Ok(submission) => submission,
            Err(err) => {
                tracing::warn!(job_id = %job_id, error = %err, "FAL submission failed");
                let outcome = if err.is_retryable() {
                    Outcome::RetryLater {
                        job: Box::new(claimed.clone()),
                        code: err.code(),
                        reason: err.to_string(),
                        after: err.retry_after(),
                    }
                } else {
                    Outcome::fail(claimed, err.code(), err.to_string())
                };
                return Ok((outcome, false));
            }
        };
        if let Err(err) = guard::record_run(self.ctx.store.as_ref(), model.id, Utc::now()).await {
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
        let recorded = update_job(&self.ctx, job_id, |j| {
            j.record_submission(request.clone(), now).map(Some)
        })
        .await;
        match recorded {
            Ok(job) => {
                tracing::info!(job_id = %job_id, request_id = %request.request_id, app = model.fal_app, "submitted to FAL");
                self.report(&job, queued_progress(submission.queue_position))
                    .await;
                let poll = WorkMessage {
                    job_id,
                    step: WorkStep::Poll { attempt: 0 },
                };
                Ok((Outcome::Later(poll, self.retries.poll_delay(0)), true))
            }
            Err(err) => {
                // Cancelled (or changed beyond recognition) meanwhile: FAL must not run it.
                tracing::warn!(job_id = %job_id, error = %err, "submission not recorded; cancelling it at FAL");
                self.cancel_at_fal(fal, job_id, &request).await;
                match err {
                    AppError::Transition(_) | AppError::JobNotFound(_) => {
                        Ok((Outcome::Done, false))
                    }
                    other => Err(other),
                }
            }
        }
    }

    /// Looks at a job's FAL request (a poll, or a webhook's signal): asks FAL what [`decide`]
    /// wants to know until it decides how this look ends.
    pub(super) async fn check_at_fal(
        &self,
        job_id: JobId,
        step: WorkStep,
    ) -> Result<Step, AppError> {
        let Some(job) = self.ctx.store.get_job(job_id).await? else {
            return Ok(Step::freeing(Outcome::Done));
        };
        let Some(fal) = self.fal.as_deref() else {
            tracing::warn!(job_id = %job_id, "a FAL step arrived but no FAL key is configured");
            return Ok(Outcome::Done.into());
        };
        let Some(request) = job.fal.clone() else {
            // A webhook that overtook the record of its submission looks again shortly.
            if let WorkStep::Webhook { attempt } = step
                && !job.status.is_terminal()
                && let Some(wait) = self.retries.webhook_wait(attempt)
            {
                let step = WorkStep::Webhook {
                    attempt: attempt + 1,
                };
                return Ok(Outcome::Later(WorkMessage { job_id, step }, wait).into());
            }
            return Ok(Outcome::Done.into());
        };
        let model = models::find(&job.model_type);
        let timeout = self.ctx.config.fal.generation_timeout;
        let now = Utc::now();
        let mut answer = Answer::NotAsked;
        let mut preview_url = None;
        loop {
            answer = match decide(&job, &request, model, answer, now, timeout) {
                Decision::Next(Ask::Status) => {
                    let status = fal.status(&request.status_url).await;
                    self.record_answer(status.as_ref().err()).await;
                    Answer::Status(status)
                }
                Decision::Next(Ask::Result) => {
                    self.report(&job, (85, "Fetching the result from FAL.AI".to_owned()))
                        .await;
                    let result = fal.result(&request.response_url).await;
                    self.record_answer(result.as_ref().err()).await;
                    Answer::Result(result)
                }
                Decision::Next(Ask::File {
                    url,
                    preview_url: preview,
                }) => {
                    preview_url = preview;
                    Answer::File(fal.download(&url).await)
                }
                Decision::End(end) => {
                    return self
                        .end_look(fal, &job, &request, step, end, preview_url)
                        .await;
                }
            };
        }
    }

    /// Does what ends a look at FAL (`preview_url`: FAL's picture of a completed mesh).
    async fn end_look(
        &self,
        fal: &dyn FalQueue,
        job: &GenerationJob,
        request: &FalRequest,
        step: WorkStep,
        end: End,
        preview_url: Option<String>,
    ) -> Result<Step, AppError> {
        let job_id = job.job_id;
        Ok(match end {
            End::Stop { cancel_at_fal } => {
                if cancel_at_fal {
                    self.cancel_at_fal(fal, job_id, request).await;
                }
                Step::freeing(Outcome::Done)
            }
            End::TimedOut { message } => {
                self.cancel_at_fal(fal, job_id, request).await;
                Step::freeing(Outcome::fail(job, JobErrorCode::GenerationTimeout, message))
            }
            End::Progress { progress, message } => {
                self.report(job, (progress, message)).await;
                self.retries.next_poll(job_id, step).into()
            }
            End::PollLater => {
                tracing::info!(job_id = %job_id, "FAL could not answer; polling again later");
                self.retries.next_poll(job_id, step).into()
            }
            End::Rerun { code, message } => Step::freeing(Outcome::retry(job, code, message)),
            End::Fail { code, message } => Step::freeing(Outcome::fail(job, code, message)),
            End::Complete(output) => {
                let outcome = self
                    .model_from_fal(fal, job, request, output, preview_url)
                    .await?;
                Step::freeing(outcome)
            }
        })
    }

    /// Makes our model of FAL's output, to complete the job with.
    async fn model_from_fal(
        &self,
        fal: &dyn FalQueue,
        job: &GenerationJob,
        request: &FalRequest,
        output: FalOutput,
        preview_url: Option<String>,
    ) -> Result<Outcome, AppError> {
        self.report(job, (90, "Storing the model".to_owned())).await;
        let Some(file) = self.ctx.store.get_file(job.file_id).await? else {
            let gone = JobErrorCode::FileNotFound;
            return Ok(Outcome::fail(job, gone, gone.meaning()));
        };
        let (bytes, preview) = match output {
            FalOutput::Mesh { field, bytes } => match checked_mesh(field, bytes) {
                Ok(mesh) => (mesh, self.rendered_image(fal, job, preview_url).await),
                Err((code, message)) => return Ok(Outcome::fail(job, code, message)),
            },
            FalOutput::DepthMap(depth_map) => {
                match self.relief_from_depth_map(job, &file, depth_map).await {
                    Ok((relief, preview)) => (relief, Some(PreviewImage::png(preview))),
                    Err(err) if err.is_retryable() => {
                        return Ok(Outcome::retry(job, err.code(), err.to_string()));
                    }
                    Err(err) => return Ok(Outcome::fail(job, err.code(), err.to_string())),
                }
            }
        };
        let at_fal = (Utc::now() - request.submitted_at)
            .to_std()
            .unwrap_or_default();
        record_generation(&job.model_type, "success", at_fal);
        Ok(Outcome::Complete {
            job: Box::new(job.clone()),
            model: GeneratedModel {
                bytes,
                content_type: GLB_CONTENT_TYPE,
                file_extension: "glb",
                preview,
            },
            source_name: file.filename,
        })
    }

    /// FAL's picture of the mesh, copied so that it outlives FAL's URL: best effort, as a model
    /// without its picture is still the model.
    async fn rendered_image(
        &self,
        fal: &dyn FalQueue,
        job: &GenerationJob,
        url: Option<String>,
    ) -> Option<PreviewImage> {
        let bytes = match fal.download(&url?).await {
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

    /// Our relief mesh shaped by FAL's depth map, textured with the job's photo (whose bytes
    /// being gone fails the job as on the built-in path; storage failing retries it).
    async fn relief_from_depth_map(
        &self,
        job: &GenerationJob,
        file: &UploadedFile,
        depth_map: Bytes,
    ) -> Result<(Bytes, Bytes), GeneratorError> {
        let photo = match self.ctx.storage.get(&file.object_key).await {
            Ok(photo) => photo,
            Err(StorageError::NotFound(_)) => {
                return Err(GeneratorError::InvalidInput {
                    code: JobErrorCode::FileNotFound,
                    message: "the uploaded bytes are gone".to_owned(),
                });
            }
            Err(err) => {
                tracing::warn!(job_id = %job.job_id, error = %err, "the photo could not be read");
                return Err(GeneratorError::Transient(STORAGE_UNAVAILABLE.to_owned()));
            }
        };
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
    use crate::app::testing::{
        FakeFal, TestContext, fal_context, fal_worker, png, queued_job, ready_file, stored,
        submitted_job, take_queued, tiny_glb,
    };
    use crate::app::work::MessageOutcome;
    use crate::builtin_generator::relief_from_depth_image;
    use crate::config::Config;
    use crate::domain::JobStatus;
    use crate::domain::models::DEPTH_MODEL;
    use crate::fal::Admission;
    use serde_json::json;

    const MESH_MODEL: &str = "tripo3d";

    fn message(job_id: JobId, step: WorkStep) -> String {
        serde_json::to_string(&WorkMessage { job_id, step }).unwrap()
    }

    fn app(model: &str) -> &'static str {
        models::find(model).unwrap().fal_app
    }

    async fn slots_in_use(t: &TestContext) -> usize {
        guard::slots_in_use(t.store.as_ref()).await.unwrap()
    }

    async fn failures_on_breaker(t: &TestContext) -> u32 {
        let breaker = t.config.fal.breaker();
        breaker
            .state(t.store.as_ref())
            .await
            .unwrap()
            .consecutive_failures
    }

    /// A fake FAL and a context on it with a generation timeout of an hour.
    async fn at_fal(adjust: impl FnOnce(&mut Config)) -> (FakeFal, TestContext) {
        let fal = FakeFal::default();
        let t = fal_context(&fal, |c| {
            c.fal.generation_timeout = Duration::from_secs(3600);
            adjust(c);
        });
        (fal, t)
    }

    #[tokio::test]
    async fn a_submission_is_recorded_reported_and_polled_after_the_first_wait() {
        let (fal, t) = at_fal(|c| c.fal.poll_initial = Duration::from_secs(30)).await;
        fal.accept(app(MESH_MODEL), "req-1", 3);
        let job = queued_job(&t, &ready_file(&t, "alice").await, MESH_MODEL).await;
        let before = Utc::now().timestamp();
        let outcome = fal_worker(&t)
            .handle_message(&message(job.job_id, WorkStep::Generate))
            .await;
        let after = Utc::now().timestamp();
        assert_eq!(outcome, MessageOutcome::Done);

        let seen = stored(&t, &job).await;
        assert_eq!(seen.fal.map(|r| r.request_id).as_deref(), Some("req-1"));
        assert_eq!((seen.status, seen.attempts), (JobStatus::Processing, 1));
        assert_eq!((seen.progress, seen.message), queued_progress(Some(3)));
        assert_eq!(slots_in_use(&t).await, 1, "the job holds a FAL slot");
        let poll = WorkMessage {
            job_id: job.job_id,
            step: WorkStep::Poll { attempt: 0 },
        };
        assert_eq!(take_queued(&t), [(poll, Duration::from_secs(30))]);

        // FAL fetches the photo later: its URL outlives the generation timeout and 15 minutes.
        let submissions = fal.calls(&format!("POST /{}", app(MESH_MODEL)));
        assert_eq!(submissions.len(), 1);
        let input: serde_json::Value = serde_json::from_slice(&submissions[0]).unwrap();
        let url = reqwest::Url::parse(input["image_url"].as_str().unwrap()).unwrap();
        let expires: i64 = url
            .query_pairs()
            .find(|(name, _)| name == "expires")
            .map(|(_, value)| value.parse().unwrap())
            .unwrap();
        let lifetime = 3600 + 15 * 60;
        assert!(
            (before + lifetime..=after + lifetime).contains(&expires),
            "expires {expires}, handled from {before} to {after}"
        );
    }

    /// Deliveries of one generate message at once: one claims and submits, the others stand
    /// down, and the slot stays with the job FAL now runs (a delivery that lost the claim once
    /// freed the winner's slot).
    #[tokio::test]
    async fn concurrent_deliveries_submit_once_and_the_job_keeps_its_slot() {
        let (fal, t) = at_fal(|_| {}).await;
        fal.accept(app(MESH_MODEL), "req-c", 0);
        // A delivery that reads the job after the submission was recorded looks at FAL instead.
        let queued = json!({"status": "IN_QUEUE", "queue_position": 0});
        fal.answer_json("GET /r/req-c/status", 200, queued);
        let job = queued_job(&t, &ready_file(&t, "alice").await, MESH_MODEL).await;
        let worker = fal_worker(&t);
        let generate = message(job.job_id, WorkStep::Generate);
        let deliveries = (0..8).map(|_| worker.handle_message(&generate));
        futures_util::future::join_all(deliveries).await;
        assert_eq!(fal.calls(&format!("POST /{}", app(MESH_MODEL))).len(), 1);
        assert_eq!(stored(&t, &job).await.status, JobStatus::Processing);
        assert_eq!(slots_in_use(&t).await, 1, "the job at FAL holds its slot");
    }

    #[tokio::test]
    async fn a_refused_submission_fails_the_job_frees_its_slot_and_proves_fal_is_up() {
        let (fal, t) = at_fal(|c| c.fal.breaker_threshold = 3).await;
        let breaker = t.config.fal.breaker();
        for _ in 0..2 {
            let failed = breaker.record_failure(t.store.as_ref(), "FAL failed (503)", Utc::now());
            failed.await.unwrap();
        }
        fal.answer_json(
            &format!("POST /{}", app(MESH_MODEL)),
            422,
            json!({"detail": "no object in the photo"}),
        );
        let job = queued_job(&t, &ready_file(&t, "alice").await, MESH_MODEL).await;
        let outcome = fal_worker(&t)
            .handle_message(&message(job.job_id, WorkStep::Generate))
            .await;
        assert_eq!(outcome, MessageOutcome::Done);
        let failed = stored(&t, &job).await;
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.unwrap().code, "FAL_INVALID_INPUT");
        assert_eq!(slots_in_use(&t).await, 0);
        assert_eq!(failures_on_breaker(&t).await, 0, "FAL answered: it is up");
        let admission = breaker.admit(t.store.as_ref(), Utc::now()).await;
        assert_eq!(admission.unwrap(), Admission::Allowed);
    }

    #[tokio::test]
    async fn an_outage_counts_against_the_breaker_and_the_next_answer_clears_it() {
        let (fal, t) = at_fal(|c| c.fal.breaker_threshold = 3).await;
        let route = format!("POST /{}", app(MESH_MODEL));
        fal.answer_json(&route, 503, json!({"detail": "overloaded"}));
        fal.accept(app(MESH_MODEL), "req-2", 0);
        let worker = fal_worker(&t);

        let first = queued_job(&t, &ready_file(&t, "alice").await, MESH_MODEL).await;
        let outcome = worker
            .handle_message(&message(first.job_id, WorkStep::Generate))
            .await;
        assert_eq!(outcome, MessageOutcome::Done);
        let retried = stored(&t, &first).await;
        assert_eq!((retried.status, retried.attempts), (JobStatus::Queued, 1));
        assert_eq!(failures_on_breaker(&t).await, 1);
        assert_eq!(slots_in_use(&t).await, 0);
        let again = WorkMessage::generate(first.job_id);
        assert_eq!(take_queued(&t), [(again, Duration::from_secs(5))]);

        let second = queued_job(&t, &ready_file(&t, "alice").await, MESH_MODEL).await;
        worker
            .handle_message(&message(second.job_id, WorkStep::Generate))
            .await;
        assert_eq!(stored(&t, &second).await.status, JobStatus::Processing);
        assert_eq!(failures_on_breaker(&t).await, 0);
    }

    #[tokio::test]
    async fn a_webhook_ahead_of_its_submission_waits_for_it_five_times_at_most() {
        let (_fal, t) = at_fal(|_| {}).await;
        let worker = fal_worker(&t);
        let job = queued_job(&t, &ready_file(&t, "alice").await, MESH_MODEL).await;
        for (attempt, next) in [(0, Some(1)), (4, Some(5)), (5, None)] {
            let outcome = worker
                .handle_message(&message(job.job_id, WorkStep::Webhook { attempt }))
                .await;
            assert_eq!(outcome, MessageOutcome::Done);
            let expected: Vec<_> = next
                .map(|attempt| {
                    let step = WorkStep::Webhook { attempt };
                    let message = WorkMessage {
                        job_id: job.job_id,
                        step,
                    };
                    (message, Duration::from_secs(2))
                })
                .into_iter()
                .collect();
            assert_eq!(take_queued(&t), expected, "after attempt {attempt}");
        }

        // A job that ended has nothing to wait for.
        let cancelled = stored(&t, &job).await.cancel(Utc::now()).unwrap();
        t.store.update_job(&cancelled).await.unwrap();
        worker
            .handle_message(&message(job.job_id, WorkStep::Webhook { attempt: 0 }))
            .await;
        assert_eq!(take_queued(&t), []);
    }

    #[tokio::test]
    async fn a_job_past_its_generation_timeout_is_cancelled_at_fal_and_fails() {
        let (fal, t) = at_fal(|_| {}).await;
        let long_ago = Utc::now() - chrono::Duration::hours(2);
        let job = submitted_job(&t, MESH_MODEL, fal.request("req-3", long_ago), long_ago).await;
        assert!(
            guard::acquire_slot(t.store.as_ref(), job.job_id, 20, long_ago)
                .await
                .unwrap()
        );
        fal.answer("PUT /r/req-3/cancel", 200, "{}");

        let outcome = fal_worker(&t)
            .handle_message(&message(job.job_id, WorkStep::Poll { attempt: 7 }))
            .await;
        assert_eq!(outcome, MessageOutcome::Done);
        assert_eq!(fal.calls("PUT /r/req-3/cancel").len(), 1);
        assert_eq!(fal.calls("GET /r/req-3/status").len(), 0);
        let failed = stored(&t, &job).await;
        assert_eq!(failed.error.unwrap().code, "GENERATION_TIMEOUT");
        assert_eq!(slots_in_use(&t).await, 0);
        assert_eq!(take_queued(&t), [], "nothing more to look at");
    }

    /// A job submitted a minute ago as request `id` (holding a FAL slot), which FAL reports
    /// completed with `result` (whose file URLs point into the fake).
    async fn completed_at_fal(
        fal: &FakeFal,
        t: &TestContext,
        model: &str,
        id: &str,
        result: serde_json::Value,
    ) -> GenerationJob {
        let a_minute_ago = Utc::now() - chrono::Duration::minutes(1);
        let job = submitted_job(t, model, fal.request(id, a_minute_ago), a_minute_ago).await;
        let slot = guard::acquire_slot(t.store.as_ref(), job.job_id, 20, a_minute_ago);
        assert!(slot.await.unwrap(), "the job holds a FAL slot");
        fal.answer_json(
            &format!("GET /r/{id}/status"),
            200,
            json!({"status": "COMPLETED"}),
        );
        fal.answer_json(&format!("GET /r/{id}"), 200, result);
        job
    }

    /// A default-model job submitted as request `id`, whose depth map FAL serves as `depth`.
    async fn depth_map_at_fal(
        fal: &FakeFal,
        t: &TestContext,
        id: &str,
        depth: impl Into<Bytes>,
    ) -> GenerationJob {
        let path = format!("/files/{id}.png");
        let result = json!({"image": {"url": fal.url(&path)}});
        let job = completed_at_fal(fal, t, DEPTH_MODEL, id, result).await;
        fal.answer(&format!("GET {path}"), 200, depth);
        job
    }

    async fn poll(t: &TestContext, job: &GenerationJob) -> MessageOutcome {
        fal_worker(t)
            .handle_message(&message(job.job_id, WorkStep::Poll { attempt: 0 }))
            .await
    }

    #[tokio::test]
    async fn a_completed_mesh_is_stored_with_the_picture_fal_rendered_of_it() {
        let (fal, t) = at_fal(|_| {}).await;
        let result = json!({
            "model_mesh": {"url": fal.url("/files/mesh.glb")},
            "rendered_image": {"url": fal.url("/files/render.png")},
        });
        let job = completed_at_fal(&fal, &t, MESH_MODEL, "req-4", result).await;
        fal.answer("GET /files/mesh.glb", 200, tiny_glb());
        fal.answer("GET /files/render.png", 200, png(8, 8));

        assert_eq!(poll(&t, &job).await, MessageOutcome::Done);
        let done = stored(&t, &job).await;
        assert_eq!(done.status, JobStatus::Completed);
        let result = done.result.unwrap();
        assert_eq!(t.storage.get(&result.object_key).await.unwrap(), tiny_glb());
        let preview = result.preview_key.expect("FAL's picture is kept");
        assert_eq!(t.storage.get(&preview).await.unwrap(), png(8, 8));
        assert_eq!(slots_in_use(&t).await, 0);
        assert_eq!(take_queued(&t), [], "the poll chain ends");
    }

    #[tokio::test]
    async fn a_depth_map_becomes_a_relief_mesh_with_its_own_preview() {
        let (fal, t) = at_fal(|_| {}).await;
        let job = depth_map_at_fal(&fal, &t, "req-5", png(16, 16)).await;

        assert_eq!(poll(&t, &job).await, MessageOutcome::Done);
        let result = stored(&t, &job).await.result.expect("completed");
        let photo = png(48, 32);
        let relief = relief_from_depth_image(&photo, &png(16, 16), t.config.image_limits(), None);
        let relief = relief.unwrap();
        assert_eq!(t.storage.get(&result.object_key).await.unwrap(), relief.glb);
        let preview = t.storage.get(&result.preview_key.unwrap()).await.unwrap();
        assert_eq!(preview, relief.preview_png);
        assert_eq!(slots_in_use(&t).await, 0);
    }

    #[tokio::test]
    async fn a_depth_map_that_is_no_image_or_a_photo_that_is_gone_fails_the_job() {
        let (fal, t) = at_fal(|_| {}).await;
        let job = depth_map_at_fal(&fal, &t, "req-6", "not an image").await;
        assert_eq!(poll(&t, &job).await, MessageOutcome::Done);
        let failed = stored(&t, &job).await;
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.unwrap().code, "FAL_BAD_OUTPUT");
        assert_eq!(slots_in_use(&t).await, 0);

        let job = depth_map_at_fal(&fal, &t, "req-7", png(16, 16)).await;
        let file = t.store.get_file(job.file_id).await.unwrap().unwrap();
        t.storage.delete(&file.object_key).await.unwrap();
        assert_eq!(poll(&t, &job).await, MessageOutcome::Done);
        let failed = stored(&t, &job).await;
        assert_eq!(failed.error.unwrap().code, "FILE_NOT_FOUND");
        assert_eq!(slots_in_use(&t).await, 0);
        assert_eq!(take_queued(&t), []);
    }

    #[tokio::test]
    async fn a_photo_storage_cannot_read_sends_the_job_round_again() {
        let (fal, t) = at_fal(|_| {}).await;
        let job = depth_map_at_fal(&fal, &t, "req-8", png(16, 16)).await;
        // The disk fails under the photo: where its bytes were, a directory cannot be read.
        let file = t.store.get_file(job.file_id).await.unwrap().unwrap();
        let path = t
            .config
            .local
            .data_dir
            .join("objects/data")
            .join(&file.object_key);
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();

        assert_eq!(poll(&t, &job).await, MessageOutcome::Done);
        let retried = stored(&t, &job).await;
        assert_eq!((retried.status, retried.attempts), (JobStatus::Queued, 1));
        assert!(
            retried.message.contains(STORAGE_UNAVAILABLE),
            "{}",
            retried.message
        );
        assert_eq!(
            slots_in_use(&t).await,
            0,
            "the next attempt takes a slot again"
        );
        let again = WorkMessage::generate(job.job_id);
        assert_eq!(take_queued(&t), [(again, Duration::from_secs(5))]);
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
