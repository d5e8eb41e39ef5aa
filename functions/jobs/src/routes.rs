//! HTTP routes of the jobs function.

use crate::create::{CreateJobRequest, create_job};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use image2model_shared::access::owned_job;
use image2model_shared::auth::Caller;
use image2model_shared::domain::job::DEFAULT_MODEL_TYPE;
use image2model_shared::domain::models::{self, CATALOG};
use image2model_shared::extract::{ApiJson, ApiQuery, JobIdParam};
use image2model_shared::listing::{ListParams, list_jobs};
use image2model_shared::pipeline::{UpdateError, update_job};
use image2model_shared::{ApiError, AppContext};
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
    owned_job(&ctx, &caller, id)
        .await
        .map(|job| Json(job.public_json()))
}

async fn list(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    list_jobs(&ctx, params, Some(caller.owner)).await.map(Json)
}

async fn cancel(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<Value>, ApiError> {
    owned_job(&ctx, &caller, id).await?;
    let now = Utc::now();
    match update_job(ctx.store.as_ref(), id, |job| job.cancel(now).map(Some)).await {
        Ok(job) => {
            tracing::info!(job_id = %id, "job cancelled");
            Ok(Json(job.public_json()))
        }
        Err(UpdateError::Transition(_)) => {
            let status = ctx
                .store
                .get_job(id)
                .await?
                .map_or("deleted", |j| j.status.as_str());
            Err(ApiError::JobStateConflict {
                job_id: id.to_string(),
                status,
                action: "cancelled",
            })
        }
        Err(UpdateError::NotFound) => Err(ApiError::JobNotFound(id.to_string())),
        Err(UpdateError::Store(e)) => Err(e.into()),
        Err(UpdateError::Contended) => Err(ApiError::Conflict),
    }
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
    let available: Vec<&str> = CATALOG
        .iter()
        .filter(|m| models::is_available(m, fal))
        .map(|m| m.id)
        .collect();
    Json(json!({ "models": list, "available": available, "default": DEFAULT_MODEL_TYPE }))
}
