//! The health function: liveness, readiness that really exercises the store, object storage
//! and the queue (503 naming what failed), Prometheus metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use image2model_shared::AppContext;
use image2model_shared::domain::models::{self, CATALOG};
use image2model_shared::metrics;
use serde_json::{Value, json};
use std::time::Instant;

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

/// One component check: name, passed, latency and the error if any.
struct Check {
    component: &'static str,
    error: Option<String>,
    elapsed_ms: f64,
}

async fn check<F, E>(component: &'static str, probe: F) -> Check
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let error = probe.await.err().map(|e| e.to_string());
    Check {
        component,
        error,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

async fn store_check(ctx: &AppContext) -> Check {
    check("store", ctx.store.ping()).await
}

async fn all_checks(ctx: &AppContext) -> Vec<Check> {
    vec![
        store_check(ctx).await,
        check("object_storage", ctx.storage.ping()).await,
        check("queue", async { ctx.queue.depth().await.map(drop) }).await,
    ]
}

fn checks_response(checks: &[Check], extra: Value) -> Response {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.error.is_some())
        .map(|c| c.component)
        .collect();
    let details: serde_json::Map<String, Value> = checks
        .iter()
        .map(|c| {
            let v =
                json!({ "ok": c.error.is_none(), "latency_ms": c.elapsed_ms, "error": c.error });
            (c.component.to_owned(), v)
        })
        .collect();
    let mut body = json!({
        "status": if failed.is_empty() { "ready" } else { "unavailable" },
        "service": SERVICE,
        "version": VERSION,
        "checks": details,
        "timestamp": Utc::now(),
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    if failed.is_empty() {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        body["error"] = json!(true);
        body["error_code"] = json!("SERVICE_UNAVAILABLE");
        body["message"] = json!(format!("unavailable: {}", failed.join(", ")));
        body["failed_components"] = json!(failed);
        body["request_id"] = json!(image2model_shared::http::current_request_id());
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn readiness(State(ctx): State<AppContext>) -> Response {
    checks_response(&all_checks(&ctx).await, json!({}))
}

async fn database(State(ctx): State<AppContext>) -> Response {
    checks_response(&[store_check(&ctx).await], json!({}))
}

async fn detailed(State(ctx): State<AppContext>) -> Response {
    let checks = all_checks(&ctx).await;
    let jobs = ctx.store.count_jobs_by_status().await.ok().map(|counts| {
        counts
            .iter()
            .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
            .collect::<serde_json::Map<_, _>>()
    });
    let queue = ctx.queue.depth().await.ok();
    let fal = image2model_shared::fal::overview(&ctx, chrono::Utc::now())
        .await
        .ok();
    let available: Vec<&str> = CATALOG
        .iter()
        .filter(|m| models::is_available(m, ctx.config.fal_configured()))
        .map(|m| m.id)
        .collect();
    checks_response(
        &checks,
        json!({
            "jobs": jobs,
            "queue": queue,
            "models_available": available,
            "generator": if ctx.config.fal_configured() { "fal" } else { "builtin" },
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
