//! HTTP routes of the upload function. Every check that can be made before bytes move is made
//! before anything is signed or written; files are stored before their record, so a record
//! always points at bytes.

use crate::multipart::{multipart_error, read_limited, read_text};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use image2model_jobs::{CreateJobRequest, create_batch, create_job, resolve_model};
use image2model_shared::access::owned_file;
use image2model_shared::auth::Caller;
use image2model_shared::domain::file::AcceptedImage;
use image2model_shared::domain::{FileId, FileStatus, JobOptions, UploadedFile};
use image2model_shared::extract::{ApiJson, FileIdParam};
use image2model_shared::validation::filename::extension;
use image2model_shared::validation::{ImageKind, ImageRejection, inspect_image, sanitize_filename};
use image2model_shared::{ApiError, AppContext, rate_limit};
use serde::Deserialize;
use serde_json::{Value, json};

/// Multipart overhead allowed on top of the file bytes themselves.
const MULTIPART_OVERHEAD: u64 = 1024 * 1024;

pub fn router(ctx: &AppContext) -> Router<AppContext> {
    let body_limit =
        usize::try_from(ctx.config.max_upload_bytes + MULTIPART_OVERHEAD).unwrap_or(usize::MAX);
    let limited = Router::new()
        .route("/api/v1/uploads/presign", post(presign))
        .route("/api/v1/upload/image", post(upload_image))
        .route("/api/v1/upload", post(upload_batch))
        .layer(DefaultBodyLimit::max(body_limit))
        .route_layer(middleware::from_fn_with_state(
            ctx.clone(),
            rate_limit::limit,
        ));
    limited.route("/api/v1/files/{file_id}", get(show_file))
}

fn expires_at(ctx: &AppContext, now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ctx.config.retention)
        .unwrap_or_else(|_| chrono::Duration::days(1))
}

/// The accepted kind of a declared content type and filename, or `INVALID_FILE_TYPE`.
fn declared_kind(content_type: &str, filename: &str) -> Result<ImageKind, ApiError> {
    let kind = ImageKind::from_mime(content_type).ok_or_else(|| ApiError::InvalidFileType {
        declared: content_type.to_owned(),
    })?;
    match extension(filename) {
        Some(ext) if ImageKind::from_extension(&ext).is_none() => Err(ApiError::InvalidFileType {
            declared: format!("{content_type} (file extension .{ext})"),
        }),
        _ => Ok(kind),
    }
}

