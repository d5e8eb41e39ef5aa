//! The generate step: a queued job is checked (ended, submitted already, held by a live worker,
//! out of attempts, file not ready), claimed, and run: at FAL.AI when a key is configured,
//! otherwise on the generator that serves its model type, whose model then completes the job.

use super::{JobProgress, Outcome, Step, Worker};
use crate::app::enqueue::WorkStep;
use crate::app::error::AppError;
use crate::app::ingest::sha256_hex;
use crate::domain::models;
use crate::domain::{FileStatus, GenerationJob, JobErrorCode, JobId, JobStatus, UploadedFile};
use crate::metrics::record_generation;
use crate::ports::{GenerationRequest, Generator, GeneratorError, StorageError};
use chrono::Utc;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

impl Worker {
    pub(super) async fn generate(&self, job_id: JobId) -> Result<Step, AppError> {
        let Some(job) = self.ctx.store.get_job(job_id).await? else {
            return Ok(Outcome::Done.into());
        };
        if job.status.is_terminal() {
            return Ok(Outcome::Done.into());
        }
        let lease =
            chrono::Duration::from_std(self.ctx.config.jobs.visibility_timeout).unwrap_or_default();
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
            return Ok(Outcome::Redeliver.into());
        }
        if let Some(gave_up) = self.gave_up(&job) {
            return Ok(gave_up.into());
        }
        let file = match self.ctx.store.get_file(job.file_id).await? {
            Some(file) if file.status == FileStatus::Ready => file,
            Some(file) if file.status == FileStatus::Pending => return Ok(Outcome::Done.into()),
            _ => {
                let gone = JobErrorCode::FileNotFound;
                return Ok(Outcome::fail(&job, gone, gone.meaning()).into());
            }
        };
        if let Some(fal) = &self.fal
            && models::find(&job.model_type).is_some_and(|m| m.runs_at_fal())
        {
            return self.submit_to_fal(fal.as_ref(), &job, &file).await;
        }
        let Some(generator) = self
            .generators
            .iter()
            .find(|g| g.supports(&job.model_type))
            .cloned()
        else {
            let message = format!("no generator serves {:?}", job.model_type);
            return Ok(Outcome::fail(&job, JobErrorCode::ModelUnavailable, message).into());
        };
        let claimed = match self.claim(&job).await? {
            Ok(claimed) => claimed,
            Err(outcome) => return Ok(outcome.into()),
        };
        Ok(self.run(generator.as_ref(), &claimed, file).await.into())
    }

    /// Runs the claimed job on `generator`, from the validated bytes of `file`.
    async fn run(
        &self,
        generator: &dyn Generator,
        claimed: &GenerationJob,
        file: UploadedFile,
    ) -> Outcome {
        let image = match self.ctx.storage.get(&file.object_key).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound(_)) => {
                let gone = "the uploaded bytes are gone";
                return Outcome::fail(claimed, JobErrorCode::FileNotFound, gone);
            }
            Err(err) => return Outcome::storage_failed(claimed, &err),
        };
        // Never generate from bytes that are not the validated ones (a second write on S3,
        // where a signed URL cannot be revoked, before ingestion noticed it).
        if file.sha256.as_deref() != Some(sha256_hex(image.clone()).await.as_str()) {
            let message = "the uploaded bytes are not the ones validated";
            return Outcome::fail(claimed, JobErrorCode::UploadTampered, message);
        }
        let progress = JobProgress::new(&self.ctx, claimed);
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
            Ok(_) if progress.settled() => {
                tracing::info!(job_id = %claimed.job_id, "job settled elsewhere during generation; result discarded");
                Outcome::Done
            }
            Ok(model) => Outcome::Complete {
                job: Box::new(claimed.clone()),
                model,
                source_name: file.filename,
            },
            Err(err) if err.is_retryable() => Outcome::retry(claimed, err.code(), err.to_string()),
            Err(err) => Outcome::fail(claimed, err.code(), err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::enqueue::WorkMessage;
    use crate::app::testing::{FakeFal, fal_context, fal_worker, submitted_job, take_queued};
    use crate::app::work::MessageOutcome;
    use std::time::Duration;

    /// A generate message for a job already submitted to FAL (redelivered, or re-sent by the
    /// sweeper) looks at FAL instead of submitting again. When the job was updated within the
    /// lease, a poll chain is alive and the look starts no second one; otherwise it starts one.
    #[tokio::test]
    async fn a_submitted_job_is_looked_at_and_polled_again_only_without_a_live_poll_chain() {
        let fal = FakeFal::default();
        let t = fal_context(&fal, |c| {
            c.jobs.visibility_timeout = Duration::from_secs(600);
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
