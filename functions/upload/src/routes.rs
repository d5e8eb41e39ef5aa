//! HTTP routes of the upload function: they read the request (JSON, or multipart bodies whose
//! files are validated as they arrive), call the upload services of `image2model_shared::app`
//! and shape the answers.

use crate::multipart::{body_limit, multipart_error, read_limited, read_text};
use crate::views::{
    BatchFile, BatchProgress, BatchUploaded, LegacyBatchStatus, LegacyFileStatus,
    LegacyUploadStatus, PresignedFile, PresignedFiles, ProcessingStatus, Received,
};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::{Json, middleware};
use image2model_shared::AppContext;
use image2model_shared::app::AppError;
use image2model_shared::app::access::{Task, owned_file, owned_task};
use image2model_shared::app::create_job::ModelType;
use image2model_shared::app::direct_upload::{ValidatedUpload, store_upload, upload_batch};
use image2model_shared::app::inspect::inspect;
use image2model_shared::app::presign_upload::{PresignRequest, presign_uploads};
use image2model_shared::app::task_status::Snapshot;
use image2model_shared::domain::{FileStatus, JobId, JobOptions, UploadedFile};
use image2model_shared::validation::ImageRejection;
use image2model_shared::web::extract::{ApiJson, ApiMultipart, FileIdParam, JobIdParam};
use image2model_shared::web::layers::{JSON_BODY_LIMIT, refuse_bodies_over};
use image2model_shared::web::links::{Origin, task_links};
use image2model_shared::web::openapi::ApiErrors;
use image2model_shared::web::rate_limit::RateBudget;
use image2model_shared::web::views::FileView;
use image2model_shared::web::{ApiError, Caller, rate_limit};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router(ctx: &AppContext) -> OpenApiRouter<AppContext> {
    // Each request body within its own limit, refused from `Content-Length` when over it: a
    // multipart upload's files, or a presign's JSON.
    let limited = |router: OpenApiRouter<AppContext>, limit: u64| {
        router
            .layer(DefaultBodyLimit::max(
                usize::try_from(limit).unwrap_or(usize::MAX),
            ))
            .route_layer(middleware::from_fn_with_state(
                ctx.clone(),
                rate_limit::limit,
            ))
            .route_layer(middleware::from_fn_with_state(limit, refuse_bodies_over))
    };
    let multipart = OpenApiRouter::new()
        .routes(routes!(upload_image))
        .routes(routes!(upload_multiple));
    let presign = OpenApiRouter::new().routes(routes!(presign));
    limited(multipart, body_limit(ctx.config.sync_upload_limit()))
        .merge(limited(presign, JSON_BODY_LIMIT))
        .routes(routes!(show_file))
        .routes(routes!(upload_status))
        .routes(routes!(batch_status))
}

/// The form of `POST /api/v1/upload/image`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the form for the document.
struct ImageForm {
    /// A JPEG, PNG or WebP photo (validated by its bytes; a filename extension, if any, must be
    /// an image's).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The form of `POST /api/v1/upload`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the form for the document.
struct BatchForm {
    /// One to `MAX_FILES` photos.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 25)]
    files: Vec<Vec<u8>>,
    /// Most triangles per model.
    #[schema(minimum = 500, maximum = 2000000, nullable = false)]
    face_limit: Option<u32>,
    /// The model for every file; the default when absent.
    #[schema(value_type = Option<ModelType>, nullable = false)]
    model_type: Option<String>,
}

/// Announces files and signs where their bytes go: a PUT (or a form POST policy) per file,
/// valid for `PRESIGN_EXPIRY_SECONDS`, writing one object once; with `generate`, a job per file
/// that waits for its upload.
#[utoipa::path(
    post, path = "/api/v1/uploads/presign", tag = "uploads", operation_id = "presign_uploads",
    request_body = PresignRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = PresignedFiles, description = "Each file with how to send its bytes (and its job's links with `generate`)", links(
            ("GetFile" = (operation_id = "get_file", parameters(("file_id" = "$response.body#/files/0/file_id")))),
            ("CreateJob" = (operation_id = "create_job", request_body = json!({"file_id": "$response.body#/files/0/file_id"}))),
        )),
        ApiErrors,
    ),
)]
async fn presign(
    State(ctx): State<AppContext>,
    caller: Caller,
    origin: Origin,
    budget: RateBudget,
    ApiJson(request): ApiJson<PresignRequest>,
) -> Result<Json<PresignedFiles>, ApiError> {
    // Each file announced, and each job with `generate`, counts against the rate limit.
    let files = request.files.len();
    AppError::check_file_count(files, ctx.config.limits.max_files)?;
    let per_file = if request.generate.is_some() { 2 } else { 1 };
    let units = per_file * files as u64;
    budget.cover(units).await?;
    let uploads = match presign_uploads(&ctx, &caller.owner, request).await {
        Ok(uploads) => uploads,
        Err(err) => {
            budget.refund(units).await;
            return Err(err.into());
        }
    };
    let files = uploads
        .into_iter()
        .map(|u| PresignedFile {
            file_id: u.file.file_id,
            filename: u.file.filename,
            upload: u.upload,
            job_id: u.job_id,
            links: u
                .job_id
                .map(|job_id| task_links(&ctx, &origin, job_id, &caller.owner))
                .into(),
        })
        .collect();
    Ok(Json(PresignedFiles { files }))
}

