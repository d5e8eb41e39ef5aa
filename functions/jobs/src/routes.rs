//! HTTP routes of the jobs function, each with its OpenAPI operation.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use image2model_shared::AppContext;
use image2model_shared::app::access::owned_job;
use image2model_shared::app::cancel_job::cancel_job;
use image2model_shared::app::create_job::{CreateJobRequest, create_job};
use image2model_shared::app::list_jobs::{ListParams, list_jobs};
use image2model_shared::domain::models::{self, CATALOG, DEFAULT_MODEL};
use image2model_shared::web::extract::{ApiJson, ApiQuery, JobIdParam};
use image2model_shared::web::openapi::ApiErrors;
use image2model_shared::web::rate_limit::limited;
use image2model_shared::web::views::job_list_json;
use image2model_shared::web::{ApiError, Caller};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router(ctx: &AppContext) -> OpenApiRouter<AppContext> {
    // Creating jobs is rate limited per key, as uploads are.
    OpenApiRouter::new()
        .routes(limited(routes!(post_job), ctx))
        .routes(routes!(list))
        .routes(limited(routes!(post_generate), ctx))
        .routes(routes!(show, cancel))
        .routes(routes!(available_models))
}

/// The `Idempotency-Key` header, if any (visible ASCII, checked by the service).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::validation("Idempotency-Key must be ASCII", Some("Idempotency-Key"))
            })
        })
        .transpose()
}

async fn create(
    ctx: AppContext,
    caller: Caller,
    headers: HeaderMap,
    request: CreateJobRequest,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let job = create_job(&ctx, &caller.owner, request, idempotency_key(&headers)?).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "job_id": job.job_id,
            "file_id": job.file_id,
            "status": job.status,
            "progress": job.progress,
            "model_type": job.model_type,
            "created_at": job.created_at,
        })),
    ))
}

/// Creates a job on one of the caller's files: queued at once when the file is ready, waiting
/// for ingestion when it is pending. With an `Idempotency-Key` used before for the same request,
/// answers that job again.
#[utoipa::path(
    post, path = "/api/v1/jobs", tag = "jobs", operation_id = "create_job",
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = r"^[!-~]{1,128}$", description = "Replays the job this key created (1 to 128 visible ASCII characters)")),
    request_body = CreateJobRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, body = Object, description = "`{job_id, file_id, status, progress, model_type, created_at}`", links(
            ("GetJob" = (operation_id = "get_job", parameters(("job_id" = "$response.body#/job_id")))),
            ("TaskStatus" = (operation_id = "task_status", parameters(("task_id" = "$response.body#/job_id")))),
            ("TaskEvents" = (operation_id = "task_events", parameters(("task_id" = "$response.body#/job_id")))),
            ("TaskStream" = (operation_id = "task_stream", parameters(("task_id" = "$response.body#/job_id")))),
            ("Download" = (operation_id = "download", parameters(("job_id" = "$response.body#/job_id")))),
            ("CancelJob" = (operation_id = "cancel_job", parameters(("job_id" = "$response.body#/job_id")))),
            ("RetryJob" = (operation_id = "admin_retry_job", parameters(("job_id" = "$response.body#/job_id")))),
            ("DeleteJob" = (operation_id = "admin_delete_job", parameters(("job_id" = "$response.body#/job_id")))),
        )),
        ApiErrors,
    ),
)]
async fn post_job(
    State(ctx): State<AppContext>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateJobRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create(ctx, caller, headers, request).await
}

/// `POST /api/v1/jobs` under the old API's name.
#[utoipa::path(
    post, path = "/api/v1/generate/3d-model", tag = "jobs", operation_id = "generate_3d_model",
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = r"^[!-~]{1,128}$", description = "Replays the job this key created (1 to 128 visible ASCII characters)")),
    request_body = CreateJobRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, body = Object, description = "`{job_id, file_id, status, progress, model_type, created_at}`", links(
            ("GetJob" = (operation_id = "get_job", parameters(("job_id" = "$response.body#/job_id")))),
        )),
        ApiErrors,
    ),
)]
async fn post_generate(
    State(ctx): State<AppContext>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateJobRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create(ctx, caller, headers, request).await
}

/// One of the caller's jobs.
#[utoipa::path(
    get, path = "/api/v1/jobs/{job_id}", tag = "jobs", operation_id = "get_job",
    params(("job_id" = uuid::Uuid, Path, description = "The job's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "The job: status, progress, message, attempts, result, error, timestamps, `fal_request_id`"), ApiErrors),
)]
async fn show(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<Value>, ApiError> {
    let job = owned_job(&ctx, &caller, id).await?;
    Ok(Json(job.public_json()))
}

/// The caller's jobs, newest first, a page at a time.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs", operation_id = "list_jobs",
    params(ListParams),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{jobs, next_cursor, limit}`"), ApiErrors),
)]
async fn list(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let list = list_jobs(&ctx, params, Some(caller.owner)).await?;
    Ok(Json(job_list_json(&list)))
}

/// Cancels one of the caller's live jobs (a job at FAL is cancelled there too).
#[utoipa::path(
    delete, path = "/api/v1/jobs/{job_id}", tag = "jobs", operation_id = "cancel_job",
    params(("job_id" = uuid::Uuid, Path, description = "The job's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "The cancelled job"), ApiErrors),
)]
async fn cancel(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<Value>, ApiError> {
    let job = cancel_job(&ctx, &caller, id).await?;
    Ok(Json(job.public_json()))
}

/// The model types, and which this deployment can run.
#[utoipa::path(
    get, path = "/api/v1/models/available", tag = "jobs", operation_id = "available_models",
    responses((status = 200, body = Object, description = "`{models: [{model_type, description, available, provider, fal_app}], available, default}`")),
)]
async fn available_models(State(ctx): State<AppContext>) -> Json<Value> {
    let fal = ctx.config.fal_configured();
    let list: Vec<Value> = CATALOG
        .iter()
        .map(|m| {
            json!({
                "model_type": m.id,
                "description": m.description,
                "available": models::is_available(m, fal),
                "provider": if m.builtin && !fal { "builtin" } else { "fal" },
                "fal_app": m.fal_app,
            })
        })
        .collect();
    Json(json!({
        "models": list,
        "available": models::available_ids(fal),
        "default": DEFAULT_MODEL,
    }))
}
