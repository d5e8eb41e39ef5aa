//! The one place errors become HTTP responses: every failure a route can meet is an [`ApiError`]
//! (an [`AppError`] of the services, or a refusal of the web layer itself) with a stable
//! `error_code`, an HTTP status and the JSON envelope [`ErrorBody`]
//! `{error, error_code, message, detail, status_code, details, request_id}`. [`ERROR_CODES`] is
//! the table of every code and its status, which the OpenAPI document's envelopes are read from.
//! What a backend said (SDK or SQLite text) goes to the log, never to the client.

use super::request_id::current_request_id;
use crate::app::AppError;
use crate::app::status_token::TokenError;
use crate::ports::{QueueError, StorageError, StoreError};
use crate::validation::ImageRejection;
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema};

/// Every `error_code` an answer can carry, by the HTTP status it comes with. The OpenAPI
/// document's envelopes are read from here (`Error404` allows the 404 codes alone), and a test
/// holds every error this module renders to it.
pub const ERROR_CODES: &[(u16, &[&str])] = &[
    (
        400,
        &[
            "BAD_REQUEST",
            "EMPTY_FILE",
            "INVALID_FILENAME",
            "INVALID_FILE_ID",
            "INVALID_FILE_TYPE",
            "INVALID_ID",
            "INVALID_JOB_ID",
            "INVALID_OBJECT_KEY",
            "MODEL_UNAVAILABLE",
            "SIGNED_REQUEST_MISMATCH",
            "TOO_MANY_FILES",
            "UNSUPPORTED_OPTION",
        ],
    ),
    (
        401,
        &[
            "STATUS_TOKEN_EXPIRED",
            "STATUS_TOKEN_INVALID",
            "UNAUTHORIZED",
            "WEBHOOK_SIGNATURE_INVALID",
        ],
    ),
    (403, &["FORBIDDEN", "SIGNATURE_INVALID"]),
    (
        404,
        &[
            "FILE_NOT_FOUND",
            "JOB_NOT_FOUND",
            "ENDPOINT_NOT_FOUND",
            "DELIVERY_NOT_FOUND",
            "NOT_FOUND",
            "RESULT_FILE_NOT_FOUND",
        ],
    ),
    (405, &["METHOD_NOT_ALLOWED"]),
    (408, &["REQUEST_TIMEOUT"]),
    (
        409,
        &[
            "CONFLICT",
            "DELIVERY_IN_PROGRESS",
            "ENDPOINT_DISABLED",
            "FILE_NOT_READY",
            "INVALID_JOB_STATE",
            "RESULT_NOT_READY",
            "TOO_MANY_ENDPOINTS",
            "UPLOAD_ALREADY_RECEIVED",
        ],
    ),
    (410, &["GONE"]),
    (411, &["LENGTH_REQUIRED"]),
    (
        413,
        &["FILE_TOO_LARGE", "IMAGE_TOO_LARGE", "PAYLOAD_TOO_LARGE"],
    ),
    (415, &["UNSUPPORTED_MEDIA_TYPE"]),
    (
        422,
        &[
            "FORMAT_NOT_CONVERTIBLE",
            "IDEMPOTENCY_KEY_REUSED",
            "INVALID_IMAGE",
            "VALIDATION_ERROR",
        ],
    ),
    (
        429,
        &["QUOTA_EXCEEDED", "RATE_LIMITED", "TOO_MANY_CONNECTIONS"],
    ),
    (500, &["INTERNAL_ERROR"]),
    (503, &["SERVICE_UNAVAILABLE"]),
];

/// Whether `code` is one `status` carries (see [`ERROR_CODES`]).
pub fn is_documented(status: StatusCode, code: &str) -> bool {
    ERROR_CODES
        .iter()
        .any(|(s, codes)| *s == status.as_u16() && codes.contains(&code))
}

/// Every error code (the README's table); each status's envelope narrows it to its own.
pub struct ErrorCode;

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        code_enum(
            ERROR_CODES
                .iter()
                .flat_map(|(_, codes)| codes.iter().copied()),
        )
    }
}

/// A string schema that is one of `codes`.
pub(super) fn code_enum<'a>(codes: impl IntoIterator<Item = &'a str>) -> RefOr<Schema> {
    let mut codes: Vec<&str> = codes.into_iter().collect();
    codes.sort_unstable();
    codes.dedup();
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(codes))
        .into()
}

