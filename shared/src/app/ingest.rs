//! Ingestion: what happens when bytes land under `uploads/` (an S3 event, the local storage
//! route, or the sweeper for an event that never came). The bytes are sniffed and fully
//! validated; the file becomes ready (releasing the jobs that wait for it) or rejected with a
//! reason (deleting the bytes and failing the waiting jobs). Duplicate events are harmless.

use super::enqueue::{Handover, enqueue_if_ready};
use super::error::AppError;
use super::job_update::fail_job;
use crate::context::AppContext;
use crate::domain::{
    AcceptedImage, FileId, FileRejection, FileStatus, JobError, JobStatus, UploadedFile,
};
use crate::ports::StoreError;
use crate::validation::{ImageRejection, inspect_image};

/// What ingestion did with one object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IngestOutcome {
    Accepted {
        file_id: FileId,
        released_jobs: usize,
    },
    Rejected {
        file_id: FileId,
        code: String,
        failed_jobs: usize,
    },
    /// The file had already left `pending` (a duplicate event).
    AlreadyProcessed { file_id: FileId },
    /// Not an upload we know about.
    Ignored,
}

/// Validates the object at `key` and settles its file record.
pub async fn ingest_object(ctx: &AppContext, key: &str) -> Result<IngestOutcome, AppError> {
    let Some(file_id) = UploadedFile::file_id_of_key(key) else {
        tracing::warn!(key, "object outside uploads/<owner>/<file_id> ignored");
        return Ok(IngestOutcome::Ignored);
    };
    let Some(file) = ctx.store.get_file(file_id).await? else {
        tracing::warn!(key, "object without a file record ignored");
        return Ok(IngestOutcome::Ignored);
    };
    if file.object_key != key {
        return Ok(IngestOutcome::Ignored);
    }
    if file.status != FileStatus::Pending {
        return Ok(IngestOutcome::AlreadyProcessed { file_id });
    }
    let limits = ctx.config.image_limits();
    let verdict = match ctx.storage.head(key).await? {
        None => return Ok(IngestOutcome::Ignored),
        Some(meta) if meta.size > limits.max_bytes => Err(ImageRejection::TooLarge {
            size: meta.size,
            limit: limits.max_bytes,
        }),
        Some(_) => {
            let bytes = ctx.storage.get(key).await?;
            inspect_image(&bytes, limits)
        }
    };
    match verdict {
        Ok(image) => accept(ctx, &file, image).await,
        Err(rejection) => reject(ctx, &file, &rejection).await,
    }
}

async fn accept(
    ctx: &AppContext,
    file: &UploadedFile,
    image: AcceptedImage,
) -> Result<IngestOutcome, AppError> {
    let Ok(ready) = file.accept(image) else {
        return Ok(IngestOutcome::AlreadyProcessed {
            file_id: file.file_id,
        });
    };
    match ctx.store.update_file(&ready).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Ok(IngestOutcome::AlreadyProcessed {
                file_id: file.file_id,
            });
        }
        Err(e) => return Err(e.into()),
    }
    let mut released = 0;
    for job in ctx.store.list_jobs_for_file(file.file_id).await? {
        if job.status == JobStatus::Queued
            && enqueue_if_ready(ctx, &job).await? == Handover::Enqueued
        {
            released += 1;
        }
    }
    tracing::info!(file_id = %file.file_id, released, "file accepted");
    Ok(IngestOutcome::Accepted {
        file_id: file.file_id,
        released_jobs: released,
    })
}

