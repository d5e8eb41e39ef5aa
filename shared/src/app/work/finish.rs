//! How a run ends: the model stored and the job completed (exactly once, whoever gets there
//! first), or the job failed with a stable code.

use super::{Outcome, Worker};
use crate::app::convert::convert_bytes;
use crate::app::error::AppError;
use crate::app::job_update::{fail_job, update_job};
use crate::domain::{Converted, GenerationJob, JobError, JobResult, ModelFormat};
use crate::ports::GeneratedModel;
use chrono::Utc;

impl Worker {
    /// Fails the job with `error` unless it already ended.
    pub(super) async fn fail(
        &self,
        job: &GenerationJob,
        error: &JobError,
    ) -> Result<Outcome, AppError> {
        match fail_job(&self.ctx, job.job_id, error).await {
            Ok(_) | Err(AppError::JobNotFound(_)) => {
                tracing::info!(job_id = %job.job_id, code = %error.code, "job failed");
                Ok(Outcome::Done)
            }
            Err(e) => Err(e),
        }
    }

    /// Stores the model as `results/<job_id>/model.<extension>` (and its preview beside it as
    /// `preview.<extension>`), makes the formats the job asked for, and completes the job. The
    /// model is named after the photo `source_name`.
    pub(super) async fn complete(
        &self,
        job: &GenerationJob,
        model: GeneratedModel,
        source_name: &str,
    ) -> Result<Outcome, AppError> {
        let GeneratedModel {
            bytes,
            content_type,
            file_extension: extension,
            preview,
        } = model;
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
            return Ok(Outcome::storage_failed(job, &err));
        }
        if let Err(err) = self
            .ctx
            .storage
            .put(&key, bytes.clone(), content_type)
            .await
        {
            return Ok(Outcome::storage_failed(job, &err));
        }
        // The formats the job asked for are made now, so that its result names them.
        let mut asked = job.options.formats.clone().unwrap_or_default();
        asked.sort_unstable();
        asked.dedup();
        for format in asked.into_iter().filter(|f| *f != ModelFormat::Glb) {
            match convert_bytes(&self.ctx, job.job_id, bytes.clone(), format).await {
                Ok(Converted::Stored(stored)) => result.formats.push(stored),
                Ok(Converted::Failed(failure)) => result.format_failures.push(failure),
                Err(AppError::Storage(err)) => return Ok(Outcome::storage_failed(job, &err)),
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
                Ok(Outcome::Done)
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
                Ok(Outcome::Done)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{completed, context, queued_job, ready_file, stored};
    use crate::domain::models::RELIEF_MODEL;
    use crate::domain::{JobStatus, RESULTS_PREFIX};
    use crate::ports::PreviewImage;
    use bytes::Bytes;

    fn model(bytes: Bytes, preview: Option<PreviewImage>) -> GeneratedModel {
        GeneratedModel {
            bytes,
            content_type: "model/gltf-binary",
            file_extension: "glb",
            preview,
        }
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
        let glb = Bytes::from_static(b"glTF model bytes");
        let outcome = worker
            .complete(&running, model(glb, Some(preview)), "photo.png")
            .await;
        assert!(matches!(outcome.unwrap(), Outcome::Done));
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
        let stored_model = t.storage.get(&result.object_key).await.unwrap();

        // A webhook and a poll both fetched FAL's output: the second finds the job completed
        // with the object it just wrote again.
        let running = job.start(Utc::now()).unwrap();
        let outcome = worker
            .complete(&running, model(stored_model.clone(), None), "photo.png")
            .await;
        assert!(matches!(outcome.unwrap(), Outcome::Done));
        assert_eq!(
            t.storage.get(&result.object_key).await.unwrap(),
            stored_model
        );
        assert_eq!(stored(&t, &job).await.result, Some(result));
    }
}
