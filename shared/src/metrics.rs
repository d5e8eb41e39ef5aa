//! Process-wide Prometheus metrics: requests by route template and status, request latency,
//! generator timings, FAL.AI calls by operation and outcome, and gauges (jobs by status, queue
//! depth) refreshed when scraped.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Duration;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub generation_seconds: HistogramVec,
    pub jobs: IntGaugeVec,
    pub queue_messages: IntGaugeVec,
    pub fal_calls: IntCounterVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new_custom(Some("image2model".to_owned()), None)?;
    let requests = IntCounterVec::new(
        Opts::new(
            "http_requests_total",
            "HTTP requests by route template and status",
        ),
        &["method", "route", "status"],
    )?;
    let request_seconds = HistogramVec::new(
        HistogramOpts::new("http_request_duration_seconds", "HTTP request latency"),
        &["route"],
    )?;
    let generation_seconds = HistogramVec::new(
        HistogramOpts::new("generation_duration_seconds", "Time to generate a model")
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        &["model_type", "outcome"],
    )?;
    let jobs = IntGaugeVec::new(Opts::new("jobs", "Jobs by status"), &["status"])?;
    let queue_messages = IntGaugeVec::new(
        Opts::new("queue_messages", "Work-queue messages by state"),
        &["state"],
    )?;
    let fal_calls = IntCounterVec::new(
        Opts::new(
            "fal_calls_total",
            "FAL.AI HTTP calls by operation and outcome (ok, or the error code)",
        ),
        &["operation", "outcome"],
    )?;
    registry.register(Box::new(fal_calls.clone()))?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(request_seconds.clone()))?;
    registry.register(Box::new(generation_seconds.clone()))?;
    registry.register(Box::new(jobs.clone()))?;
    registry.register(Box::new(queue_messages.clone()))?;
    Ok(Metrics {
        registry,
        requests,
        request_seconds,
        generation_seconds,
        jobs,
        queue_messages,
        fal_calls,
    })
}

static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| build().expect("metric definitions are static and valid"));

pub fn metrics() -> &'static Metrics {
    &METRICS
}

pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let m = metrics();
    m.requests
        .with_label_values(&[method, route, &status.to_string()])
        .inc();
    m.request_seconds
        .with_label_values(&[route])
        .observe(elapsed.as_secs_f64());
}

pub fn record_generation(model_type: &str, outcome: &str, elapsed: Duration) {
    metrics()
        .generation_seconds
        .with_label_values(&[model_type, outcome])
        .observe(elapsed.as_secs_f64());
}

pub fn record_fal_call(operation: &str, outcome: &str) {
    metrics()
        .fal_calls
        .with_label_values(&[operation, outcome])
        .inc();
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut out = Vec::new();
    if TextEncoder::new()
        .encode(&metrics().registry.gather(), &mut out)
        .is_err()
    {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}
