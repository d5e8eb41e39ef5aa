//! The upload function's answers, as serialized and as the OpenAPI document names them.

use image2model_shared::app::create_job::ModelType;
use image2model_shared::app::presign_upload::SignedUpload;
use image2model_shared::domain::{BatchId, FileId, FileStatus, JobId, JobStatus};
use image2model_shared::web::views::{FileView, OptionalTaskLinks, TaskLinks};
use serde::Serialize;
use utoipa::ToSchema;

/// The files announced by `POST /api/v1/uploads/presign`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"files": [{
    "file_id": "6f0d6c2e-3a8b-4f7e-9b1a-2c4d5e6f7a8b", "filename": "coffee.jpg",
    "upload": {"url": "https://bucket.s3.amazonaws.com/uploads/...?X-Amz-Signature=...", "method": "PUT",
               "headers": {"content-type": "image/jpeg", "content-length": "412337"},
               "expires_at": "2026-12-06T10:15:00Z"},
    "job_id": null
}]}))]
pub struct PresignedFiles {
    pub files: Vec<PresignedFile>,
}

/// One announced file: how to send its bytes, and its job with the links it is followed by
/// when `generate` asked for one.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresignedFile {
    #[schema(value_type = uuid::Uuid)]
    pub file_id: FileId,
    pub filename: String,
    /// A signed PUT (`headers`) or, with `upload_method: POST`, a form POST (`fields`).
    pub upload: SignedUpload,
    /// The job that waits for the file (with `generate`), else null.
    #[schema(value_type = Option<uuid::Uuid>, required = true)]
    pub job_id: Option<JobId>,
    #[serde(flatten)]
    pub links: OptionalTaskLinks,
}

/// The old API's constant for a file it received.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Received {
    Uploaded,
}

/// A file of a batch upload and its job.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchFile {
    #[schema(value_type = uuid::Uuid)]
    pub file_id: FileId,
    pub filename: String,
    pub file_size: u64,
    pub content_type: String,
    /// The old API's constant; where the file stands is `file_status`.
    pub status: Received,
    pub file_status: FileStatus,
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// The job's id again (the old API's name).
    #[schema(value_type = uuid::Uuid)]
    pub task_id: JobId,
}

/// The answer of the old API's batch upload, with the links the batch is followed by.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchUploaded {
    #[schema(value_type = uuid::Uuid)]
    pub batch_id: BatchId,
    /// The batch's id (the old API followed a batch as a job).
    #[schema(value_type = uuid::Uuid)]
    pub job_id: BatchId,
    #[schema(value_type = uuid::Uuid)]
    pub task_id: BatchId,
    /// The old API's name for the id its clients follow a batch by.
    #[schema(value_type = uuid::Uuid)]
    pub chord_task_id: BatchId,
    pub uploaded_files: Vec<BatchFile>,
    #[schema(required = true)]
    pub face_limit: Option<u32>,
    #[schema(value_type = ModelType)]
    pub model_type: &'static str,
    pub total_files: usize,
    pub status: Received,
    pub message: String,
    #[serde(flatten)]
    pub links: TaskLinks,
}

/// Where the old API's client reads an upload.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LegacyFileStatus {
    Pending,
    Uploaded,
    Rejected,
}

/// What runs on a file: `pending` until a job does, then that job's status.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProcessingStatus {
    Pending,
    Queued,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl From<Option<JobStatus>> for ProcessingStatus {
    fn from(status: Option<JobStatus>) -> Self {
        match status {
            None => Self::Pending,
            Some(JobStatus::Queued) => Self::Queued,
            Some(JobStatus::Processing) => Self::Processing,
            Some(JobStatus::Completed) => Self::Completed,
            Some(JobStatus::Failed) => Self::Failed,
            Some(JobStatus::Cancelled) => Self::Cancelled,
        }
    }
}

/// One upload in the old API's shape, with the file.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyUploadStatus {
    #[schema(value_type = uuid::Uuid)]
    pub file_id: FileId,
    pub status: LegacyFileStatus,
    pub processing_status: ProcessingStatus,
    /// The newest job on the file, if any.
    #[schema(value_type = Option<uuid::Uuid>, required = true)]
    pub job_id: Option<JobId>,
    pub file: FileView,
}

/// A batch's counts in the old API's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchProgress {
    pub total_files: usize,
    pub processed_files: usize,
    pub failed_files: usize,
    #[schema(minimum = 0, maximum = 100)]
    pub progress: u8,
}

/// One batch in the old API's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyBatchStatus {
    #[schema(value_type = uuid::Uuid)]
    pub batch_id: JobId,
    pub status: JobStatus,
    pub message: String,
    pub progress: BatchProgress,
}
