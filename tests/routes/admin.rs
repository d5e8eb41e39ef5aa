//! The admin function over real HTTP: every owner's jobs, retry, delete and the reports.

use super::*;
use image2model_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn admin_routes_list_retry_delete_and_report() {
    let server = TestServer::start().await;
    let file_id = pending_file(&server, ALICE).await;
    let (_, job) = server
        .post_json("/api/v1/jobs", Some(ALICE), &json!({"file_id": file_id}))
        .await;
    let job_id = job["job_id"].as_str().unwrap().to_owned();
    let bob_file = pending_file(&server, BOB).await;
    server
        .post_json("/api/v1/jobs", Some(BOB), &json!({"file_id": bob_file}))
        .await;

    let (status, all) = server.get_json("/api/v1/admin/jobs", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK);
    let owners: std::collections::BTreeSet<&str> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["owner"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["alice", "bob"].into());

    let (status, stats) = server.get_json("/api/v1/admin/stats", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["jobs"]["total"], 2);
    assert_eq!(stats["jobs"]["by_status"]["queued"], 2);

    // Retrying a queued job is a state conflict; a cancelled one goes back to the queue.
    let retry = format!("/api/v1/admin/jobs/{job_id}/retry");
    let (status, body) = server.call(Method::POST, &retry, Some(ADMIN)).await;
    assert_error(status, &body, 409, "INVALID_JOB_STATE");
    server
        .request(
            Method::DELETE,
            &format!("/api/v1/jobs/{job_id}"),
            Some(ALICE),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = server.call(Method::POST, &retry, Some(ADMIN)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("queued")),
        "{body}"
    );
    let (status, body) = server.call(Method::POST, &retry, Some(ALICE)).await;
    assert_error(status, &body, 403, "FORBIDDEN");

    let (status, letters) = server
        .get_json("/api/v1/admin/dead-letters", Some(ADMIN))
        .await;
    assert_eq!(
        (status, letters["count"].as_u64()),
        (StatusCode::OK, Some(0))
    );
    let (status, body) = server
        .get_json("/api/v1/admin/dead-letters?limit=0", Some(ADMIN))
        .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");

    let (status, body) = server
        .post_json("/api/v1/admin/cleanup", Some(ADMIN), &json!({"hours": -1}))
        .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");
    let (status, body) = server
        .post_json(
            "/api/v1/admin/cleanup",
            Some(ADMIN),
            &json!({"hours": 0, "dry_run": true}),
        )
        .await;
    assert_eq!(
        (status, body["dry_run"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{body}"
    );
    assert!(
        body["jobs"].as_array().unwrap().is_empty(),
        "live jobs are never cleaned: {body}"
    );
    let (status, body) = server
        .post_json("/api/v1/admin/sweep", Some(ADMIN), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/jobs/{job_id}"),
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (status, body["deleted"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{body}"
    );
    let (status, body) = server
        .get_json(&format!("/api/v1/jobs/{job_id}"), Some(ALICE))
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
    let (status, body) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/jobs/{job_id}"),
            Some(ADMIN),
        )
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
}
