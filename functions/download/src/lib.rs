//! The download function: hands out short-lived signed URLs of generated models, as a redirect
//! or as JSON, the compatibility listing of every model of a job or batch, and the old API's
//! per-file route (a redirect to the file a client named). The signing is
//! `image2model_shared::app::download`; these routes shape the answers.

use axum::Json;
use axum::extract::State;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use image2model_shared::AppContext;
use image2model_shared::app::download::{
    FormatDownload, download_format, download_formats, download_named, download_task,
};
use image2model_shared::domain::{JobId, ModelFormat};
use image2model_shared::web::extract::{ApiQuery, JobIdParam};
use image2model_shared::web::openapi::ApiErrors;
use image2model_shared::web::views::{Converting, signed_redirect};
use image2model_shared::web::{ApiError, Caller};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use views::{DownloadLink, ListedModel, ModelListing, RenderedImage};

mod views;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(download))
        .routes(routes!(download_all))
        .routes(routes!(download_file))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DownloadParams {
    /// `false` answers the signed URL as JSON instead of redirecting to it.
    redirect: Option<bool>,
    /// The format to download (default `glb`); one not made yet is converted on this first
    /// request, which answers 202 until it is ready.
    format: Option<ModelFormat>,
}

/// The model of one of the caller's completed jobs, in the format asked for: a redirect to a
/// short-lived signed URL (`DOWNLOAD_EXPIRY_SECONDS`), or that URL as JSON. A format not made yet
/// is converted by the worker on this first request: 202 with `Retry-After` until it is kept.
#[utoipa::path(
    get, path = "/api/v1/download/{job_id}", tag = "downloads", operation_id = "download",
    params(("job_id" = uuid::Uuid, Path, description = "The job's id"), DownloadParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 302, description = "To the signed URL of the model in the format asked for", headers(("Location" = String, description = "The signed URL"))),
        (status = 200, body = DownloadLink, description = "With `redirect=false`: the signed URL"),
        (status = 202, body = Converting, description = "The format is being converted; ask again after `Retry-After` seconds", headers(("Retry-After" = u64, description = "Seconds"))),
        ApiErrors,
    ),
)]
async fn download(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
    ApiQuery(params): ApiQuery<DownloadParams>,
) -> Result<Response, ApiError> {
    let format = params.format.unwrap_or(ModelFormat::Glb);
    let download = match download_format(&ctx, &caller, id, format).await? {
        FormatDownload::Ready(download) => download,
        FormatDownload::Converting { retry_after } => {
            return Ok(Converting::response(id, format, retry_after));
        }
    };
    let (result, signed) = (&download.result, &download.signed);
    if params.redirect == Some(false) {
        return Ok(Json(DownloadLink {
            format,
            url: signed.url.clone(),
            expires_at: signed.expires_at,
            filename: result.filename.clone(),
            size: result.size,
            content_type: result.content_type.clone(),
            preview_url: download.preview.as_ref().map(|p| p.signed.url.clone()),
        })
        .into_response());
    }
    signed_redirect(signed)
}

/// Every completed model of a job or batch (the old API's listing), each in every format made of
/// it so far: the GLB first, then the conversions asked for at creation or downloaded since.
#[utoipa::path(
    get, path = "/api/v1/download/{job_id}/all", tag = "downloads", operation_id = "download_all",
    params(("job_id" = uuid::Uuid, Path, description = "A job's or a batch's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ModelListing, description = "Every completed model, each with its signed URL"), ApiErrors),
)]
async fn download_all(
    State(ctx): State<AppContext>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<ModelListing>, ApiError> {
    let mut downloads = Vec::new();
    for download in download_task(&ctx, &caller, id).await? {
        downloads.extend(download_formats(&ctx, download).await?);
    }
    let files: Vec<_> = downloads
        .iter()
        .map(|d| ListedModel {
            job_id: d.job.job_id,
            format: ModelFormat::of_filename(&d.result.filename).unwrap_or(ModelFormat::Glb),
            filename: d.result.filename.clone(),
            size: d.result.size,
            mime_type: d.result.content_type.clone(),
            // Epoch seconds, as the old listing had it.
            created_time: d
                .job
                .completed_at
                .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0),
            rendered_image: d.preview.as_ref().map(|p| RenderedImage {
                url: p.signed.url.clone(),
                file_size: p.size,
                content_type: p.content_type.clone(),
            }),
        })
        .collect();
    let download_urls: Vec<String> = downloads.iter().map(|d| d.signed.url.clone()).collect();
    Ok(Json(ModelListing {
        job_id: id,
        total_files: download_urls.len(),
        files,
        download_urls,
    }))
}

/// The `{job_id}` and `{filename}` of the per-file route: the id must be a UUID, the name is
/// checked by the service.
struct NamedFile(JobId, String);

impl<S: Send + Sync> FromRequestParts<S> for NamedFile {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::InvalidJobId)?;
        let (mut id, mut name) = (None, None);
        for (key, value) in &params {
            match key {
                "job_id" => id = value.parse::<JobId>().ok(),
                "filename" => name = Some(value.to_owned()),
                _ => {}
            }
        }
        Ok(Self(
            id.ok_or(ApiError::InvalidJobId)?,
            name.unwrap_or_default(),
        ))
    }
}

/// One result file of a job or batch by its name (the old API's per-file route, used by
/// clients that build links themselves): a redirect to its signed URL. Names follow the old
/// rules: at most 255 characters, no `..`, `/`, `\`, NUL, CR or LF, and a model format's
/// extension (`.glb`, `.usdz`, `.obj.zip`, `.stl`; the old API's `.obj`). A conversion is found
/// once made (see `/download/{job_id}/all`).
#[utoipa::path(
    get, path = "/api/v1/download/{job_id}/{filename}", tag = "downloads", operation_id = "download_file",
    params(
        ("job_id" = uuid::Uuid, Path, description = "A job's or a batch's id"),
        ("filename" = String, Path, max_length = 255, pattern = r"^[^./\\\x00\r\n]+(\.[^./\\\x00\r\n]+)*\.([gG][lL][bB]|[oO][bB][jJ]|[uU][sS][dD][zZ]|[sS][tT][lL]|[zZ][iI][pP])$", description = "A result file's name, as `/download/{job_id}/all` lists it"),
    ),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 302, description = "To the signed URL of the file", headers(("Location" = String, description = "The signed URL"))),
        ApiErrors,
    ),
)]
async fn download_file(
    State(ctx): State<AppContext>,
    caller: Caller,
    NamedFile(id, filename): NamedFile,
) -> Result<Response, ApiError> {
    signed_redirect(&download_named(&ctx, &caller, id, &filename).await?.signed)
}

#[cfg(test)]
mod route_tests;