/// Reads a file part and validates its bytes.
async fn validated_part(
    ctx: &AppContext,
    field: axum::extract::multipart::Field<'_>,
) -> Result<ValidatedUpload, ApiError> {
    let filename = field.file_name().unwrap_or("upload").to_owned();
    let (limit, max) = (
        ctx.config.sync_upload_limit(),
        ctx.config.limits.max_upload_bytes,
    );
    let bytes = read_limited(field, limit).await.map_err(|err| match err {
        // Over this route's limit but within what presigned uploads take: say where to go.
        ApiError::App(AppError::InvalidImage(ImageRejection::TooLarge { size, .. }))
            if limit < max =>
        {
            ApiError::App(AppError::TooLargeForRoute { size, limit, max })
        }
        other => other,
    })?;
    let image = inspect(ctx, bytes.clone()).await?;
    Ok(ValidatedUpload {
        filename,
        bytes,
        image,
    })
}

/// Uploads one photo, validated as it arrives: the file is ready at once.
#[utoipa::path(
    post, path = "/api/v1/upload/image", tag = "uploads", operation_id = "upload_image",
    request_body(content = ImageForm, content_type = "multipart/form-data"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, body = FileView, description = "The file, ready", links(
            ("GetFile" = (operation_id = "get_file", parameters(("file_id" = "$response.body#/file_id")))),
            ("CreateJob" = (operation_id = "create_job", request_body = json!({"file_id": "$response.body#/file_id"}))),
        )),
        ApiErrors,
    ),
)]
async fn upload_image(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiMultipart(mut multipart): ApiMultipart,
) -> Result<(StatusCode, Json<FileView>), ApiError> {
    let limit = ctx.config.sync_upload_limit();
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
    Ok((StatusCode::CREATED, Json(FileView::from(&file))))
}

/// The compatibility batch upload: multipart `files` (<= `MAX_FILES`), `face_limit`,
/// `model_type` -> one job per file under a batch.
#[utoipa::path(
    post, path = "/api/v1/upload", tag = "uploads", operation_id = "upload_batch",
    request_body(content = BatchForm, content_type = "multipart/form-data"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = BatchUploaded, description = "The batch, its files and jobs, and the links it is followed by", links(
            ("TaskStatus" = (operation_id = "task_status", parameters(("task_id" = "$response.body#/batch_id")))),
            ("TaskEvents" = (operation_id = "task_events", parameters(("task_id" = "$response.body#/batch_id")))),
            ("DownloadAll" = (operation_id = "download_all", parameters(("job_id" = "$response.body#/batch_id")))),
            ("GetJob" = (operation_id = "get_job", parameters(("job_id" = "$response.body#/uploaded_files/0/job_id")))),
            ("GetFile" = (operation_id = "get_file", parameters(("file_id" = "$response.body#/uploaded_files/0/file_id")))),
        )),
        ApiErrors,
    ),
)]
async fn upload_multiple(
    State(ctx): State<AppContext>,
    caller: Caller,
    origin: Origin,
    budget: RateBudget,
    ApiMultipart(mut multipart): ApiMultipart,
) -> Result<Json<BatchUploaded>, ApiError> {
    let limit = ctx.config.sync_upload_limit();
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
                AppError::check_file_count(parts.len() + 1, ctx.config.limits.max_files)?;
                // A file and its job: refused before its photo is decoded when they cannot fit.
                budget.check(2 * (parts.len() as u64 + 1))?;
                parts.push(validated_part(&ctx, field).await?);
            }
            Some("face_limit") => {
                once(face_limit.is_some(), "face_limit")?;
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
            Some("model_type") => {
                once(model_type.is_some(), "model_type")?;
                model_type = Some(read_text(field, "model_type").await?);
            }
            _ => {}
        }
    }
    let options = JobOptions {
        face_limit,
        ..JobOptions::default()
    };
    // Each file stored and each job created counts against the rate limit, before any is.
    let units = 2 * parts.len() as u64;
    budget.cover(units).await?;
    let batch = match upload_batch(&ctx, &caller.owner, parts, model_type.as_deref(), options).await
    {
        Ok(batch) => batch,
        Err(err) => {
            budget.refund(units).await;
            return Err(err.into());
        }
    };
    let uploaded_files = batch
        .files
        .iter()
        .zip(&batch.jobs)
        .map(|(file, job)| BatchFile {
            file_id: file.file_id,
            filename: file.filename.clone(),
            file_size: file.size,
            content_type: file.content_type.clone(),
            status: Received::Uploaded,
            file_status: file.status,
            job_id: job.job_id,
            task_id: job.job_id,
        })
        .collect();
    let total = batch.files.len();
    let batch_id = batch.batch.batch_id;
    let task_id = JobId::from_uuid(batch_id.as_uuid());
    Ok(Json(BatchUploaded {
        batch_id,
        job_id: batch_id,
        task_id: batch_id,
        chord_task_id: batch_id,
        uploaded_files,
        face_limit,
        model_type: batch.model_type,
        total_files: total,
        status: Received::Uploaded,
        message: format!("{total} file(s) uploaded; generation queued"),
        links: task_links(&ctx, &origin, task_id, &caller.owner),
    }))
}