impl utoipa::ToSchema for ErrorCode {}

/// Every error's body: a stable code, the HTTP status, a summary and the specifics.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Always `true`.
    pub error: bool,
    /// The stable code (see the README's table), e.g. `JOB_NOT_FOUND`.
    #[schema(value_type = ErrorCode)]
    pub error_code: &'static str,
    /// A short summary of the code.
    pub message: String,
    /// What exactly was refused (never what a backend said).
    pub detail: String,
    pub status_code: u16,
    /// Machine-readable specifics: `field`, `limit`, `retry_after`, `component`, ...
    #[schema(value_type = Object)]
    pub details: Value,
    /// The request id (also in `X-Request-Id`).
    pub request_id: String,
    /// A failed readiness check's report (`checks`, `failed_components`) beside the envelope.
    #[serde(flatten)]
    #[schema(ignore)]
    pub report: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("Invalid job ID: ids are UUIDs such as 123e4567-e89b-42d3-a456-426614174000")]
    InvalidJobId,
    #[error("Invalid file ID: ids are UUIDs such as 123e4567-e89b-42d3-a456-426614174000")]
    InvalidFileId,
    #[error("Invalid id: ids are UUIDs such as 123e4567-e89b-42d3-a456-426614174000")]
    InvalidId,
    #[error("a valid API key is required (Authorization: Bearer <key> or X-API-Key)")]
    Unauthorized,
    #[error("this API key may not use this route")]
    Forbidden,
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// A signed URL names an object that is not (or no longer) stored.
    #[error("file {0} not found")]
    ObjectNotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A request with more work than the rate limit allows in a whole minute: it never passes
    /// as it is, so no `Retry-After` promises that it will.
    #[error(
        "this request is {units} units of work (a file or a job each); the rate limit allows {limit} a minute: send it in smaller parts"
    )]
    WorkOverLimit { units: u64, limit: u64 },
    #[error("webhook refused: {0}")]
    WebhookUnverified(String),
    #[error("the signed URL is invalid or has expired")]
    SignatureInvalid,
    #[error("the request does not match the signed URL: {0}")]
    SignedRequestMismatch(String),
    /// A dependency outside the ports failed; `reason` is logged, not sent.
    #[error("{component} is unavailable: {reason}")]
    Unavailable {
        component: &'static str,
        reason: String,
    },
    /// A request the web layer itself refused (an extractor's rejection, a body limit), with
    /// the status it chose.
    #[error("{detail}")]
    Rejected { status: StatusCode, detail: String },
    /// A route of the old API that this service replaced on purpose; `replacement` says with what.
    #[error("this route of the old API was removed: {replacement}")]
    Gone { replacement: &'static str },
    /// A handler panicked; the panic is logged, the server goes on.
    #[error("an internal error occurred; the request id names it in the logs")]
    Internal,
    /// Readiness failed: `report` (the checks) is sent beside the envelope, with the names of
    /// the components that failed.
    #[error("unavailable: {}", failed.join(", "))]
    NotReady {
        failed: Vec<&'static str>,
        report: Map<String, Value>,
    },
}

impl ApiError {
    /// A request value that is not acceptable (`VALIDATION_ERROR`).
    pub fn validation(message: impl Into<String>, field: Option<&str>) -> Self {
        Self::App(AppError::invalid(message, field))
    }

    pub fn status(&self) -> StatusCode {
        self.refusal().status
    }

