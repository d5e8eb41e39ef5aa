//! How a run ends: the model stored and the job completed (exactly once, whoever gets there
//! first), the job queued again for a later attempt after a transient failure (failed after the
//! last attempt), or the job failed with a stable code.

use super::{MessageOutcome, STORAGE_UNAVAILABLE, StepResult, Worker};
use crate::app::convert::convert_bytes;
use crate::app::enqueue::WorkMessage;
use crate::app::error::AppError;
use crate::app::job_update::{fail_job, update_job};
use crate::domain::{Converted, GenerationJob, JobError, JobResult, ModelFormat};
use crate::ports::{PreviewImage, StorageError};
use bytes::Bytes;
use chrono::Utc;
use std::time::Duration;

/// The delay before attempt `attempts + 1` when the failure named none: 5 s per attempt made,
/// at most a minute.
fn retry_delay(attempts: u32) -> Duration {
    Duration::from_secs(5 * u64::from(attempts.min(12)))
}

impl Worker {
    /// Fails the job with `code` unless it already ended.
    pub(super) async fn fail(
        &self,
        job: &GenerationJob,
        code: &str,
        message: String,
    ) -> StepResult {
        let error = JobError::new(code, message);
        match fail_job(&self.ctx, job.job_id, &error).await {
            Ok(_) | Err(AppError::JobNotFound(_)) => {
                tracing::info!(job_id = %job.job_id, code, "job failed");
                Ok(MessageOutcome::Done)
            }
            Err(e) => Err(e),
        }
    }

    /// Stores the model as `results/<job_id>/model.<extension>` (and its preview beside it as
    /// `preview.<extension>`) and completes the job.
    pub(super) async fn store_result(
        &self,
        job: &GenerationJob,
        source_name: &str,
        bytes: Bytes,
        content_type: &str,
        extension: &str,
        preview: Option<PreviewImage>,
    ) -> StepResult {
        let key = JobResult::object_key_for(job.job_id, extension);
        let stem = source_name
            .rsplit_once('.')
            .map_or(source_name, |(stem, _)| stem);
        let mut result = JobResult {
            object_key: key.clone(),
            filename: format!("{stem}.{extension}"),
            size: bytes.len() as u64,
            content_type: content_type.to_owned(),
            preview_key: preview
                .as_ref()
                .map(|p| JobResult::preview_key_for(job.job_id, p.extension)),
            ..JobResult::default()
        };
        if let (Some(preview_key), Some(image)) = (&result.preview_key, preview)
            && let Err(err) = self
                .ctx
                .storage
                .put(preview_key, image.bytes, image.content_type)
                .await
        {
            return self.storage_failed(job, &err).await;
        }
        if let Err(err) = self
            .ctx
            .storage
            .put(&key, bytes.clone(), content_type)
            .await
        {
            return self.storage_failed(job, &err).await;
        }
        // The formats the job asked for are made now, so that its result names them.
        let mut asked = job.options.formats.clone().unwrap_or_default();
        asked.sort_unstable();
        asked.dedup();
        for format in asked.into_iter().filter(|f| *f != ModelFormat::Glb) {
            match convert_bytes(&self.ctx, job.job_id, bytes.clone(), format).await {
                Ok(Converted::Stored(stored)) => result.formats.push(stored),
                Ok(Converted::Failed(failure)) => result.format_failures.push(failure),
                Err(AppError::Storage(err)) => return self.storage_failed(job, &err).await,
                Err(err) => return Err(err),
            }
        }
        let now = Utc::now();
        match update_job(&self.ctx, job.job_id, |j| {
            j.complete(result.clone(), now).map(Some)
        })
        .await
        {
            Ok(done) => {
                crate::metrics::record_job_end(&done.model_type, true);
                tracing::info!(job_id = %done.job_id, size = result.size, "job completed");
                Ok(MessageOutcome::Done)
            }
            Err(AppError::Transition(_) | AppError::JobNotFound(_)) => {
                // Settled while we worked. If another delivery completed it (a webhook and a
                // poll can both get here), the object is that result; otherwise the job was
                // cancelled or deleted and the model is not wanted.
                let completed_here = self
                    .ctx
                    .store
                    .get_job(job.job_id)
                    .await?
                    .is_some_and(|j| j.result.as_ref().is_some_and(|r| r.object_key == key));
                if !completed_here {
                    let conversions = result.formats.iter().map(|f| &f.object_key);
                    for unwanted in std::iter::once(&key)
                        .chain(&result.preview_key)
                        .chain(conversions)
                    {
                        if let Err(err) = self.ctx.storage.delete(unwanted).await {
                            tracing::warn!(key = %unwanted, error = %err, "could not remove an unwanted result");
                        }
                    }
                }
                Ok(MessageOutcome::Done)
            }
            Err(e) => Err(e),
        }
    }

