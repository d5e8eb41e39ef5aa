//! The old API's `/api/v1/logs/*` routes, removed on purpose: they read the Python process's
//! own log files and let anyone delete them. Logs now go to stdout as JSON (CloudWatch Logs on
//! AWS); each old path answers 410 `GONE` naming the replacement, to the admin key only.

use axum::extract::Path;
use image2model_shared::AppContext;
use image2model_shared::web::openapi::ApiErrors;
use image2model_shared::web::{Admin, ApiError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const REPLACEMENT: &str = "logs are JSON lines on stdout (CloudWatch Logs on AWS); the README's \
     section 'Logs' gives a CloudWatch Logs Insights query for each old report";

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(gone_report, gone_action))
        .routes(routes!(gone_daily_summary))
        .routes(routes!(gone_cleanup))
}

fn gone() -> ApiError {
    ApiError::Gone {
        replacement: REPLACEMENT,
    }
}

/// The old reports (`statistics`, `analyze`, `types`, `health`): 410, see `details.replacement`.
#[utoipa::path(
    get, path = "/api/v1/logs/{report}", tag = "admin", operation_id = "logs_report_gone",
    params(("report" = String, Path, description = "`statistics`, `analyze`, `types` or `health`")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 410, body = image2model_shared::web::error::ErrorBody, description = "`GONE`, naming the replacement"), ApiErrors),
)]
async fn gone_report(_: Admin, Path(_report): Path<String>) -> ApiError {
    gone()
}

/// The old actions (`rotate`, `export`): 410, see `details.replacement`.
#[utoipa::path(
    post, path = "/api/v1/logs/{report}", tag = "admin", operation_id = "logs_action_gone",
    params(("report" = String, Path, description = "`rotate` or `export`")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 410, body = image2model_shared::web::error::ErrorBody, description = "`GONE`, naming the replacement"), ApiErrors),
)]
async fn gone_action(_: Admin, Path(_report): Path<String>) -> ApiError {
    gone()
}

/// The old daily summary: 410, see `details.replacement`.
#[utoipa::path(
    get, path = "/api/v1/logs/summary/daily", tag = "admin", operation_id = "logs_daily_summary_gone",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 410, body = image2model_shared::web::error::ErrorBody, description = "`GONE`, naming the replacement"), ApiErrors),
)]
async fn gone_daily_summary(_: Admin) -> ApiError {
    gone()
}

/// The old deletion of log files: 410, see `details.replacement`.
#[utoipa::path(
    delete, path = "/api/v1/logs/cleanup", tag = "admin", operation_id = "logs_cleanup_gone",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 410, body = image2model_shared::web::error::ErrorBody, description = "`GONE`, naming the replacement"), ApiErrors),
)]
async fn gone_cleanup(_: Admin) -> ApiError {
    gone()
}