/// A form field that takes one value, sent again: which one was meant is not ours to guess.
fn once(already_sent: bool, name: &str) -> Result<(), ApiError> {
    if already_sent {
        Err(ApiError::validation(
            format!("{name} may be sent once"),
            Some(name),
        ))
    } else {
        Ok(())
    }
}

/// One of the caller's files.
#[utoipa::path(
    get, path = "/api/v1/files/{file_id}", tag = "uploads", operation_id = "get_file",
    params(("file_id" = uuid::Uuid, Path, description = "The file's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = FileView, description = "The file"), ApiErrors),
)]
async fn show_file(
    State(ctx): State<AppContext>,
    caller: Caller,
    FileIdParam(id): FileIdParam,
) -> Result<Json<FileView>, ApiError> {
    let file = owned_file(&ctx, &caller, id).await?;
    Ok(Json(FileView::from(&file)))
}

/// Where the old API's client reads an upload: `uploaded` once the bytes arrived (`pending`
/// before, `rejected` when they failed validation), and the newest job on it.
fn old_file_status(file: &UploadedFile) -> LegacyFileStatus {
    match file.status {
        FileStatus::Pending => LegacyFileStatus::Pending,
        FileStatus::Ready => LegacyFileStatus::Uploaded,
        FileStatus::Rejected => LegacyFileStatus::Rejected,
    }
}

/// One of the caller's uploads in the old API's shape, with real data: `{file_id, status,
/// processing_status}` (`pending` until a job runs on it, then that job's status), plus the file.
#[utoipa::path(
    get, path = "/api/v1/upload/status/{file_id}", tag = "uploads", operation_id = "upload_status",
    params(("file_id" = uuid::Uuid, Path, description = "The file's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = LegacyUploadStatus, description = "The upload in the old API's shape, with the file"), ApiErrors),
)]
async fn upload_status(
    State(ctx): State<AppContext>,
    caller: Caller,
    FileIdParam(id): FileIdParam,
) -> Result<Json<LegacyUploadStatus>, ApiError> {
    let file = owned_file(&ctx, &caller, id).await?;
    let latest = ctx
        .store
        .list_jobs_for_file(id)
        .await
        .map_err(AppError::from)?
        .into_iter()
        .max_by_key(|j| j.created_at);
    Ok(Json(LegacyUploadStatus {
        file_id: file.file_id,
        status: old_file_status(&file),
        processing_status: ProcessingStatus::from(latest.as_ref().map(|j| j.status)),
        job_id: latest.map(|j| j.job_id),
        file: FileView::from(&file),
    }))
}

/// One of the caller's batches in the old API's shape, with real data: `{batch_id, status,
/// message, progress: {total_files, processed_files, failed_files}}`.
#[utoipa::path(
    get, path = "/api/v1/upload/batch/{batch_id}/status", tag = "uploads", operation_id = "upload_batch_status",
    params(("batch_id" = uuid::Uuid, Path, description = "The batch's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = LegacyBatchStatus, description = "The batch in the old API's shape"), ApiErrors),
)]
async fn batch_status(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<LegacyBatchStatus>, ApiError> {
    let Task::Batch(batch, jobs) = owned_task(&ctx, &caller, id).await? else {
        return Err(AppError::JobNotFound(id).into());
    };
    let snapshot = Snapshot::of(id, Task::Batch(batch, jobs));
    let counts = snapshot.counts();
    Ok(Json(LegacyBatchStatus {
        batch_id: id,
        status: snapshot.status,
        message: snapshot.message,
        progress: BatchProgress {
            total_files: counts.total,
            processed_files: counts.completed,
            failed_files: counts.failed,
            progress: snapshot.progress,
        },
    }))
}
