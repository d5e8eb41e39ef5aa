//! The admin function's answers, as serialized and as the OpenAPI document names them.

use chrono::{DateTime, Utc};
use image2model_shared::app::cleanup::CleanupReport;
use image2model_shared::app::create_job::ModelType;
use image2model_shared::app::stats::FalOverview;
use image2model_shared::domain::{FileId, JobId, JobStatus};
use image2model_shared::fal::guard::DailySpend;
use image2model_shared::ports::{DeadLetter, QueueDepth};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Jobs by status and in all.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobTotals {
    pub total: u64,
    pub by_status: BTreeMap<&'static str, u64>,
}

/// FAL runs and their estimated cost.
#[derive(Debug, Serialize, ToSchema)]
pub struct Spend {
    pub today_usd: f64,
    /// The last 7 days, today first.
    pub daily: Vec<DailySpend>,
    /// The catalog's price per run, by model type.
    pub prices_usd: BTreeMap<&'static str, f64>,
}

/// The limits this deployment enforces.
#[derive(Debug, Serialize, ToSchema)]
pub struct Limits {
    pub max_upload_bytes: u64,
    pub max_pixels: u64,
    pub max_files: usize,
    pub rate_limit_per_minute: u64,
    pub job_deadline_seconds: u64,
    pub generation_timeout_seconds: u64,
    /// FAL jobs per day.
    pub daily_job_quota: u64,
}

/// `GET /api/v1/admin/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub jobs: JobTotals,
    pub queue: QueueDepth,
    pub fal: FalOverview,
    pub spend: Spend,
    /// The model types this deployment runs.
    #[schema(value_type = Vec<ModelType>)]
    pub models_available: Vec<&'static str>,
    pub limits: Limits,
    pub timestamp: DateTime<Utc>,
}

/// A cleanup's report with the old API's fields beside ours.
#[derive(Debug, Serialize, ToSchema)]
pub struct CleanupAnswer {
    #[serde(flatten)]
    pub report: CleanupReport,
    /// Objects deleted (the old API's name).
    pub files_removed: usize,
    pub freed_space_mb: f64,
    /// Batches removed (the old API's name).
    pub directories_removed: usize,
    /// Always empty: a failure is the error envelope instead.
    pub errors: Vec<String>,
    pub cleanup_hours: f64,
    pub timestamp: DateTime<Utc>,
}

/// One prefix in the old API's `disk-usage` shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryUsage {
    /// A directory, or an `s3://` URL.
    pub path: String,
    pub size_mb: f64,
    pub size_bytes: u64,
    pub file_count: usize,
    pub directory_count: usize,
    /// The file system holding the objects; null when they are in S3.
    #[schema(required = true)]
    pub disk_total_gb: Option<f64>,
    #[schema(required = true)]
    pub disk_used_gb: Option<f64>,
    #[schema(required = true)]
    pub disk_free_gb: Option<f64>,
    #[schema(required = true)]
    pub disk_usage_percent: Option<f64>,
    /// Why the disk figures are null, on S3.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub disk_note: Option<&'static str>,
}

/// What uploads and results take.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiskUsage {
    pub upload_dir: DirectoryUsage,
    pub output_dir: DirectoryUsage,
    pub timestamp: DateTime<Utc>,
}

/// The old API's system states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SystemState {
    Healthy,
    Warning,
    Critical,
}

/// A readiness component in the old API's `system-health` shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentHealth {
    pub name: &'static str,
    pub healthy: bool,
    pub response_time_ms: f64,
}

/// `GET /api/v1/admin/system-health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemHealth {
    pub status: SystemState,
    /// Null when object storage did not answer.
    #[schema(required = true)]
    pub disk_usage: Option<DiskUsage>,
    pub warnings: Vec<String>,
    pub components: Vec<ComponentHealth>,
    pub timestamp: DateTime<Utc>,
}

/// An object in the old API's `list-files` shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedObject {
    /// The object key.
    pub path: String,
    pub size_mb: f64,
    pub size_bytes: u64,
    /// Epoch seconds, as text (the old API's).
    pub modified: String,
    /// Always false: objects are files.
    pub is_directory: bool,
    /// Always null (the old API's count for a directory).
    #[schema(required = true, value_type = Option<u64>)]
    pub file_count: Option<u64>,
    pub content_type: String,
}

/// The folders of `list-files`.
#[derive(Debug, Clone, Copy, serde::Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Directory {
    Uploads,
    Results,
}

/// `GET /api/v1/admin/list-files`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileListing {
    pub directory: Directory,
    pub path: String,
    pub total_size_mb: f64,
    pub total_files: usize,
    pub items: Vec<ListedObject>,
}

/// What a task's removal took away (`POST /api/v1/admin/cleanup-job`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeAnswer {
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    pub freed_space_mb: f64,
    pub files_removed: usize,
    /// Always empty: a failure is the error envelope instead.
    pub errors: Vec<String>,
    pub timestamp: DateTime<Utc>,
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub jobs: Vec<JobId>,
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub files: Vec<FileId>,
    /// Object keys deleted.
    pub objects: Vec<String>,
}

/// The old API's answer to `DELETE /api/v1/admin/delete-job/{job_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedTask {
    pub message: String,
    pub freed_space_mb: f64,
    pub files_removed: usize,
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub jobs: Vec<JobId>,
}

/// A job put back in the queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetriedJob {
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    pub status: JobStatus,
    /// Whether its file was ready, so it was enqueued at once (else it waits for the upload).
    pub file_ready: bool,
}

/// A deleted job.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedJob {
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// Always true.
    pub deleted: bool,
    /// Its status before (a live job was cancelled first).
    pub status_before: JobStatus,
}

/// Messages set aside after failing too often.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetters {
    pub count: usize,
    pub dead_letters: Vec<DeadLetter>,
}
