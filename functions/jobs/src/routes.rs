//! HTTP routes of the jobs function, each with its OpenAPI operation.

use crate::views::{CreatedJob, LegacyCreatedJob, LegacyJob, ModelInfo, ModelOption, Provider};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use image2model_shared::AppContext;
use image2model_shared::app::access::owned_job;
use image2model_shared::app::cancel_job::cancel_job;
use image2model_shared::app::create_job::{CreateJobRequest, ModelType, create_job, resolve_model};
use image2model_shared::app::download::{FormatDownload, download_format};
use image2model_shared::app::list_jobs::{ListParams, list_jobs};
use image2model_shared::domain::models::{self, CATALOG};
use image2model_shared::domain::{FileId, JobOptions, ModelFormat, Texture};
use image2model_shared::web::extract::{ApiJson, ApiQuery, JobIdParam};
use image2model_shared::web::links::{Origin, task_links};
use image2model_shared::web::openapi::ApiErrors;
use image2model_shared::web::rate_limit::limited;
use image2model_shared::web::views::{
    Converting, JobPage, JobView, LinkedJobView, signed_redirect,
};
use image2model_shared::web::{ApiError, Caller};
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
        .routes(limited(routes!(models_generate), ctx))
        .routes(routes!(models_job))
        .routes(routes!(models_download))
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
    origin: Origin,
    headers: HeaderMap,
    request: CreateJobRequest,
) -> Result<(StatusCode, Json<CreatedJob>), ApiError> {
    let job = create_job(&ctx, &caller.owner, request, idempotency_key(&headers)?).await?;
    let links = task_links(&ctx, &origin, job.job_id, &job.owner);
    Ok((StatusCode::ACCEPTED, Json(CreatedJob::new(&job, links))))
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
        (status = 202, body = CreatedJob, description = "The job, queued, and the links it is followed by", links(
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
    origin: Origin,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateJobRequest>,
) -> Result<(StatusCode, Json<CreatedJob>), ApiError> {
    create(ctx, caller, origin, headers, request).await
}

/// `POST /api/v1/jobs` under the old API's name.
#[utoipa::path(
    post, path = "/api/v1/generate/3d-model", tag = "jobs", operation_id = "generate_3d_model",
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = r"^[!-~]{1,128}$", description = "Replays the job this key created (1 to 128 visible ASCII characters)")),
    request_body = CreateJobRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, body = CreatedJob, description = "The job, queued, and the links it is followed by", links(
            ("GetJob" = (operation_id = "get_job", parameters(("job_id" = "$response.body#/job_id")))),
        )),
        ApiErrors,
    ),
)]
async fn post_generate(
    State(ctx): State<AppContext>,
    caller: Caller,
    origin: Origin,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateJobRequest>,
) -> Result<(StatusCode, Json<CreatedJob>), ApiError> {
    create(ctx, caller, origin, headers, request).await
}

/// One of the caller's jobs.
#[utoipa::path(
    get, path = "/api/v1/jobs/{job_id}", tag = "jobs", operation_id = "get_job",
    params(("job_id" = uuid::Uuid, Path, description = "The job's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = LinkedJobView, description = "The job and the links it is followed by"), ApiErrors),
)]
async fn show(
    State(ctx): State<AppContext>,
    caller: Caller,
    origin: Origin,
    JobIdParam(id): JobIdParam,
) -> Result<Json<LinkedJobView>, ApiError> {
    let job = owned_job(&ctx, &caller, id).await?;
    Ok(Json(LinkedJobView {
        job: JobView::from(&job),
        links: task_links(&ctx, &origin, id, &job.owner),
    }))
}

/// The caller's jobs, newest first, a page at a time.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs", operation_id = "list_jobs",
    params(ListParams),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = JobPage, description = "A page of the caller's jobs"), ApiErrors),
)]
async fn list(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<JobPage>, ApiError> {
    let list = list_jobs(&ctx, params, Some(caller.owner)).await?;
    Ok(Json(JobPage::from(&list)))
}

/// Cancels one of the caller's live jobs (a job at FAL is cancelled there too).
#[utoipa::path(
    delete, path = "/api/v1/jobs/{job_id}", tag = "jobs", operation_id = "cancel_job",
    params(("job_id" = uuid::Uuid, Path, description = "The job's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = JobView, description = "The cancelled job"), ApiErrors),
)]
async fn cancel(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<JobView>, ApiError> {
    let job = cancel_job(&ctx, &caller, id).await?;
    Ok(Json(JobView::from(&job)))
}

/// The model types as the old API listed them (`{name, description, type,
/// supported_formats}`), with ours beside: whether this deployment runs it, the default, the
/// options it takes, its provider and price.
#[utoipa::path(
    get, path = "/api/v1/models/available", tag = "jobs", operation_id = "available_models",
    responses((status = 200, body = Vec<ModelInfo>, description = "Every model type of the catalog")),
)]
async fn available_models(State(ctx): State<AppContext>) -> Json<Vec<ModelInfo>> {
    let fal = ctx.config.fal_configured();
    Json(
        CATALOG
            .iter()
            .map(|m| ModelInfo {
                name: m.id,
                display_name: m.display_name,
                description: m.description,
                makes: m.makes,
                kind: "image_to_3d",
                supported_formats: &ModelFormat::ALL,
                model_type: m.id,
                available: models::is_available(m, fal),
                default: m.id == models::default_model(fal),
                options: m.accepted_options,
                option_details: m
                    .accepted_options
                    .iter()
                    .map(|&name| ModelOption {
                        name,
                        description: models::option_description(name),
                    })
                    .collect(),
                face_limit_max: m.face_limit_max,
                provider: if m.builtin {
                    Provider::Builtin
                } else {
                    Provider::Fal
                },
                fal_app: m.fal_app,
                price_usd: m.price_per_run_usd,
            })
            .collect(),
    )
}

