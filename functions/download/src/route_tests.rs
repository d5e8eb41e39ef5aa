//! The download function's routes, in-process on the embedded adapters.

use super::router;
use axum::http::{Method, StatusCode, header};
use image2model_shared::AppContext;
use image2model_shared::app::testing::{
    ADMIN_KEY, ALICE_KEY, BOB_KEY, completed_with_model, context, queued_job, ready_file,
};
use image2model_shared::domain::models::RELIEF_MODEL;
use image2model_shared::web::testing::{Answer, call, request};

async fn get(t: &AppContext, path: &str, key: &str) -> Answer {
    call(router(), t, request(Method::GET, path, Some(key), None)).await
}

#[tokio::test]
async fn a_completed_model_is_a_signed_redirect_or_link_and_nothing_before() {
    let t = context();
    let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
    let path = format!("/api/v1/download/{}", job.job_id);
    // Not yet made: a conflict naming the job's status, not a 404.
    let early = get(&t, &path, ALICE_KEY).await;
    early.assert_error(409, "RESULT_NOT_READY");
    assert_eq!(early.body["details"]["job_status"], "queued");

    completed_with_model(&t, &job).await;
    let redirect = get(&t, &path, ALICE_KEY).await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    let location = redirect.headers[header::LOCATION].to_str().unwrap();
    assert!(
        location.contains("signature=") || location.contains("sig"),
        "{location}"
    );
    let link = get(&t, &format!("{path}?redirect=false"), ALICE_KEY).await;
    assert_eq!(link.status, StatusCode::OK, "{}", link.body);
    assert!(link.body["url"].is_string() && link.body["expires_at"].is_string());
    let all = get(&t, &format!("{path}/all"), ALICE_KEY).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["total_files"], 1, "{}", all.body);
    assert_eq!(all.body["download_urls"].as_array().unwrap().len(), 1);
    // The administrator may fetch any job's model.
    assert_eq!(get(&t, &path, ADMIN_KEY).await.status, StatusCode::FOUND);
}

#[tokio::test]
async fn downloads_are_refused_to_others_and_for_bad_ids_or_formats() {
    let t = context();
    let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
    completed_with_model(&t, &job).await;
    let path = format!("/api/v1/download/{}", job.job_id);
    get(&t, &path, BOB_KEY)
        .await
        .assert_error(404, "JOB_NOT_FOUND");
    get(&t, "/api/v1/download/not-a-uuid", ALICE_KEY)
        .await
        .assert_error(400, "INVALID_JOB_ID");
    get(&t, &format!("{path}?format=fbx"), ALICE_KEY)
        .await
        .assert_error(422, "VALIDATION_ERROR");
    get(&t, &format!("{path}/other.glb"), ALICE_KEY)
        .await
        .assert_error(404, "RESULT_FILE_NOT_FOUND");
    call(router(), &t, request(Method::GET, &path, None, None))
        .await
        .assert_error(401, "UNAUTHORIZED");
}
