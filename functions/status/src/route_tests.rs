//! The status function's routes, in-process on the embedded adapters.

use super::router;
use axum::http::{Method, StatusCode};
use image2model_shared::AppContext;
use image2model_shared::app::testing::{
    ALICE_KEY, completed_with_model, context, context_with, queued_job, ready_file,
};
use image2model_shared::domain::models::RELIEF_MODEL;
use image2model_shared::web::testing::{Answer, call, request};
use std::time::Duration;

async fn get(t: &AppContext, path: &str, key: Option<&str>) -> Answer {
    let answer = call(router(t), t, request(Method::GET, path, key, None));
    tokio::time::timeout(Duration::from_secs(30), answer)
        .await
        .expect("the route answers within 30 s")
}

#[tokio::test]
async fn the_owner_sees_the_whole_status_and_links_and_nobody_else_more_than_the_public_view() {
    let t = context();
    let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
    let path = format!("/api/v1/status/tasks/{}/status", job.job_id);
    let owner = get(&t, &path, Some(ALICE_KEY)).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
    assert_eq!(owner.body["status"], "queued");
    let events_url = owner.body["events_url"].as_str().expect("links for a key");
    assert!(events_url.contains("token="), "{events_url}");
    // The signed link opens the task without a key.
    let token_path = events_url
        .split_once("/api/")
        .map(|(_, rest)| format!("/api/{rest}"))
        .unwrap()
        .replace("/stream?", "/status?");
    let by_token = get(&t, &token_path, None).await;
    assert_eq!(by_token.status, StatusCode::OK, "{}", by_token.body);
    assert_eq!(by_token.body["task_id"], owner.body["task_id"]);

    // Without a credential: the public view, which names no file.
    let public = get(&t, &path, None).await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.body);
    assert_eq!(public.body["status"], "queued");
    assert!(
        !public.raw.windows(9).any(|w| w == b"photo.png"),
        "{}",
        public.body
    );

    let unknown = format!("/api/v1/status/tasks/{}/status", uuid_v4());
    get(&t, &unknown, Some(ALICE_KEY))
        .await
        .assert_error(404, "JOB_NOT_FOUND");
    get(&t, "/api/v1/status/tasks/x/status", Some(ALICE_KEY))
        .await
        .assert_error(400, "INVALID_JOB_ID");
    get(&t, &format!("{path}?token=forged"), None)
        .await
        .assert_error(401, "STATUS_TOKEN_INVALID");
}

#[tokio::test]
async fn without_the_public_view_a_credential_is_required() {
    let t = context_with(|c| c.status.public_task_status = false);
    let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
    let path = format!("/api/v1/status/tasks/{}/status", job.job_id);
    get(&t, &path, None).await.assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn the_stream_of_a_completed_job_says_so_and_ends() {
    let t = context();
    let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
    completed_with_model(&t, &job).await;
    for route in ["sse", "stream"] {
        let path = format!("/api/v1/status/tasks/{}/{route}", job.job_id);
        let stream = get(&t, &path, Some(ALICE_KEY)).await;
        assert_eq!(stream.status, StatusCode::OK);
        assert_eq!(stream.headers["content-type"], "text/event-stream");
        let text = String::from_utf8(stream.raw.to_vec()).unwrap();
        assert!(text.contains("event: task_completed"), "{text}");
    }
}

/// Behind API Gateway (answers buffered whole) a stream is redirected to the streaming URL: the
/// public view as asked, a token's holder with that token, a key's holder (whose key a redirect
/// across origins drops) with a fresh token; what is refused is refused on the spot. Polls are
/// answered there, and where answers stream (the function URL, the local server) streams are
/// served.
#[tokio::test]
async fn a_stream_asked_where_answers_are_buffered_is_redirected_to_the_streaming_url() {
    let t = context_with(|c| {
        c.status.status_stream_base_url = Some("https://stream.example".into());
    });
    let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
    completed_with_model(&t, &job).await;
    let buffered = |path: String, key: Option<&str>| {
        let mut req = request(Method::GET, &path, key, None);
        req.extensions_mut()
            .insert(image2model_shared::web::buffered::Buffered);
        call(router(&t), &t, req)
    };
    let owner_view = get(
        &t,
        &format!("/api/v1/status/tasks/{}/status", job.job_id),
        Some(ALICE_KEY),
    )
    .await;
    let events_url = owner_view.body["events_url"].as_str().unwrap();
    let token = events_url.split("token=").nth(1).unwrap();
    for route in ["sse", "stream"] {
        let path = format!("/api/v1/status/tasks/{}/{route}", job.job_id);
        let location = |answer: &image2model_shared::web::testing::Answer| {
            assert_eq!(
                answer.status,
                StatusCode::TEMPORARY_REDIRECT,
                "{route}: {}",
                answer.body
            );
            assert_eq!(answer.headers["cache-control"], "no-store");
            answer.headers["location"].to_str().unwrap().to_owned()
        };
        let public = buffered(format!("{path}?timeout=60"), None).await;
        assert_eq!(
            location(&public),
            format!("https://stream.example{path}?timeout=60")
        );
        let by_token = buffered(format!("{path}?token={token}&timeout=60"), None).await;
        assert_eq!(
            location(&by_token),
            format!("https://stream.example{path}?token={token}&timeout=60")
        );
        let by_key = location(&buffered(path.clone(), Some(ALICE_KEY)).await);
        let fresh = by_key
            .strip_prefix(&format!("https://stream.example{path}?token="))
            .unwrap_or_else(|| panic!("{by_key}"));
        // The fresh token opens the owner's whole stream where it streams, with no key.
        let followed = get(&t, &format!("{path}?token={fresh}"), None).await;
        assert_eq!(followed.status, StatusCode::OK, "{route}");
        assert_eq!(followed.headers["content-type"], "text/event-stream");
        let text = String::from_utf8(followed.raw.to_vec()).unwrap();
        assert!(text.contains("event: task_completed"), "{text}");
        assert!(text.contains("\"result\""), "the owner's view: {text}");
        // Refusals are answered where asked.
        buffered(format!("{path}?token=forged"), None)
            .await
            .assert_error(401, "STATUS_TOKEN_INVALID");
        buffered(
            format!("/api/v1/status/tasks/{}/{route}", uuid_v4()),
            Some(ALICE_KEY),
        )
        .await
        .assert_error(404, "JOB_NOT_FOUND");
    }
    let poll = buffered(format!("/api/v1/status/tasks/{}/status", job.job_id), None).await;
    assert_eq!(poll.status, StatusCode::OK, "{}", poll.body);
    assert_eq!(poll.body["status"], "completed");
}

fn uuid_v4() -> String {
    image2model_shared::domain::JobId::new().to_string()
}
