//! Uploads whose bytes come with the request (`/upload/image`, and the compatibility batch
//! `/upload/`): the bytes were validated as they arrived, so the file is ready at once. The record
//! is written first (pending), then the bytes, then the record made ready: a ready record always
//! points at bytes, and the object-created event the bytes cause on S3 finds a record (ingestion
//! of a pending one validates again; whichever settles it first wins, the other changes nothing).

use super::create_job::{create_batch, resolve_model, validate_options};
use super::error::AppError;
use super::presign_upload::refuse_foreign_extension;
use crate::context::AppContext;
use crate::domain::{AcceptedImage, Batch, GenerationJob, JobOptions, UploadedFile};
use crate::validation::sanitize_filename;
use bytes::Bytes;
use chrono::Utc;

/// A file of the request, read and validated, not yet stored.
#[derive(Debug, Clone)]
pub struct ValidatedUpload {
    pub filename: String,
    pub bytes: Bytes,
    pub image: AcceptedImage,
}

/// Stores validated bytes, then their record; on a failed record the bytes are removed again.
pub async fn store_upload(
    ctx: &AppContext,
    owner: &str,
    upload: ValidatedUpload,
) -> Result<UploadedFile, AppError> {
    refuse_foreign_extension(&upload.image.content_type, &upload.filename)?;
    let now = Utc::now();
    let pending = UploadedFile::pending(
        owner,
        &sanitize_filename(&upload.filename),
        &upload.image.content_type,
        upload.image.size,
        now,
        ctx.config.expires_at(now),
    );
    ctx.store.create_file(&pending).await?;
    if let Err(err) = ctx
        .storage
        .put(&pending.object_key, upload.bytes, &pending.content_type)
        .await
    {
        if let Err(cleanup) = ctx.store.delete_file(pending.file_id).await {
            tracing::warn!(file_id = %pending.file_id, error = %cleanup, "could not remove the record of an upload whose bytes were not stored");
        }
        return Err(err.into());
    }
    let file = match pending.accept(upload.image) {
        Ok(ready) => match ctx.store.update_file(&ready).await {
            Ok(()) => ready,
            // Ingestion of the object-created event settled it first.
            Err(crate::ports::StoreError::Conflict) => {
                ctx.store
                    .get_file(pending.file_id)
                    .await?
                    .ok_or(AppError::FileNotFound(pending.file_id))?
            }
            Err(err) => return Err(err.into()),
        },
        Err(_) => pending,
    };
    tracing::info!(file_id = %file.file_id, size = file.size, "file uploaded");
    Ok(file)
}

/// A batch upload's outcome: its files and their jobs, in the order sent.
#[derive(Debug, Clone)]
pub struct UploadedBatch {
    pub batch: Batch,
    pub files: Vec<UploadedFile>,
    pub jobs: Vec<GenerationJob>,
    pub model_type: &'static str,
}

/// The compatibility batch: checks the model, the options and every filename before storing
/// anything, stores every file, then creates one job per file under a new batch.
pub async fn upload_batch(
    ctx: &AppContext,
    owner: &str,
    uploads: Vec<ValidatedUpload>,
    model_type: Option<&str>,
    options: JobOptions,
) -> Result<UploadedBatch, AppError> {
    if uploads.is_empty() {
        return Err(AppError::invalid(
            "multipart field \"files\" is required",
            Some("files"),
        ));
    }
    AppError::check_file_count(uploads.len(), ctx.config.limits.max_files)?;
    let model = resolve_model(ctx, model_type)?;
    validate_options(model, &options, "")?;
    for upload in &uploads {
        refuse_foreign_extension(&upload.image.content_type, &upload.filename)?;
    }
    let mut files = Vec::with_capacity(uploads.len());
    for upload in uploads {
        files.push(store_upload(ctx, owner, upload).await?);
    }
    let (batch, jobs) = create_batch(ctx, owner, &files, model, &options).await?;
    Ok(UploadedBatch {
        batch,
        files,
        jobs,
        model_type: model.id,
    })
}
