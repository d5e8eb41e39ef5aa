//! HTTP routes of the upload function: they read the request (JSON, or multipart bodies whose
//! files are validated as they arrive), call the upload services of `image2model_shared::app`
//! and shape the answers.

use crate::multipart::{multipart_error, read_limited, read_text};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use image2model_shared::AppContext;
use image2model_shared::app::AppError;
use image2model_shared::app::access::owned_file;
use image2model_shared::app::direct_upload::{ValidatedUpload, store_upload, upload_batch};
use image2model_shared::app::presign_upload::{PresignRequest, presign_uploads};
use image2model_shared::domain::{JobOptions, UploadedFile};
use image2model_shared::validation::inspect_image;
use image2model_shared::web::extract::{ApiJson, FileIdParam};
use image2model_shared::web::{ApiError, Caller, rate_limit};
use serde_json::{Value, json};

/// Multipart overhead allowed on top of the file bytes themselves.
const MULTIPART_OVERHEAD: u64 = 1024 * 1024;

pub fn router(ctx: &AppContext) -> Router<AppContext> {
    let body_limit =
        usize::try_from(ctx.config.max_upload_bytes + MULTIPART_OVERHEAD).unwrap_or(usize::MAX);
    let limited = Router::new()
        .route("/api/v1/uploads/presign", post(presign))
        .route("/api/v1/upload/image", post(upload_image))
        .route("/api/v1/upload", post(upload_multiple))
        .layer(DefaultBodyLimit::max(body_limit))
        .route_layer(middleware::from_fn_with_state(
            ctx.clone(),
            rate_limit::limit,
        ));
    limited.route("/api/v1/files/{file_id}", get(show_file))
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

async fn presign(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(request): ApiJson<PresignRequest>,
) -> Result<Json<Value>, ApiError> {
    let uploads = presign_uploads(&ctx, &caller.owner, request).await?;
    let files: Vec<Value> = uploads
        .iter()
        .map(|u| {
            json!({
                "file_id": u.file.file_id,
                "filename": u.file.filename,
                "upload": u.upload,
                "job_id": u.job_id,
            })
        })
        .collect();
    Ok(Json(json!({ "files": files })))
}

/// Reads a file part and validates its bytes.
async fn validated_part(
    ctx: &AppContext,
    field: axum::extract::multipart::Field<'_>,
) -> Result<ValidatedUpload, ApiError> {
    let filename = field.file_name().unwrap_or("upload").to_owned();
    let bytes = read_limited(field, ctx.config.max_upload_bytes).await?;
    let image = inspect_image(&bytes, ctx.config.image_limits())?;
    Ok(ValidatedUpload {
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
                return Err(AppError::TooManyFiles { count: 2, limit: 1 }.into());
            }
            part = Some(validated_part(&ctx, field).await?);
        }
    }
    let part = part.ok_or_else(|| {
        ApiError::validation("multipart field \"file\" is required", Some("file"))
    })?;
    let file = store_upload(&ctx, &caller.owner, part).await?;
    Ok((StatusCode::CREATED, Json(file_view(&file))))
}

/// The compatibility batch upload: multipart `files` (<= `MAX_FILES`), `face_limit`,
/// `model_type` -> one job per file under a batch.
async fn upload_multiple(
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
                AppError::check_file_count(parts.len() + 1, ctx.config.max_files)?;
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
    let options = JobOptions {
        face_limit,
        ..JobOptions::default()
    };
    let batch = upload_batch(&ctx, &caller.owner, parts, model_type.as_deref(), options).await?;
    let uploaded: Vec<Value> = batch
        .files
        .iter()
        .zip(&batch.jobs)
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
    let total = batch.files.len();
    let batch_id = batch.batch.batch_id;
    Ok(Json(json!({
        "batch_id": batch_id,
        "job_id": batch_id,
        "task_id": batch_id,
        "uploaded_files": uploaded,
        "face_limit": face_limit,
        "model_type": batch.model_type,
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
    let file = owned_file(&ctx, &caller, id).await?;
    Ok(Json(file_view(&file)))
}
