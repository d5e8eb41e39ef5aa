//! Uploads whose bytes come with the request (`/upload/image`, and the compatibility batch
//! `/upload/`): the bytes were validated as they arrived, so the file is ready at once. Bytes are
//! stored before their record, so a record always points at bytes; a record that cannot be
//! written takes its bytes with it.

use super::create_job::{create_batch, resolve_model, validate_options};
use super::error::AppError;
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
    let now = Utc::now();
    let file = UploadedFile::ready(
        owner,
        &sanitize_filename(&upload.filename),
        upload.image,
        now,
        ctx.config.expires_at(now),
    );
    ctx.storage
        .put(&file.object_key, upload.bytes, &file.content_type)
        .await?;
    if let Err(err) = ctx.store.create_file(&file).await {
        if let Err(cleanup) = ctx.storage.delete(&file.object_key).await {
            tracing::warn!(key = %file.object_key, error = %cleanup, "could not remove bytes of an unrecorded upload");
        }
        return Err(err.into());
    }
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

/// The compatibility batch: checks the model and options before storing anything, stores every
/// file, then creates one job per file under a new batch.
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
    AppError::check_file_count(uploads.len(), ctx.config.max_files)?;
    let model = resolve_model(ctx, model_type)?;
    validate_options(model, &options)?;
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
