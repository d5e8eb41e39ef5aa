//! Request extractors whose rejections are [`ApiError`]s: path ids validated before any store is
//! touched, and JSON bodies and query strings that fail with `VALIDATION_ERROR`.

use super::error::ApiError;
use crate::domain::{FileId, JobId};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
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

/// A JSON body; malformed or mistyped bodies are `VALIDATION_ERROR` (422).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| Self(v))
            .map_err(|e: JsonRejection| ApiError::validation(e.body_text(), None))
    }
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
