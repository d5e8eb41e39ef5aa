//! The one place errors become HTTP responses: every failure a route can meet is an [`ApiError`]
//! variant with a stable `error_code`, an HTTP status and the JSON envelope
//! `{error, error_code, message, detail, status_code, details, request_id}`.

use crate::http::current_request_id;
use crate::ports::{QueueError, StorageError, StoreError};
use crate::validation::ImageRejection;
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Invalid job ID: ids are UUIDs such as 123e4567-e89b-42d3-a456-426614174000")]
    InvalidJobId,
    #[error("Invalid file ID: ids are UUIDs such as 123e4567-e89b-42d3-a456-426614174000")]
    InvalidFileId,
    #[error("a valid API key is required (Authorization: Bearer <key> or X-API-Key)")]
    Unauthorized,
    #[error("this API key may not use this route")]
    Forbidden,
    #[error("job {0} not found")]
    JobNotFound(String),
    #[error("file {0} not found")]
    FileNotFound(String),
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("{0}")]
    InvalidImage(#[from] ImageRejection),
    #[error("{count} files sent; at most {limit} per request")]
    TooManyFiles { count: usize, limit: usize },
    #[error(
        "content type {declared:?} is not accepted (allowed: image/jpeg, image/png, image/webp)"
    )]
    InvalidFileType { declared: String },
    #[error("file {file_id} is {status}: {reason}")]
    FileNotReady {
        file_id: String,
        status: &'static str,
        reason: String,
    },
    #[error("model type {0:?} is not available in this deployment")]
    ModelUnavailable(String),
    #[error("job {job_id} is {status} and cannot be {action}")]
    JobStateConflict {
        job_id: String,
        status: &'static str,
        action: &'static str,
    },
    #[error("job {job_id} has no model yet (status {status})")]
    ResultNotReady {
        job_id: String,
        status: &'static str,
    },
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error(
        "daily quota of {limit} jobs used ({used} today); it resets at 00:00 UTC, in {retry_after_secs} s"
    )]
    QuotaExceeded {
        limit: u64,
        used: u64,
        retry_after_secs: u64,
    },
    #[error("webhook refused: {0}")]
    WebhookUnverified(String),
    #[error("{message}")]
    Validation {
        message: String,
        field: Option<String>,
    },
    #[error("the signed URL is invalid or has expired")]
    SignatureInvalid,
    #[error("the request does not match the signed URL: {0}")]
    SignedRequestMismatch(String),
    #[error("a concurrent update won; retry the request")]
    Conflict,
    #[error("{component} is unavailable: {reason}")]
    Unavailable {
        component: &'static str,
        reason: String,
    },
}