    pub fn code(&self) -> &'static str {
        self.refusal().code
    }

    /// The envelope's `message`: the specific reason in a few stable words, as the old API's
    /// `message` named it ("Invalid admin API key", "File too large"), never a mere status
    /// title; where no short phrase says more than the detail, the detail itself. For
    /// readiness, the components that failed (as monitors of the old API read it).
    fn message(&self, reason: Option<&str>) -> String {
        match self {
            Self::NotReady { .. } => self.to_string(),
            _ => reason.map_or_else(|| self.detail(), str::to_owned),
        }
    }

    /// What the client reads as `detail`: the message, without what a backend said.
    fn detail(&self) -> String {
        match self {
            Self::Unavailable { component, .. } => format!("{component} is unavailable"),
            Self::App(err) => match err.failed_component() {
                Some(component) => format!("{component} is unavailable"),
                None => err.to_string(),
            },
            other => other.to_string(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs }
            | Self::App(AppError::QuotaExceeded {
                retry_after_secs, ..
            }) => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The table of this module: what a client is told of each error.
    fn refusal(&self) -> Refusal {
        use StatusCode as S;
        match self {
            Self::App(err) => app_refusal(err),
            Self::InvalidJobId => Refusal::new(S::BAD_REQUEST, "INVALID_JOB_ID", "Invalid job ID"),
            Self::InvalidFileId => {
                Refusal::new(S::BAD_REQUEST, "INVALID_FILE_ID", "Invalid file ID")
            }
            Self::InvalidId => Refusal::new(S::BAD_REQUEST, "INVALID_ID", "Invalid id"),
            Self::SignedRequestMismatch(_) => Refusal::new(
                S::BAD_REQUEST,
                "SIGNED_REQUEST_MISMATCH",
                "Request does not match the signed URL",
            ),
            Self::Unauthorized => Refusal::new(
                S::UNAUTHORIZED,
                "UNAUTHORIZED",
                "Missing or invalid credentials",
            ),
            Self::WebhookUnverified(_) => Refusal::new(
                S::UNAUTHORIZED,
                "WEBHOOK_SIGNATURE_INVALID",
                "Webhook signature invalid",
            ),
            Self::Forbidden => Refusal::new(S::FORBIDDEN, "FORBIDDEN", "Invalid admin API key"),
            Self::SignatureInvalid => Refusal::new(
                S::FORBIDDEN,
                "SIGNATURE_INVALID",
                "Invalid or expired signature",
            ),
            Self::RouteNotFound(_) => Refusal::new(S::NOT_FOUND, "NOT_FOUND", "Not found"),
            Self::ObjectNotFound(_) => {
                Refusal::new(S::NOT_FOUND, "FILE_NOT_FOUND", "File not found")
            }
            Self::MethodNotAllowed => Refusal::new(
                S::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "Method not allowed",
            ),
            Self::RateLimited { retry_after_secs } => {
                Refusal::new(S::TOO_MANY_REQUESTS, "RATE_LIMITED", "Rate limit exceeded")
                    .with(json!({"retry_after": retry_after_secs}))
            }
            Self::WorkOverLimit { units, limit } => Refusal::new(
                S::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "Request larger than the rate limit",
            )
            .with(json!({"units": units, "limit": limit})),
            Self::Unavailable { component, .. } => {
                Refusal::detailed(S::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
                    .with(json!({"component": component}))
            }
            Self::NotReady { .. } => {
                Refusal::detailed(S::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
            }
            Self::Rejected { status, .. } => Refusal::detailed(*status, rejection_code(*status)),
            Self::Internal => Refusal::new(
                S::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "An unexpected error occurred",
            ),
            Self::Gone { replacement } => Refusal::new(S::GONE, "GONE", "This route was removed")
                .with(json!({"replacement": replacement})),
        }
    }
}

/// What a client is told of one error: the status, the stable code, the short reason of the
/// envelope's `message` (`None` where the detail says more) and the `details` object.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    reason: Option<&'static str>,
    details: Value,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, reason: &'static str) -> Self {
        Self {
            status,
            code,
            reason: Some(reason),
            details: json!({}),
        }
    }

    /// A refusal whose detail is its message.
    fn detailed(status: StatusCode, code: &'static str) -> Self {
        Self {
            status,
            code,
            reason: None,
            details: json!({}),
        }
    }

    fn with(self, details: Value) -> Self {
        Self { details, ..self }
    }
}

/// The code of a refusal the web layer made with `status`.
fn rejection_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
        StatusCode::LENGTH_REQUIRED => "LENGTH_REQUIRED",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::UNPROCESSABLE_ENTITY => "VALIDATION_ERROR",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        s if s.is_server_error() => "INTERNAL_ERROR",
        _ => "BAD_REQUEST",
    }
}

