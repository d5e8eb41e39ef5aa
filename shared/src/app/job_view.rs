//! A job as its owner sees it (`JobView`): what the routes answer and what a webhook's `data`
//! carries, so both say the same. Its schema is the one the OpenAPI document names.

use crate::domain::models::ModelType;
use crate::domain::{
    BatchId, FileId, GenerationJob, JobError, JobId, JobOptions, JobResult, JobStatus, ModelFormat,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

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
            code: error.code.as_str().to_owned(),
            message: error.message.clone(),
        }
    }
}

/// A job as its owner sees it: FAL's request id, never the URLs only our worker uses.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "job_id": "0b1e6a52-8c1c-4d62-9d5e-6f2d1c3b4a59", "batch_id": null,
    "file_id": "6f0d6c2e-3a8b-4f7e-9b1a-2c4d5e6f7a8b", "source_filename": "coffee.webp", "owner": "alice",
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
    /// The photo's name as its uploader gave it, sanitised (`coffee.webp`); null for jobs made
    /// before names were kept.
    #[schema(required = true)]
    pub source_filename: Option<String>,
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
            source_filename: job.source_filename.clone(),
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
