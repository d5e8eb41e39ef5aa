//! The health function's routes, in-process on the embedded adapters.

use super::router;
use axum::http::{Method, StatusCode};
use image2model_shared::app::testing::context;
use image2model_shared::web::testing::{Answer, call, request};
use serde_json::json;

async fn get(t: &image2model_shared::AppContext, path: &str) -> Answer {
    call(router(), t, request(Method::GET, path, None, None)).await
}

#[tokio::test]
async fn health_routes_answer_with_request_ids_and_security_headers() {
    let t = context();
    for path in ["/health", "/api/v1/health", "/api/v1/health/"] {
        let answer = get(&t, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(answer.body["status"], "healthy");
        assert_eq!(answer.body["service"], "image2model");
        assert!(answer.body["version"].is_string() && answer.body["timestamp"].is_string());
        assert!(answer.headers.contains_key("x-request-id"));
        assert_eq!(answer.headers["x-content-type-options"], "nosniff");
        assert_eq!(answer.headers["x-frame-options"], "DENY");
    }
    for (path, ready) in [
        ("/api/v1/health/readiness", "ready"),
        ("/api/v1/health/db", "ready"),
        ("/api/v1/health/detailed", "healthy"),
    ] {
        let answer = get(&t, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        assert_eq!(answer.body["status"], ready);
        assert_eq!(answer.body["checks"]["store"]["ok"], true);
    }
    let alive = get(&t, "/api/v1/health/liveness").await;
    assert_eq!(alive.status, StatusCode::OK);
    assert_eq!(alive.body["status"], "alive", "the old API's liveness");
    assert!(alive.body["timestamp"].is_string());
    let detailed = get(&t, "/api/v1/health/detailed").await.body;
    assert_eq!(detailed["checks"]["queue"]["ok"], true);
    assert_eq!(detailed["checks"]["object_storage"]["ok"], true);
    assert_eq!(detailed["generator"], "builtin");

    // A client-chosen plain request id is echoed; a hostile one is replaced.
    for (sent, echoed) in [("trace-abc-123", true), ("a b<script>", false)] {
        let mut asked = request(Method::GET, "/health", None, None);
        asked
            .headers_mut()
            .insert("x-request-id", sent.parse().unwrap());
        let answer = call(router(), &t, asked).await;
        assert_eq!(answer.headers["x-request-id"] == sent, echoed, "{sent}");
    }
}

#[tokio::test]
async fn readiness_names_the_failed_component() {
    let t = context();
    let objects_tmp = t.config.local.data_dir.join("objects").join("tmp");
    std::fs::remove_dir_all(objects_tmp).unwrap();
    let answer = get(&t, "/api/v1/health/readiness").await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["failed_components"], json!(["object_storage"]));
    assert_eq!(answer.body["error_code"], "SERVICE_UNAVAILABLE");
    assert_eq!(answer.body["checks"]["store"]["ok"], true);
    // The store alone is still fine.
    assert_eq!(get(&t, "/api/v1/health/db").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_document_and_the_metrics_are_served() {
    let t = context();
    let document = get(&t, "/api/v1/openapi.json").await;
    assert_eq!(document.status, StatusCode::OK);
    assert!(
        document.body["openapi"]
            .as_str()
            .unwrap()
            .starts_with("3.1")
    );
    assert!(document.body["paths"]["/api/v1/jobs"].is_object());
    let metrics = get(&t, "/api/v1/health/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8(metrics.raw.to_vec()).unwrap();
    assert!(text.contains("active_jobs_total 0"), "{text}");
}
