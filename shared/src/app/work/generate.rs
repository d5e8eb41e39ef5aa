//! The generate step: a queued job is checked (ended, submitted already, held by a live worker,
//! out of attempts, file not ready), claimed, and run: at FAL.AI when a key is configured,
//! otherwise on the generator that serves its model type, whose model is stored and completes
//! the job.

use super::{JobProgress, MessageOutcome, StepResult, Worker};
use crate::app::enqueue::WorkStep;
use crate::app::ingest::sha256_hex;
use crate::domain::{FileStatus, JobId, JobStatus, models};
use crate::metrics::record_generation;
use crate::ports::{GenerationRequest, GeneratorError, StorageError};
use chrono::Utc;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

impl Worker {
    pub(super) async fn generate(&self, job_id: JobId) -> StepResult {
        let config = &self.ctx.config;
        let Some(job) = self.ctx.store.get_job(job_id).await? else {
            return Ok(MessageOutcome::Done);
        };
        if job.status.is_terminal() {
            return Ok(MessageOutcome::Done);
        }
        let lease = chrono::Duration::from_std(config.visibility_timeout).unwrap_or_default();
        if job.fal.is_some() {
            // Redelivered (or re-sent by the sweeper) after the submission was recorded: never
            // submit twice, look instead. Polls write a heartbeat, so a job updated within the
            // lease has a live poll chain and this look starts no second one.
            let step = if job.updated_at > Utc::now() - lease {
                WorkStep::Webhook { attempt: 0 }
            } else {
                WorkStep::Poll { attempt: 0 }
            };
            return self.check_at_fal(job_id, step).await;
        }
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
        if let Some(client) = &self.fal
            && models::find(&job.model_type).is_some_and(|m| m.runs_at_fal())
        {
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
            Err(StorageError::NotFound(_)) => {
                return self
                    .fail(
                        &claimed,
                        "FILE_NOT_FOUND",
                        "the uploaded bytes are gone".to_owned(),
                    )
                    .await;
            }
            Err(err) => return self.storage_failed(&claimed, &err).await,
        };
        // Never generate from bytes that are not the validated ones (a second write on S3,
        // where a signed URL cannot be revoked, before ingestion noticed it).
        if file.sha256.as_deref() != Some(sha256_hex(image.clone()).await.as_str()) {
            return self
                .fail(
                    &claimed,
                    "UPLOAD_TAMPERED",
                    "the uploaded bytes are not the ones validated".to_owned(),
                )
                .await;
        }
        let progress = JobProgress::new(&self.ctx, &claimed);
        let request = GenerationRequest {
            model_type: claimed.model_type.clone(),
            options: claimed.options.clone(),
            image,
        };
        let started = Instant::now();
        let generated = match self.decode_permit().await {
            // A generator that panics on this photo would panic on every attempt.
            Ok(_decoding) => AssertUnwindSafe(generator.generate(request, &progress))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    tracing::error!(job_id = %claimed.job_id, "the generator panicked");
                    Err(GeneratorError::crashed())
                }),
            Err(err) => Err(err),
        };
        let outcome = if generated.is_ok() {
            "success"
        } else {
            "error"
        };
        record_generation(&claimed.model_type, outcome, started.elapsed());
        match generated {
            Ok(model) => {
                if progress.settled() {
                    tracing::info!(job_id = %claimed.job_id, "job settled elsewhere during generation; result discarded");
                    return Ok(MessageOutcome::Done);
                }
                self.store_result(
                    &claimed,
                    &file.filename,
                    model.bytes,
                    model.content_type,
                    model.file_extension,
                    model.preview,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::enqueue::WorkMessage;
    use crate::app::testing::{FakeFal, fal_context, fal_worker, submitted_job, take_queued};
    use std::time::Duration;

    /// A generate message for a job already submitted to FAL (redelivered, or re-sent by the
    /// sweeper) looks at FAL instead of submitting again. When the job was updated within the
    /// lease, a poll chain is alive and the look starts no second one; otherwise it starts one.
    #[tokio::test]
    async fn a_submitted_job_is_looked_at_and_polled_again_only_without_a_live_poll_chain() {
        let fal = FakeFal::start().await;
        let t = fal_context(&fal, |c| {
            c.visibility_timeout = Duration::from_secs(600);
            c.fal.generation_timeout = Duration::from_secs(3600);
        });
        let running = serde_json::json!({"status": "IN_PROGRESS", "logs": []});
        fal.answer_json("GET /r/live/status", 200, running.clone());
        fal.answer_json("GET /r/stale/status", 200, running);
        let worker = fal_worker(&t);
        let generate = |job_id| serde_json::to_string(&WorkMessage::generate(job_id)).unwrap();

        let now = Utc::now();
        let live = submitted_job(&t, "tripo3d", fal.request("live", now), now).await;
        let outcome = worker.handle_message(&generate(live.job_id)).await;
        assert_eq!(outcome, MessageOutcome::Done);
        assert_eq!(fal.calls("GET /r/live/status").len(), 1, "it looked");
        assert_eq!(take_queued(&t), [], "the live chain polls on");

        let earlier = Utc::now() - chrono::Duration::minutes(11);
        let stale = submitted_job(&t, "tripo3d", fal.request("stale", earlier), earlier).await;
        worker.handle_message(&generate(stale.job_id)).await;
        assert_eq!(fal.calls("GET /r/stale/status").len(), 1, "it looked");
        let next = take_queued(&t);
        assert_eq!(next.len(), 1, "a new poll chain: {next:?}");
        assert_eq!(next[0].0.step, WorkStep::Poll { attempt: 1 });
        let app = crate::domain::models::find("tripo3d").unwrap().fal_app;
        assert!(
            fal.calls(&format!("POST /{app}")).is_empty(),
            "never submitted twice"
        );
    }
}