async fn reject(
    ctx: &AppContext,
    file: &UploadedFile,
    rejection: &ImageRejection,
) -> Result<IngestOutcome, AppError> {
    let reason = FileRejection {
        code: rejection.code().to_owned(),
        message: rejection.to_string(),
    };
    let Ok(rejected) = file.reject(reason.clone()) else {
        return Ok(IngestOutcome::AlreadyProcessed {
            file_id: file.file_id,
        });
    };
    match ctx.store.update_file(&rejected).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Ok(IngestOutcome::AlreadyProcessed {
                file_id: file.file_id,
            });
        }
        Err(e) => return Err(e.into()),
    }
    ctx.storage.delete(&file.object_key).await?;
    let error = JobError::new(
        reason.code.clone(),
        format!("upload rejected: {}", reason.message),
    );
    let mut failed = 0;
    for job in ctx.store.list_jobs_for_file(file.file_id).await? {
        if job.status.is_terminal() {
            continue;
        }
        let result = fail_job(ctx.store.as_ref(), job.job_id, &error).await;
        match result {
            Ok(_) => failed += 1,
            Err(AppError::JobNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    tracing::info!(file_id = %file.file_id, code = %reason.code, failed, "file rejected");
    Ok(IngestOutcome::Rejected {
        file_id: file.file_id,
        code: reason.code,
        failed_jobs: failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::enqueue::WorkMessage;
    use crate::app::testing::{
        context, context_with, drain, pending_file, queued_job, stored, upload_bytes,
    };
    use crate::domain::models::DEFAULT_MODEL;
    use bytes::Bytes;

    #[tokio::test]
    async fn valid_bytes_make_the_file_ready_and_release_its_waiting_jobs_once() {
        let t = context();
        let file = pending_file(&t, "alice").await;
        let job = queued_job(&t, &file, DEFAULT_MODEL).await;
        upload_bytes(&t, &file).await;
        let outcome = ingest_object(&t, &file.object_key).await.unwrap();
        assert_eq!(
            outcome,
            IngestOutcome::Accepted {
                file_id: file.file_id,
                released_jobs: 1
            }
        );
        let ready = t.store.get_file(file.file_id).await.unwrap().unwrap();
        assert_eq!(
            (ready.status, ready.width, ready.height),
            (FileStatus::Ready, Some(48), Some(32))
        );
        assert_eq!(ready.sha256.as_deref().map(str::len), Some(64));
        assert_eq!(drain(&t).await, [WorkMessage::generate(job.job_id)]);
        // A duplicate event changes nothing and releases nothing twice.
        assert_eq!(
            ingest_object(&t, &file.object_key).await.unwrap(),
            IngestOutcome::AlreadyProcessed {
                file_id: file.file_id
            }
        );
        assert!(drain(&t).await.is_empty());
    }

    #[tokio::test]
    async fn invalid_bytes_reject_the_file_delete_them_and_fail_its_live_jobs() {
        let t = context();
        let file = pending_file(&t, "alice").await;
        let waiting = queued_job(&t, &file, DEFAULT_MODEL).await;
        let cancelled = queued_job(&t, &file, DEFAULT_MODEL).await;
        let cancelled = cancelled.cancel(chrono::Utc::now()).unwrap();
        t.store.update_job(&cancelled).await.unwrap();
        t.storage
            .put(
                &file.object_key,
                Bytes::from_static(b"<html>not an image</html>"),
                "image/png",
            )
            .await
            .unwrap();
        let outcome = ingest_object(&t, &file.object_key).await.unwrap();
        assert_eq!(
            outcome,
            IngestOutcome::Rejected {
                file_id: file.file_id,
                code: "INVALID_FILE_TYPE".into(),
                failed_jobs: 1
            }
        );
        let rejected = t.store.get_file(file.file_id).await.unwrap().unwrap();
        assert_eq!(rejected.status, FileStatus::Rejected);
        assert!(
            t.storage.head(&file.object_key).await.unwrap().is_none(),
            "bytes deleted"
        );
        let failed = stored(&t, &waiting).await;
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.unwrap().code, "INVALID_FILE_TYPE");
        assert_eq!(stored(&t, &cancelled).await.status, JobStatus::Cancelled);
        assert!(drain(&t).await.is_empty());
    }

    #[tokio::test]
    async fn an_object_over_the_limit_is_rejected_by_its_size_alone() {
        let t = context_with(|c| c.max_upload_bytes = 100);
        let file = pending_file(&t, "alice").await;
        upload_bytes(&t, &file).await;
        let outcome = ingest_object(&t, &file.object_key).await.unwrap();
        assert!(
            matches!(outcome, IngestOutcome::Rejected { ref code, .. } if code == "FILE_TOO_LARGE"),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn objects_that_are_not_recorded_uploads_are_ignored() {
        let t = context();
        let file = pending_file(&t, "alice").await;
        for key in [
            "results/x/model.glb".to_owned(),
            format!("uploads/alice/{}", FileId::new()),
            format!("uploads/mallory/{}", file.file_id),
            file.object_key.clone(),
        ] {
            // The last one is recorded but its bytes never arrived.
            assert_eq!(
                ingest_object(&t, &key).await.unwrap(),
                IngestOutcome::Ignored,
                "{key}"
            );
        }
        assert_eq!(
            t.store
                .get_file(file.file_id)
                .await
                .unwrap()
                .unwrap()
                .status,
            FileStatus::Pending
        );
    }
}
