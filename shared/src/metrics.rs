//! Process-wide Prometheus metrics, under the old API's names where it had them:
//! `http_requests_total{method,endpoint,status_code}` and `http_request_duration_seconds` by
//! route template (never the raw path), `active_jobs_total`, `fal_api_requests_total` and
//! `fal_api_request_duration_seconds`, the `system_*_usage_percent` gauges, the standard
//! `process_*` metrics; and ours: jobs by status, queue depth, generation timings. Gauges are
//! refreshed when scraped.
//!
//! On Lambda a Prometheus registry would hold one process's counts and nobody would scrape it,
//! so every recorded event is also written as a CloudWatch Embedded Metric Format line on
//! stdout (the function's log group), which CloudWatch turns into metrics in the `image2model`
//! namespace with no agent and no API call. A small writer, because the documents are a few
//! fixed shapes and the `metrics` facade would add a second metrics system beside Prometheus.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::cell::RefCell;
use std::collections::HashMap;
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

/// The CloudWatch namespace of the EMF metrics.
pub const EMF_NAMESPACE: &str = "image2model";

/// The function's name on Lambda: EMF is written only there.
static LAMBDA_FUNCTION: LazyLock<Option<String>> =
    LazyLock::new(|| std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok());

/// One EMF document: `metrics` (name, unit, value) under every dimension set of `dimensions`
/// (each a list of names whose values are in `values`).
pub fn emf_document(
    timestamp_ms: i64,
    dimension_sets: &[&[&str]],
    values: &[(&str, &str)],
    metrics: &[(&str, &str, f64)],
) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": EMF_NAMESPACE,
                "Dimensions": dimension_sets,
                "Metrics": metrics
                    .iter()
                    .map(|(name, unit, _)| serde_json::json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        },
    });
    for (name, value) in values {
        doc[*name] = serde_json::json!(value);
    }
    for (name, _, value) in metrics {
        doc[*name] = serde_json::json!(value);
    }
    doc
}

/// Writes an EMF line on Lambda, per function and per `dimension` (when there is one).
fn emit(dimension: Option<(&str, &str)>, metrics: &[(&str, &str, f64)]) {
    let Some(function) = LAMBDA_FUNCTION.as_deref() else {
        return;
    };
    let mut values = vec![("FunctionName", function)];
    let with_dimension: Vec<&str>;
    let sets: Vec<&[&str]> = match dimension {
        Some((name, value)) => {
            values.push((name, value));
            with_dimension = vec!["FunctionName", name];
            vec![&["FunctionName"], &with_dimension]
        }
        None => vec![&["FunctionName"]],
    };
    let doc = emf_document(
        chrono::Utc::now().timestamp_millis(),
        &sets,
        &values,
        metrics,
    );
    println!("{doc}");
}

static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| build().expect("metric definitions are static and valid"));

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// A method as a label: the standard ones, and `OTHER` for whatever else a client sends (the
/// label set must stay bounded whatever arrives).
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("OTHER")
}

/// The series one kind of answer is counted in: `http_requests_total` and
/// `http_request_duration_seconds` for a method, route and status.
struct RequestSeries {
    route: Box<str>,
    count: IntCounter,
    seconds: Histogram,
}

