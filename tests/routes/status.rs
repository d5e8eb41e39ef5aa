//! The status function over real HTTP: streams validated before they start, heartbeats while
//! nothing changes.

use super::*;
use image2model_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn sse_validates_before_streaming() {
    let server = TestServer::start().await;
    let id = uuid::Uuid::new_v4();
    let (status, body) = server
        .get_json(&format!("/api/v1/status/tasks/{id}/sse"), Some(ALICE))
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
    let file_id = pending_file(&server, ALICE).await;
    let (_, job) = server
        .post_json("/api/v1/jobs", Some(ALICE), &json!({"file_id": file_id}))
        .await;
    let job_id = job["job_id"].as_str().unwrap();
    for bad in ["timeout=abc", "timeout=-1"] {
        let (status, body) = server
            .get_json(
                &format!("/api/v1/status/tasks/{job_id}/stream?{bad}"),
                Some(ALICE),
            )
            .await;
        assert_error(status, &body, 422, "VALIDATION_ERROR");
    }
    // A bounded stream on a job that stays queued: the queued frame, then the timeout frame.
    let text = server
        .request(
            Method::GET,
            &format!("/api/v1/status/tasks/{job_id}/sse?timeout=0.3"),
            Some(ALICE),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events, ["task_queued", "timeout"], "{text}");
    let (status, body) = server
        .get_json(
            &format!("/api/v1/status/tasks/{job_id}/status"),
            Some(ALICE),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            body["task_id"].as_str(),
            body["status"].as_str(),
            body["progress"].as_u64()
        ),
        (Some(job_id), Some("queued"), Some(0))
    );
}

#[tokio::test]
async fn sse_sends_heartbeats_only_when_nothing_changes() {
    let server =
        TestServer::start_with(|c| c.status.sse_heartbeat = std::time::Duration::from_millis(200))
            .await;
    let file_id = pending_file(&server, ALICE).await;
    let (_, job) = server
        .post_json("/api/v1/jobs", Some(ALICE), &json!({"file_id": file_id}))
        .await;
    let job_id = job["job_id"].as_str().unwrap();
    let text = server
        .request(
            Method::GET,
            &format!("/api/v1/status/tasks/{job_id}/sse?timeout=0.9"),
            Some(ALICE),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"task_queued"), "{text}");
    assert_eq!(events.last(), Some(&"timeout"), "{text}");
    // Counted by order, not by time: the silence between the first and the last frame holds
    // heartbeats and nothing else (how many depends on the machine's load).
    let heartbeats = events.iter().filter(|e| **e == "heartbeat").count();
    assert!(
        heartbeats >= 1,
        "a heartbeat during 0.9 s of silence: {events:?}"
    );
    assert_eq!(
        events.len(),
        heartbeats + 2,
        "no frame repeats an unchanged state: {events:?}"
    );
}
