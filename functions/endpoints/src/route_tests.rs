//! The webhook endpoints function's routes, in-process on the embedded adapters.

use super::router;
use axum::http::{Method, StatusCode};
use image2model_shared::AppContext;
use image2model_shared::app::testing::{ALICE_KEY, BOB_KEY, context};
use image2model_shared::web::testing::{Answer, call, request};
use serde_json::{Value, json};

const ENDPOINTS: &str = "/api/v1/webhooks/endpoints";

async fn send(
    t: &AppContext,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> Answer {
    call(router(t), t, request(method, path, Some(key), body)).await
}

#[tokio::test]
async fn an_owner_registers_lists_reads_and_deletes_an_endpoint_and_no_one_else_sees_it() {
    let t = context();
    let hook = json!({"url": "https://hooks.example.com/image2model", "events": ["job.completed"]});
    let created = send(&t, Method::POST, ENDPOINTS, ALICE_KEY, Some(hook)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(
        created.body["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert_eq!(created.body["events"], json!(["job.completed"]));
    let one = format!(
        "{ENDPOINTS}/{}",
        created.body["endpoint_id"].as_str().unwrap()
    );

    let listed = send(&t, Method::GET, ENDPOINTS, ALICE_KEY, None).await;
    assert_eq!(listed.body["endpoints"].as_array().unwrap().len(), 1);
    assert!(
        listed.body["endpoints"][0].get("secret").is_none(),
        "the secret is shown once"
    );
    let read = send(&t, Method::GET, &one, ALICE_KEY, None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["url"], "https://hooks.example.com/image2model");

    let bobs = send(&t, Method::GET, ENDPOINTS, BOB_KEY, None).await;
    assert_eq!(bobs.body["endpoints"], json!([]));
    send(&t, Method::GET, &one, BOB_KEY, None)
        .await
        .assert_error(404, "ENDPOINT_NOT_FOUND");
    send(&t, Method::DELETE, &one, BOB_KEY, None)
        .await
        .assert_error(404, "ENDPOINT_NOT_FOUND");

    let deleted = send(&t, Method::DELETE, &one, ALICE_KEY, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    send(&t, Method::GET, &one, ALICE_KEY, None)
        .await
        .assert_error(404, "ENDPOINT_NOT_FOUND");
}

#[tokio::test]
async fn internal_plain_or_malformed_urls_and_unknown_events_are_refused() {
    let t = context();
    for url in [
        "http://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "not a url",
    ] {
        let body = json!({"url": url});
        send(&t, Method::POST, ENDPOINTS, ALICE_KEY, Some(body))
            .await
            .assert_error(422, "VALIDATION_ERROR");
    }
    let body = json!({"url": "https://hooks.example.com/x", "events": ["job.exploded"]});
    send(&t, Method::POST, ENDPOINTS, ALICE_KEY, Some(body))
        .await
        .assert_error(422, "VALIDATION_ERROR");
    let listed = send(&t, Method::GET, ENDPOINTS, ALICE_KEY, None).await;
    assert_eq!(
        listed.body["endpoints"],
        json!([]),
        "nothing was registered"
    );
}

#[tokio::test]
async fn a_delivery_that_does_not_exist_cannot_be_sent_again() {
    let t = context();
    let path = format!(
        "/api/v1/webhooks/deliveries/{}/retry",
        image2model_shared::domain::DeliveryId::new()
    );
    send(&t, Method::POST, &path, ALICE_KEY, None)
        .await
        .assert_error(404, "DELIVERY_NOT_FOUND");
    send(
        &t,
        Method::POST,
        "/api/v1/webhooks/deliveries/x/retry",
        ALICE_KEY,
        None,
    )
    .await
    .assert_error(400, "INVALID_ID");
}
