//! What a browser needs to follow its own job, over HTTP as `EventSource` speaks it: no
//! headers, so `events_url`/`status_url` carry a signed token; a public reduced view for
//! clients that build the URL from the id; `id:` and `retry:` on frames, and `Last-Event-ID`
//! on reconnect.

use image2model_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// The raw frames of a stream: (`id`, `event`, `retry`, data).
async fn raw_frames(
    response: reqwest::Response,
) -> Vec<(Option<String>, String, Option<String>, Value)> {
    let text = tokio::time::timeout(Duration::from_secs(30), response.text())
        .await
        .expect("the stream ends after its terminal event")
        .unwrap();
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::to_owned)
            };
            (
                field("id: "),
                field("event: ").unwrap_or_default(),
                field("retry: "),
                serde_json::from_str(&field("data: ").unwrap_or_else(|| "null".into())).unwrap(),
            )
        })
        .collect()
}

/// A completed job of Alice's, created through presign with `generate`; its create answer.
async fn completed_job(server: &TestServer) -> Value {
    let photo = png(64, 48);
    let (status, presigned) = server
        .post_json(
            "/api/v1/uploads/presign",
            Some(ALICE),
            &json!({"files": [{"filename": "vase.png", "content_type": "image/png", "size": photo.len()}], "generate": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{presigned}");
    let file = presigned["files"][0].clone();
    server.put_signed(&file["upload"], &photo).await;
    server
        .wait_for_job(ALICE, file["job_id"].as_str().unwrap())
        .await;
    file
}

#[tokio::test]
async fn signed_links_open_their_task_and_nothing_else_without_a_key() {
    let server = TestServer::start().await;
    let file = completed_job(&server).await;
    let job_id = file["job_id"].as_str().unwrap();
    let events_url = file["events_url"].as_str().unwrap();
    let status_url = file["status_url"].as_str().unwrap();
    assert!(
        events_url.starts_with(&server.base),
        "absolute: {events_url}"
    );
    assert!(events_url.contains(&format!("/api/v1/status/tasks/{job_id}/stream?token=")));
    assert!(file["links_expire_at"].is_string());

    // No key: the owner's full view, result included.
    let (status, body) = json_of(server.client.get(status_url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["filename"], "vase.glb");
    assert!(
        body.get("events_url").is_none(),
        "a token's answer signs no new links: they would outlive it"
    );
    let frames = raw_frames(server.client.get(events_url).send().await.unwrap()).await;
    let (_, event, _, data) = frames.last().unwrap();
    assert_eq!(event, "task_completed");
    assert_eq!(data["result"]["job_id"], job_id);

    // Every answer that describes the job carries links too.
    for (path, key) in [
        (format!("/api/v1/jobs/{job_id}"), ALICE),
        (format!("/api/v1/status/tasks/{job_id}/status"), ALICE),
    ] {
        let (_, body) = server.get_json(&path, Some(key)).await;
        assert!(
            body["events_url"].as_str().unwrap().contains("token="),
            "{path}: {body}"
        );
    }

    // The token opens this task only; altered, it opens nothing.
    let token = status_url.split("token=").nth(1).unwrap();
    let other = completed_job(&server).await;
    let other_id = other["job_id"].as_str().unwrap();
    let (status, body) = server
        .get_json(
            &format!("/api/v1/status/tasks/{other_id}/status?token={token}"),
            None,
        )
        .await;
    assert_error(status, &body, 401, "STATUS_TOKEN_INVALID");
    let (expires, signature) = token.split_once('.').unwrap();
    for forged in [
        format!("{}.{signature}", expires.parse::<i64>().unwrap() + 3600),
        format!("{expires}.{}", "0".repeat(64)),
        "garbage".to_owned(),
    ] {
        let (status, body) = server
            .get_json(
                &format!("/api/v1/status/tasks/{job_id}/stream?token={forged}"),
                None,
            )
            .await;
        assert_error(status, &body, 401, "STATUS_TOKEN_INVALID");
    }
    // A key that is presented must be valid, whatever the token says.
    let response = server
        .client
        .get(status_url)
        .bearer_auth("wrong-key-0123456789")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_error(status, &body, 401, "UNAUTHORIZED");
    // Someone else's key does not borrow the token's task either.
    let (status, body) = server
        .get_json(&format!("/api/v1/status/tasks/{job_id}/status"), Some(BOB))
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
}

#[tokio::test]
async fn an_expired_token_is_refused_with_its_own_code() {
    let server = TestServer::start_with(|c| c.status.status_token_ttl = Duration::ZERO).await;
    let file = completed_job(&server).await;
    let (status, body) = json_of(
        server
            .client
            .get(file["status_url"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 401, "STATUS_TOKEN_EXPIRED");
}

#[tokio::test]
async fn the_public_view_is_reduced_rate_limited_and_can_be_turned_off() {
    let server = TestServer::start_with(|c| c.limits.public_status_rate_limit_per_minute = 4).await;
    let file = completed_job(&server).await;
    let job_id = file["job_id"].as_str().unwrap();
    let (status, public) = server
        .get_json(&format!("/api/v1/status/tasks/{job_id}/status"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{public}");
    assert_eq!(
        (public["status"].as_str(), public["progress"].as_u64()),
        (Some("completed"), Some(100))
    );
    assert_eq!(
        (public["task_id"].as_str(), public["job_id"].as_str()),
        (Some(job_id), Some(job_id))
    );
    assert_eq!(
        (
            public["total_files"].as_u64(),
            public["completed_files"].as_u64()
        ),
        (Some(1), Some(1))
    );
    for hidden in [
        "result",
        "jobs",
        "error",
        "error_details",
        "events_url",
        "owner",
    ] {
        assert!(
            public.get(hidden).is_none(),
            "{hidden} in the public view: {public}"
        );
    }
    assert!(
        !public.to_string().contains("vase"),
        "no filenames: {public}"
    );
    // The old site's EventSource: no key, the old path, the job id it holds.
    let frames = raw_frames(
        server
            .client
            .get(server.url(&format!("/api/v1/status/tasks/{job_id}/stream")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (_, event, _, data) = frames.last().unwrap();
    assert_eq!(event, "task_completed");
    assert_eq!(data["job_id"], job_id);
    assert!(data.get("result").is_none());
    // Four requests a minute per address (two were made above), then 429 with the window's
    // headers; keys pass.
    let (status, _) = server
        .get_json(&format!("/api/v1/status/tasks/{job_id}/status"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = server
        .get_json(&format!("/api/v1/status/tasks/{unknown}/status"), None)
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
    let response = server
        .request(
            Method::GET,
            &format!("/api/v1/status/tasks/{job_id}/status"),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-ratelimit-limit"], "4");
    let (status, body) = json_of(response).await;
    assert_error(status, &body, 429, "RATE_LIMITED");
    let (status, _) = server
        .get_json(
            &format!("/api/v1/status/tasks/{job_id}/status"),
            Some(ALICE),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // With the public view off, only keys and tokens open a task.
    let fresh = TestServer::start_with(|c| c.status.public_task_status = false).await;
    let file = completed_job(&fresh).await;
    let job_id = file["job_id"].as_str().unwrap();
    let (status, body) = fresh
        .get_json(&format!("/api/v1/status/tasks/{job_id}/status"), None)
        .await;
    assert_error(status, &body, 401, "UNAUTHORIZED");
    let (status, _) = json_of(
        fresh
            .client
            .get(file["status_url"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "tokens work without the public view"
    );
}

#[tokio::test]
async fn a_reconnect_resumes_without_repeating_or_losing_the_terminal_event() {
    let server = TestServer::start().await;
    let file = completed_job(&server).await;
    let events_url = file["events_url"].as_str().unwrap();
    let frames = raw_frames(server.client.get(events_url).send().await.unwrap()).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    let (id, event, retry, _) = &frames[0];
    assert_eq!(event, "task_completed");
    assert!(
        retry
            .as_deref()
            .is_some_and(|r| r.parse::<u64>().unwrap() >= 1000),
        "a retry hint"
    );
    let id = id.clone().expect("task events carry an id");
    // The browser reconnects after the stream closed, saying what it saw: nothing more comes.
    let response = server
        .client
        .get(events_url)
        .header("last-event-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "EventSource stops on 204"
    );
    // A reconnect that saw an earlier state gets the terminal event (it is not lost).
    let earlier = (id.parse::<u64>().unwrap() - 1).to_string();
    let frames = raw_frames(
        server
            .client
            .get(events_url)
            .header("last-event-id", earlier)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(frames.last().unwrap().1, "task_completed");
    assert_eq!(frames.last().unwrap().0.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn a_stream_opened_with_a_token_outlives_the_token() {
    // Expiries are whole seconds: a 2 s token lives more than 1 s and at most 2 s.
    let server =
        TestServer::start_with(|c| c.status.status_token_ttl = Duration::from_secs(2)).await;
    let photo = png(64, 48);
    let (status, presigned) = server
        .post_json(
            "/api/v1/uploads/presign",
            Some(ALICE),
            &json!({"files": [{"filename": "late.png", "content_type": "image/png", "size": photo.len()}], "generate": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let file = presigned["files"][0].clone();
    // The job waits for its upload; the stream is opened while the token is fresh.
    let stream = server
        .client
        .get(file["events_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let reading = tokio::spawn(raw_frames(stream));
    // The token expires, then the upload arrives and the job runs.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    server.put_signed(&file["upload"], &photo).await;
    let frames = reading.await.unwrap();
    assert_eq!(frames.last().unwrap().1, "task_completed", "{frames:?}");
    // The expired token itself opens nothing new.
    let (status, body) = json_of(
        server
            .client
            .get(file["status_url"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 401, "STATUS_TOKEN_EXPIRED");
}
