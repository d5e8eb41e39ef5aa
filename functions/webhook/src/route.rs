//! `POST /api/v1/webhooks/fal?job_id=...`: verify, then hand over to the worker.

use crate::signature::{SignatureVerifier, VerifyError, signed_headers};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use image2model_shared::AppContext;
use image2model_shared::app::fal_webhook::{WebhookOutcome, accept_fal_webhook};
use image2model_shared::domain::JobId;
use image2model_shared::web::ApiError;
use image2model_shared::web::extract::{ApiBytes, ApiQuery, is_json};
use image2model_shared::web::layers::refuse_bodies_over;
use image2model_shared::web::openapi::ApiErrors;
use serde::Deserialize;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The largest delivery read: FAL's deliveries are a few kilobytes (their payload is fetched
/// again from FAL anyway), and anyone can call this route.
pub const MAX_DELIVERY_BYTES: u64 = 256 * 1024;

pub fn router(verifier: Arc<SignatureVerifier>) -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(receive))
        .layer(Extension(verifier))
        .layer(DefaultBodyLimit::max(MAX_DELIVERY_BYTES as usize))
        .route_layer(middleware::from_fn(signed_deliveries_only))
        .route_layer(middleware::from_fn_with_state(
            MAX_DELIVERY_BYTES,
            refuse_bodies_over,
        ))
}

/// A delivery whose signature headers cannot be right (missing, a timestamp out of the
/// tolerance, a signature not of Ed25519's shape) is refused before a byte of its body is read:
/// an unauthenticated route must not let anyone hold a connection with a slow body.
async fn signed_deliveries_only(req: Request, next: Next) -> Response {
    match signed_headers(req.headers(), Utc::now()) {
        Ok(_) => next.run(req).await,
        Err(err) => ApiError::from(err).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct HookQuery {
    job_id: Option<String>,
}

/// The fields of FAL's delivery we look at; the rest (payload, errors) is fetched again from
/// the response URL recorded at submission, which FAL cannot be impersonated on.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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

/// What became of a verified delivery: always a 200, since FAL retries anything else and
/// retrying cannot help an ignored one.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    /// Whether the job's worker was asked to look at its request.
    accepted: bool,
    /// The job, when accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>, nullable = false)]
    job_id: Option<JobId>,
    /// Why it was ignored (no such job, the job already ended, another request).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    reason: Option<&'static str>,
}

fn ignored(reason: &'static str) -> Json<WebhookAnswer> {
    tracing::info!(reason, "FAL webhook ignored");
    Json(WebhookAnswer {
        accepted: false,
        job_id: None,
        reason: Some(reason),
    })
}

/// FAL.AI's completion webhook. A delivery whose Ed25519 signature (FAL's JWKS) or timestamp
/// does not verify is refused and changes nothing; a verified one asks the job's worker to look
/// at its request now.
#[utoipa::path(
    post, path = "/api/v1/webhooks/fal", tag = "webhooks", operation_id = "fal_webhook",
    params(
        ("job_id" = Option<uuid::Uuid>, Query, description = "The job, as our webhook URL names it"),
        ("x-fal-webhook-request-id" = String, Header, description = "FAL's request id"),
        ("x-fal-webhook-user-id" = String, Header, description = "FAL's user id"),
        ("x-fal-webhook-timestamp" = String, Header, description = "Unix seconds; at most 5 minutes away"),
        ("x-fal-webhook-signature" = String, Header, description = "Hex Ed25519 signature"),
    ),
    request_body = Delivery,
    responses((status = 200, body = WebhookAnswer, description = "`{accepted: true, job_id}` or `{accepted: false, reason}`"), ApiErrors),
)]
async fn receive(
    State(ctx): State<AppContext>,
    Extension(verifier): Extension<Arc<SignatureVerifier>>,
    ApiQuery(query): ApiQuery<HookQuery>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<WebhookAnswer>, ApiError> {
    // What breaks the published schema is refused first, with no key fetched for it (a
    // delivery without a content type is read as the JSON FAL sends).
    if headers.contains_key(axum::http::header::CONTENT_TYPE) && !is_json(&headers) {
        return Err(ApiError::Rejected {
            status: axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            detail: "the body must be application/json".to_owned(),
        });
    }
    let delivery: Delivery = serde_json::from_slice(&body).map_err(|e| {
        ApiError::validation(format!("the webhook body is not FAL's format: {e}"), None)
    })?;
    if let Some(raw) = query.job_id.as_deref()
        && raw.parse::<JobId>().is_err()
    {
        return Err(ApiError::validation(
            "job_id must be a UUID",
            Some("job_id"),
        ));
    }
    let signed_request = verifier
        .verify(&headers, &body, Utc::now())
        .await
        .map_err(ApiError::from)?;
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
            Ok(Json(WebhookAnswer {
                accepted: true,
                job_id: Some(job_id),
                reason: None,
            }))
        }
    }
}
