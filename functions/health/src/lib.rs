//! The health function: liveness, readiness that really exercises the store, object storage
//! and the queue (`image2model_shared::app::health`; a 503 envelope naming what failed),
//! Prometheus metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use image2model_shared::AppContext;
use image2model_shared::app::health::{Check, check_all, check_store};
use image2model_shared::app::stats::{fal_overview, job_counts};
use image2model_shared::domain::models;
use image2model_shared::metrics;
use image2model_shared::web::ApiError;
use serde_json::{Map, Value, json};

pub const SERVICE: &str = "image2model";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The OpenAPI 3 description of every route.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub fn router() -> Router<AppContext> {
    Router::new()
        .route("/health", get(liveness))
        .route("/api/v1/health", get(liveness))
        .route("/api/v1/health/liveness", get(liveness))
        .route("/api/v1/health/readiness", get(readiness))
        .route("/api/v1/health/db", get(database))
        .route("/api/v1/health/detailed", get(detailed))
        .route("/api/v1/health/metrics", get(prometheus))
        .route("/api/v1/openapi.json", get(openapi))
}

async fn liveness() -> Json<Value> {
    Json(
        json!({ "status": "healthy", "service": SERVICE, "version": VERSION, "timestamp": Utc::now() }),
    )
}

/// The readiness body of `checks`: 200 when every component answered, otherwise the 503
/// envelope naming what failed, with the same report beside it.
fn checks_response(checks: &[Check], extra: Value) -> Result<Json<Value>, ApiError> {
    let failed: Vec<&'static str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.component)
        .collect();
    let details: Map<String, Value> = checks
        .iter()
        .map(|c| {
            let error = (!c.ok).then_some("unavailable");
            let v = json!({ "ok": c.ok, "latency_ms": c.elapsed_ms, "error": error });
            (c.component.to_owned(), v)
        })
        .collect();
    let mut report = Map::from_iter([
        (
            "status".to_owned(),
            json!(if failed.is_empty() {
                "ready"
            } else {
                "unavailable"
            }),
        ),
        ("service".to_owned(), json!(SERVICE)),
        ("version".to_owned(), json!(VERSION)),
        ("checks".to_owned(), Value::Object(details)),
        ("timestamp".to_owned(), json!(Utc::now())),
    ]);
    if let Value::Object(extra) = extra {
        report.extend(extra);
    }
    if failed.is_empty() {
        Ok(Json(Value::Object(report)))
    } else {
        Err(ApiError::NotReady { failed, report })
    }
}

async fn readiness(State(ctx): State<AppContext>) -> Result<Json<Value>, ApiError> {
    checks_response(&check_all(&ctx).await, json!({}))
}

async fn database(State(ctx): State<AppContext>) -> Result<Json<Value>, ApiError> {
    checks_response(&[check_store(&ctx).await], json!({}))
}

async fn detailed(State(ctx): State<AppContext>) -> Result<Json<Value>, ApiError> {
    let checks = check_all(&ctx).await;
    let jobs = job_counts(&ctx).await.ok().map(|(by_status, _)| by_status);
    let queue = ctx.queue.depth().await.ok();
    let fal = fal_overview(&ctx, Utc::now()).await.ok();
    let fal_configured = ctx.config.fal_configured();
    checks_response(
        &checks,
        json!({
            "jobs": jobs,
            "queue": queue,
            "models_available": models::available_ids(fal_configured),
            "generator": if fal_configured { "fal" } else { "builtin" },
            "fal": fal,
        }),
    )
}

/// Refreshes the gauges from the store and queue, then renders every metric.
async fn prometheus(State(ctx): State<AppContext>) -> Response {
    let m = metrics::metrics();
    if let Ok(counts) = ctx.store.count_jobs_by_status().await {
        for (status, n) in counts {
            m.jobs
                .with_label_values(&[status.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    if let Ok(depth) = ctx.queue.depth().await {
        for (state, n) in [
            ("visible", depth.visible),
            ("in_flight", depth.in_flight),
            ("delayed", depth.delayed),
            ("dead", depth.dead),
        ] {
            m.queue_messages
                .with_label_values(&[state])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
