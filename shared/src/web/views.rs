//! Responses that more than one function answers with.

use super::error::ApiError;
use crate::app::list_jobs::JobList;
use crate::ports::PresignedRequest;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

/// A 302 to `signed`: how a model leaves through the download routes.
pub fn signed_redirect(signed: &PresignedRequest) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(&signed.url).map_err(|_| ApiError::Unavailable {
        component: "object storage",
        reason: "unusable signed URL".to_owned(),
    })?;
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

/// A page of jobs as `GET /api/v1/jobs` and `GET /api/v1/admin/jobs` answer it:
/// `{jobs, next_cursor, limit}`, each job as clients see it.
pub fn job_list_json(list: &JobList) -> Value {
    let jobs: Vec<Value> = list.jobs.iter().map(|j| j.public_json()).collect();
    json!({ "jobs": jobs, "next_cursor": list.next_cursor, "limit": list.limit })
}