fn file_view(file: &UploadedFile) -> Value {
    json!({
        "file_id": file.file_id,
        "filename": file.filename,
        "size": file.size,
        "content_type": file.content_type,
        "width": file.width,
        "height": file.height,
        "sha256": file.sha256,
        "status": file.status,
        "rejection": file.rejection,
        "created_at": file.created_at,
        "expires_at": file.expires_at,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresignFile {
    filename: String,
    content_type: String,
    size: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateSpec {
    model_type: Option<String>,
    options: Option<JobOptions>,
}

/// How the browser sends the bytes: a signed PUT (default) or a form POST with a policy.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
enum UploadMethod {
    #[default]
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "POST")]
    Post,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresignRequest {
    files: Vec<PresignFile>,
    generate: Option<GenerateSpec>,
    #[serde(default)]
    upload_method: UploadMethod,
}

fn check_count(count: usize, limit: usize) -> Result<(), ApiError> {
    if count > limit {
        Err(ApiError::TooManyFiles { count, limit })
    } else {
        Ok(())
    }
}

async fn presign(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(request): ApiJson<PresignRequest>,
) -> Result<Json<Value>, ApiError> {
    if request.files.is_empty() {
        return Err(ApiError::validation(
            "files must list at least one file",
            Some("files"),
        ));
    }
    check_count(request.files.len(), ctx.config.max_files)?;
    let limit = ctx.config.max_upload_bytes;
    let mut kinds = Vec::with_capacity(request.files.len());
    for file in &request.files {
        let kind = declared_kind(&file.content_type, &file.filename)?;
        if file.size == 0 {
            return Err(ImageRejection::Empty.into());
        }
        if file.size > limit {
            return Err(ImageRejection::TooLarge {
                size: file.size,
                limit,
            }
            .into());
        }
        kinds.push(kind);
    }
    if let Some(generate) = &request.generate {
        let model = resolve_model(&ctx, generate.model_type.as_deref())?;
        if let Some(options) = &generate.options {
            image2model_jobs::validate_options(model, options)?;
        }
    }

    let now = Utc::now();
    let mut out = Vec::with_capacity(request.files.len());
    for (file, kind) in request.files.iter().zip(kinds) {
        let file_id = FileId::new();
        let object_key = UploadedFile::object_key_for(&caller.owner, file_id);
        let expiry = ctx.config.presign_expiry;
        let upload = match request.upload_method {
            UploadMethod::Put => json!(
                ctx.storage
                    .presign_put(&object_key, kind.mime(), file.size, expiry)
                    .await?
            ),
            UploadMethod::Post => json!(
                ctx.storage
                    .presign_post(&object_key, kind.mime(), file.size, expiry)
                    .await?
            ),
        };
        let record = UploadedFile {
            file_id,
            owner: caller.owner.clone(),
            filename: sanitize_filename(&file.filename),
            content_type: kind.mime().to_owned(),
            size: file.size,
            sha256: None,
            width: None,
            height: None,
            status: FileStatus::Pending,
            rejection: None,
            object_key,
            created_at: now,
            expires_at: expires_at(&ctx, now),
            version: 1,
        };
        ctx.store.create_file(&record).await?;
        let job_id = match &request.generate {
            Some(generate) => {
                let job_request = CreateJobRequest {
                    file_id,
                    model_type: generate.model_type.clone(),
                    options: generate.options.clone(),
                };
                Some(
                    create_job(&ctx, &caller.owner, job_request, None)
                        .await?
                        .job_id,
                )
            }
            None => None,
        };
        out.push(json!({
            "file_id": file_id,
            "filename": record.filename,
            "upload": upload,
            "job_id": job_id,
        }));
    }
    Ok(Json(json!({ "files": out })))
}

/// Stores validated bytes, then their record; on a failed record the bytes are removed again.
async fn store_validated(
    ctx: &AppContext,
    owner: &str,
    filename: &str,
    bytes: Bytes,
    image: AcceptedImage,
) -> Result<UploadedFile, ApiError> {
    let now = Utc::now();
    let file_id = FileId::new();
    let object_key = UploadedFile::object_key_for(owner, file_id);
    ctx.storage
        .put(&object_key, bytes, &image.content_type)
        .await?;
    let file = UploadedFile {
        file_id,
        owner: owner.to_owned(),
        filename: sanitize_filename(filename),
        content_type: image.content_type,
        size: image.size,
        sha256: Some(image.sha256),
        width: Some(image.width),
        height: Some(image.height),
        status: FileStatus::Ready,
        rejection: None,
        object_key,
        created_at: now,
        expires_at: expires_at(ctx, now),
        version: 1,
    };
    if let Err(err) = ctx.store.create_file(&file).await {
        if let Err(cleanup) = ctx.storage.delete(&file.object_key).await {
            tracing::warn!(key = %file.object_key, error = %cleanup, "could not remove bytes of an unrecorded upload");
        }
        return Err(err.into());
    }
    tracing::info!(file_id = %file.file_id, size = file.size, "file uploaded");
    Ok(file)
}

/// A file part, read and validated, not yet stored.
struct ValidatedPart {
    filename: String,
    bytes: Bytes,
    image: AcceptedImage,
}

async fn validated_part(
    ctx: &AppContext,
    field: axum::extract::multipart::Field<'_>,
) -> Result<ValidatedPart, ApiError> {
    let filename = field.file_name().unwrap_or("upload").to_owned();
    let bytes = read_limited(field, ctx.config.max_upload_bytes).await?;
    let image = inspect_image(&bytes, ctx.config.image_limits())?;
    Ok(ValidatedPart {
        filename,
        bytes,
        image,
    })
}

async fn upload_image(
    State(ctx): State<AppContext>,
    caller: Caller,
    mut multipart: Multipart,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let limit = ctx.config.max_upload_bytes;
    let mut part = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        if field.name() == Some("file") {
            if part.is_some() {
                return Err(ApiError::TooManyFiles { count: 2, limit: 1 });
            }
            part = Some(validated_part(&ctx, field).await?);
        }
    }
    let part = part.ok_or_else(|| {
        ApiError::validation("multipart field \"file\" is required", Some("file"))
    })?;
    let file = store_validated(&ctx, &caller.owner, &part.filename, part.bytes, part.image).await?;
    Ok((StatusCode::CREATED, Json(file_view(&file))))
}

async fn upload_batch(
    State(ctx): State<AppContext>,
    caller: Caller,
    mut multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    let limit = ctx.config.max_upload_bytes;
    let mut parts = Vec::new();
    let mut face_limit = None;
    let mut model_type = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        match field.name() {
            Some("files") | Some("files[]") | Some("file") => {
                check_count(parts.len() + 1, ctx.config.max_files)?;
                parts.push(validated_part(&ctx, field).await?);
            }
            Some("face_limit") => {
                let raw = read_text(field, "face_limit").await?;
                if !raw.is_empty() {
                    face_limit = Some(raw.parse::<u32>().map_err(|_| {
                        ApiError::validation(
                            "face_limit must be a positive integer",
                            Some("face_limit"),
                        )
                    })?);
                }
            }
            Some("model_type") => model_type = Some(read_text(field, "model_type").await?),
            _ => {}
        }
    }
    if parts.is_empty() {
        return Err(ApiError::validation(
            "multipart field \"files\" is required",
            Some("files"),
        ));
    }
    let options = JobOptions {
        face_limit,
        ..JobOptions::default()
    };
    let model = resolve_model(&ctx, model_type.as_deref())?;
    image2model_jobs::validate_options(model, &options)?;

    let mut files = Vec::with_capacity(parts.len());
    for part in parts {
        files.push(
            store_validated(&ctx, &caller.owner, &part.filename, part.bytes, part.image).await?,
        );
    }
    let (batch, jobs) = create_batch(&ctx, &caller.owner, &files, model, &options).await?;
    let uploaded: Vec<Value> = files
        .iter()
        .zip(&jobs)
        .map(|(file, job)| {
            json!({
                "file_id": file.file_id,
                "filename": file.filename,
                "file_size": file.size,
                "content_type": file.content_type,
                "status": file.status,
                "job_id": job.job_id,
            })
        })
        .collect();
    let total = files.len();
    Ok(Json(json!({
        "batch_id": batch.batch_id,
        "job_id": batch.batch_id,
        "task_id": batch.batch_id,
        "uploaded_files": uploaded,
        "face_limit": face_limit,
        "model_type": model.id,
        "total_files": total,
        "status": "uploaded",
        "message": format!("{total} file(s) uploaded; generation queued"),
    })))
}

async fn show_file(
    State(ctx): State<AppContext>,
    caller: Caller,
    FileIdParam(id): FileIdParam,
) -> Result<Json<Value>, ApiError> {
    owned_file(&ctx, &caller, id)
        .await
        .map(|f| Json(file_view(&f)))
}
