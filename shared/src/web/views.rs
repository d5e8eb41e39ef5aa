//! The answers more than one function gives: a job as its owner sees it, a page of jobs, the
//! links a task is followed by, a file, and the redirect a model leaves by. Each is the type the
//! handlers serialize and the schema the OpenAPI document names (`ToSchema`): the document's
//! fields are the type's (what serde and the schema attributes say of them), and schemathesis
//! and the generated clients check real answers against it.

use super::error::ApiError;
pub use crate::app::job_view::{FormatStatus, JobErrorView, JobResultView, JobView, ResultFormat};
use crate::app::list_jobs::JobList;
use crate::domain::{FileId, FileRejection, FileStatus, JobId, ModelFormat, UploadedFile};
use crate::ports::PresignedRequest;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

/// `T` as a JSON answer, serialized into a buffer of `capacity` bytes from the start (axum's
/// `Json` starts at 128 bytes and copies the answer each time it grows: four times for a
/// status answer of about a kilobyte, the route polled most).
pub struct SizedJson<T>(pub T, pub usize);

impl<T: Serialize> IntoResponse for SizedJson<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(self.1);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(err) => {
                tracing::error!(error = %err, "an answer could not be serialized");
                ApiError::Internal.into_response()
            }
        }
    }
}

/// A 302 to `signed`: how a model leaves through the download routes.
pub fn signed_redirect(signed: &PresignedRequest) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(&signed.url).map_err(|_| ApiError::Unavailable {
        component: "object storage",
        reason: "unusable signed URL".to_owned(),
    })?;
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

/// The links a task is followed by without a key, each carrying a short-lived signed `token`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskLinks {
    /// The SSE stream of the task (`EventSource` opens it as is).
    pub events_url: String,
    /// The task's JSON status.
    pub status_url: String,
    /// When the token in both links expires (`STATUS_TOKEN_TTL_SECONDS`).
    pub links_expire_at: DateTime<Utc>,
}

/// [`TaskLinks`] where an answer carries them only sometimes: all three fields, or none.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct OptionalTaskLinks {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub events_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub status_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub links_expire_at: Option<DateTime<Utc>>,
}

impl From<Option<TaskLinks>> for OptionalTaskLinks {
    fn from(links: Option<TaskLinks>) -> Self {
        links.map_or_else(Self::default, |l| Self {
            events_url: Some(l.events_url),
            status_url: Some(l.status_url),
            links_expire_at: Some(l.links_expire_at),
        })
    }
}

/// A job with the links it is followed by (`GET /api/v1/jobs/{job_id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkedJobView {
    #[serde(flatten)]
    pub job: JobView,
    #[serde(flatten)]
    pub links: TaskLinks,
}

/// A page of jobs, newest first (`GET /api/v1/jobs`, `GET /api/v1/admin/jobs`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// The page size used.
    pub limit: usize,
}

impl From<&JobList> for JobPage {
    fn from(list: &JobList) -> Self {
        Self {
            jobs: list.jobs.iter().map(JobView::from).collect(),
            next_cursor: list.next_cursor.clone(),
            limit: list.limit,
        }
    }
}

/// Why ingestion refused a file.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FileRejectionView {
    /// The image error code, e.g. `INVALID_IMAGE`.
    pub code: String,
    pub message: String,
}

impl From<&FileRejection> for FileRejectionView {
    fn from(rejection: &FileRejection) -> Self {
        Self {
            code: rejection.code.as_str().to_owned(),
            message: rejection.message.clone(),
        }
    }
}

/// A file as its owner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "file_id": "6f0d6c2e-3a8b-4f7e-9b1a-2c4d5e6f7a8b", "filename": "coffee.jpg", "size": 412337,
    "content_type": "image/jpeg", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "width": 1600, "height": 1200, "status": "ready",
    "rejection": null, "created_at": "2026-12-06T10:00:00Z", "expires_at": "2026-12-07T10:00:00Z"
}))]
pub struct FileView {
    #[schema(value_type = uuid::Uuid)]
    pub file_id: FileId,
    pub filename: String,
    /// Bytes (as announced while pending, as stored once ready).
    pub size: u64,
    /// The image type, from its bytes once ready.
    pub content_type: String,
    /// The SHA-256 of the bytes (hex), once read.
    #[schema(required = true)]
    pub sha256: Option<String>,
    /// Pixels, once the bytes were read.
    #[schema(required = true)]
    pub width: Option<u32>,
    #[schema(required = true)]
    pub height: Option<u32>,
    pub status: FileStatus,
    /// Set when the file was rejected.
    #[schema(required = true)]
    pub rejection: Option<FileRejectionView>,
    pub created_at: DateTime<Utc>,
    /// When the upload is removed if no job used it.
    pub expires_at: DateTime<Utc>,
}

impl From<&UploadedFile> for FileView {
    fn from(file: &UploadedFile) -> Self {
        Self {
            file_id: file.file_id,
            filename: file.filename.clone(),
            size: file.size,
            content_type: file.content_type.clone(),
            sha256: file.sha256.clone(),
            width: file.width,
            height: file.height,
            status: file.status,
            rejection: file.rejection.as_ref().map(FileRejectionView::from),
            created_at: file.created_at,
            expires_at: file.expires_at,
        }
    }
}

/// A format being converted (the first request for it): ask again after `retry_after` seconds.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "job_id": "0b1e6a52-8c1c-4d62-9d5e-6f2d1c3b4a59", "format": "usdz", "status": "converting",
    "retry_after": 3
}))]
pub struct Converting {
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    pub format: ModelFormat,
    /// Always `converting`.
    #[schema(pattern = "^converting$")]
    pub status: &'static str,
    /// Seconds; the `Retry-After` header says the same.
    pub retry_after: u64,
}

impl Converting {
    /// The 202 a first request for a format not made yet answers: the worker converts it; ask
    /// again after `retry_after` (also the `Retry-After` header).
    pub fn response(
        job_id: JobId,
        format: ModelFormat,
        retry_after: std::time::Duration,
    ) -> Response {
        let seconds = retry_after.as_secs();
        (
            StatusCode::ACCEPTED,
            [(header::RETRY_AFTER, seconds.to_string())],
            axum::Json(Self {
                job_id,
                format,
                status: "converting",
                retry_after: seconds,
            }),
        )
            .into_response()
    }
}