/// What a client is told of an image that was refused.
fn image_refusal(rejection: &ImageRejection) -> Refusal {
    use StatusCode as S;
    let code = rejection.code().as_str();
    match rejection {
        ImageRejection::Empty => Refusal::new(S::BAD_REQUEST, code, "Empty file"),
        ImageRejection::NotAnImage => Refusal::new(S::BAD_REQUEST, code, "Not an image"),
        ImageRejection::Unsupported { .. } => {
            Refusal::new(S::BAD_REQUEST, code, "Unsupported image format")
        }
        ImageRejection::TooLarge { size, limit } => {
            Refusal::new(S::PAYLOAD_TOO_LARGE, code, "File too large")
                .with(json!({"size": size, "limit": limit}))
        }
        ImageRejection::TooManyPixels {
            width,
            height,
            limit,
        } => Refusal::new(S::PAYLOAD_TOO_LARGE, code, "Image has too many pixels")
            .with(json!({"width": width, "height": height, "max_pixels": limit})),
        ImageRejection::DecodesTooLarge { needed, limit } => {
            Refusal::new(S::PAYLOAD_TOO_LARGE, code, "Image too large to decode")
                .with(json!({"decoded_bytes": needed, "max_decode_bytes": limit}))
        }
        ImageRejection::Corrupt { .. } => {
            Refusal::new(S::UNPROCESSABLE_ENTITY, code, "Corrupt image")
        }
        ImageRejection::TrailingData { .. } => Refusal::new(
            S::UNPROCESSABLE_ENTITY,
            code,
            "Data after the end of the image",
        ),
    }
}

