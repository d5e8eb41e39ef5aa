//! The webhook function's route, in-process on the embedded adapters.

use crate::router;
use crate::signature::{SignatureVerifier, signed_message};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::Utc;
use ed25519_dalek::{Signer, SigningKey};
use image2model_shared::app::enqueue::WorkStep;
use image2model_shared::app::testing::{TestContext, context, queued_job, ready_file, take_queued};
use image2model_shared::domain::models::RELIEF_MODEL;
use image2model_shared::domain::{FalRequest, GenerationJob};
use image2model_shared::web::testing::{Answer, call};
use serde_json::json;
use std::sync::Arc;

const FAL: [u8; 32] = [3; 32];

/// A job recorded as submitted to FAL as `request_id`.
async fn submitted(t: &TestContext, request_id: &str) -> GenerationJob {
    let job = queued_job(t, &ready_file(t, "alice").await, RELIEF_MODEL).await;
    let now = Utc::now();
    let running = job.start(now).unwrap();
    t.store.update_job(&running).await.unwrap();
    let request = FalRequest {
        request_id: request_id.to_owned(),
        status_url: format!("https://queue.fal.run/r/{request_id}/status"),
        response_url: format!("https://queue.fal.run/r/{request_id}"),
        cancel_url: format!("https://queue.fal.run/r/{request_id}/cancel"),
        submitted_at: now,
    };
    let recorded = running.record_submission(request, now).unwrap();
    t.store.update_job(&recorded).await.unwrap();
    recorded
}

/// FAL's delivery for `request_id` to our URL for `job`, signed with `key`.
fn delivery(job: &GenerationJob, request_id: &str, key: &SigningKey) -> Request<Body> {
    let body = json!({"request_id": request_id, "status": "OK"}).to_string();
    let timestamp = Utc::now().timestamp().to_string();
    let message = signed_message(request_id, "user-1", &timestamp, body.as_bytes());
    let signature = hex::encode(key.sign(message.as_bytes()).to_bytes());
    Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/webhooks/fal?job_id={}", job.job_id))
        .header("host", "localhost")
        .header("content-type", "application/json")
        .header("x-fal-webhook-request-id", request_id)
        .header("x-fal-webhook-user-id", "user-1")
        .header("x-fal-webhook-timestamp", timestamp)
        .header("x-fal-webhook-signature", signature)
        .body(Body::from(body))
        .unwrap()
}

async fn receive(t: &TestContext, request: Request<Body>) -> Answer {
    let fal = SigningKey::from_bytes(&FAL).verifying_key();
    let verifier = Arc::new(SignatureVerifier::holding(vec![fal]));
    call(router(verifier), t, request).await
}

#[tokio::test]
async fn a_delivery_fal_signed_asks_the_worker_to_look_at_once() {
    let t = context();
    let job = submitted(&t, "req-1").await;
    let answer = receive(&t, delivery(&job, "req-1", &SigningKey::from_bytes(&FAL))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"accepted": true, "job_id": job.job_id.to_string()})
    );
    let queued = take_queued(&t);
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(matches!(queued[0].0.step, WorkStep::Webhook { .. }));

    // A delivery about another request of the job is answered, and changes nothing.
    let other = receive(&t, delivery(&job, "req-9", &SigningKey::from_bytes(&FAL))).await;
    assert_eq!(other.body["accepted"], false, "{}", other.body);
    assert!(take_queued(&t).is_empty());
}

#[tokio::test]
async fn unsigned_or_forged_deliveries_are_refused_and_change_nothing() {
    let t = context();
    let job = submitted(&t, "req-1").await;
    let forged = delivery(&job, "req-1", &SigningKey::from_bytes(&[9; 32]));
    receive(&t, forged)
        .await
        .assert_error(401, "WEBHOOK_SIGNATURE_INVALID");
    let mut unsigned = delivery(&job, "req-1", &SigningKey::from_bytes(&FAL));
    unsigned.headers_mut().remove("x-fal-webhook-signature");
    receive(&t, unsigned)
        .await
        .assert_error(401, "WEBHOOK_SIGNATURE_INVALID");
    assert!(take_queued(&t).is_empty());
}
