//! The download function: hands out short-lived signed URLs of generated models, as a redirect
//! or as JSON, and the compatibility listing of every model of a job or batch. The signing is
//! `image2model_shared::app::download`; these routes shape the answers.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use image2model_shared::AppContext;
use image2model_shared::app::download::{download_job, download_task};
use image2model_shared::web::extract::{ApiQuery, JobIdParam};
use image2model_shared::web::{ApiError, Caller};
use serde::Deserialize;
use serde_json::json;

pub fn router() -> Router<AppContext> {
    Router::new()
        .route("/api/v1/download/{job_id}", get(download))
        .route("/api/v1/download/{job_id}/all", get(download_all))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadParams {
    redirect: Option<bool>,
}

async fn download(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
    ApiQuery(params): ApiQuery<DownloadParams>,
) -> Result<Response, ApiError> {
    let download = download_job(&ctx, &caller, id).await?;
    let (result, signed) = (&download.result, &download.signed);
    if params.redirect == Some(false) {
        return Ok(Json(json!({
            "url": signed.url,
            "expires_at": signed.expires_at,
            "filename": result.filename,
            "size": result.size,
            "content_type": result.content_type,
        }))
        .into_response());
    }
    let location = HeaderValue::from_str(&signed.url).map_err(|_| ApiError::Unavailable {
        component: "object storage",
        reason: "unusable signed URL".to_owned(),
    })?;
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

async fn download_all(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<serde_json::Value>, ApiError> {
    let downloads = download_task(&ctx, &caller, id).await?;
    let files: Vec<_> = downloads
        .iter()
        .map(|d| {
            json!({
                "job_id": d.job.job_id,
                "filename": d.result.filename,
                "size": d.result.size,
                "mime_type": d.result.content_type,
                "created_time": d.job.completed_at,
                "rendered_image": null,
            })
        })
        .collect();
    let urls: Vec<&str> = downloads.iter().map(|d| d.signed.url.as_str()).collect();
    Ok(Json(
        json!({ "job_id": id, "files": files, "download_urls": urls, "total_files": urls.len() }),
    ))
}