/// What a client is told of a service's error.
fn app_refusal(err: &AppError) -> Refusal {
    use StatusCode as S;
    match err {
        AppError::JobNotFound(_) => Refusal::new(S::NOT_FOUND, "JOB_NOT_FOUND", "Job not found"),
        AppError::EndpointNotFound(_) => Refusal::new(
            S::NOT_FOUND,
            "ENDPOINT_NOT_FOUND",
            "Webhook endpoint not found",
        ),
        AppError::DeliveryNotFound(_) => Refusal::new(
            S::NOT_FOUND,
            "DELIVERY_NOT_FOUND",
            "Webhook delivery not found",
        ),
        AppError::FileNotFound(_) => Refusal::new(S::NOT_FOUND, "FILE_NOT_FOUND", "File not found"),
        AppError::ResultFileNotFound { filename, .. } => Refusal::new(
            S::NOT_FOUND,
            "RESULT_FILE_NOT_FOUND",
            "Result file not found",
        )
        .with(json!({"filename": filename})),
        AppError::InvalidFilename(_) => {
            Refusal::new(S::BAD_REQUEST, "INVALID_FILENAME", "Invalid filename")
        }
        AppError::Storage(StorageError::InvalidKey(_)) => {
            Refusal::new(S::BAD_REQUEST, "INVALID_OBJECT_KEY", "Invalid object key")
        }
        AppError::TooManyFiles { count, limit } => {
            Refusal::new(S::BAD_REQUEST, "TOO_MANY_FILES", "Too many files")
                .with(json!({"count": count, "limit": limit}))
        }
        AppError::InvalidFileType { .. } => {
            Refusal::new(S::BAD_REQUEST, "INVALID_FILE_TYPE", "Invalid file type")
        }
        AppError::ModelUnavailable(model) => {
            Refusal::new(S::BAD_REQUEST, "MODEL_UNAVAILABLE", "Model unavailable")
                .with(json!({"model_type": model}))
        }
        AppError::UnsupportedOption {
            model,
            field,
            accepted,
        } => Refusal::new(S::BAD_REQUEST, "UNSUPPORTED_OPTION", "Unsupported option")
            .with(json!({"field": field, "model_type": model, "accepted": accepted})),
        AppError::OptionAboveModelLimit { model, field, max } => Refusal::new(
            S::BAD_REQUEST,
            "UNSUPPORTED_OPTION",
            "Option above the model's limit",
        )
        .with(json!({"field": field, "model_type": model, "max": max})),
        AppError::TooLargeForRoute { size, limit, max } => {
            Refusal::new(S::PAYLOAD_TOO_LARGE, "FILE_TOO_LARGE", "File too large").with(json!({
                "size": size, "limit": limit, "max_upload_bytes": max,
                "use": "POST /api/v1/uploads/presign",
            }))
        }
        AppError::StatusToken(TokenError::Invalid) => Refusal::new(
            S::UNAUTHORIZED,
            "STATUS_TOKEN_INVALID",
            "Invalid status token",
        ),
        AppError::StatusToken(TokenError::Expired) => Refusal::new(
            S::UNAUTHORIZED,
            "STATUS_TOKEN_EXPIRED",
            "Expired status token",
        ),
        AppError::InvalidImage(rejection) => image_refusal(rejection),
        AppError::FileNotReady { status, .. } => {
            Refusal::new(S::CONFLICT, "FILE_NOT_READY", "File not ready")
                .with(json!({"file_status": status}))
        }
        AppError::UploadAlreadyReceived { status, .. } => Refusal::new(
            S::CONFLICT,
            "UPLOAD_ALREADY_RECEIVED",
            "Upload already received",
        )
        .with(json!({"file_status": status})),
        AppError::JobStateConflict { status, .. } => {
            Refusal::new(S::CONFLICT, "INVALID_JOB_STATE", "Invalid job state")
                .with(json!({"job_status": status}))
        }
        AppError::Transition(_) => {
            Refusal::new(S::CONFLICT, "INVALID_JOB_STATE", "Invalid job state")
        }
        AppError::ResultNotReady { status, .. } => {
            Refusal::new(S::CONFLICT, "RESULT_NOT_READY", "Result not ready")
                .with(json!({"job_status": status}))
        }
        AppError::TooManyEndpoints { limit } => Refusal::new(
            S::CONFLICT,
            "TOO_MANY_ENDPOINTS",
            "Too many webhook endpoints",
        )
        .with(json!({"limit": limit})),
        AppError::EndpointDisabled(_) => Refusal::new(
            S::CONFLICT,
            "ENDPOINT_DISABLED",
            "Webhook endpoint disabled",
        ),
        AppError::DeliveryInProgress(_) => Refusal::new(
            S::CONFLICT,
            "DELIVERY_IN_PROGRESS",
            "Webhook delivery in progress",
        ),
        AppError::Conflict => Refusal::detailed(S::CONFLICT, "CONFLICT"),
        AppError::Invalid { field, .. } => Refusal::new(
            S::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "Request validation failed",
        )
        .with(
            field
                .as_ref()
                .map_or_else(|| json!({}), |f| json!({"field": f})),
        ),
        AppError::IdempotencyKeyReused { job_id } => Refusal::new(
            S::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
            "Idempotency key reused",
        )
        .with(json!({"job_id": job_id})),
        AppError::FormatNotConvertible { format, reason } => Refusal::new(
            S::UNPROCESSABLE_ENTITY,
            "FORMAT_NOT_CONVERTIBLE",
            "Model cannot be converted to this format",
        )
        .with(json!({"format": format, "reason": reason})),
        AppError::QuotaExceeded {
            limit,
            used,
            retry_after_secs,
        } => Refusal::new(
            S::TOO_MANY_REQUESTS,
            "QUOTA_EXCEEDED",
            "Daily quota exceeded",
        )
        .with(json!({"limit": limit, "used": used, "retry_after": retry_after_secs})),
        AppError::Store(_) | AppError::Storage(_) | AppError::Queue(_) => {
            let component = err.failed_component();
            Refusal::detailed(S::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
                .with(json!({"component": component}))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Refusal {
            status,
            code,
            reason,
            details,
        } = self.refusal();
        if status.is_server_error() {
            tracing::error!(error_code = code, error = %self, "request failed");
        } else {
            tracing::info!(error_code = code, error = %self, "request refused");
        }
        let mut body = ErrorBody {
            error: true,
            error_code: code,
            message: self.message(reason),
            detail: self.detail(),
            status_code: status.as_u16(),
            details,
            request_id: current_request_id(),
            report: Map::new(),
        };
        if let Self::NotReady { failed, report } = &self {
            // The report sits beside the envelope and never replaces one of its fields.
            let envelope = [
                "error",
                "error_code",
                "message",
                "detail",
                "status_code",
                "details",
                "request_id",
            ];
            body.report = report
                .iter()
                .filter(|(name, _)| !envelope.contains(&name.as_str()))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            body.report
                .insert("failed_components".to_owned(), json!(failed));
        }
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        if matches!(self, Self::Unauthorized) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"image2model\""),
            );
        }
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::App(err.into())
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        Self::App(err.into())
    }
}

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        Self::App(err.into())
    }
}

