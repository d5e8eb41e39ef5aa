//! The answers more than one function gives: a job as its owner sees it, a page of jobs, the
//! links a task is followed by, a file, and the redirect a model leaves by. Each is the type the
//! handlers serialize and the schema the OpenAPI document names (`ToSchema`): the document's
//! fields are the type's (what serde and the schema attributes say of them), and schemathesis
//! and the generated clients check real answers against it.

use super::error::ApiError;
use crate::app::create_job::ModelType;
use crate::app::list_jobs::JobList;
use crate::domain::{
    BatchId, FileId, FileRejection, FileStatus, GenerationJob, JobError, JobId, JobOptions,
    JobResult, JobStatus, ModelFormat, UploadedFile,
};
use crate::ports::PresignedRequest;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

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

/// Where a completed job's model is stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobResultView {
    /// The object's key in storage (`results/<job_id>/model.glb`).
    pub object_key: String,
    /// The model's file name (the photo's name with the model's extension).
    pub filename: String,
    /// Bytes.
    pub size: u64,
    /// `model/gltf-binary`.
    pub content_type: String,
    /// The key of the picture FAL rendered of the model, when it made one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub preview_key: Option<String>,
    /// Every format the model downloads in (`GET /api/v1/download/{job_id}?format=`), and
    /// whether it is made: the GLB and the formats asked for at creation are made at completion,
    /// any other on its first download.
    pub formats: Vec<ResultFormat>,
}

/// Whether a format of a model is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormatStatus {
    /// Kept beside the GLB: it downloads at once.
    Ready,
    /// Made on its first download (which answers 202 while it converts); named `ready` here once
    /// made.
    OnRequest,
    /// The model cannot be made into it (`reason` says why); the GLB stays.
    Failed,
}

/// One format of a completed job's model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResultFormat {
    pub format: ModelFormat,
    pub status: FormatStatus,
    pub content_type: &'static str,
    /// Bytes, when made.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub size: Option<u64>,
    /// Why it cannot be made, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

impl ResultFormat {
    /// Every format of `result`, as its record knows them.
    pub fn all_of(result: &JobResult) -> Vec<Self> {
        ModelFormat::ALL
            .into_iter()
            .map(|format| {
                let stored = match format {
                    ModelFormat::Glb => Some(result.size),
                    _ => result
                        .formats
                        .iter()
                        .find(|f| f.format == format)
                        .map(|f| f.size),
                };
                let failed = result.format_failures.iter().find(|f| f.format == format);
                Self {
                    format,
                    status: match (stored, failed) {
                        (Some(_), _) => FormatStatus::Ready,
                        (None, Some(_)) => FormatStatus::Failed,
                        (None, None) => FormatStatus::OnRequest,
                    },
                    content_type: format.content_type(),
                    size: stored,
                    reason: failed.map(|f| f.reason.clone()),
                }
            })
            .collect()
    }
}

/// Why a job failed: a stable code and what happened, in words.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobErrorView {
    /// A job error code (see the README), e.g. `GENERATION_TIMEOUT`.
    #[schema(example = "GENERATION_TIMEOUT")]
    pub code: String,
    pub message: String,
}

impl From<&JobError> for JobErrorView {
    fn from(error: &JobError) -> Self {
        Self {
            code: error.code.clone(),
            message: error.message.clone(),
        }
    }
}

