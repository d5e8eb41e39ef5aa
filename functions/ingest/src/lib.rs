//! The ingest function: runs when bytes land under `uploads/`. It sniffs and fully validates
//! them, marks the file ready (releasing jobs that wait for it) or rejected with a reason
//! (deleting the bytes and failing the waiting jobs). Duplicate events are harmless.

use aws_lambda_events::event::s3::S3Event;
use image2model_shared::AppContext;
use image2model_shared::domain::{
    FileId, FileRejection, FileStatus, JobError, JobStatus, UploadedFile,
};
use image2model_shared::pipeline::{UpdateError, enqueue_job, fail_job};
use image2model_shared::ports::{QueueError, StorageError, StoreError};
use image2model_shared::validation::{ImageRejection, inspect_image};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Update(#[from] UpdateError),
}

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

/// `uploads/<owner>/<file_id>` -> the file id.
pub fn parse_upload_key(key: &str) -> Option<FileId> {
    let mut parts = key.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("uploads"), Some(owner), Some(id), None) if !owner.is_empty() => id.parse().ok(),
        _ => None,
    }
}

/// S3 event keys are URL-encoded with `+` for spaces.
pub fn decode_s3_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Ingests every record of an S3 event; fails (so Lambda retries) if any record failed.
pub async fn handle_s3_event(
    ctx: &AppContext,
    event: S3Event,
) -> Result<Vec<IngestOutcome>, IngestError> {
    let mut outcomes = Vec::with_capacity(event.records.len());
    for record in event.records {
        let Some(raw_key) = record.s3.object.key else {
            continue;
        };
        let key = decode_s3_key(&raw_key);
        outcomes.push(ingest_object(ctx, &key).await?);
    }
    Ok(outcomes)
}

/// Validates the object at `key` and settles its file record.
pub async fn ingest_object(ctx: &AppContext, key: &str) -> Result<IngestOutcome, IngestError> {
    let Some(file_id) = parse_upload_key(key) else {
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
    image: image2model_shared::domain::file::AcceptedImage,
) -> Result<IngestOutcome, IngestError> {
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
        if job.status == JobStatus::Queued {
            enqueue_job(ctx.queue.as_ref(), job.job_id).await?;
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
) -> Result<IngestOutcome, IngestError> {
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
            Err(UpdateError::NotFound) => {}
            Err(e) => return Err(e.into()),
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

    #[test]
    fn parses_only_upload_keys() {
        let id = FileId::new();
        assert_eq!(parse_upload_key(&format!("uploads/alice/{id}")), Some(id));
        assert_eq!(parse_upload_key(&format!("results/alice/{id}")), None);
        assert_eq!(parse_upload_key(&format!("uploads/alice/{id}/x")), None);
        assert_eq!(parse_upload_key("uploads//x"), None);
    }

    #[test]
    fn decodes_s3_event_keys() {
        assert_eq!(decode_s3_key("uploads/a+b/c%2Bd%3A"), "uploads/a b/c+d:");
    }
}
