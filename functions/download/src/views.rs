//! The download function's JSON answers, as serialized and as the OpenAPI document names them.

use chrono::{DateTime, Utc};
use image2model_shared::domain::{JobId, ModelFormat};
use serde::Serialize;
use utoipa::ToSchema;

/// A model's signed URL (`redirect=false`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "format": "glb", "url": "https://bucket.s3.amazonaws.com/results/0b1e6a52-8c1c-4d62-9d5e-6f2d1c3b4a59/model.glb?X-Amz-Signature=...",
    "expires_at": "2026-12-06T10:05:00Z", "filename": "coffee.glb", "size": 1843212,
    "content_type": "model/gltf-binary", "preview_url": null
}))]
pub struct DownloadLink {
    pub format: ModelFormat,
    /// Valid until `expires_at` (`DOWNLOAD_EXPIRY_SECONDS`).
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub filename: String,
    pub size: u64,
    pub content_type: String,
    /// The signed URL of the picture FAL rendered of the model, when it made one.
    #[schema(required = true)]
    pub preview_url: Option<String>,
}

/// A picture rendered of a model.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenderedImage {
    pub url: String,
    pub file_size: u64,
    pub content_type: String,
}

/// A completed model in the old API's listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedModel {
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// Each format made of a model is listed: the GLB first, then its conversions.
    pub format: ModelFormat,
    pub filename: String,
    pub size: u64,
    pub mime_type: String,
    /// When it was completed, epoch seconds.
    pub created_time: f64,
    #[schema(required = true)]
    pub rendered_image: Option<RenderedImage>,
}

/// Every completed model of a job or batch (the old API's listing).
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelListing {
    /// The job's or batch's id.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    pub files: Vec<ListedModel>,
    /// The models' signed URLs, in the order of `files`.
    pub download_urls: Vec<String>,
    pub total_files: usize,
}