/// A job as its owner sees it: FAL's request id, never the URLs only our worker uses.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "job_id": "0b1e6a52-8c1c-4d62-9d5e-6f2d1c3b4a59", "batch_id": null,
    "file_id": "6f0d6c2e-3a8b-4f7e-9b1a-2c4d5e6f7a8b", "owner": "alice",
    "model_type": "tripo3d", "options": {"face_limit": 20000}, "status": "completed",
    "progress": 100, "message": "Model generated", "attempts": 1,
    "result": {"object_key": "results/0b1e6a52-8c1c-4d62-9d5e-6f2d1c3b4a59/model.glb",
               "filename": "coffee.glb", "size": 1843212, "content_type": "model/gltf-binary",
               "formats": [
                   {"format": "glb", "status": "ready", "content_type": "model/gltf-binary", "size": 1843212},
                   {"format": "usdz", "status": "ready", "content_type": "model/vnd.usdz+zip", "size": 532358},
                   {"format": "obj", "status": "on_request", "content_type": "application/zip"},
                   {"format": "stl", "status": "on_request", "content_type": "model/stl"}]},
    "error": null, "created_at": "2026-12-06T10:00:00Z", "updated_at": "2026-12-06T10:00:41Z",
    "started_at": "2026-12-06T10:00:01Z", "completed_at": "2026-12-06T10:00:41Z", "version": 7
}))]
pub struct JobView {
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// The batch the job belongs to (`POST /api/v1/upload`), else null.
    #[schema(value_type = Option<uuid::Uuid>, required = true)]
    pub batch_id: Option<BatchId>,
    #[schema(value_type = uuid::Uuid)]
    pub file_id: FileId,
    /// The key's owner.
    pub owner: String,
    #[schema(value_type = ModelType)]
    pub model_type: String,
    pub options: JobOptions,
    pub status: JobStatus,
    /// 0 to 100; 100 only once completed.
    #[schema(minimum = 0, maximum = 100)]
    pub progress: u8,
    /// What the job is doing, in words.
    pub message: String,
    /// Attempts started (a retry after a worker died or FAL failed counts again).
    pub attempts: u32,
    /// Set once completed.
    #[schema(required = true)]
    pub result: Option<JobResultView>,
    /// Set once failed.
    #[schema(required = true)]
    pub error: Option<JobErrorView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub completed_at: Option<DateTime<Utc>>,
    /// Grows by one with every change.
    pub version: u64,
    /// FAL.AI's id of the request running the job, once submitted there.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub fal_request_id: Option<String>,
}

impl From<&GenerationJob> for JobView {
    fn from(job: &GenerationJob) -> Self {
        Self {
            job_id: job.job_id,
            batch_id: job.batch_id,
            file_id: job.file_id,
            owner: job.owner.clone(),
            model_type: job.model_type.clone(),
            options: job.options.clone(),
            status: job.status,
            progress: job.progress,
            message: job.message.clone(),
            attempts: job.attempts,
            result: job.result.as_ref().map(|r| JobResultView {
                object_key: r.object_key.clone(),
                filename: r.filename.clone(),
                size: r.size,
                content_type: r.content_type.clone(),
                preview_key: r.preview_key.clone(),
                formats: ResultFormat::all_of(r),
            }),
            error: job.error.as_ref().map(JobErrorView::from),
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            completed_at: job.completed_at,
            version: job.version,
            fal_request_id: job.fal.as_ref().map(|f| f.request_id.clone()),
        }
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
            code: rejection.code.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FalRequest;

    #[test]
    fn clients_see_the_fal_request_id_but_not_its_urls() {
        let now = Utc::now();
        let job = GenerationJob::new(
            FileId::new(),
            "o",
            "tripo3d",
            JobOptions::default(),
            None,
            now,
        );
        let mut submitted = job.start(now).unwrap();
        submitted.fal = Some(FalRequest {
            request_id: "req-1".into(),
            status_url: "https://queue.example/status".into(),
            response_url: "https://queue.example/response".into(),
            cancel_url: "https://queue.example/cancel".into(),
            submitted_at: now,
        });
        let json = serde_json::to_value(JobView::from(&submitted)).unwrap();
        assert_eq!(json["job_id"], submitted.job_id.to_string());
        assert_eq!(json["fal_request_id"], "req-1");
        assert!(json.get("fal").is_none(), "{json}");
        assert!(!json.to_string().contains("queue.example"));
        let plain = serde_json::to_value(JobView::from(&job)).unwrap();
        assert!(plain.get("fal_request_id").is_none() && plain.get("fal").is_none());
        assert_eq!(plain["status"], "queued");
        // Every field the stored job has reaches its view, but the worker's FAL URLs.
        let mut stored = serde_json::to_value(&submitted).unwrap();
        stored.as_object_mut().unwrap().remove("fal");
        for field in stored.as_object().unwrap().keys() {
            assert!(
                json.get(field).is_some(),
                "{field} is missing from the view"
            );
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
