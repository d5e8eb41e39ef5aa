//! The download function: hands out short-lived signed URLs of generated models, as a redirect
//! or as JSON, and the compatibility listing of every model of a job or batch.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use image2model_shared::access::{Task, owned_job, owned_task};
use image2model_shared::auth::Caller;
use image2model_shared::domain::{GenerationJob, JobResult, JobStatus};
use image2model_shared::extract::{ApiQuery, JobIdParam};
use image2model_shared::ports::PresignedRequest;
use image2model_shared::{ApiError, AppContext};
use serde::Deserialize;
use serde_json::json;

pub fn router() -> Router<AppContext> {
    Router::new()
        .route("/api/v1/download/{job_id}", get(download))
        .route("/api/v1/download/{job_id}/all", get(download_all))
}

fn completed_result(job: &GenerationJob) -> Result<&JobResult, ApiError> {
    match (&job.status, &job.result) {
        (JobStatus::Completed, Some(result)) => Ok(result),
        _ => Err(ApiError::ResultNotReady {
            job_id: job.job_id.to_string(),
            status: job.status.as_str(),
        }),
    }
}

async fn sign(ctx: &AppContext, result: &JobResult) -> Result<PresignedRequest, ApiError> {
    Ok(ctx
        .storage
        .presign_get(
            &result.object_key,
            &result.filename,
            ctx.config.download_expiry,
        )
        .await?)
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
    let job = owned_job(&ctx, &caller, id).await?;
    let result = completed_result(&job)?;
    let signed = sign(&ctx, result).await?;
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
    let jobs = match owned_task(&ctx, &caller, id).await? {
        Task::Job(job) => vec![*job],
        Task::Batch(_, jobs) => jobs,
    };
    let completed: Vec<&GenerationJob> = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Completed && j.result.is_some())
        .collect();
    if completed.is_empty() {
        let status = jobs.first().map_or("queued", |j| j.status.as_str());
        return Err(ApiError::ResultNotReady {
            job_id: id.to_string(),
            status,
        });
    }
    let mut files = Vec::with_capacity(completed.len());
    let mut urls = Vec::with_capacity(completed.len());
    for job in completed {
        let result = completed_result(job)?;
        let signed = sign(&ctx, result).await?;
        files.push(json!({
            "job_id": job.job_id,
            "filename": result.filename,
            "size": result.size,
            "mime_type": result.content_type,
            "created_time": job.completed_at,
            "rendered_image": null,
        }));
        urls.push(signed.url);
    }
    Ok(Json(
        json!({ "job_id": id, "files": files, "download_urls": urls, "total_files": urls.len() }),
    ))
}
