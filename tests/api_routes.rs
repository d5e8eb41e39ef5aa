//! Every route over real HTTP against the local server: success, and each error code it can
//! answer with.

use image2model_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn pending_file(server: &TestServer, key: &str) -> String {
    let body = json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": 1000}]});
    let (status, presigned) = server
        .post_json("/api/v1/uploads/presign", Some(key), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{presigned}");
    presigned["files"][0]["file_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn upload_image(
    server: &TestServer,
    key: &str,
    bytes: Vec<u8>,
    name: &str,
    mime: &str,
) -> (StatusCode, Value) {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(mime)
        .unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    json_of(
        server
            .request(Method::POST, "/api/v1/upload/image", Some(key))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn health_routes_answer_with_request_ids_and_security_headers() {
    let server = TestServer::start().await;
    for path in ["/health", "/api/v1/health", "/api/v1/health/"] {
        let response = server
            .request(Method::GET, path, None)
            .send()
            .await
            .unwrap();
        let headers = response.headers().clone();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body["status"], "healthy");
        assert_eq!(body["service"], "image2model");
        assert!(body["version"].is_string() && body["timestamp"].is_string());
        assert!(headers.contains_key("x-request-id"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
    }
    for (path, ready) in [
        ("/api/v1/health/readiness", "ready"),
        ("/api/v1/health/db", "ready"),
        ("/api/v1/health/detailed", "healthy"),
    ] {
        let (status, body) = server.get_json(path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["status"], ready);
        assert_eq!(body["checks"]["store"]["ok"], true);
    }
    let (status, alive) = server.get_json("/api/v1/health/liveness", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alive["status"], "alive", "the old API's liveness: {alive}");
    assert!(alive["timestamp"].is_string());
    let (_, detailed) = server.get_json("/api/v1/health/detailed", None).await;
    assert_eq!(detailed["checks"]["queue"]["ok"], true);
    assert_eq!(detailed["checks"]["object_storage"]["ok"], true);
    assert_eq!(detailed["generator"], "builtin");

    // A client-chosen plain request id is echoed; a hostile one is replaced.
    let response = server
        .request(Method::GET, "/health", None)
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");
    let response = server
        .request(Method::GET, "/health", None)
        .header("x-request-id", "a b<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(response.headers()["x-request-id"], "a b<script>");
}

#[tokio::test]
async fn readiness_names_the_failed_component() {
    let server = TestServer::start().await;
    std::fs::remove_dir_all(server.dir.path().join("objects").join("tmp")).unwrap();
    let (status, body) = server.get_json("/api/v1/health/readiness", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["failed_components"], json!(["object_storage"]));
    assert_eq!(body["error_code"], "SERVICE_UNAVAILABLE");
    assert_eq!(body["checks"]["store"]["ok"], true);
    // The store alone is still fine.
    let (status, _) = server.get_json("/api/v1/health/db", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_jobs_by_status() {
    let server = TestServer::start().await;
    let id = uuid::Uuid::new_v4();
    server
        .get_json(&format!("/api/v1/jobs/{id}"), Some(ALICE))
        .await;
    let text = server
        .request(Method::GET, "/api/v1/health/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The registry is per process and other tests run beside this one: count at least one.
    let counted = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"http_requests_total{endpoint="/api/v1/jobs/{job_id}",method="GET",status_code="404"} "#))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(counted >= Some(1), "{text}");
    assert!(
        !text.contains(&id.to_string()),
        "a raw path in a label: {text}"
    );
    assert!(
        text.contains(r#"image2model_jobs{status="queued"} 0"#),
        "{text}"
    );
    // The old API's names, and the standard process metrics.
    for name in [
        "http_request_duration_seconds_bucket{endpoint=\"/api/v1/jobs/{job_id}\",method=\"GET\",",
        "active_jobs_total 0",
        "system_cpu_usage_percent ",
        "system_memory_usage_percent ",
        "system_disk_usage_percent ",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
    }
    let memory: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("system_memory_usage_percent "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(memory > 0.0 && memory <= 100.0, "{memory}");
    assert!(
        text.contains("image2model_queue_messages{state=\"visible\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn authentication_and_authorisation() {
    let server = TestServer::start().await;
    let response = server
        .request(Method::GET, "/api/v1/jobs", None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"image2model\""
    );
    let (status, body) = json_of(response).await;
    assert_error(status, &body, 401, "UNAUTHORIZED");
    let (status, body) = server
        .get_json("/api/v1/jobs", Some("wrong-key-0000000000"))
        .await;
    assert_error(status, &body, 401, "UNAUTHORIZED");
    let (status, _) = json_of(
        server
            .client
            .get(server.url("/api/v1/jobs"))
            .header("x-api-key", ALICE)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Two credentials must name one key; one that cannot be read is never skipped for the other.
    for (authorization, status) in [
        (format!("Bearer {ALICE}"), StatusCode::OK),
        (format!("Bearer {BOB}"), StatusCode::UNAUTHORIZED),
        ("Basic YWxpY2U6eA==".to_owned(), StatusCode::UNAUTHORIZED),
        ("Bearer".to_owned(), StatusCode::UNAUTHORIZED),
        (ALICE.to_owned(), StatusCode::UNAUTHORIZED),
    ] {
        let response = server
            .client
            .get(server.url("/api/v1/jobs"))
            .header("x-api-key", ALICE)
            .header("authorization", &authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{authorization}");
    }
    let (status, body) = server.get_json("/api/v1/admin/stats", Some(ALICE)).await;
    assert_error(status, &body, 403, "FORBIDDEN");
    let (status, body) = server.get_json("/api/v1/admin/stats", None).await;
    assert_error(status, &body, 401, "UNAUTHORIZED");
    let (status, body) = server.get_json("/api/v1/admin/stats", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn hostile_path_ids_are_refused_as_invalid_ids() {
    let server = TestServer::start().await;
    let hostile = [
        "...",
        "a%2Fb",
        "%00",
        "1'%20OR%201=1",
        "%3Cscript%3E",
        "12345678-1234-1234-1234-1234567890abX",
        &"7".repeat(400),
    ];
    for id in hostile {
        for path in [
            format!("/api/v1/jobs/{id}"),
            format!("/api/v1/status/tasks/{id}/status"),
            format!("/api/v1/status/tasks/{id}/sse"),
            format!("/api/v1/download/{id}"),
            format!("/api/v1/download/{id}/all"),
        ] {
            let (status, body) = server.get_json(&path, Some(ALICE)).await;
            assert_error(status, &body, 400, "INVALID_JOB_ID");
            assert!(
                body["detail"].as_str().unwrap().contains("Invalid job ID"),
                "{body}"
            );
        }
        let (status, body) = server
            .get_json(&format!("/api/v1/files/{id}"), Some(ALICE))
            .await;
        assert_error(status, &body, 400, "INVALID_FILE_ID");
        let (status, body) = server
            .call(
                Method::POST,
                &format!("/api/v1/admin/jobs/{id}/retry"),
                Some(ADMIN),
            )
            .await;
        assert_error(status, &body, 400, "INVALID_JOB_ID");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_envelope() {
    let server = TestServer::start().await;
    let (status, body) = server.get_json("/api/v1/nope", None).await;
    assert_error(status, &body, 404, "NOT_FOUND");
    let (status, body) = server.call(Method::PUT, "/api/v1/jobs", Some(ALICE)).await;
    assert_error(status, &body, 405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn presign_refuses_bad_requests_before_signing() {
    let server = TestServer::start_with(|c| c.limits.max_upload_bytes = 5000).await;
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
        let (status, answer) = server
            .post_json("/api/v1/uploads/presign", Some(ALICE), &body)
            .await;
        assert_error(status, &answer, code, error);
    }
    let (status, body) = json_of(
        server
            .request(Method::POST, "/api/v1/uploads/presign", Some(ALICE))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");
    // Nothing was recorded or signed for any refused request.
    let (_, jobs) = server.get_json("/api/v1/jobs", Some(ALICE)).await;
    assert_eq!(jobs["jobs"], json!([]));

    let (status, ok) = server
        .post_json(
            "/api/v1/uploads/presign",
            Some(ALICE),
            // `5000.0` is the integer 5000, as JSON Schema (and the document) counts it.
            &json!({"files": [
                {"filename": "a.png", "content_type": "image/png", "size": 5000.0},
                file("b.jpg", "image/jpeg", 10),
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    let upload = &ok["files"][0]["upload"];
    assert_eq!(upload["method"], "PUT");
    assert_eq!(upload["headers"]["Content-Type"], "image/png");
    assert_eq!(upload["headers"]["Content-Length"], "5000");
    assert!(upload["expires_at"].is_string());
    assert!(ok["files"][0]["job_id"].is_null());
}

#[tokio::test]
async fn synchronous_upload_validates_content_not_names() {
    let server = TestServer::start_with(|c| c.limits.max_upload_bytes = 40_000).await;
    for (bytes, mime, content_type, name, stored_name) in [
        (png(64, 48), "image/png", "image/png", "photo", "photo.png"),
        (
            jpeg(64, 48),
            "image/jpeg",
            "image/jpeg",
            "photo.png",
            "photo.jpg",
        ),
        (
            webp(64, 48),
            "image/webp",
            "image/webp",
            "photo.JPG",
            "photo.webp",
        ),
    ] {
        // The declared type is ignored: the bytes decide, and name the stored file.
        let (status, body) = upload_image(
            &server,
            ALICE,
            bytes.clone(),
            name,
            "application/octet-stream",
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["filename"], stored_name);
        assert_eq!(
            (body["width"].as_u64(), body["height"].as_u64()),
            (Some(64), Some(48))
        );
        assert_eq!(body["content_type"], content_type, "{mime}");
        assert_eq!(body["status"], "ready");
        assert_eq!(body["size"].as_u64(), Some(bytes.len() as u64));
        let (status, file) = server
            .get_json(
                &format!("/api/v1/files/{}", body["file_id"].as_str().unwrap()),
                Some(ALICE),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(file["sha256"].as_str().map(str::len), Some(64));
        let (status, other) = server
            .get_json(
                &format!("/api/v1/files/{}", body["file_id"].as_str().unwrap()),
                Some(BOB),
            )
            .await;
        assert_error(status, &other, 404, "FILE_NOT_FOUND");
    }
    let stored_before = server.ctx.storage.list("uploads/").await.unwrap().len();
    // One rule for every upload route: a name that is not an image's is refused, as presign does.
    let (status, body) = upload_image(&server, ALICE, png(8, 8), "evil.php", "image/png").await;
    assert_error(status, &body, 400, "INVALID_FILE_TYPE");

    let big = noisy_png(150, 150);
    assert!(big.len() > 40_000, "fixture must exceed the limit");
    let truncated = {
        let p = png(64, 48);
        p[..p.len() / 2].to_vec()
    };
    let mut polyglot = jpeg(32, 32);
    polyglot.extend_from_slice(b"<html><script>alert(1)</script></html>");
    let mut exactly_over = vec![0u8; 40_001];
    exactly_over[..8].copy_from_slice(b"\x89PNG\r\n\x1a\n");
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (Vec::new(), 400, "EMPTY_FILE"),
        (
            b"just text, not an image".to_vec(),
            400,
            "INVALID_FILE_TYPE",
        ),
        (
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec(),
            400,
            "INVALID_FILE_TYPE",
        ),
        (truncated, 422, "INVALID_IMAGE"),
        (polyglot, 422, "INVALID_IMAGE"),
        (exactly_over, 413, "FILE_TOO_LARGE"),
        (big, 413, "FILE_TOO_LARGE"),
    ];
    for (bytes, code, error) in cases {
        let (status, body) = upload_image(&server, ALICE, bytes, "x.png", "image/png").await;
        assert_error(status, &body, code, error);
    }
    let form = reqwest::multipart::Form::new().text("other", "x");
    let (status, body) = json_of(
        server
            .request(Method::POST, "/api/v1/upload/image", Some(ALICE))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");
    assert_eq!(
        server.ctx.storage.list("uploads/").await.unwrap().len(),
        stored_before,
        "refused uploads store nothing"
    );
}

#[tokio::test]
async fn a_png_declaring_10_gigapixels_is_refused_from_its_header() {
    let server = TestServer::start().await;
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let (status, body) = upload_image(&server, ALICE, bomb, "bomb.png", "image/png").await;
    assert_error(status, &body, 413, "IMAGE_TOO_LARGE");
    assert_eq!(body["details"]["width"], 100_000);
}

#[tokio::test]
async fn job_creation_idempotency_ownership_and_listing() {
    let server = TestServer::start().await;
    let file_id = pending_file(&server, ALICE).await;
    for path in ["/api/v1/jobs", "/api/v1/generate/3d-model"] {
        let (status, body) = server
            .post_json(path, Some(ALICE), &json!({"file_id": file_id}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(
            (
                body["status"].as_str(),
                body["progress"].as_u64(),
                body["model_type"].as_str()
            ),
            (Some("queued"), Some(0), Some("relief"))
        );
    }
    let create = |key: &'static str| {
        server
            .request(Method::POST, "/api/v1/jobs", Some(ALICE))
            .header("idempotency-key", key)
            .json(&json!({"file_id": file_id}))
    };
    let (_, first) = json_of(create("order-42").send().await.unwrap()).await;
    let (_, again) = json_of(create("order-42").send().await.unwrap()).await;
    assert_eq!(first["job_id"], again["job_id"]);
    let (status, body) = json_of(create("bad key with spaces").send().await.unwrap()).await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");

    let (status, body) = server
        .post_json("/api/v1/jobs", Some(BOB), &json!({"file_id": file_id}))
        .await;
    assert_error(status, &body, 404, "FILE_NOT_FOUND");
    let (status, body) = server
        .post_json(
            "/api/v1/jobs",
            Some(ALICE),
            &json!({"file_id": file_id, "model_type": "hunyuan3d"}),
        )
        .await;
    assert_error(status, &body, 400, "MODEL_UNAVAILABLE");
    let (status, body) = server
        .post_json("/api/v1/jobs", Some(ALICE), &json!({"file_id": "nope"}))
        .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");
    let (status, body) = server
        .post_json(
            "/api/v1/jobs",
            Some(ALICE),
            &json!({"file_id": file_id, "options": {"texture": "ultra"}}),
        )
        .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");

    // Three jobs now; page through them two at a time, newest first, without repeats.
    let (_, page1) = server.get_json("/api/v1/jobs?limit=2", Some(ALICE)).await;
    assert_eq!(page1["jobs"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = server
        .get_json(
            &format!("/api/v1/jobs?limit=2&cursor={cursor}"),
            Some(ALICE),
        )
        .await;
    assert_eq!(page2["jobs"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    let created: Vec<&str> = page1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["jobs"].as_array().unwrap())
        .map(|j| j["created_at"].as_str().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
    let (_, bobs) = server.get_json("/api/v1/jobs", Some(BOB)).await;
    assert_eq!(bobs["jobs"], json!([]));
    let (_, queued) = server
        .get_json("/api/v1/jobs?status=queued", Some(ALICE))
        .await;
    assert_eq!(queued["jobs"].as_array().unwrap().len(), 3);
    for bad in [
        "status=bogus",
        "limit=0",
        "limit=101",
        "cursor=zz",
        "unknown=1",
    ] {
        let (status, body) = server
            .get_json(&format!("/api/v1/jobs?{bad}"), Some(ALICE))
            .await;
        assert_error(status, &body, 422, "VALIDATION_ERROR");
    }

    // Cancel, then a second cancel is a state conflict; another owner sees nothing.
    let job_id = first["job_id"].as_str().unwrap();
    let (status, body) = server
        .get_json(&format!("/api/v1/jobs/{job_id}"), Some(BOB))
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
    let (status, body) = server
        .call(Method::DELETE, &format!("/api/v1/jobs/{job_id}"), Some(BOB))
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
    let (status, body) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/jobs/{job_id}"),
            Some(ALICE),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (status, body) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/jobs/{job_id}"),
            Some(ALICE),
        )
        .await;
    assert_error(status, &body, 409, "INVALID_JOB_STATE");
    let (status, body) = server
        .get_json(&format!("/api/v1/download/{job_id}"), Some(ALICE))
        .await;
    assert_error(status, &body, 409, "RESULT_NOT_READY");
    let (status, body) = server
        .get_json(
            &format!("/api/v1/jobs/{}", uuid::Uuid::new_v4()),
            Some(ALICE),
        )
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
}

#[tokio::test]
async fn jobs_on_a_rejected_file_are_refused() {
    let server = TestServer::start().await;
    let body = json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": 4}]});
    let (_, presigned) = server
        .post_json("/api/v1/uploads/presign", Some(ALICE), &body)
        .await;
    let file_id = presigned["files"][0]["file_id"].as_str().unwrap();
    let upload = &presigned["files"][0]["upload"];
    server
        .client
        .put(upload["url"].as_str().unwrap())
        .header("content-type", "image/png")
        .body("oops")
        .send()
        .await
        .unwrap();
    let file = server.wait_for_file(ALICE, file_id).await;
    assert_eq!(file["status"], "rejected");
    assert_eq!(file["rejection"]["code"], "INVALID_FILE_TYPE");
    let (status, body) = server
        .post_json("/api/v1/jobs", Some(ALICE), &json!({"file_id": file_id}))
        .await;
    assert_error(status, &body, 409, "FILE_NOT_READY");
}

#[tokio::test]
async fn uploads_are_rate_limited_per_key_with_headers() {
    let server = TestServer::start_with(|c| c.limits.rate_limit_per_minute = 3).await;
    let body = json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": 10}]});
    for remaining in (0..3).rev() {
        let response = server
            .request(Method::POST, "/api/v1/uploads/presign", Some(ALICE))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-ratelimit-limit"], "3");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            remaining.to_string().as_str()
        );
        assert!(response.headers().contains_key("x-ratelimit-reset"));
    }
    let response = server
        .request(Method::POST, "/api/v1/uploads/presign", Some(ALICE))
        .json(&body)
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The sliding minute: what this minute counted still weighs in the next one.
    assert!((1..=120).contains(&retry_after), "{retry_after}");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    let (status, answer) = json_of(response).await;
    assert_error(status, &answer, 429, "RATE_LIMITED");
    // Another key has its own window.
    let response = server
        .request(Method::POST, "/api/v1/uploads/presign", Some(BOB))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Unauthenticated callers are counted per address, and still refused.
    let response = server
        .request(Method::POST, "/api/v1/uploads/presign", None)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["x-ratelimit-remaining"], "2");
}

/// Every documented route that reads a JSON body stops at 2 MiB, whatever its other limits
/// (the presign route once shared the multipart routes' 51 MiB), and stores nothing.
#[tokio::test]
async fn every_json_route_refuses_a_body_over_2_mib() {
    let server = TestServer::start().await;
    let (_, document) = server.get_json("/api/v1/openapi.json", None).await;
    let valid = json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": 10}]})
        .to_string();
    let padded = format!("{}{}", valid, " ".repeat(3 << 20));
    let mut checked = 0;
    for (template, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            if operation["requestBody"]["content"]["application/json"].is_null() {
                continue;
            }
            let path = template.replace("{job_id}", "a42befa4-6d5a-4914-8b8f-a36358d94b43");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for chunked in [false, true] {
                // Plausible webhook headers, so that FAL's route reads the body too.
                let request = plausible_fal_headers(
                    server
                        .request(method.clone(), &path, Some(ADMIN))
                        .header("content-type", "application/json"),
                );
                let request = if chunked {
                    let chunks = futures_util::stream::iter(
                        padded
                            .as_bytes()
                            .chunks(64 << 10)
                            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                            .collect::<Vec<_>>(),
                    );
                    request.body(reqwest::Body::wrap_stream(chunks))
                } else {
                    request.body(padded.clone())
                };
                let (status, body) = json_of(request.send().await.unwrap()).await;
                assert_error(status, &body, 413, "PAYLOAD_TOO_LARGE");
                checked += 1;
            }
        }
    }
    println!("JSON bodies over 2 MiB: {checked} requests, all 413");
    assert!(checked >= 10, "{checked}");
    assert_eq!(server.stored_uploads().await, 0);
}

/// A form upload's policy fields are each sent once (as in every form the API reads), a query
/// parameter too, on the webhook as elsewhere.
#[tokio::test]
async fn fields_and_parameters_sent_twice_are_refused_on_the_storage_and_webhook_routes() {
    let server = TestServer::start().await;
    let body = json!({
        "files": [{"filename": "a.png", "content_type": "image/png", "size": 100}],
        "upload_method": "POST"
    });
    let (status, presigned) = server
        .post_json("/api/v1/uploads/presign", Some(ALICE), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{presigned}");
    let upload = &presigned["files"][0]["upload"];
    let fields = upload["fields"].as_object().unwrap();
    let (first, value) = fields.iter().next().unwrap();
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in fields {
        form = form.text(name.clone(), value.as_str().unwrap().to_owned());
    }
    form = form.text(first.clone(), value.as_str().unwrap().to_owned());
    let part = reqwest::multipart::Part::bytes(vec![0u8; 100])
        .file_name("a.png")
        .mime_str("image/png")
        .unwrap();
    let response = server
        .client
        .post(upload["url"].as_str().unwrap())
        .multipart(form.part("file", part))
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(response).await;
    assert_error(status, &answer, 422, "VALIDATION_ERROR");
    // After the file, nothing: neither a field (signed or not) nor a second file.
    for (after, value) in [
        ("key", "uploads/bob/other"),
        ("signature", "00"),
        ("file", "x"),
    ] {
        let mut form = reqwest::multipart::Form::new();
        for (name, value) in fields {
            form = form.text(name.clone(), value.as_str().unwrap().to_owned());
        }
        let part = reqwest::multipart::Part::bytes(vec![0u8; 100])
            .file_name("a.png")
            .mime_str("image/png")
            .unwrap();
        let form = form.part("file", part).text(after, value);
        let response = server
            .client
            .post(upload["url"].as_str().unwrap())
            .multipart(form)
            .send()
            .await
            .unwrap();
        let (status, answer) = json_of(response).await;
        assert_error(status, &answer, 422, "VALIDATION_ERROR");
    }
    assert_eq!(server.stored_uploads().await, 0);
    let id = "a42befa4-6d5a-4914-8b8f-a36358d94b43";
    let response = plausible_fal_headers(server.request(
        Method::POST,
        &format!("/api/v1/webhooks/fal?job_id={id}&job_id={id}"),
        None,
    ))
    .json(&json!({"request_id": "r", "status": "OK"}))
    .send()
    .await
    .unwrap();
    let (status, answer) = json_of(response).await;
    assert_error(status, &answer, 422, "VALIDATION_ERROR");
    // What breaks the published schema is refused before FAL's keys are fetched (none can be
    // here: that would be 503).
    let job = format!("job_id={id}");
    for (query, content_type, body, code) in [
        (
            "job_id=not-a-uuid",
            "application/json",
            r#"{"request_id":"r","status":"OK"}"#,
            422,
        ),
        (
            job.as_str(),
            "text/plain",
            r#"{"request_id":"r","status":"OK"}"#,
            415,
        ),
        (job.as_str(), "application/json", "not json", 422),
    ] {
        let response = plausible_fal_headers(server.request(
            Method::POST,
            &format!("/api/v1/webhooks/fal?{query}"),
            None,
        ))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
        let (status, answer) = json_of(response).await;
        assert_eq!(
            status.as_u16(),
            code,
            "{query} {content_type} {body}: {answer}"
        );
    }
}

/// Health probes run together as a load balancer and monitors run them: 1,000 at 100 at once,
/// over every probe that exercises object storage, and not one reports a healthy store down.
#[tokio::test]
async fn a_thousand_concurrent_probes_never_report_a_healthy_store_down() {
    use futures_util::StreamExt;
    let server = TestServer::start().await;
    let probes = [
        "/api/v1/health/readiness",
        "/api/v1/health/detailed",
        "/api/v1/admin/system-health",
    ];
    let answers: Vec<(String, StatusCode, Value)> = futures_util::stream::iter(0..1000)
        .map(|n| {
            let path = probes[n % probes.len()];
            let request = server.request(Method::GET, path, Some(ADMIN));
            async move {
                let (status, body) = json_of(request.send().await.unwrap()).await;
                (path.to_owned(), status, body)
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let false_alarms: Vec<_> = answers
        .iter()
        .filter(|(_, status, body)| {
            *status != StatusCode::OK || body.to_string().contains("unhealthy")
        })
        .collect();
    assert_eq!(answers.len(), 1000);
    println!("probes: 1000 at 100 at once, {} false", false_alarms.len());
    assert!(
        false_alarms.is_empty(),
        "{} false: {:?}",
        false_alarms.len(),
        false_alarms.first()
    );
    let left = std::fs::read_dir(server.dir.path().join("objects").join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "probe objects left behind");
}

/// The rate limit counts work: each file stored and each job created is one unit, a request
/// that would pass the budget is refused whole (429, nothing stored, nothing created), and the
/// `X-RateLimit-*` headers say what is left.
#[tokio::test]
async fn the_rate_limit_counts_files_and_jobs_and_refuses_a_request_whole() {
    let server = TestServer::start_with(|c| c.limits.rate_limit_per_minute = 8).await;
    let batch = |files: usize| {
        let mut form = reqwest::multipart::Form::new();
        for n in 0..files {
            let part = reqwest::multipart::Part::bytes(png(16 + n as u32, 16))
                .file_name(format!("p{n}.png"))
                .mime_str("image/png")
                .unwrap();
            form = form.part("files", part);
        }
        server
            .request(Method::POST, "/api/v1/upload", Some(ALICE))
            .multipart(form)
    };
    let stored = || async {
        let files = server.ctx.storage.list("uploads/").await.unwrap().len();
        let query = image2model_shared::ports::JobQuery {
            owner: None,
            status: None,
            limit: 100,
            cursor: None,
        };
        let jobs = server.ctx.store.list_jobs(&query).await.unwrap().jobs.len();
        (files, jobs)
    };
    // Five files and their five jobs are ten units: more than a whole minute's eight, refused
    // whole, and without a Retry-After that no wait would honour.
    let response = batch(5).send().await.unwrap();
    assert_eq!(response.headers()["x-ratelimit-limit"], "8");
    assert!(!response.headers().contains_key("retry-after"));
    let (status, body) = json_of(response).await;
    assert_error(status, &body, 429, "RATE_LIMITED");
    assert_eq!(body["details"], json!({"units": 10, "limit": 8}));
    assert_eq!(stored().await, (0, 0), "a refused request stores nothing");
    // Three files are six units (the refused request cost nothing): two left.
    let response = batch(3).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-ratelimit-remaining"], "2");
    assert_eq!(stored().await, (3, 3));
    // Presign with `generate` counts its files and jobs the same way.
    let body = json!({
        "files": [{"filename": "a.png", "content_type": "image/png", "size": 100}],
        "generate": {}
    });
    let (status, answer) = server
        .post_json("/api/v1/uploads/presign", Some(BOB), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let many = json!({
        "files": vec![json!({"filename": "a.png", "content_type": "image/png", "size": 100}); 4],
        "generate": {}
    });
    let response = server
        .request(Method::POST, "/api/v1/uploads/presign", Some(BOB))
        .json(&many)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-ratelimit-remaining"], "6");
    let (status, answer) = json_of(response).await;
    assert_error(status, &answer, 429, "RATE_LIMITED");
    assert_eq!(stored().await.1, 4, "Bob's refused jobs were not created");
}

/// Someone behind the same address (a NAT) who has used up the address's keyless budget does
/// not block another person's signed upload: a signed PUT was paid for on its owner's budget
/// when it was signed, and costs nothing more; a forged or replayed URL counts against the
/// address.
#[tokio::test]
async fn keyless_traffic_cannot_use_up_the_budget_of_someone_elses_signed_upload() {
    let server = TestServer::start_with(|c| c.limits.rate_limit_per_minute = 3).await;
    let photo = png(32, 32);
    let body =
        json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": photo.len()}]});
    let (status, presigned) = server
        .post_json("/api/v1/uploads/presign", Some(ALICE), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{presigned}");
    for _ in 0..5 {
        server
            .post_json(
                "/api/v1/uploads/presign",
                Some("junk-key-0123456789"),
                &body,
            )
            .await;
    }
    let (status, body) = server
        .post_json("/api/v1/uploads/presign", None, &body)
        .await;
    assert_error(status, &body, 429, "RATE_LIMITED");
    server
        .put_signed(&presigned["files"][0]["upload"], &photo)
        .await;
    // The upload cost its owner nothing more: one presign used one unit of three.
    let response = server
        .request(Method::POST, "/api/v1/uploads/presign", Some(ALICE))
        .json(&json!({"files": [{"filename": "b.png", "content_type": "image/png", "size": 10}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-ratelimit-remaining"], "1");
    // A forged URL, and a replay of the used one, count against the address: refused.
    let url = presigned["files"][0]["upload"]["url"].as_str().unwrap();
    let forged = url.replace("signature=", "signature=00");
    for url in [forged.as_str(), url] {
        let response = server
            .client
            .put(url)
            .body(photo.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{url}");
    }
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let server = TestServer::start().await;
    let preflight = |origin: &'static str| {
        server
            .client
            .request(Method::OPTIONS, server.url("/api/v1/uploads/presign"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
    };
    let response = preflight("http://localhost:3000").send().await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    let response = preflight("https://evil.example").send().await.unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let response = server
        .request(Method::GET, "/api/v1/health", None)
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert!(
        response.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("x-request-id")
    );
    // A browser's requests to routes with path parameters, and its signed upload (a same-origin
    // PUT carries `Origin` too), reach their routes once, with CORS headers.
    let photo = png(24, 24);
    let body = json!({
        "files": [{"filename": "a.png", "content_type": "image/png", "size": photo.len()}],
        "generate": {}
    });
    let (status, presigned) = server
        .post_json("/api/v1/uploads/presign", Some(ALICE), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{presigned}");
    let file = &presigned["files"][0];
    let mut put = server
        .client
        .put(file["upload"]["url"].as_str().unwrap())
        .header("origin", "http://localhost:3000");
    for (name, value) in file["upload"]["headers"].as_object().unwrap() {
        put = put.header(name.as_str(), value.as_str().unwrap());
    }
    let response = put.body(photo).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let job = file["job_id"].as_str().unwrap();
    for path in [
        format!("/api/v1/jobs/{job}"),
        format!("/api/v1/status/tasks/{job}/status"),
        format!("/api/v1/files/{}", file["file_id"].as_str().unwrap()),
    ] {
        let response = server
            .request(Method::GET, &path, Some(ALICE))
            .header("origin", "http://localhost:3000")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "http://localhost:3000",
            "{path}"
        );
    }
}

/// An `OPTIONS` that is no CORS preflight (no `Origin`, or no `Access-Control-Request-Method`)
/// is answered as the old API answered it, on every documented path: 405 in the envelope, with
/// `Allow` naming the path's methods.
#[tokio::test]
async fn options_that_is_no_preflight_is_405_with_allow_on_every_path() {
    let server = TestServer::start().await;
    let document: Value = server
        .request(Method::GET, "/api/v1/openapi.json", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() > 30, "{} paths", paths.len());
    for (template, operations) in paths {
        let path = template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "123e4567-e89b-42d3-a456-426614174000"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let documented: std::collections::BTreeSet<String> = operations
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        for origin in [None, Some("http://localhost:3000")] {
            let mut request = server.request(Method::OPTIONS, &path, None);
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            let response = request.send().await.unwrap();
            let allow: std::collections::BTreeSet<String> = response
                .headers()
                .get("allow")
                .unwrap_or_else(|| panic!("OPTIONS {path}: no Allow header"))
                .to_str()
                .unwrap()
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| m != "HEAD")
                .collect();
            assert!(
                documented.is_subset(&allow),
                "OPTIONS {path}: Allow {allow:?}, documented {documented:?}"
            );
            let (status, body) = json_of(response).await;
            assert_error(status, &body, 405, "METHOD_NOT_ALLOWED");
        }
    }
    println!(
        "OPTIONS that is no preflight: {} paths, twice each, all 405",
        paths.len()
    );
}

/// On Lambda the gateway owns CORS (API Gateway's and the function URL's configurations): the
/// functions add no CORS header of their own, so a browser never sees one twice.
#[tokio::test]
async fn on_lambda_the_gateway_answers_for_cors() {
    let ctx = image2model_shared::config::Config::from_vars(&std::collections::HashMap::from([(
        "AWS_LAMBDA_FUNCTION_NAME".to_owned(),
        "image2model-health".to_owned(),
    )]))
    .unwrap();
    assert!(!ctx.sign_in.cors_in_code);
    let server = TestServer::start_with(|c| c.sign_in.cors_in_code = false).await;
    let response = server
        .request(Method::GET, "/api/v1/health", None)
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert!(
        response
            .headers()
            .keys()
            .all(|name| !name.as_str().starts_with("access-control-")),
        "{:?}",
        response.headers()
    );
}

/// The served description is the one the routes declare: regenerated here and compared with
/// `functions/health/openapi.json` (which the health function serves on Lambda). After changing
/// a route, `UPDATE_OPENAPI=1 cargo nextest run -p image2model-tests -E 'test(openapi)'` writes it.
#[tokio::test]
async fn the_openapi_document_is_generated_from_the_routes() {
    let server = TestServer::start().await;
    let generated = image2model_local::openapi(&server.ctx).unwrap();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/health/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap();
    assert!(
        checked_in == generated,
        "functions/health/openapi.json is not what the routes declare; regenerate it with UPDATE_OPENAPI=1"
    );
    let response = server
        .request(Method::GET, "/api/v1/openapi.json", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), generated);
}

/// Every `$ref` in `value` (the document), recursively.
fn refs_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push(target.clone());
            }
            map.values().for_each(|v| refs_in(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

/// The document is the contract: every JSON answer, success or error, names a schema (a `$ref`
/// or an object with properties, never a bare `{"type": "object"}`), every `$ref` resolves,
/// and each error status points at its own envelope, whose codes are the ones that status
/// carries.
#[tokio::test]
async fn every_json_answer_of_the_document_has_a_schema() {
    let server = TestServer::start().await;
    let (_, doc) = server.get_json("/api/v1/openapi.json", None).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let (mut answers, mut untyped) = (0, Vec::new());
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let Some(content) = response.get("content").and_then(Value::as_object) else {
                    continue;
                };
                for (media, body) in content.iter().filter(|(m, _)| m.contains("json")) {
                    answers += 1;
                    let schema = &body["schema"];
                    let named = schema.get("$ref").is_some()
                        || schema["properties"]
                            .as_object()
                            .is_some_and(|p| !p.is_empty())
                        || schema["items"].get("$ref").is_some();
                    if !named {
                        untyped.push(format!("{method} {path} {status} {media}: {schema}"));
                    }
                    if status.starts_with('4') || status.starts_with('5') {
                        // The envelope of its status, or a schema built on it (readiness' 503).
                        let envelope = format!("#/components/schemas/Error{status}");
                        let named = schema["$ref"].as_str().unwrap_or_default();
                        let base = named
                            .rsplit('/')
                            .next()
                            .and_then(|name| schemas.get(name))
                            .map(|s| &s["allOf"][0]["$ref"]);
                        assert!(
                            named == envelope || base == Some(&json!(envelope)),
                            "{method} {path} {status}: {schema}"
                        );
                    }
                }
            }
        }
    }
    assert!(
        untyped.is_empty(),
        "untyped answers:\n{}",
        untyped.join("\n")
    );
    assert!(answers > 400, "{answers} JSON answers");
    let mut targets = Vec::new();
    refs_in(&doc, &mut targets);
    for target in targets {
        let name = target.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.contains_key(name), "{target} resolves to nothing");
    }
    // Every operation answers what the layers in front of it refuse.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for status in ["400", "429"] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path}: no {status}"
                );
            }
        }
    }
    let not_found = &schemas["Error404"]["allOf"][1]["properties"]["error_code"]["enum"];
    assert!(
        not_found
            .as_array()
            .unwrap()
            .contains(&json!("JOB_NOT_FOUND"))
    );
    assert!(
        !not_found
            .as_array()
            .unwrap()
            .contains(&json!("RATE_LIMITED"))
    );
}

#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let server = TestServer::start().await;
    let (status, doc) = server.get_json("/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 28);
    let id = uuid::Uuid::new_v4().to_string();
    for (path, ops) in paths {
        let concrete = path
            .replace("{job_id}", &id)
            .replace("{task_id}", &id)
            .replace("{batch_id}", &id)
            .replace("{file_id}", &id);
        for method in ops.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server
                .request(method.clone(), &concrete, Some(ADMIN))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let (_, body) = json_of(response).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(
                body["error_code"], "NOT_FOUND",
                "{method} {path} is documented but not routed"
            );
        }
    }
}

#[tokio::test]
async fn models_available_reflects_the_deployment() {
    let server = TestServer::start().await;
    let (status, body) = server.get_json("/api/v1/models/available", None).await;
    assert_eq!(status, StatusCode::OK);
    let models = body.as_array().expect("a list, as the old API answered");
    let available: Vec<&str> = models
        .iter()
        .filter(|m| m["available"] == true)
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(available, ["relief"]);
    let default: Vec<&Value> = models.iter().filter(|m| m["default"] == true).collect();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["name"], "relief");
    let tripo = models.iter().find(|m| m["name"] == "tripo3d").unwrap();
    assert_eq!(tripo["available"], false);
}

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

/// A request means one thing: a JSON key given twice, an enum written as an object, a header
/// that takes one value sent twice, or a body of another media type are refused before anything
/// happens (a duplicated `dry_run` once turned a dry run into a real cleanup).
#[tokio::test]
async fn a_request_that_could_mean_two_things_is_refused() {
    let server = TestServer::start().await;
    let (_, file) = upload_image(&server, ALICE, png(32, 32), "a.png", "image/png").await;
    let raw = |path: &str, key: &str, content_type: &str, body: String| {
        server
            .request(Method::POST, path, Some(key))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    // Everything is old enough to go, were the cleanup real.
    let cleanup = r#"{"dry_run": true, "hours": 0, "dry_run": false}"#.to_owned();
    let (status, body) = json_of(
        raw("/api/v1/admin/cleanup", ADMIN, "application/json", cleanup)
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");
    assert!(
        body["detail"].as_str().unwrap().contains("duplicate field"),
        "{body}"
    );
    let (status, still) = server
        .get_json(
            &format!("/api/v1/files/{}", file["file_id"].as_str().unwrap()),
            Some(ALICE),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the file survived: {still}");

    let file_id = file["file_id"].as_str().unwrap();
    for body in [
        format!(r#"{{"file_id": "{file_id}", "options": [], "options": {{}}}}"#),
        format!(r#"{{"file_id": "{file_id}", "fil\u0065_id": "{file_id}"}}"#),
        format!(r#"{{"file_id": "{file_id}", "options": {{"texture": {{"HD": null}}}}}}"#),
    ] {
        let (status, answer) = json_of(
            raw("/api/v1/jobs", ALICE, "application/json", body.clone())
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &answer, 422, "VALIDATION_ERROR");
    }
    let presign = r#"{"files": [{"filename": "a.png", "content_type": "image/png", "size": 10}], "upload_method": {"POST": null}}"#;
    let (status, answer) = json_of(
        raw(
            "/api/v1/uploads/presign",
            ALICE,
            "application/json",
            presign.to_owned(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &answer, 422, "VALIDATION_ERROR");
    assert_eq!(answer["details"]["field"], "upload_method", "{answer}");
    let (status, answer) = server
        .post_json(
            "/api/v1/uploads/presign",
            Some(ALICE),
            &json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": "10"}]}),
        )
        .await;
    assert_error(status, &answer, 422, "VALIDATION_ERROR");
    assert_eq!(answer["details"]["field"], "files[0].size", "{answer}");
    // Range checks name the whole path too.
    let (status, answer) = server
        .post_json(
            "/api/v1/uploads/presign",
            Some(ALICE),
            &json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": 10}], "generate": {"options": {"face_limit": 10}}}),
        )
        .await;
    assert_error(status, &answer, 422, "VALIDATION_ERROR");
    assert_eq!(
        answer["details"]["field"], "generate.options.face_limit",
        "{answer}"
    );

    // Single-value headers sent twice.
    for (name, first, second) in [
        (
            "authorization",
            format!("Bearer {ALICE}"),
            format!("Bearer {BOB}"),
        ),
        ("x-api-key", ALICE.to_owned(), BOB.to_owned()),
        (
            "content-type",
            "application/json".to_owned(),
            "text/plain".to_owned(),
        ),
        ("idempotency-key", "k1".to_owned(), "k2".to_owned()),
    ] {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.append(name, first.parse().unwrap());
        headers.append(name, second.parse().unwrap());
        if name != "authorization" && name != "x-api-key" {
            headers.insert("authorization", format!("Bearer {ALICE}").parse().unwrap());
        }
        let response = server
            .client
            .post(server.url("/api/v1/jobs"))
            .headers(headers)
            .body(json!({"file_id": file_id}).to_string())
            .send()
            .await
            .unwrap();
        let (status, answer) = json_of(response).await;
        assert_error(status, &answer, 400, "BAD_REQUEST");
        assert!(
            answer["detail"].as_str().unwrap().contains(name),
            "{answer}"
        );
    }

    // Another media type than the route reads.
    for (path, content_type, body) in [
        (
            "/api/v1/jobs",
            "text/plain",
            json!({"file_id": file_id}).to_string(),
        ),
        ("/api/v1/jobs", "", json!({"file_id": file_id}).to_string()),
        (
            "/api/v1/jobs",
            "application/ld+json",
            json!({"file_id": file_id}).to_string(),
        ),
        ("/api/v1/upload/image", "application/json", "{}".to_owned()),
        (
            "/api/v1/upload",
            "multipart/mixed; boundary=x",
            "--x--".to_owned(),
        ),
    ] {
        let (status, answer) = json_of(raw(path, ALICE, content_type, body).await.unwrap()).await;
        assert_error(status, &answer, 415, "UNSUPPORTED_MEDIA_TYPE");
    }
    let (_, jobs) = server.get_json("/api/v1/jobs", Some(ALICE)).await;
    assert_eq!(jobs["jobs"], json!([]), "no refused request created a job");
}

/// On AWS a route exists only where `template.yaml` sends it: every documented operation must
/// reach the function that serves it (an HTTP API event of that function, with `{proxy+}` and
/// `ANY` as API Gateway reads them; the status routes through the status function's streaming
/// URL).
#[test]
fn every_documented_route_reaches_its_function_on_aws() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(template::root().join("functions/health/openapi.json")).unwrap(),
    )
    .unwrap();
    let routes = template::http_routes();
    let serves = |tag: &str| match tag {
        "uploads" => "image2model-upload",
        "downloads" => "image2model-download",
        "webhooks" => "image2model-webhook",
        "webhook-endpoints" => "image2model-endpoints",
        "jobs" => "image2model-jobs",
        "status" => "image2model-status",
        "admin" => "image2model-admin",
        _ => "image2model-health",
    };
    let mut unrouted = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let function = serves(op["tags"][0].as_str().unwrap());
            let routed = routes.with_url.iter().any(|b| b == function)
                || routes.events.iter().any(|(b, p, m)| {
                    b == function
                        && template::route_matches(p, path)
                        && (m == "ANY" || m.eq_ignore_ascii_case(method))
                });
            if !routed {
                unrouted.push(format!("{method} {path} -> {function}"));
            }
        }
    }
    assert!(routes.events.len() >= 20, "{:?}", routes.events);
    assert!(
        unrouted.is_empty(),
        "template.yaml does not route: {unrouted:#?}"
    );
}
