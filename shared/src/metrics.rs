//! Process-wide Prometheus metrics, under the old API's names where it had them:
//! `http_requests_total{method,endpoint,status_code}` and `http_request_duration_seconds` by
//! route template (never the raw path), `active_jobs_total`, `fal_api_requests_total` and
//! `fal_api_request_duration_seconds`, the `system_*_usage_percent` gauges, the standard
//! `process_*` metrics; and ours: jobs by status, queue depth, generation timings. Gauges are
//! refreshed when scraped.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Duration;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub generation_seconds: HistogramVec,
    pub jobs: IntGaugeVec,
    pub active_jobs: IntGauge,
    pub queue_messages: IntGaugeVec,
    pub fal_calls: IntCounterVec,
    pub fal_call_seconds: HistogramVec,
    pub system_cpu: Gauge,
    pub system_memory: Gauge,
    pub system_disk: Gauge,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "http_requests_total",
            "HTTP requests by method, route template and status",
        ),
        &["method", "endpoint", "status_code"],
    )?;
    let request_seconds = HistogramVec::new(
        HistogramOpts::new("http_request_duration_seconds", "HTTP request latency"),
        &["method", "endpoint"],
    )?;
    let generation_seconds = HistogramVec::new(
        HistogramOpts::new(
            "image2model_generation_duration_seconds",
            "Time to generate a model",
        )
        .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        &["model_type", "outcome"],
    )?;
    let jobs = IntGaugeVec::new(Opts::new("image2model_jobs", "Jobs by status"), &["status"])?;
    let active_jobs = IntGauge::new("active_jobs_total", "Jobs queued or processing")?;
    let queue_messages = IntGaugeVec::new(
        Opts::new("image2model_queue_messages", "Work-queue messages by state"),
        &["state"],
    )?;
    let fal_calls = IntCounterVec::new(
        Opts::new(
            "fal_api_requests_total",
            "FAL.AI HTTP calls by operation and outcome (ok, or the error code)",
        ),
        &["operation", "outcome"],
    )?;
    let fal_call_seconds = HistogramVec::new(
        HistogramOpts::new(
            "fal_api_request_duration_seconds",
            "FAL.AI HTTP call latency by operation",
        ),
        &["operation"],
    )?;
    let system_cpu = Gauge::new(
        "system_cpu_usage_percent",
        "Busy share of the machine's CPUs since the previous scrape",
    )?;
    let system_memory = Gauge::new("system_memory_usage_percent", "Memory in use")?;
    let system_disk = Gauge::new(
        "system_disk_usage_percent",
        "Use of the file system holding the data directory (local server only)",
    )?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(request_seconds.clone()))?;
    registry.register(Box::new(generation_seconds.clone()))?;
    registry.register(Box::new(jobs.clone()))?;
    registry.register(Box::new(active_jobs.clone()))?;
    registry.register(Box::new(queue_messages.clone()))?;
    registry.register(Box::new(fal_calls.clone()))?;
    registry.register(Box::new(fal_call_seconds.clone()))?;
    registry.register(Box::new(system_cpu.clone()))?;
    registry.register(Box::new(system_memory.clone()))?;
    registry.register(Box::new(system_disk.clone()))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(Metrics {
        registry,
        requests,
        request_seconds,
        generation_seconds,
        jobs,
        active_jobs,
        queue_messages,
        fal_calls,
        fal_call_seconds,
        system_cpu,
        system_memory,
        system_disk,
    })
}

static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| build().expect("metric definitions are static and valid"));

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// A method as a label: the standard ones, and `OTHER` for whatever else a client sends (the
/// label set must stay bounded whatever arrives).
fn method_label(method: &str) -> &str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("OTHER")
}

pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let method = method_label(method);
    let m = metrics();
    m.requests
        .with_label_values(&[method, route, &status.to_string()])
        .inc();
    m.request_seconds
        .with_label_values(&[method, route])
        .observe(elapsed.as_secs_f64());
}

pub fn record_generation(model_type: &str, outcome: &str, elapsed: Duration) {
    metrics()
        .generation_seconds
        .with_label_values(&[model_type, outcome])
        .observe(elapsed.as_secs_f64());
}

pub fn record_fal_call(operation: &str, outcome: &str, elapsed: Duration) {
    let m = metrics();
    m.fal_calls.with_label_values(&[operation, outcome]).inc();
    m.fal_call_seconds
        .with_label_values(&[operation])
        .observe(elapsed.as_secs_f64());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded_whatever_method_arrives() {
        for i in 0..50 {
            record_request(&format!("X{i}"), "unmatched", 404, Duration::ZERO);
        }
        record_request("GET", "/health", 200, Duration::ZERO);
        let text = render();
        assert!(!text.contains("X7"), "a client's method became a label");
        assert!(
            text.contains(
                r#"http_requests_total{endpoint="unmatched",method="OTHER",status_code="404"} 50"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"method="GET""#));
    }
}
