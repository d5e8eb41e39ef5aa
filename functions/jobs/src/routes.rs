//! HTTP routes of the jobs function.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use image2model_shared::AppContext;
use image2model_shared::app::access::owned_job;
use image2model_shared::app::cancel_job::cancel_job;
use image2model_shared::app::create_job::{CreateJobRequest, create_job};
use image2model_shared::app::list_jobs::{ListParams, list_jobs};
use image2model_shared::domain::models::{self, CATALOG, DEFAULT_MODEL};
use image2model_shared::web::extract::{ApiJson, ApiQuery, JobIdParam};
use image2model_shared::web::views::job_list_json;
use image2model_shared::web::{ApiError, Caller};
use serde_json::{Value, json};

pub fn router() -> Router<AppContext> {
    Router::new()
        .route("/api/v1/jobs", post(create).get(list))
        .route("/api/v1/generate/3d-model", post(create))
        .route("/api/v1/jobs/{job_id}", get(show).delete(cancel))
        .route("/api/v1/models/available", get(available_models))
}

async fn create(
    State(ctx): State<AppContext>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateJobRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::validation("Idempotency-Key must be ASCII", Some("Idempotency-Key"))
            })
        })
        .transpose()?;
    let job = create_job(&ctx, &caller.owner, request, key).await?;
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

async fn show(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<Value>, ApiError> {
    let job = owned_job(&ctx, &caller, id).await?;
    Ok(Json(job.public_json()))
}

async fn list(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let list = list_jobs(&ctx, params, Some(caller.owner)).await?;
    Ok(Json(job_list_json(&list)))
}

async fn cancel(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<Value>, ApiError> {
    let job = cancel_job(&ctx, &caller, id).await?;
    Ok(Json(job.public_json()))
}

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
