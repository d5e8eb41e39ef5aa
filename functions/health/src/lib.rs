//! The health function: liveness, readiness that really exercises the store, object storage
//! and the queue (`image2model_shared::app::health`; a 503 envelope naming what failed), the
//! detailed report in the old API's shape (components, system figures, uptime), Prometheus
//! metrics and the OpenAPI document.

mod views;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use image2model_shared::AppContext;
use image2model_shared::app::health::{Check, check_all, check_store};
use image2model_shared::app::stats::{FalOverview, fal_overview, job_counts};
use image2model_shared::app::storage_usage::storage_disk;
use image2model_shared::domain::{JobStatus, models};
use image2model_shared::host::{self, round2};
use image2model_shared::metrics;
use image2model_shared::ports::QueueDepth;
use image2model_shared::web::ApiError;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use views::{
    Alive, Banner, CheckView, ComponentState, ComponentStatus, Detailed, DetailedComponent,
    DetailedNotReady, GeneratorKind, Liveness, LivenessProbe, NotReady, OpenApiDocument, Probe,
    Readiness, ReadyState, SystemView,
};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub const SERVICE: &str = "image2model";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The OpenAPI 3 description of every route.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The routes, each with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(root))
        .routes(routes!(health))
        .routes(routes!(api_health))
        .routes(routes!(liveness))
        .routes(routes!(readiness))
        .routes(routes!(database))
        .routes(routes!(detailed))
        .routes(routes!(prometheus))
        .routes(routes!(openapi))
}

fn alive() -> Json<Liveness> {
    Json(Liveness {
        status: Alive::Healthy,
        service: SERVICE,
        version: VERSION,
        timestamp: Utc::now(),
    })
}

/// The service's banner (the old API's root): name, version, where the description is.
#[utoipa::path(get, path = "/", tag = "health", responses((status = 200, body = Banner, description = "The banner")))]
async fn root() -> Json<Banner> {
    Json(Banner {
        message: "Image2Model API",
        version: VERSION,
        openapi: "/api/v1/openapi.json",
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Liveness, description = "The process answers")))]
async fn health() -> Json<Liveness> {
    alive()
}

/// Liveness (the old API's path).
#[utoipa::path(get, path = "/api/v1/health", tag = "health", responses((status = 200, body = Liveness, description = "The process answers")))]
async fn api_health() -> Json<Liveness> {
    alive()
}

/// Liveness probe (the old API's shape).
#[utoipa::path(get, path = "/api/v1/health/liveness", tag = "health", responses((status = 200, body = LivenessProbe, description = "The process answers")))]
async fn liveness() -> Json<LivenessProbe> {
    Json(LivenessProbe {
        status: Probe::Alive,
        timestamp: Utc::now(),
    })
}

/// A check as the old API listed components: `healthy` or `unhealthy`.
fn component_status(ok: bool) -> ComponentState {
    if ok {
        ComponentState::Healthy
    } else {
        ComponentState::Unhealthy
    }
}

/// The readiness report of `checks`.
fn readiness_report(checks: &[Check]) -> Readiness {
    let ready = checks.iter().all(|c| c.ok);
    Readiness {
        status: if ready {
            ReadyState::Ready
        } else {
            ReadyState::NotReady
        },
        service: SERVICE,
        version: VERSION,
        checks: check_views(checks),
        components: checks
            .iter()
            .map(|c| ComponentStatus {
                name: c.component,
                status: component_status(c.ok),
            })
            .collect(),
        timestamp: Utc::now(),
    }
}

fn check_views(checks: &[Check]) -> BTreeMap<&'static str, CheckView> {
    checks
        .iter()
        .map(|c| {
            let view = CheckView {
                ok: c.ok,
                latency_ms: c.elapsed_ms,
                error: (!c.ok).then_some("unavailable"),
            };
            (c.component, view)
        })
        .collect()
}

/// `report` when every check passed; otherwise the 503 envelope naming what failed, with the
/// report beside it.
fn when_ready<T: Serialize>(checks: &[Check], report: T) -> Result<Json<T>, ApiError> {
    let failed: Vec<&'static str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.component)
        .collect();
    if failed.is_empty() {
        return Ok(Json(report));
    }
    let report = match serde_json::to_value(report) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    Err(ApiError::NotReady { failed, report })
}

/// Readiness: the store, object storage and the queue each really exercised.
#[utoipa::path(get, path = "/api/v1/health/readiness", tag = "health", responses(
    (status = 200, body = Readiness, description = "`checks` has `store`, `object_storage` and `queue`"),
    (status = 503, body = NotReady, description = "The envelope, with the report's fields and `failed_components` beside it"),
))]
async fn readiness(State(ctx): State<AppContext>) -> Result<Json<Readiness>, ApiError> {
    let checks = check_all(&ctx).await;
    when_ready(&checks, readiness_report(&checks))
}

/// Readiness of the store alone.
#[utoipa::path(get, path = "/api/v1/health/db", tag = "health", responses(
    (status = 200, body = Readiness, description = "`checks` has `store`"),
    (status = 503, body = NotReady, description = "The envelope, with the report's fields and `failed_components` beside it"),
))]
async fn database(State(ctx): State<AppContext>) -> Result<Json<Readiness>, ApiError> {
    let checks = [check_store(&ctx).await];
    when_ready(&checks, readiness_report(&checks))
}