impl From<ImageRejection> for ApiError {
    fn from(err: ImageRejection) -> Self {
        Self::App(err.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FileId, JobId};

    async fn body_of(err: ApiError) -> (StatusCode, Value) {
        let response = err.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn backend_text_goes_to_the_log_not_to_the_client() {
        let secret = "SQLITE_IOERR: disk I/O error at /var/lib/secret-path";
        for err in [
            ApiError::from(StoreError::Backend(secret.to_owned())),
            ApiError::from(StorageError::Backend(secret.to_owned())),
            ApiError::from(QueueError::Backend(secret.to_owned())),
            ApiError::Unavailable {
                component: "FAL public keys",
                reason: secret.to_owned(),
            },
        ] {
            let (status, body) = body_of(err).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(body["error_code"], "SERVICE_UNAVAILABLE");
            assert!(!body.to_string().contains("secret-path"), "{body}");
            assert!(body["details"]["component"].is_string(), "{body}");
        }
    }

    #[tokio::test]
    async fn store_conflicts_and_cursors_are_client_errors() {
        let (status, body) = body_of(StoreError::Conflict.into()).await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (StatusCode::CONFLICT, Some("CONFLICT"))
        );
        let (status, body) = body_of(StoreError::InvalidCursor.into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["details"]["field"], "cursor");
    }

    #[tokio::test]
    async fn readiness_failures_keep_their_report_beside_the_envelope() {
        let report = Map::from_iter([("checks".to_owned(), json!({"queue": {"ok": false}}))]);
        let (status, body) = body_of(ApiError::NotReady {
            failed: vec!["queue"],
            report,
        })
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["failed_components"], json!(["queue"]));
        assert_eq!(body["checks"]["queue"]["ok"], false);
        assert_eq!(body["detail"], "unavailable: queue");
        assert_eq!(body["message"], "unavailable: queue");
    }

