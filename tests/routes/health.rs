//! The health function: metrics by route template, and readiness under a thousand concurrent
//! probes.

use image2model_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_jobs_by_status() {
    let server = TestServer::start().await;
    let id = uuid::Uuid::new_v4();
    server
        .get_json(&format!("/api/v1/jobs/{id}"), Some(ALICE))
        .await;
    let text = server
        .request(Method::GET, "/api/v1/health/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The registry is per process and other tests run beside this one: count at least one.
    let counted = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"http_requests_total{endpoint="/api/v1/jobs/{job_id}",method="GET",status_code="404"} "#))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(counted >= Some(1), "{text}");
    assert!(
        !text.contains(&id.to_string()),
        "a raw path in a label: {text}"
    );
    assert!(
        text.contains(r#"image2model_jobs{status="queued"} 0"#),
        "{text}"
    );
    // The old API's names, and the standard process metrics.
    for name in [
        "http_request_duration_seconds_bucket{endpoint=\"/api/v1/jobs/{job_id}\",method=\"GET\",",
        "active_jobs_total 0",
        "system_cpu_usage_percent ",
        "system_memory_usage_percent ",
        "system_disk_usage_percent ",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
    }
    let memory: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("system_memory_usage_percent "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(memory > 0.0 && memory <= 100.0, "{memory}");
    assert!(
        text.contains("image2model_queue_messages{state=\"visible\"}"),
        "{text}"
    );
}

/// Health probes run together as a load balancer and monitors run them: 1,000 at 100 at once,
/// over every probe that exercises object storage, and not one reports a healthy store down.
#[tokio::test]
async fn a_thousand_concurrent_probes_never_report_a_healthy_store_down() {
    use futures_util::StreamExt;
    let server = TestServer::start().await;
    let probes = [
        "/api/v1/health/readiness",
        "/api/v1/health/detailed",
        "/api/v1/admin/system-health",
    ];
    let answers: Vec<(String, StatusCode, Value)> = futures_util::stream::iter(0..1000)
        .map(|n| {
            let path = probes[n % probes.len()];
            let request = server.request(Method::GET, path, Some(ADMIN));
            async move {
                let (status, body) = json_of(request.send().await.unwrap()).await;
                (path.to_owned(), status, body)
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let false_alarms: Vec<_> = answers
        .iter()
        .filter(|(_, status, body)| {
            *status != StatusCode::OK || body.to_string().contains("unhealthy")
        })
        .collect();
    assert_eq!(answers.len(), 1000);
    println!("probes: 1000 at 100 at once, {} false", false_alarms.len());
    assert!(
        false_alarms.is_empty(),
        "{} false: {:?}",
        false_alarms.len(),
        false_alarms.first()
    );
    let left = std::fs::read_dir(server.dir.path().join("objects").join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "probe objects left behind");
}
