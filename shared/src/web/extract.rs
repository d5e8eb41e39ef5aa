//! Request extractors whose rejections are [`ApiError`]s: path ids validated before any store is
//! touched, JSON bodies and query strings that fail with `VALIDATION_ERROR`, multipart bodies of
//! the right type, and what a body that cannot be read answers (408 when it stopped arriving).

use super::error::ApiError;
use super::strict_json;
use crate::domain::{FileId, JobId};
use axum::body::Bytes;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Path, Request};
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;

async fn raw_path_id<S: Send + Sync>(parts: &mut Parts, state: &S) -> Option<String> {
    Path::<String>::from_request_parts(parts, state)
        .await
        .ok()
        .map(|Path(raw)| raw)
}

/// A `{job_id}` (or task / batch id) path segment; anything but a UUID is `INVALID_JOB_ID`.
#[derive(Debug, Clone, Copy)]
pub struct JobIdParam(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = raw_path_id(parts, state)
            .await
            .ok_or(ApiError::InvalidJobId)?;
        raw.parse().map(Self).map_err(|_| ApiError::InvalidJobId)
    }
}

/// A `{file_id}` path segment; anything but a UUID is `INVALID_FILE_ID`.
#[derive(Debug, Clone, Copy)]
pub struct FileIdParam(pub FileId);

impl<S: Send + Sync> FromRequestParts<S> for FileIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = raw_path_id(parts, state)
            .await
            .ok_or(ApiError::InvalidFileId)?;
        raw.parse().map(Self).map_err(|_| ApiError::InvalidFileId)
    }
}

/// Any other id in the path (`{endpoint_id}`, `{delivery_id}`); anything but a UUID is
/// `INVALID_ID`.
#[derive(Debug, Clone, Copy)]
pub struct IdParam<T>(pub T);

impl<S: Send + Sync, T: std::str::FromStr> FromRequestParts<S> for IdParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = raw_path_id(parts, state).await.ok_or(ApiError::InvalidId)?;
        raw.parse().map(Self).map_err(|_| ApiError::InvalidId)
    }
}

/// A JSON body, read strictly (see [`strict_json`]): a body that is not `application/json` is
/// 415, malformed or mistyped JSON is `VALIDATION_ERROR` (422, `details.field` naming the
/// value's path when there is one).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(not_json());
        }
        let ApiBytes(body) = ApiBytes::from_request(req, state).await?;
        parse_json(&body).map(Self)
    }
}

/// A JSON body that may be left out: no body at all (or an empty one, or JSON `null`) is
/// `T::default()`, as the old API's optional bodies were; a body is read as [`ApiJson`] reads it.
#[derive(Debug, Clone)]
pub struct ApiOptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for ApiOptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let ApiBytes(body) = ApiBytes::from_request(req, state).await?;
        if body.is_empty() {
            return Ok(Self(T::default()));
        }
        if !json {
            return Err(not_json());
        }
        match parse_value(&body)? {
            serde_json::Value::Null => Ok(Self(T::default())),
            value => from_json_value(value).map(Self),
        }
    }
}

fn not_json() -> ApiError {
    ApiError::Rejected {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        detail: "the body must be application/json".to_owned(),
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    from_json_value(parse_value(body)?)
}

fn parse_value(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    strict_json::parse(body)
        .map_err(|e| ApiError::validation(format!("the body is not valid JSON: {e}"), None))
}

fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    strict_json::from_value(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::validation(
            format!("the JSON body does not fit: {e}"),
            (path != ".").then_some(path.as_str()),
        )
    })
}

/// `application/json` (any case, any parameters): the one type the document declares.
pub fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// A raw body (a signed webhook's bytes): over the route's limit 413, one that stopped
/// arriving 408.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|e| unreadable_body(e.status(), e.body_text(), &e))
    }
}

/// A `multipart/form-data` body: another content type is 415, a missing boundary 400.
pub struct ApiMultipart(pub Multipart);

impl<S: Send + Sync> FromRequest<S> for ApiMultipart {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_form = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.split(';').next().is_some_and(|essence| {
                    essence.trim().eq_ignore_ascii_case("multipart/form-data")
                })
            });
        if !is_form {
            return Err(ApiError::Rejected {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                detail: "the body must be multipart/form-data".to_owned(),
            });
        }
        Multipart::from_request(req, state)
            .await
            .map(Self)
            .map_err(|e: MultipartRejection| ApiError::Rejected {
                status: StatusCode::BAD_REQUEST,
                detail: e.body_text(),
            })
    }
}

/// A part of a multipart body that could not be read: 413 over the body limit, 408 when the
/// body stopped arriving, else a malformed body (422).
pub fn multipart_error(err: MultipartError) -> ApiError {
    let status = err.status();
    let text = err.body_text();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::Rejected {
            status,
            detail: text,
        };
    }
    match unreadable_body(status, text, &err) {
        ApiError::Rejected { status, detail } if status != StatusCode::REQUEST_TIMEOUT => {
            ApiError::validation(format!("malformed multipart body: {detail}"), None)
        }
        other => other,
    }
}

/// A body that could not be read: 408 `REQUEST_TIMEOUT` when it stopped arriving for longer
/// than the server's body idle timeout or fell behind its minimum rate, otherwise `status` with
/// `text`.
pub fn unreadable_body(
    status: StatusCode,
    text: String,
    err: &(dyn std::error::Error + 'static),
) -> ApiError {
    if caused_by::<tower_http::timeout::TimeoutError>(err) {
        ApiError::Rejected {
            status: StatusCode::REQUEST_TIMEOUT,
            detail: "the request body stopped arriving".to_owned(),
        }
    } else if caused_by::<super::read_deadline::BodyTooSlow>(err) {
        ApiError::Rejected {
            status: StatusCode::REQUEST_TIMEOUT,
            detail: "the request body arrived too slowly".to_owned(),
        }
    } else {
        ApiError::Rejected {
            status,
            detail: text,
        }
    }
}

/// Whether `err` or any error it wraps is an `E`.
pub fn caused_by<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<E>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// A query string; a malformed one is `VALIDATION_ERROR` (422).
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e: QueryRejection| ApiError::validation(e.body_text(), None))
    }
}