impl ApiError {
    pub fn validation(message: impl Into<String>, field: Option<&str>) -> Self {
        Self::Validation {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJobId | Self::InvalidFileId | Self::TooManyFiles { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::InvalidFileType { .. } | Self::ModelUnavailable(_) => StatusCode::BAD_REQUEST,
            Self::SignedRequestMismatch(_) => StatusCode::BAD_REQUEST,
            Self::InvalidImage(rejection) => match rejection {
                ImageRejection::TooLarge { .. } | ImageRejection::TooManyPixels { .. } => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                ImageRejection::Empty
                | ImageRejection::NotAnImage
                | ImageRejection::Unsupported { .. } => StatusCode::BAD_REQUEST,
                ImageRejection::Corrupt { .. } | ImageRejection::TrailingData { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
            },
            Self::Unauthorized | Self::WebhookUnverified(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::SignatureInvalid => StatusCode::FORBIDDEN,
            Self::JobNotFound(_) | Self::FileNotFound(_) | Self::RouteNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::FileNotReady { .. }
            | Self::JobStateConflict { .. }
            | Self::ResultNotReady { .. }
            | Self::Conflict => StatusCode::CONFLICT,
            Self::RateLimited { .. } | Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJobId => "INVALID_JOB_ID",
            Self::InvalidFileId => "INVALID_FILE_ID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::JobNotFound(_) => "JOB_NOT_FOUND",
            Self::FileNotFound(_) => "FILE_NOT_FOUND",
            Self::RouteNotFound(_) => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::InvalidImage(rejection) => rejection.code(),
            Self::TooManyFiles { .. } => "TOO_MANY_FILES",
            Self::InvalidFileType { .. } => "INVALID_FILE_TYPE",
            Self::FileNotReady { .. } => "FILE_NOT_READY",
            Self::ModelUnavailable(_) => "MODEL_UNAVAILABLE",
            Self::JobStateConflict { .. } => "INVALID_JOB_STATE",
            Self::ResultNotReady { .. } => "RESULT_NOT_READY",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            Self::WebhookUnverified(_) => "WEBHOOK_SIGNATURE_INVALID",
            Self::Validation { .. } => "VALIDATION_ERROR",
            Self::SignatureInvalid => "SIGNATURE_INVALID",
            Self::SignedRequestMismatch(_) => "SIGNED_REQUEST_MISMATCH",
            Self::Conflict => "CONFLICT",
            Self::Unavailable { .. } => "SERVICE_UNAVAILABLE",
        }
    }

    /// A short, stable summary; `detail` carries the specifics.
    fn summary(&self) -> &'static str {
        match self {
            Self::InvalidJobId => "Invalid job ID",
            Self::InvalidFileId => "Invalid file ID",
            Self::Unauthorized => "Authentication required",
            Self::Forbidden => "Forbidden",
            Self::JobNotFound(_) => "Job not found",
            Self::FileNotFound(_) => "File not found",
            Self::RouteNotFound(_) => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::InvalidImage(_) | Self::InvalidFileType { .. } => "Invalid file",
            Self::TooManyFiles { .. } => "Too many files",
            Self::FileNotReady { .. } => "File not ready",
            Self::ModelUnavailable(_) => "Model unavailable",
            Self::JobStateConflict { .. } => "Invalid job state",
            Self::ResultNotReady { .. } => "Result not ready",
            Self::RateLimited { .. } => "Rate limit exceeded",
            Self::QuotaExceeded { .. } => "Daily quota exceeded",
            Self::WebhookUnverified(_) => "Webhook signature invalid",
            Self::Validation { .. } => "Validation error",
            Self::SignatureInvalid => "Invalid signature",
            Self::SignedRequestMismatch(_) => "Request does not match signature",
            Self::Conflict => "Conflict",
            Self::Unavailable { .. } => "Service unavailable",
        }
    }

    fn details(&self) -> Value {
        match self {
            Self::TooManyFiles { count, limit } => json!({"count": count, "limit": limit}),
            Self::InvalidImage(ImageRejection::TooLarge { size, limit }) => {
                json!({"size": size, "limit": limit})
            }
            Self::InvalidImage(ImageRejection::TooManyPixels {
                width,
                height,
                limit,
            }) => {
                json!({"width": width, "height": height, "max_pixels": limit})
            }
            Self::FileNotReady { status, .. } => json!({"file_status": status}),
            Self::ModelUnavailable(model) => json!({"model_type": model}),
            Self::JobStateConflict { status, .. } | Self::ResultNotReady { status, .. } => {
                json!({"job_status": status})
            }
            Self::RateLimited { retry_after_secs } => json!({"retry_after": retry_after_secs}),
            Self::QuotaExceeded {
                limit,
                used,
                retry_after_secs,
            } => json!({"limit": limit, "used": used, "retry_after": retry_after_secs}),
            Self::Validation {
                field: Some(field), ..
            } => json!({"field": field}),
            Self::Unavailable { component, .. } => json!({"component": component}),
            _ => json!({}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error_code = self.code(), error = %self, "request failed");
        } else {
            tracing::info!(error_code = self.code(), error = %self, "request refused");
        }
        let body = json!({
            "error": true,
            "error_code": self.code(),
            "message": self.summary(),
            "detail": self.to_string(),
            "status_code": status.as_u16(),
            "details": self.details(),
            "request_id": current_request_id(),
        });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"image2model\""),
                );
            }
            Self::RateLimited { retry_after_secs }
            | Self::QuotaExceeded {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict | StoreError::AlreadyExists => Self::Conflict,
            other => Self::Unavailable {
                component: "store",
                reason: other.to_string(),
            },
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        Self::Unavailable {
            component: "object storage",
            reason: err.to_string(),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        Self::Unavailable {
            component: "queue",
            reason: err.to_string(),
        }
    }
}