    /// Every refusal's `message` names its reason, as the old API's did, and is never the bare
    /// status title (the old API's own 404 and 405 for unknown routes and methods were titles,
    /// and stay so); `detail` keeps the whole sentence.
    #[tokio::test]
    async fn every_message_names_its_reason_not_the_status_title() {
        let job = JobId::new();
        let file = FileId::new();
        let errors = vec![
            ApiError::InvalidJobId,
            ApiError::InvalidFileId,
            ApiError::InvalidId,
            ApiError::Unauthorized,
            ApiError::Forbidden,
            ApiError::ObjectNotFound("k".into()),
            ApiError::RateLimited {
                retry_after_secs: 1,
            },
            ApiError::WorkOverLimit { units: 9, limit: 8 },
            ApiError::WebhookUnverified("no signature".into()),
            ApiError::SignatureInvalid,
            ApiError::SignedRequestMismatch("length".into()),
            ApiError::Gone { replacement: "x" },
            ApiError::Internal,
            ApiError::Unavailable {
                component: "FAL",
                reason: "down".into(),
            },
            ApiError::Rejected {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                detail: "the body is over its 1024 bytes".into(),
            },
            ApiError::Rejected {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                detail: "the body must be application/json".into(),
            },
            ApiError::Rejected {
                status: StatusCode::REQUEST_TIMEOUT,
                detail: "the body stopped arriving".into(),
            },
            AppError::JobNotFound(job).into(),
            AppError::FileNotFound(file).into(),
            AppError::ResultFileNotFound {
                task_id: job,
                filename: "a.glb".into(),
            }
            .into(),
            AppError::InvalidFilename("empty").into(),
            AppError::TooLargeForRoute {
                size: 9,
                limit: 8,
                max: 10,
            }
            .into(),
            AppError::StatusToken(TokenError::Invalid).into(),
            AppError::StatusToken(TokenError::Expired).into(),
            AppError::Storage(StorageError::InvalidKey("..".into())).into(),
            AppError::InvalidFileType {
                declared: "text/plain".into(),
            }
            .into(),
            AppError::TooManyFiles { count: 2, limit: 1 }.into(),
            AppError::FileNotReady {
                file_id: file,
                status: "pending",
                reason: "waiting".into(),
            }
            .into(),
            AppError::UploadAlreadyReceived {
                file_id: file,
                status: "ready",
            }
            .into(),
            AppError::ModelUnavailable("x".into()).into(),
            AppError::invalid("limit must be between 1 and 100", Some("limit")).into(),
            AppError::IdempotencyKeyReused { job_id: job }.into(),
            AppError::JobStateConflict {
                job_id: job,
                status: "completed",
                action: "cancelled",
            }
            .into(),
            AppError::ResultNotReady {
                job_id: job,
                status: "queued",
            }
            .into(),
            AppError::FormatNotConvertible {
                format: crate::domain::ModelFormat::Usdz,
                reason: "the model requires the glTF extension KHR_draco_mesh_compression".into(),
            }
            .into(),
            AppError::EndpointNotFound(crate::domain::EndpointId::new()).into(),
            AppError::DeliveryNotFound(crate::domain::DeliveryId::new()).into(),
            AppError::EndpointDisabled(crate::domain::EndpointId::new()).into(),
            AppError::DeliveryInProgress(crate::domain::DeliveryId::new()).into(),
            AppError::TooManyEndpoints { limit: 10 }.into(),
            AppError::OptionAboveModelLimit {
                model: "relief",
                field: "options.face_limit".into(),
                max: 800_000,
            }
            .into(),
            AppError::QuotaExceeded {
                limit: 1,
                used: 1,
                retry_after_secs: 1,
            }
            .into(),
            AppError::Conflict.into(),
            ApiError::from(StoreError::Backend("x".into())),
        ];
        let rejections = [
            ImageRejection::Empty,
            ImageRejection::TooLarge { size: 2, limit: 1 },
            ImageRejection::NotAnImage,
            ImageRejection::Unsupported { format: "GIF" },
            ImageRejection::TooManyPixels {
                width: 9,
                height: 9,
                limit: 8,
            },
            ImageRejection::DecodesTooLarge {
                needed: 2,
                limit: 1,
            },
            ImageRejection::Corrupt {
                reason: "cut".into(),
            },
            ImageRejection::TrailingData { extra: 1 },
        ];
        let errors = errors
            .into_iter()
            .chain(rejections.into_iter().map(ApiError::from));
        for err in errors {
            let name = format!("{err:?}");
            let (status, body) = body_of(err).await;
            let code = body["error_code"].as_str().unwrap();
            assert!(
                is_documented(status, code),
                "{name}: {status} {code} is not in ERROR_CODES"
            );
            let message = body["message"].as_str().unwrap();
            let title = status.canonical_reason().unwrap();
            assert!(!message.eq_ignore_ascii_case(title), "{name}: {body}");
            assert!(!message.is_empty() && body["detail"].is_string(), "{body}");
        }
        let message = |err: ApiError| async { body_of(err).await.1["message"].clone() };
        assert_eq!(message(ApiError::Forbidden).await, "Invalid admin API key");
        let too_large = ApiError::from(ImageRejection::TooLarge { size: 2, limit: 1 });
        assert_eq!(message(too_large).await, "File too large");
        let rejected = ApiError::Rejected {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            detail: "the body is over its 1024 bytes".into(),
        };
        assert_eq!(message(rejected).await, "the body is over its 1024 bytes");
    }

    /// The refusals of the web layer (axum's rejections, unknown routes and methods, readiness)
    /// carry the codes the document lists for their status, as the services' errors do above.
    #[tokio::test]
    async fn every_refusal_of_the_web_layer_is_in_the_code_table() {
        let layer_statuses = [400, 404, 405, 408, 411, 413, 415, 422, 429, 500];
        let refusals = layer_statuses.map(|s| ApiError::Rejected {
            status: StatusCode::from_u16(s).unwrap(),
            detail: "refused".into(),
        });
        let others = [
            ApiError::RouteNotFound("/x".into()),
            ApiError::MethodNotAllowed,
            ApiError::NotReady {
                failed: vec!["queue"],
                report: Map::new(),
            },
        ];
        for err in refusals.into_iter().chain(others) {
            let name = format!("{err:?}");
            let (status, body) = body_of(err).await;
            let code = body["error_code"].as_str().unwrap();
            assert!(
                is_documented(status, code),
                "{name}: {status} {code} is not in ERROR_CODES"
            );
        }
    }

    #[tokio::test]
    async fn quota_and_rate_refusals_say_when_to_retry() {
        let quota = ApiError::from(AppError::QuotaExceeded {
            limit: 1,
            used: 1,
            retry_after_secs: 7,
        });
        let response = quota.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let response = ApiError::RateLimited {
            retry_after_secs: 3,
        }
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let response = ApiError::Unauthorized.into_response();
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
