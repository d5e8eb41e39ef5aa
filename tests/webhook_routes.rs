//! The webhook endpoints routes through the local server: what each answers, each refusal's
//! status and `error_code`, and that owners see only their own (the deliveries themselves are
//! tested in `shared/src/app/deliver.rs` and, against receivers verified by the Standard
//! Webhooks library, by `scripts/webhooks.sh`).

use image2model_tests::{ADMIN, ALICE, BOB, TestServer, assert_error};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn endpoints_are_registered_shown_rotated_tested_and_deleted_by_their_owner_only() {
    let server = TestServer::start_with(|c| c.limits.max_webhook_endpoints = 2).await;
    let (status, made) = server
        .post_json(
            "/api/v1/webhooks/endpoints",
            Some(ALICE),
            &json!({"url": "https://example.com/hooks", "events": ["job.completed"], "description": "shop"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    assert!(made["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(made["state"], "enabled");
    assert_eq!(made["events"], json!(["job.completed"]));
    let id = made["endpoint_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/webhooks/endpoints/{id}");

    let (status, shown) = server.get_json(&path, Some(ALICE)).await;
    assert_eq!(status, 200);
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown once: {shown}"
    );
    let (status, body) = server.get_json(&path, Some(BOB)).await;
    assert_error(status, &body, 404, "ENDPOINT_NOT_FOUND");
    let (_, theirs) = server
        .get_json("/api/v1/webhooks/endpoints", Some(BOB))
        .await;
    assert_eq!(theirs["endpoints"], json!([]));
    let (_, all) = server
        .get_json("/api/v1/webhooks/endpoints", Some(ADMIN))
        .await;
    assert_eq!(all["endpoints"].as_array().unwrap().len(), 1);

    let (status, rotated) = server
        .call(Method::POST, &format!("{path}/rotate-secret"), Some(ALICE))
        .await;
    assert_eq!(status, 200);
    assert_ne!(rotated["secret"], made["secret"]);
    assert!(rotated["previous_secret_expires_at"].is_string());

    let (status, ping) = server
        .call(Method::POST, &format!("{path}/test"), Some(ALICE))
        .await;
    assert_eq!(status, 202, "{ping}");
    assert_eq!(
        (ping["event_type"].as_str(), ping["status"].as_str()),
        (Some("ping"), Some("pending"))
    );
    let (status, listed) = server
        .get_json(&format!("{path}/deliveries?limit=5"), Some(ALICE))
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["deliveries"][0]["delivery_id"], ping["delivery_id"]);
    let retry = format!(
        "/api/v1/webhooks/deliveries/{}/retry",
        ping["delivery_id"].as_str().unwrap()
    );
    let (status, body) = server.call(Method::POST, &retry, Some(BOB)).await;
    assert_error(status, &body, 404, "DELIVERY_NOT_FOUND");

    let (status, body) = server.call(Method::DELETE, &path, Some(BOB)).await;
    assert_error(status, &body, 404, "ENDPOINT_NOT_FOUND");
    let response = server
        .request(Method::DELETE, &path, Some(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, body) = server.get_json(&path, Some(ALICE)).await;
    assert_error(status, &body, 404, "ENDPOINT_NOT_FOUND");
}

#[tokio::test]
async fn bad_ids_urls_events_limits_and_the_endpoint_limit_are_refused() {
    let server = TestServer::start_with(|c| c.limits.max_webhook_endpoints = 1).await;
    for path in [
        "/api/v1/webhooks/endpoints/not-an-id",
        "/api/v1/webhooks/endpoints/123/deliveries",
    ] {
        let (status, body) = server.get_json(path, Some(ALICE)).await;
        assert_error(status, &body, 400, "INVALID_ID");
    }
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v1/webhooks/deliveries/x/retry",
            Some(ALICE),
        )
        .await;
    assert_error(status, &body, 400, "INVALID_ID");
    for body in [
        json!({"url": "http://example.com/hooks"}),
        json!({"url": "https://10.1.2.3/hooks"}),
        json!({"url": "https://example.com/hooks", "events": []}),
        json!({"url": "https://example.com/hooks", "events": ["job.failed", "job.failed", "job.failed", "job.failed", "job.failed"]}),
        json!({"url": "https://example.com/hooks", "events": ["ping"]}),
        json!({"url": "https://example.com/hooks", "events": ["job.exploded"]}),
        json!({"url": "https://example.com/hooks", "secret": "mine"}),
        json!({"url": "https://example.com/hooks", "description": "x".repeat(501)}),
        json!({"url": format!("https://example.com/{}", "a".repeat(2048))}),
        json!({}),
    ] {
        let (status, answer) = server
            .post_json("/api/v1/webhooks/endpoints", Some(ALICE), &body)
            .await;
        assert_error(status, &answer, 422, "VALIDATION_ERROR");
    }
    let (status, body) = server
        .post_json(
            "/api/v1/webhooks/endpoints",
            None,
            &json!({"url": "https://example.com/"}),
        )
        .await;
    assert_error(status, &body, 401, "UNAUTHORIZED");
    let (status, made) = server
        .post_json(
            "/api/v1/webhooks/endpoints",
            Some(ALICE),
            &json!({"url": "https://example.com/a"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .post_json(
            "/api/v1/webhooks/endpoints",
            Some(ALICE),
            &json!({"url": "https://example.com/b"}),
        )
        .await;
    assert_error(status, &body, 409, "TOO_MANY_ENDPOINTS");
    let deliveries = format!(
        "/api/v1/webhooks/endpoints/{}/deliveries",
        made["endpoint_id"].as_str().unwrap()
    );
    for limit in ["0", "101", "x"] {
        let (status, body) = server
            .get_json(&format!("{deliveries}?limit={limit}"), Some(ALICE))
            .await;
        assert_error(status, &body, 422, "VALIDATION_ERROR");
    }
}