/// The old API's component list: each port with its measured latency, and FAL's breaker
/// when FAL is configured (`degraded` while it is open: jobs wait, nothing fails).
fn components(
    checks: &[Check],
    queue: Option<&QueueDepth>,
    fal: Option<&FalOverview>,
) -> Vec<DetailedComponent> {
    let mut list: Vec<DetailedComponent> = checks
        .iter()
        .map(|c| {
            let details = match (c.component, queue) {
                ("queue", Some(depth)) => json!(depth),
                _ if !c.ok => json!({ "error": "unavailable" }),
                _ => json!({}),
            };
            DetailedComponent {
                name: c.component,
                status: component_status(c.ok),
                response_time_ms: Some(round2(c.elapsed_ms)),
                details,
            }
        })
        .collect();
    if let Some(fal) = fal.filter(|f| f.configured) {
        let status = match fal.circuit_breaker.state {
            "closed" => ComponentState::Healthy,
            _ => ComponentState::Degraded,
        };
        list.push(DetailedComponent {
            name: "fal_api",
            status,
            response_time_ms: None,
            details: json!({
                "circuit_breaker": fal.circuit_breaker.state,
                "consecutive_failures": fal.circuit_breaker.consecutive_failures,
                "in_flight": fal.in_flight,
                "max_in_flight": fal.max_in_flight,
            }),
        });
    }
    list
}

/// The machine's figures, and its disk when objects are files on it.
fn system(ctx: &AppContext) -> SystemView {
    let disk = storage_disk(ctx);
    SystemView {
        host: host::host_figures(),
        disk_usage_percent: disk.map(|d| d.disk_usage_percent),
        disk_free_gb: disk.map(|d| d.disk_free_gb),
    }
}

/// Readiness plus the old API's detailed report: `components` (each measured), `system`
/// figures this platform has, `uptime_seconds`; and ours: jobs by status, the queue, models
/// and FAL's state.
#[utoipa::path(get, path = "/api/v1/health/detailed", tag = "health", responses(
    (status = 200, body = Detailed, description = "Every component, the machine, jobs, the queue and FAL"),
    (status = 503, body = DetailedNotReady, description = "The envelope, with the report's fields and `failed_components` beside it"),
))]
async fn detailed(State(ctx): State<AppContext>) -> Result<Json<Detailed>, ApiError> {
    let checks = check_all(&ctx).await;
    let jobs = job_counts(&ctx).await.ok().map(|(by_status, _)| by_status);
    let queue = ctx.queue.depth().await.ok();
    let fal = fal_overview(&ctx, Utc::now()).await.ok();
    let fal_configured = ctx.config.fal_configured();
    let components = components(&checks, queue.as_ref(), fal.as_ref());
    // The old API's overall status: the worst component.
    let status = [ComponentState::Unhealthy, ComponentState::Degraded]
        .into_iter()
        .find(|worst| components.iter().any(|c| c.status == *worst))
        .unwrap_or(ComponentState::Healthy);
    let report = Detailed {
        status,
        service: SERVICE,
        version: VERSION,
        checks: check_views(&checks),
        components,
        system: system(&ctx),
        uptime_seconds: round2(host::uptime().as_secs_f64()),
        jobs,
        queue,
        models_available: models::available_ids(fal_configured),
        generator: if fal_configured {
            GeneratorKind::Fal
        } else {
            GeneratorKind::Builtin
        },
        fal,
        timestamp: Utc::now(),
    };
    when_ready(&checks, report)
}

/// Prometheus metrics: requests by route template and status, latency, jobs by status, queue
/// depth, generation timings, FAL calls. The gauges are refreshed from the store and queue.
#[utoipa::path(get, path = "/api/v1/health/metrics", tag = "health", responses(
    (status = 200, body = String, content_type = "text/plain; version=0.0.4; charset=utf-8", description = "The text exposition format"),
))]
async fn prometheus(State(ctx): State<AppContext>) -> Response {
    let m = metrics::metrics();
    let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    if let Ok((counts, _)) = job_counts(&ctx).await {
        let active = JobStatus::ALL
            .iter()
            .filter(|status| !status.is_terminal())
            .filter_map(|status| counts.get(status.as_str()))
            .sum();
        m.active_jobs.set(gauge(active));
        for (status, n) in counts {
            m.jobs.with_label_values(&[status]).set(gauge(n));
        }
    }
    let host = host::host_figures();
    if let Some(cpu) = host.cpu_usage_percent {
        m.system_cpu.set(cpu);
    }
    if let Some(memory) = host.memory_usage_percent {
        m.system_memory.set(memory);
    }
    if let Some(disk) = storage_disk(&ctx) {
        m.system_disk.set(disk.disk_usage_percent);
    }
    if let Ok(depth) = ctx.queue.depth().await {
        for (state, n) in [
            ("visible", depth.visible),
            ("in_flight", depth.in_flight),
            ("delayed", depth.delayed),
            ("dead", depth.dead),
        ] {
            m.queue_messages.with_label_values(&[state]).set(gauge(n));
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

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health", responses(
    (status = 200, body = OpenApiDocument, description = "The OpenAPI 3.1 description of every route"),
))]
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[cfg(test)]
mod route_tests;