    /// Object storage failed under a running job: the error goes to the log, the job is retried
    /// later with a message that names no backend detail.
    pub(super) async fn storage_failed(
        &self,
        job: &GenerationJob,
        err: &StorageError,
    ) -> StepResult {
        tracing::warn!(job_id = %job.job_id, error = %err, "object storage failed");
        self.retry_later(job, "GENERATION_FAILED", STORAGE_UNAVAILABLE, None)
            .await
    }

    /// A transient failure: back to the queue after `retry_after` (or [`retry_delay`]), or
    /// failed with `code` after the last attempt.
    pub(super) async fn retry_later(
        &self,
        job: &GenerationJob,
        code: &str,
        reason: &str,
        retry_after: Option<Duration>,
    ) -> StepResult {
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
        match update_job(&self.ctx, job.job_id, |j| {
            j.requeue(&message, now).map(Some)
        })
        .await
        {
            Ok(_) => {}
            Err(AppError::Transition(_) | AppError::JobNotFound(_)) => {
                return Ok(MessageOutcome::Done);
            }
            Err(e) => return Err(e),
        }
        let delay = retry_after.unwrap_or_else(|| retry_delay(job.attempts));
        self.send(WorkMessage::generate(job.job_id), delay).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{completed, context, queued_job, ready_file, stored};
    use crate::domain::models::RELIEF_MODEL;
    use crate::domain::{JobStatus, RESULTS_PREFIX};

    #[test]
    fn retries_wait_five_seconds_per_attempt_made_and_a_minute_at_most() {
        let waits: Vec<u64> = [0, 1, 3, 12, 13, u32::MAX]
            .into_iter()
            .map(|attempts| retry_delay(attempts).as_secs())
            .collect();
        assert_eq!(waits, [0, 5, 15, 60, 60, 60]);
    }

    fn model() -> Bytes {
        Bytes::from_static(b"glTF model bytes")
    }

    #[tokio::test]
    async fn a_model_for_a_job_cancelled_meanwhile_is_removed_with_its_preview() {
        let t = context();
        let worker = Worker::new(t.ctx.clone(), Vec::new());
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        let running = job.start(Utc::now()).unwrap();
        t.store.update_job(&running).await.unwrap();
        t.store
            .update_job(&running.cancel(Utc::now()).unwrap())
            .await
            .unwrap();

        let preview = PreviewImage::png(Bytes::from_static(b"picture"));
        let outcome = worker
            .store_result(
                &running,
                "photo.png",
                model(),
                "model/gltf-binary",
                "glb",
                Some(preview),
            )
            .await;
        assert_eq!(outcome.unwrap(), MessageOutcome::Done);
        assert_eq!(stored(&t, &job).await.status, JobStatus::Cancelled);
        assert!(t.storage.list(RESULTS_PREFIX).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_duplicate_completion_of_a_job_leaves_its_model_in_place() {
        let t = context();
        let worker = Worker::new(t.ctx.clone(), Vec::new());
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        let done = completed(&t, &job).await;
        let result = done.result.unwrap();
        let model = t.storage.get(&result.object_key).await.unwrap();

        // A webhook and a poll both fetched FAL's output: the second finds the job completed
        // with the object it just wrote again.
        let running = job.start(Utc::now()).unwrap();
        let outcome = worker
            .store_result(
                &running,
                "photo.png",
                model.clone(),
                "model/gltf-binary",
                "glb",
                None,
            )
            .await;
        assert_eq!(outcome.unwrap(), MessageOutcome::Done);
        assert_eq!(t.storage.get(&result.object_key).await.unwrap(), model);
        assert_eq!(stored(&t, &job).await.result, Some(result));
    }
}
