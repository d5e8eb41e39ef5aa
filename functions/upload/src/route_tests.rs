//! The upload function's routes, in-process on the embedded adapters.

use super::router;
use axum::http::{Method, StatusCode};
use image2model_shared::AppContext;
use image2model_shared::app::testing::{ALICE_KEY, context_with};
use image2model_shared::domain::UPLOADS_PREFIX;
use image2model_shared::web::testing::{Answer, call, request};
use serde_json::{Value, json};

const PRESIGN: &str = "/api/v1/uploads/presign";

async fn presign(t: &AppContext, body: Value) -> Answer {
    call(
        router(t),
        t,
        request(Method::POST, PRESIGN, Some(ALICE_KEY), Some(body)),
    )
    .await
}

#[tokio::test]
async fn presign_refuses_bad_requests_before_signing() {
    let t = context_with(|c| c.limits.max_upload_bytes = 5000);
    let file = |name: &str, ct: &str, size: u64| json!({"filename": name, "content_type": ct, "size": size});
    let cases = [
        (json!({"files": []}), 422, "VALIDATION_ERROR"),
        (json!({"files": "x"}), 422, "VALIDATION_ERROR"),
        (
            json!({"files": vec![file("a.png", "image/png", 10); 26]}),
            400,
            "TOO_MANY_FILES",
        ),
        (
            json!({"files": [file("a.gif", "image/gif", 10)]}),
            400,
            "INVALID_FILE_TYPE",
        ),
        (
            json!({"files": [file("a.exe", "image/png", 10)]}),
            400,
            "INVALID_FILE_TYPE",
        ),
        (
            json!({"files": [file("a.png", "image/png", 0)]}),
            400,
            "EMPTY_FILE",
        ),
        (
            json!({"files": [file("a.png", "image/png", 5001)]}),
            413,
            "FILE_TOO_LARGE",
        ),
        (
            json!({"files": [file("a.png", "image/png", 10)], "generate": {"model_type": "nope"}}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            json!({"files": [file("a.png", "image/png", 10)], "generate": {"model_type": "tripo3d"}}),
            400,
            "MODEL_UNAVAILABLE",
        ),
        (
            json!({"files": [file("a.png", "image/png", 10)], "generate": {"options": {"face_limit": 1}}}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            json!({"files": [file("a.png", "image/png", 10)], "generate": {"options": {"quad": true}}}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            json!({"files": [file("a.png", "image/png", 10)], "generate": {"options": {"seed": 1}}}),
            400,
            "UNSUPPORTED_OPTION",
        ),
        // An object is an object: serde alone would take its fields as an array, in order.
        (
            json!([[file("a.png", "image/png", 10)]]),
            422,
            "VALIDATION_ERROR",
        ),
        (
            json!({"files": [["a.png", "image/png", 10]]}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            json!({"files": [file("a.png", "image/png", 10)], "generate": {"options": [null, null]}}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": 10.5}]}),
            422,
            "VALIDATION_ERROR",
        ),
    ];
    for (body, code, error) in cases {
        presign(&t, body).await.assert_error(code, error);
    }
    let mut garbled = request(Method::POST, PRESIGN, Some(ALICE_KEY), None);
    garbled
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    *garbled.body_mut() = axum::body::Body::from("{not json");
    call(router(&t), &t, garbled)
        .await
        .assert_error(422, "VALIDATION_ERROR");
    // Nothing was recorded or signed for any refused request.
    let uploads = t.storage.list(UPLOADS_PREFIX).await.unwrap();
    assert!(uploads.is_empty(), "{uploads:?}");
    let recorded = t.store.list_files_created_before(chrono::Utc::now(), 10);
    assert!(recorded.await.unwrap().is_empty());

    let ok = presign(
        &t,
        // `5000.0` is the integer 5000, as JSON Schema (and the document) counts it.
        json!({"files": [
                {"filename": "a.png", "content_type": "image/png", "size": 5000.0},
            file("b.jpg", "image/jpeg", 10),
        ]}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let ok = ok.body;
    let upload = &ok["files"][0]["upload"];
    assert_eq!(upload["method"], "PUT");
    assert_eq!(upload["headers"]["Content-Type"], "image/png");
    assert_eq!(upload["headers"]["Content-Length"], "5000");
    assert!(upload["expires_at"].is_string());
    assert!(ok["files"][0]["job_id"].is_null());
}

/// A multipart body of one `file` part named `name`, and its content type.
fn form(bytes: &[u8], name: &str) -> (String, Vec<u8>) {
    let boundary = "image2model-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(t: &AppContext, bytes: &[u8], name: &str) -> Answer {
    let (content_type, body) = form(bytes, name);
    let mut asked = request(Method::POST, "/api/v1/upload/image", Some(ALICE_KEY), None);
    asked
        .headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    *asked.body_mut() = axum::body::Body::from(body);
    call(router(t), t, asked).await
}

#[tokio::test]
async fn an_upload_is_judged_by_its_bytes_and_its_file_is_its_owners_to_read() {
    let t = context_with(|_| {});
    let photo = image2model_shared::app::testing::png(64, 48);
    let uploaded = upload(&t, &photo, "photo").await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    assert_eq!(uploaded.body["filename"], "photo.png");
    assert_eq!(uploaded.body["status"], "ready");
    let file_id = uploaded.body["file_id"].as_str().unwrap();
    for path in [
        format!("/api/v1/files/{file_id}"),
        format!("/api/v1/upload/status/{file_id}"),
    ] {
        let read = call(
            router(&t),
            &t,
            request(Method::GET, &path, Some(ALICE_KEY), None),
        )
        .await;
        assert_eq!(read.status, StatusCode::OK, "{path}: {}", read.body);
        assert_eq!(read.body["file_id"], file_id);
    }
    let unknown = format!("/api/v1/files/{}", uuid::Uuid::new_v4());
    call(
        router(&t),
        &t,
        request(Method::GET, &unknown, Some(ALICE_KEY), None),
    )
    .await
    .assert_error(404, "FILE_NOT_FOUND");
    // Not an image, whatever its name says: refused, and nothing is kept.
    upload(&t, b"<?php echo 1; ?>", "evil.png")
        .await
        .assert_error(400, "INVALID_FILE_TYPE");
    assert_eq!(t.storage.list(UPLOADS_PREFIX).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_batch_reports_its_progress_to_its_owner() {
    let t = context_with(|_| {});
    let (_, batch, _) = image2model_shared::app::testing::batch_of_two(&t, "alice").await;
    let path = format!("/api/v1/upload/batch/{}/status", batch.batch_id);
    let progress = call(
        router(&t),
        &t,
        request(Method::GET, &path, Some(ALICE_KEY), None),
    )
    .await;
    assert_eq!(progress.status, StatusCode::OK, "{}", progress.body);
    assert_eq!(progress.body["batch_id"], batch.batch_id.to_string());
    assert_eq!(progress.body["status"], "queued");
}