/// Texture quality in the old API's words.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum Quality {
    #[default]
    Standard,
    High,
}

/// The old API's `POST /models/generate` body.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GenerateRequest {
    /// A file of the caller.
    #[schema(value_type = uuid::Uuid)]
    file_id: FileId,
    /// The deployment's default model when absent.
    #[serde(default)]
    #[schema(value_type = Option<ModelType>)]
    model_type: Option<String>,
    /// Texture quality, for models that take a texture option.
    #[serde(default)]
    quality: Quality,
    /// `false` asks for an untextured model, for models that take a texture option.
    #[serde(default = "yes")]
    texture_enabled: bool,
}

fn yes() -> bool {
    true
}

/// Creates a job the old API's way: `quality` and `texture_enabled` become the `texture`
/// option for models that take one and are ignored by the others.
#[utoipa::path(
    post, path = "/api/v1/models/generate", tag = "jobs", operation_id = "models_generate",
    request_body = GenerateRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, body = LegacyCreatedJob, description = "The job, queued, in the old API's shape", links(
            ("ModelsJob" = (operation_id = "models_job", parameters(("job_id" = "$response.body#/job_id")))),
            ("ModelsDownload" = (operation_id = "models_download", parameters(("job_id" = "$response.body#/job_id")))),
        )),
        ApiErrors,
    ),
)]
async fn models_generate(
    State(ctx): State<AppContext>,
    caller: Caller,
    origin: Origin,
    headers: HeaderMap,
    ApiJson(request): ApiJson<GenerateRequest>,
) -> Result<(StatusCode, Json<LegacyCreatedJob>), ApiError> {
    let model = resolve_model(&ctx, request.model_type.as_deref())?;
    let texture = match (request.texture_enabled, request.quality) {
        (false, _) => Texture::No,
        (true, Quality::Standard) => Texture::Standard,
        (true, Quality::High) => Texture::Hd,
    };
    let options = JobOptions {
        texture: model
            .accepted_options
            .contains(&"texture")
            .then_some(texture),
        ..JobOptions::default()
    };
    let request = CreateJobRequest {
        file_id: request.file_id,
        model_type: Some(model.id.to_owned()),
        options: Some(options),
    };
    let (status, Json(job)) = create(ctx, caller, origin, headers, request).await?;
    Ok((
        status,
        Json(LegacyCreatedJob {
            job,
            estimated_time: None,
        }),
    ))
}

/// One of the caller's jobs in the old API's shape, with its real status: `{job_id, status,
/// progress, estimated_remaining, result_url}` (`result_url` once completed).
#[utoipa::path(
    get, path = "/api/v1/models/job/{job_id}", tag = "jobs", operation_id = "models_job",
    params(("job_id" = uuid::Uuid, Path, description = "The job's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = LegacyJob, description = "The job in the old API's shape"), ApiErrors),
)]
async fn models_job(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<LegacyJob>, ApiError> {
    Ok(Json(LegacyJob::new(&owned_job(&ctx, &caller, id).await?)))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FormatParams {
    /// The format (default `glb`); one not made yet is converted on this first request, which
    /// answers 202 until it is ready.
    format: Option<ModelFormat>,
}

/// The model of one of the caller's completed jobs (the old API's route, which answered 501): a
/// redirect to its signed URL, in the format asked for (202 while a first request converts it).
#[utoipa::path(
    get, path = "/api/v1/models/download/{job_id}", tag = "jobs", operation_id = "models_download",
    params(("job_id" = uuid::Uuid, Path, description = "The job's id"), FormatParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 302, description = "To the signed URL of the model in the format asked for", headers(("Location" = String, description = "The signed URL"))),
        (status = 202, body = Converting, description = "The format is being converted; ask again after `Retry-After` seconds", headers(("Retry-After" = u64, description = "Seconds"))),
        ApiErrors,
    ),
)]
async fn models_download(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
    ApiQuery(params): ApiQuery<FormatParams>,
) -> Result<Response, ApiError> {
    let format = params.format.unwrap_or(ModelFormat::Glb);
    match download_format(&ctx, &caller, id, format).await? {
        FormatDownload::Ready(download) => signed_redirect(&download.signed),
        FormatDownload::Converting { retry_after } => {
            Ok(Converting::response(id, format, retry_after))
        }
    }
}
