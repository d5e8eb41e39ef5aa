//! `POST /api/v1/webhooks/fal?job_id=...`: verify, then hand over to the worker.

use crate::signature::{SignatureVerifier, VerifyError};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use chrono::Utc;
use image2model_shared::AppContext;
use image2model_shared::app::fal_webhook::{WebhookOutcome, accept_fal_webhook};
use image2model_shared::domain::JobId;
use image2model_shared::web::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub fn router(verifier: Arc<SignatureVerifier>) -> Router<AppContext> {
    Router::new()
        .route("/api/v1/webhooks/fal", post(receive))
        .layer(Extension(verifier))
}

#[derive(Debug, Deserialize)]
struct HookQuery {
    job_id: Option<String>,
}

/// The fields of FAL's delivery we look at; the rest (payload, errors) is fetched again from
/// the response URL recorded at submission, which FAL cannot be impersonated on.
#[derive(Debug, Deserialize)]
struct Delivery {
    request_id: String,
    status: String,
}

impl From<VerifyError> for ApiError {
    fn from(err: VerifyError) -> Self {
        match err {
            VerifyError::KeysUnavailable(reason) => ApiError::Unavailable {
                component: "FAL public keys",
                reason,
            },
            other => ApiError::WebhookUnverified(other.to_string()),
        }
    }
}

fn ignored(reason: &str) -> Json<Value> {
    tracing::info!(reason, "FAL webhook ignored");
    Json(json!({ "accepted": false, "reason": reason }))
}

async fn receive(
    State(ctx): State<AppContext>,
    Extension(verifier): Extension<Arc<SignatureVerifier>>,
    Query(query): Query<HookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let signed_request = verifier
        .verify(&headers, &body, Utc::now())
        .await
        .map_err(ApiError::from)?;
    let delivery: Delivery = serde_json::from_slice(&body).map_err(|e| {
        ApiError::validation(format!("the webhook body is not FAL's format: {e}"), None)
    })?;
    if delivery.request_id != signed_request {
        return Err(ApiError::WebhookUnverified(
            "the body's request_id is not the signed one".to_owned(),
        ));
    }
    // Answers below are 200s: FAL retries anything else, and retrying cannot help these.
    let job_id = query
        .job_id
        .as_deref()
        .and_then(|id| id.parse::<JobId>().ok());
    match accept_fal_webhook(&ctx, job_id, &delivery.request_id).await? {
        WebhookOutcome::Ignored(reason) => Ok(ignored(reason)),
        WebhookOutcome::Accepted(job_id) => {
            tracing::info!(job_id = %job_id, request_id = %delivery.request_id, status = %delivery.status, "FAL webhook accepted");
            Ok(Json(json!({ "accepted": true, "job_id": job_id })))
        }
    }
}