thread_local! {
    /// Each thread's series by method, route template (where its text lives: a router's
    /// templates live as long as it does; the text is compared on each use all the same) and
    /// status, so that an answer is counted without hashing its labels into the registry.
    /// Bounded: methods, templates and statuses are.
    static REQUEST_SERIES: RefCell<HashMap<(&'static str, usize, u16), RequestSeries>> =
        RefCell::default();
}

pub fn record_request(
    method: &http::Method,
    route: &str,
    status: http::StatusCode,
    elapsed: Duration,
) {
    let method = method_label(method.as_str());
    REQUEST_SERIES.with_borrow_mut(|series| {
        let key = (method, route.as_ptr() as usize, status.as_u16());
        let known = series.get(&key).filter(|known| *known.route == *route);
        let known = match known {
            Some(known) => known,
            None => {
                let m = metrics();
                series.insert(
                    key,
                    RequestSeries {
                        route: route.into(),
                        count: m
                            .requests
                            .with_label_values(&[method, route, status.as_str()]),
                        seconds: m.request_seconds.with_label_values(&[method, route]),
                    },
                );
                &series[&key]
            }
        };
        known.count.inc();
        known.seconds.observe(elapsed.as_secs_f64());
    });
    emit(
        Some(("Route", route)),
        &[
            ("Requests", "Count", 1.0),
            (
                "ServerErrors",
                "Count",
                f64::from(u8::from(status.is_server_error())),
            ),
            ("Latency", "Milliseconds", elapsed.as_secs_f64() * 1000.0),
        ],
    );
}

/// A job ended: `completed`, or failed with `code`.
pub fn record_job_end(model_type: &str, completed: bool) {
    emit(
        Some(("ModelType", model_type)),
        &[
            ("JobsCompleted", "Count", f64::from(u8::from(completed))),
            ("JobsFailed", "Count", f64::from(u8::from(!completed))),
        ],
    );
}

/// FAL's circuit breaker opened.
pub fn record_breaker_opened() {
    emit(None, &[("FalBreakerOpened", "Count", 1.0)]);
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
    emit(
        Some(("Operation", operation)),
        &[
            ("FalCalls", "Count", 1.0),
            (
                "FalCallErrors",
                "Count",
                f64::from(u8::from(outcome != "ok")),
            ),
            (
                "FalCallLatency",
                "Milliseconds",
                elapsed.as_secs_f64() * 1000.0,
            ),
        ],
    );
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

    /// The shape CloudWatch's Embedded Metric Format specification requires: `_aws` with a
    /// millisecond timestamp and one directive naming the namespace, dimension sets whose every
    /// name has a string value in the document, metrics with units whose values are numbers.
    #[test]
    fn emf_documents_follow_the_specification() {
        let doc = emf_document(
            1_795_000_000_000,
            &[&["FunctionName"], &["FunctionName", "ModelType"]],
            &[("FunctionName", "stack-worker"), ("ModelType", "tripo3d")],
            &[
                ("JobsCompleted", "Count", 1.0),
                ("JobsFailed", "Count", 0.0),
            ],
        );
        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], 1_795_000_000_000_i64);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], EMF_NAMESPACE);
        for set in directive["Dimensions"].as_array().unwrap() {
            for name in set.as_array().unwrap() {
                assert!(doc[name.as_str().unwrap()].is_string(), "{name}");
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(["Count", "Milliseconds"].contains(&metric["Unit"].as_str().unwrap()));
            assert!(doc[metric["Name"].as_str().unwrap()].is_number());
        }
    }

    #[test]
    fn labels_stay_bounded_whatever_method_arrives() {
        for i in 0..50 {
            record_request(
                &http::Method::from_bytes(format!("X{i}").as_bytes()).unwrap(),
                "unmatched",
                http::StatusCode::NOT_FOUND,
                Duration::ZERO,
            );
        }
        record_request(
            &http::Method::GET,
            "/health",
            http::StatusCode::OK,
            Duration::ZERO,
        );
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

    #[test]
    fn a_template_is_counted_under_its_own_text_wherever_it_lives() {
        let count = |route: &str| {
            render()
                .lines()
                .find(|l| {
                    l.starts_with("http_requests_total{")
                        && l.contains(&format!(r#"endpoint="{route}""#))
                        && l.contains(r#"status_code="418""#)
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // Two templates at one address, one after the other, as a router dropped and another
        // built in its place would have them.
        let mut route = String::from("/series/a");
        for _ in 0..3 {
            record_request(
                &http::Method::PUT,
                &route,
                http::StatusCode::IM_A_TEAPOT,
                Duration::ZERO,
            );
        }
        route.replace_range(8.., "b");
        record_request(
            &http::Method::PUT,
            &route,
            http::StatusCode::IM_A_TEAPOT,
            Duration::ZERO,
        );
        assert_eq!((count("/series/a"), count("/series/b")), (3, 1));
    }
}
