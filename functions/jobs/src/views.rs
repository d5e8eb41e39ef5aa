//! The jobs function's answers, as serialized and as the OpenAPI document names them.

use chrono::{DateTime, Utc};
use image2model_shared::app::create_job::ModelType;
use image2model_shared::domain::{FileId, GenerationJob, JobId, JobStatus, ModelFormat};
use image2model_shared::web::views::{JobErrorView, TaskLinks};
use serde::Serialize;
use utoipa::ToSchema;

/// A job just created (or replayed by its `Idempotency-Key`), with the links it is followed by.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "job_id": "0b1e6a52-8c1c-4d62-9d5e-6f2d1c3b4a59", "file_id": "6f0d6c2e-3a8b-4f7e-9b1a-2c4d5e6f7a8b",
    "status": "queued", "progress": 0, "model_type": "tripo3d", "created_at": "2026-12-06T10:00:00Z",
    "events_url": "https://api.example.com/api/v1/status/tasks/0b1e6a52-8c1c-4d62-9d5e-6f2d1c3b4a59/stream?token=...",
    "status_url": "https://api.example.com/api/v1/status/tasks/0b1e6a52-8c1c-4d62-9d5e-6f2d1c3b4a59/status?token=...",
    "links_expire_at": "2026-12-06T11:00:00Z"
}))]
pub struct CreatedJob {
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    #[schema(value_type = uuid::Uuid)]
    pub file_id: FileId,
    /// `queued` (a job on a pending file waits for it queued).
    pub status: JobStatus,
    #[schema(minimum = 0, maximum = 100)]
    pub progress: u8,
    #[schema(value_type = ModelType)]
    pub model_type: String,
    pub created_at: DateTime<Utc>,
    #[serde(flatten)]
    pub links: TaskLinks,
}

impl CreatedJob {
    pub fn new(job: &GenerationJob, links: TaskLinks) -> Self {
        Self {
            job_id: job.job_id,
            file_id: job.file_id,
            status: job.status,
            progress: job.progress,
            model_type: job.model_type.clone(),
            created_at: job.created_at,
            links,
        }
    }
}

/// The old API's answer to `POST /api/v1/models/generate`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyCreatedJob {
    #[serde(flatten)]
    pub job: CreatedJob,
    /// The old answer's estimate: always null, none is made up.
    #[schema(required = true, value_type = Option<u32>)]
    pub estimated_time: Option<u32>,
}

/// What a model type's catalog entry says, in the old API's fields and ours.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    /// The model type (the old API's field).
    #[schema(value_type = ModelType)]
    pub name: &'static str,
    /// What a person is shown: what it is, and who runs it.
    pub display_name: &'static str,
    pub description: &'static str,
    /// What a model of it is, in a phrase.
    pub makes: &'static str,
    /// Always `image_to_3d`.
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^image_to_3d$")]
    pub kind: &'static str,
    /// The formats a model of it is downloaded in (`GET /api/v1/download/{job_id}?format=`).
    pub supported_formats: &'static [ModelFormat],
    #[schema(value_type = ModelType)]
    pub model_type: &'static str,
    /// Whether this deployment runs it.
    pub available: bool,
    /// Whether jobs naming no model type get it.
    pub default: bool,
    /// The job options it takes (besides `formats`, which every model takes).
    #[schema(value_type = Vec<String>)]
    pub options: &'static [&'static str],
    /// What each of its options does.
    pub option_details: Vec<ModelOption>,
    /// The most faces `face_limit` may ask for (more is refused); null when it takes none.
    #[schema(required = true)]
    pub face_limit_max: Option<u32>,
    pub provider: Provider,
    /// The FAL application serving it.
    pub fal_app: &'static str,
    /// FAL's estimated price per run, US dollars.
    pub price_usd: f64,
}

/// Who runs a model in this deployment.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Builtin,
    Fal,
}

/// One option of a model, and what it does.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelOption {
    pub name: &'static str,
    pub description: &'static str,
}

/// One of the caller's jobs in the old API's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyJob {
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    pub status: JobStatus,
    #[schema(minimum = 0, maximum = 100)]
    pub progress: u8,
    pub message: String,
    /// Always null: no estimate is made up.
    #[schema(required = true, value_type = Option<u32>)]
    pub estimated_remaining: Option<u32>,
    /// Where the model is downloaded, once completed.
    #[schema(required = true)]
    pub result_url: Option<String>,
    #[schema(required = true)]
    pub error: Option<JobErrorView>,
}

impl LegacyJob {
    pub fn new(job: &GenerationJob) -> Self {
        Self {
            job_id: job.job_id,
            status: job.status,
            progress: job.progress,
            message: job.message.clone(),
            estimated_remaining: None,
            result_url: job
                .result
                .is_some()
                .then(|| format!("/api/v1/models/download/{}", job.job_id)),
            error: job.error.as_ref().map(JobErrorView::from),
        }
    }
}
