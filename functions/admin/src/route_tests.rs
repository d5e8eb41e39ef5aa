//! The admin function's routes, in-process on the embedded adapters.

use crate::router;
use axum::http::{Method, StatusCode};
use image2model_shared::AppContext;
use image2model_shared::app::testing::{
    ADMIN_KEY, ALICE_KEY, completed, context, queued_job, ready_file, stored,
};
use image2model_shared::domain::models::RELIEF_MODEL;
use image2model_shared::domain::{JobError, JobErrorCode, JobStatus};
use image2model_shared::web::testing::{Answer, call, request};
use serde_json::json;

async fn send(t: &AppContext, method: Method, path: &str, key: Option<&str>) -> Answer {
    call(router(), t, request(method, path, key, None)).await
}

#[tokio::test]
async fn every_admin_route_is_the_admin_keys_alone() {
    let t = context();
    let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
    let routes = [
        (Method::GET, "/api/v1/admin/jobs".to_owned()),
        (Method::GET, "/api/v1/admin/stats".to_owned()),
        (Method::GET, "/api/v1/admin/dead-letters".to_owned()),
        (Method::GET, "/api/v1/admin/disk-usage".to_owned()),
        (Method::GET, "/api/v1/admin/system-health".to_owned()),
        (Method::POST, "/api/v1/admin/sweep".to_owned()),
        (
            Method::POST,
            format!("/api/v1/admin/jobs/{}/retry", job.job_id),
        ),
        (Method::DELETE, format!("/api/v1/admin/jobs/{}", job.job_id)),
    ];
    for (method, path) in routes {
        send(&t, method.clone(), &path, None)
            .await
            .assert_error(401, "UNAUTHORIZED");
        send(&t, method, &path, Some(ALICE_KEY))
            .await
            .assert_error(403, "FORBIDDEN");
    }
    assert_eq!(
        stored(&t, &job).await.status,
        JobStatus::Queued,
        "nothing happened"
    );
}

#[tokio::test]
async fn the_admin_sees_every_job_and_retries_a_failed_one() {
    let t = context();
    let done = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
    completed(&t, &done).await;
    let failed = queued_job(&t, &ready_file(&t, "bob").await, RELIEF_MODEL).await;
    let error = JobError::from(JobErrorCode::GenerationFailed);
    let now = chrono::Utc::now();
    t.store
        .update_job(&failed.fail(error, now).unwrap())
        .await
        .unwrap();

    let stats = send(&t, Method::GET, "/api/v1/admin/stats", Some(ADMIN_KEY)).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    assert_eq!(stats.body["jobs"]["total"], 2);
    assert_eq!(
        stats.body["jobs"]["by_status"],
        json!({"queued": 0, "processing": 0, "completed": 1, "failed": 1, "cancelled": 0})
    );
    let jobs = send(&t, Method::GET, "/api/v1/admin/jobs", Some(ADMIN_KEY)).await;
    assert_eq!(
        jobs.body["jobs"].as_array().unwrap().len(),
        2,
        "both owners'"
    );

    let retry = format!("/api/v1/admin/jobs/{}/retry", failed.job_id);
    let retried = send(&t, Method::POST, &retry, Some(ADMIN_KEY)).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert_eq!(stored(&t, &failed).await.status, JobStatus::Queued);
    // A completed job is not run again.
    let again = format!("/api/v1/admin/jobs/{}/retry", done.job_id);
    send(&t, Method::POST, &again, Some(ADMIN_KEY))
        .await
        .assert_error(409, "INVALID_JOB_STATE");
    // The old log routes are gone, and say with what they were replaced.
    let logs = send(&t, Method::GET, "/api/v1/logs/statistics", Some(ADMIN_KEY)).await;
    logs.assert_error(410, "GONE");
    assert!(logs.body["details"]["replacement"].is_string());
}

#[tokio::test]
async fn the_old_operator_routes_clean_list_and_delete() {
    let t = context();
    let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
    completed(&t, &job).await;
    let admin =
        |method, path: &str, body| call(router(), &t, request(method, path, Some(ADMIN_KEY), body));
    let dry = admin(
        Method::POST,
        "/api/v1/admin/cleanup",
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    let listed = admin(
        Method::GET,
        "/api/v1/admin/list-files?directory=uploads",
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    admin(
        Method::GET,
        "/api/v1/admin/list-files?directory=../etc",
        None,
    )
    .await
    .assert_error(422, "VALIDATION_ERROR");
    admin(
        Method::POST,
        "/api/v1/admin/cleanup-job",
        Some(json!({"job_id": "../../etc"})),
    )
    .await
    .assert_error(422, "VALIDATION_ERROR");
    let cleaned = admin(
        Method::POST,
        "/api/v1/admin/cleanup-job",
        Some(json!({"job_id": job.job_id.to_string()})),
    )
    .await;
    assert_eq!(cleaned.status, StatusCode::OK, "{}", cleaned.body);
    assert_eq!(cleaned.body["job_id"], job.job_id.to_string());
    let other = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
    let delete = format!("/api/v1/admin/delete-job/{}", other.job_id);
    let deleted = admin(Method::DELETE, &delete, None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    admin(Method::DELETE, &delete, None)
        .await
        .assert_error(404, "JOB_NOT_FOUND");
    for (method, path) in [
        (Method::GET, "/api/v1/logs/summary/daily"),
        (Method::DELETE, "/api/v1/logs/cleanup"),
    ] {
        admin(method, path, None).await.assert_error(410, "GONE");
    }
}
