//! The health function's answers, as serialized and as the OpenAPI document names them.

use chrono::{DateTime, Utc};
use image2model_shared::app::create_job::ModelType;
use image2model_shared::app::stats::FalOverview;
use image2model_shared::host::HostFigures;
use image2model_shared::ports::QueueDepth;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{AllOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// The old API's root banner.
#[derive(Debug, Serialize, ToSchema)]
pub struct Banner {
    #[schema(example = "Image2Model API")]
    pub message: &'static str,
    pub version: &'static str,
    /// Where this document is.
    #[schema(example = "/api/v1/openapi.json")]
    pub openapi: &'static str,
}

/// What liveness says of a process that answers.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Alive {
    Healthy,
}

/// Liveness: the process answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    pub status: Alive,
    pub service: &'static str,
    pub version: &'static str,
    pub timestamp: DateTime<Utc>,
}

/// The old API's liveness probe.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Alive,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LivenessProbe {
    pub status: Probe,
    pub timestamp: DateTime<Utc>,
}

/// One dependency's check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    pub ok: bool,
    /// How long the check took.
    pub latency_ms: f64,
    /// `unavailable` when it failed (what the backend said goes to the log).
    #[schema(required = true)]
    pub error: Option<&'static str>,
}

/// A component's state as the old API listed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ComponentState {
    Healthy,
    Degraded,
    Unhealthy,
}

/// A component in the readiness list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentStatus {
    pub name: &'static str,
    pub status: ComponentState,
}

/// Whether every dependency answered.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyState {
    Ready,
    NotReady,
}

/// Readiness: each dependency really exercised (also the report beside a 503's envelope).
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: ReadyState,
    pub service: &'static str,
    pub version: &'static str,
    /// By component: `store`, `object_storage`, `queue`.
    pub checks: BTreeMap<&'static str, CheckView>,
    pub components: Vec<ComponentStatus>,
    pub timestamp: DateTime<Utc>,
}

/// A component of the detailed report, with what was measured of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetailedComponent {
    /// `store`, `object_storage`, `queue`, and `fal_api` when FAL is configured.
    pub name: &'static str,
    pub status: ComponentState,
    /// Null for FAL, whose state is its breaker's.
    #[schema(required = true)]
    pub response_time_ms: Option<f64>,
    /// The queue's depth, FAL's breaker, or `{error}` for a failed check.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// The machine, and its disk when objects are files on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemView {
    #[serde(flatten)]
    pub host: HostFigures,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub disk_usage_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub disk_free_gb: Option<f64>,
}

/// What generates models in this deployment.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorKind {
    Builtin,
    Fal,
}

/// The old API's detailed report, with ours beside it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Detailed {
    /// The worst component's state.
    pub status: ComponentState,
    pub service: &'static str,
    pub version: &'static str,
    pub checks: BTreeMap<&'static str, CheckView>,
    pub components: Vec<DetailedComponent>,
    pub system: SystemView,
    pub uptime_seconds: f64,
    /// Jobs by status; null when the store did not answer.
    #[schema(required = true)]
    pub jobs: Option<BTreeMap<&'static str, u64>>,
    #[schema(required = true)]
    pub queue: Option<QueueDepth>,
    /// The model types this deployment runs.
    #[schema(value_type = Vec<ModelType>)]
    pub models_available: Vec<&'static str>,
    pub generator: GeneratorKind,
    #[schema(required = true)]
    pub fal: Option<FalOverview>,
    pub timestamp: DateTime<Utc>,
}

/// An OpenAPI 3.1 document (this one).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Describes the document served verbatim.
pub struct OpenApiDocument {
    #[schema(example = "3.1.0")]
    openapi: String,
    #[schema(value_type = Object)]
    info: serde_json::Value,
    #[schema(value_type = Object)]
    paths: serde_json::Value,
    #[schema(value_type = Object)]
    components: serde_json::Value,
}

/// A failed check's 503: the envelope (`Error503`), the report beside it, and the components
/// that failed.
fn not_ready(report: &str) -> RefOr<Schema> {
    let failed = ObjectBuilder::new()
        .property(
            "failed_components",
            ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)),
        )
        .required("failed_components");
    AllOfBuilder::new()
        .item(Ref::from_schema_name("Error503"))
        .item(Ref::from_schema_name(report))
        .item(failed)
        .description(Some(format!(
            "A failed check: the 503 envelope with the `{report}` report beside it"
        )))
        .into()
}

/// The 503 of readiness and of the store's check.
pub struct NotReady;

impl PartialSchema for NotReady {
    fn schema() -> RefOr<Schema> {
        not_ready("Readiness")
    }
}

impl ToSchema for NotReady {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("Readiness".to_owned(), Readiness::schema()));
        <Readiness as ToSchema>::schemas(schemas);
    }
}

/// The 503 of the detailed report.
pub struct DetailedNotReady;

impl PartialSchema for DetailedNotReady {
    fn schema() -> RefOr<Schema> {
        not_ready("Detailed")
    }
}

impl ToSchema for DetailedNotReady {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("Detailed".to_owned(), Detailed::schema()));
        <Detailed as ToSchema>::schemas(schemas);
    }
}
