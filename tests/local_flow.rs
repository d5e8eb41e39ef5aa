//! The whole flow through the local server over real HTTP: presign -> PUT -> ingestion -> job
//! -> worker -> SSE until task_completed -> download of a parseable GLB; the compatibility batch
//! routes; signed-URL refusals; restarts.

use image2model_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn photo_to_glb_through_presign_sse_and_download() {
    let server = TestServer::start().await;
    let photo = jpeg(320, 240);
    let (file_id, job_id) = server
        .upload_presigned(ALICE, &photo, "image/jpeg", true)
        .await;
    let job_id = job_id.expect("presign with generate creates a job");

    let stream = server
        .request(
            Method::GET,
            &format!("/api/v1/status/tasks/{job_id}/sse"),
            Some(ALICE),
        )
        .send()
        .await
        .unwrap();
    let frames = read_sse(stream).await;
    let (last_event, last) = frames.last().unwrap();
    assert_eq!(last_event, "task_completed", "{frames:?}");
    assert_eq!(last["job_id"], json!(job_id));
    assert_eq!(last["progress"], 100);
    assert_eq!(last["result"]["content_type"], "model/gltf-binary");
    for (event, data) in &frames {
        assert!(
            ["task_queued", "task_progress", "task_completed"].contains(&event.as_str()),
            "{event}"
        );
        for field in ["task_id", "status", "progress", "message", "timestamp"] {
            assert!(!data[field].is_null(), "{event} lacks {field}: {data}");
        }
    }
    let progress: Vec<u64> = frames
        .iter()
        .map(|(_, d)| d["progress"].as_u64().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress moved back: {progress:?}"
    );
    // One frame per change: no two consecutive frames are identical.
    assert!(frames.windows(2).all(|w| (
        &w[0].1["status"],
        &w[0].1["progress"],
        &w[0].1["message"]
    ) != (
        &w[1].1["status"],
        &w[1].1["progress"],
        &w[1].1["message"]
    )));

    let (_, file) = server
        .get_json(&format!("/api/v1/files/{file_id}"), Some(ALICE))
        .await;
    assert_eq!(
        (file["status"].as_str(), file["width"].as_u64()),
        (Some("ready"), Some(320))
    );
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_u64()),
        (Some("completed"), Some(1))
    );

    let glb = server.download_model(ALICE, &job_id).await;
    assert_eq!(job["result"]["size"].as_u64(), Some(glb.len() as u64));
    let (vertices, triangles, texture) = inspect_glb(&glb);
    assert!(
        triangles <= 20_000 && triangles > 10_000,
        "face_limit 20000 gave {triangles}"
    );
    assert!(vertices > 1000);
    assert_eq!(texture, (320, 240));

    let (status, link) = server
        .get_json(
            &format!("/api/v1/download/{job_id}?redirect=false"),
            Some(ALICE),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .contains("/local-storage/results/")
    );
    assert!(link["expires_at"].is_string());
    let (status, body) = server
        .get_json(&format!("/api/v1/download/{job_id}"), Some(BOB))
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
}

#[tokio::test]
async fn every_shared_photo_becomes_a_model() {
    let dir = image2model_tests::photo_fixtures_dir();
    let server = TestServer::start().await;
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("the shared photo fixtures beside the project") {
        let path = entry.unwrap().path();
        let mime = match path.extension().and_then(|e| e.to_str()) {
            Some("png") => "image/png",
            Some("jpg") => "image/jpeg",
            Some("webp") => "image/webp",
            _ => continue,
        };
        let bytes = std::fs::read(&path).unwrap();
        let (_, job_id) = server.upload_presigned(ALICE, &bytes, mime, true).await;
        let job = server.wait_for_job(ALICE, job_id.as_deref().unwrap()).await;
        assert_eq!(job["status"], "completed", "{}: {job}", path.display());
        let glb = server
            .download_model(ALICE, job_id.as_deref().unwrap())
            .await;
        let (_, triangles, (w, h)) = inspect_glb(&glb);
        let original = image::load_from_memory(&bytes).unwrap();
        // The photos are under the 1024 px texture limit, so the texture keeps their size.
        assert_eq!(
            (w, h),
            (original.width(), original.height()),
            "{}",
            path.display()
        );
        assert!(triangles > 0);
        seen += 1;
    }
    assert!(seen >= 6, "expected the six shared photos, found {seen}");
}

#[tokio::test]
async fn compatibility_batch_upload_runs_one_job_per_file() {
    let server = TestServer::start().await;
    let images = [
        ("a.png", png(120, 90), "image/png"),
        ("b.jpg", jpeg(100, 100), "image/jpeg"),
        ("c.webp", webp(80, 120), "image/webp"),
        ("d.png", rgba_png(90, 90), "image/png"),
    ];
    let mut form = reqwest::multipart::Form::new()
        .text("face_limit", "5000")
        .text("model_type", "relief");
    for (name, bytes, mime) in &images {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(bytes.clone())
                .file_name(*name)
                .mime_str(mime)
                .unwrap(),
        );
    }
    let (status, batch) = json_of(
        server
            .request(Method::POST, "/api/v1/upload/", Some(ALICE))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    let batch_id = batch["batch_id"].as_str().unwrap();
    assert_eq!(batch["job_id"], batch["batch_id"]);
    assert_eq!(batch["task_id"], batch["batch_id"]);
    assert_eq!(
        (
            batch["total_files"].as_u64(),
            batch["face_limit"].as_u64(),
            batch["status"].as_str()
        ),
        (Some(4), Some(5000), Some("uploaded"))
    );
    let files = batch["uploaded_files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    for (file, (name, bytes, mime)) in files.iter().zip(&images) {
        assert_eq!(
            (
                file["filename"].as_str(),
                file["file_size"].as_u64(),
                file["content_type"].as_str()
            ),
            (Some(*name), Some(bytes.len() as u64), Some(*mime))
        );
        assert!(file["job_id"].is_string());
    }

    let frames = read_sse(
        server
            .request(
                Method::GET,
                &format!("/api/v1/status/tasks/{batch_id}/stream"),
                Some(ALICE),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(frames.last().unwrap().0, "task_completed", "{frames:?}");
    let (status, summary) = server
        .get_json(
            &format!("/api/v1/status/tasks/{batch_id}/status"),
            Some(ALICE),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (summary["status"].as_str(), summary["progress"].as_u64()),
        (Some("completed"), Some(100))
    );
    assert_eq!(summary["jobs"].as_array().unwrap().len(), 4);

    let (status, all) = server
        .get_json(&format!("/api/v1/download/{batch_id}/all"), Some(ALICE))
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["total_files"], 4);
    assert_eq!(all["files"].as_array().unwrap().len(), 4);
    for (entry, url) in all["files"]
        .as_array()
        .unwrap()
        .iter()
        .zip(all["download_urls"].as_array().unwrap())
    {
        assert_eq!(entry["mime_type"], "model/gltf-binary");
        let glb = server
            .client
            .get(url.as_str().unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(entry["size"].as_u64(), Some(glb.len() as u64));
        let (_, triangles, _) = inspect_glb(&glb);
        assert!(triangles <= 5000);
    }
    let (status, body) = server
        .get_json(
            &format!("/api/v1/status/tasks/{batch_id}/status"),
            Some(BOB),
        )
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");

    // Too many files: refused as a whole, nothing stored.
    let server = TestServer::start_with(|c| c.limits.max_files = 2).await;
    let mut form = reqwest::multipart::Form::new();
    for _ in 0..3 {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(png(10, 10))
                .file_name("x.png")
                .mime_str("image/png")
                .unwrap(),
        );
    }
    let (status, body) = json_of(
        server
            .request(Method::POST, "/api/v1/upload", Some(ALICE))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "TOO_MANY_FILES");
    assert!(
        server
            .ctx
            .storage
            .list("uploads/")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn signed_urls_refuse_tampering_expiry_and_mismatched_bodies() {
    let server = TestServer::start_with(|c| c.jobs.presign_expiry = Duration::from_secs(1)).await;
    let bytes = png(40, 40);
    let body =
        json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": bytes.len()}]});
    let (_, presigned) = server
        .post_json("/api/v1/uploads/presign", Some(ALICE), &body)
        .await;
    let url = presigned["files"][0]["upload"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let file_id = presigned["files"][0]["file_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = |url: String, ct: &'static str, body: Vec<u8>| {
        server.client.put(url).header("content-type", ct).body(body)
    };

    let sig_at = url.find("signature=").unwrap() + "signature=".len();
    let mut tampered = url.clone();
    tampered.replace_range(
        sig_at..sig_at + 1,
        if &url[sig_at..sig_at + 1] == "a" {
            "b"
        } else {
            "a"
        },
    );
    let (status, answer) = json_of(
        put(tampered, "image/png", bytes.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &answer, 403, "SIGNATURE_INVALID");
    let other_key = url.replace(
        &file_id.replace('-', "%2D"),
        &uuid::Uuid::new_v4().to_string().replace('-', "%2D"),
    );
    let (status, _) = json_of(
        put(other_key, "image/png", bytes.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = json_of(
        put(url.clone(), "image/jpeg", bytes.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &answer, 400, "SIGNED_REQUEST_MISMATCH");
    let mut longer = bytes.clone();
    longer.push(0);
    let (status, answer) =
        json_of(put(url.clone(), "image/png", longer).send().await.unwrap()).await;
    assert_error(status, &answer, 400, "SIGNED_REQUEST_MISMATCH");
    let (status, _) = json_of(
        put(url.clone(), "image/png", bytes[..bytes.len() - 1].to_vec())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        server
            .ctx
            .storage
            .list("uploads/")
            .await
            .unwrap()
            .is_empty(),
        "refused PUTs store nothing"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, answer) = json_of(put(url, "image/png", bytes).send().await.unwrap()).await;
    assert_error(status, &answer, 403, "SIGNATURE_INVALID");
    assert!(
        server
            .ctx
            .storage
            .list("uploads/")
            .await
            .unwrap()
            .is_empty()
    );
    let (_, file) = server
        .get_json(&format!("/api/v1/files/{file_id}"), Some(ALICE))
        .await;
    assert_eq!(file["status"], "pending");
}

#[tokio::test]
async fn a_job_waiting_on_a_rejected_upload_fails_with_the_ingestion_error() {
    let server = TestServer::start().await;
    let mut fake = png(30, 30);
    fake.truncate(fake.len() - 20);
    let (file_id, job_id) = server
        .upload_presigned(ALICE, &fake, "image/png", true)
        .await;
    let job = server.wait_for_job(ALICE, job_id.as_deref().unwrap()).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "INVALID_IMAGE");
    let (_, file) = server
        .get_json(&format!("/api/v1/files/{file_id}"), Some(ALICE))
        .await;
    assert_eq!(file["status"], "rejected");
    assert!(
        server
            .ctx
            .storage
            .list("uploads/")
            .await
            .unwrap()
            .is_empty(),
        "rejected bytes are deleted"
    );
    let frames = read_sse(
        server
            .request(
                Method::GET,
                &format!("/api/v1/status/tasks/{}/sse", job_id.unwrap()),
                Some(ALICE),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0, "task_failed");
    assert_eq!(frames[0].1["error_code"], "INVALID_IMAGE");
    assert!(frames[0].1["error"].is_string(), "the old API's text");
}

#[tokio::test]
async fn a_job_cancelled_before_its_upload_arrives_stays_cancelled() {
    let server = TestServer::start().await;
    let bytes = png(50, 50);
    let body = json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": bytes.len()}], "generate": {}});
    let (_, presigned) = server
        .post_json("/api/v1/uploads/presign", Some(ALICE), &body)
        .await;
    let entry = &presigned["files"][0];
    let job_id = entry["job_id"].as_str().unwrap();
    let (status, cancelled) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/jobs/{job_id}"),
            Some(ALICE),
        )
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    // A witness on the same file, created after the cancelled job: ingestion releases the
    // file's jobs in creation order, so once the witness completed it has passed the other.
    let (status, witness) = server
        .post_json(
            "/api/v1/jobs",
            Some(ALICE),
            &json!({"file_id": entry["file_id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{witness}");
    let witness_id = witness["job_id"].as_str().unwrap();
    server
        .client
        .put(entry["upload"]["url"].as_str().unwrap())
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let file = server
        .wait_for_file(ALICE, entry["file_id"].as_str().unwrap())
        .await;
    assert_eq!(file["status"], "ready");
    let witness = server.wait_for_job(ALICE, witness_id).await;
    assert_eq!(witness["status"], "completed", "{witness}");
    server.wait_for_queue_drained().await;
    let (_, job) = server
        .get_json(&format!("/api/v1/jobs/{job_id}"), Some(ALICE))
        .await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_u64()),
        (Some("cancelled"), Some(0))
    );
}

#[tokio::test]
async fn a_restart_keeps_files_jobs_results_and_keys() {
    let server = TestServer::start().await;
    let (file_id, job_id) = server
        .upload_presigned(ALICE, &jpeg(64, 64), "image/jpeg", true)
        .await;
    let job_id = job_id.unwrap();
    server.wait_for_job(ALICE, &job_id).await;
    let pending = json!({"files": [{"filename": "later.png", "content_type": "image/png", "size": 10}], "generate": {}});
    let (_, waiting) = server
        .post_json("/api/v1/uploads/presign", Some(ALICE), &pending)
        .await;

    let server = server.restart().await;
    let (status, job) = server
        .get_json(&format!("/api/v1/jobs/{job_id}"), Some(ALICE))
        .await;
    assert_eq!(
        (status, job["status"].as_str()),
        (StatusCode::OK, Some("completed"))
    );
    let (_, file) = server
        .get_json(&format!("/api/v1/files/{file_id}"), Some(ALICE))
        .await;
    assert_eq!(file["status"], "ready");
    inspect_glb(&server.download_model(ALICE, &job_id).await);
    let waiting_job = waiting["files"][0]["job_id"].as_str().unwrap();
    let (_, job) = server
        .get_json(&format!("/api/v1/jobs/{waiting_job}"), Some(ALICE))
        .await;
    assert_eq!(job["status"], "queued");
}

/// Sends a presigned form: every policy field, then the file.
fn form(
    fields: &serde_json::Map<String, Value>,
    bytes: Vec<u8>,
    mime: &str,
) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in fields {
        form = form.text(name.clone(), value.as_str().unwrap().to_owned());
    }
    form.part(
        "file",
        reqwest::multipart::Part::bytes(bytes)
            .file_name("photo")
            .mime_str(mime)
            .unwrap(),
    )
}

#[tokio::test]
async fn browser_form_posts_upload_within_their_policy() {
    let server = TestServer::start().await;
    let photo = png(90, 60);
    let body = json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": photo.len()}], "generate": {}, "upload_method": "POST"});
    let (status, presigned) = server
        .post_json("/api/v1/uploads/presign", Some(ALICE), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{presigned}");
    let upload = &presigned["files"][0]["upload"];
    assert_eq!(upload["method"], "POST");
    let fields = upload["fields"].as_object().unwrap();
    let url = upload["url"].as_str().unwrap();

    let mut bigger = photo.clone();
    bigger.push(0);
    let (status, answer) = json_of(
        server
            .client
            .post(url)
            .multipart(form(fields, bigger, "image/png"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &answer, 400, "SIGNED_REQUEST_MISMATCH");
    let mut tampered = fields.clone();
    tampered.insert("max_length".into(), json!("999999999"));
    let (status, answer) = json_of(
        server
            .client
            .post(url)
            .multipart(form(&tampered, photo.clone(), "image/png"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &answer, 403, "SIGNATURE_INVALID");
    // The policy names one key: any other (another file's, one no record names, outside the
    // owner's folder, or escaping it) is refused.
    let other = format!(
        "uploads/alice/{}",
        presigned_file_id(&server, ALICE, photo.len()).await
    );
    for key in [
        other.as_str(),
        "results/someone/model.glb",
        "uploads/alice/x/y/z",
        "uploads/alice/../bob/x",
        "uploads/alice/a b",
    ] {
        let mut elsewhere = fields.clone();
        elsewhere.insert("key".into(), json!(key));
        let (status, answer) = json_of(
            server
                .client
                .post(url)
                .multipart(form(&elsewhere, photo.clone(), "image/png"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &answer, 403, "SIGNATURE_INVALID");
    }
    assert!(
        server.ctx.storage.list("").await.unwrap().is_empty(),
        "refused forms store nothing"
    );

    let response = server
        .client
        .post(url)
        .multipart(form(fields, photo, "image/png"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "{:?}",
        response.text().await
    );
    let job = server
        .wait_for_job(ALICE, presigned["files"][0]["job_id"].as_str().unwrap())
        .await;
    assert_eq!(job["status"], "completed");
    // The grant wrote its object; a second POST with it stores nothing.
    let key = fields["key"].as_str().unwrap();
    let before = server.ctx.storage.get(key).await.unwrap();
    let (status, answer) = json_of(
        server
            .client
            .post(url)
            .multipart(form(fields, png(90, 61), "image/png"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &answer, 409, "UPLOAD_ALREADY_RECEIVED");
    assert_eq!(server.ctx.storage.get(key).await.unwrap(), before);
}

/// Announces one more PNG of `size` bytes for `key_holder` and returns its file id.
async fn presigned_file_id(server: &TestServer, key_holder: &str, size: usize) -> String {
    let body = json!({"files": [{"filename": "b.png", "content_type": "image/png", "size": size}]});
    let (status, presigned) = server
        .post_json("/api/v1/uploads/presign", Some(key_holder), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{presigned}");
    presigned["files"][0]["file_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_signed_put_writes_its_object_once() {
    let server = TestServer::start().await;
    let photo = png(40, 40);
    let body = json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": photo.len()}], "generate": {}});
    let (_, presigned) = server
        .post_json("/api/v1/uploads/presign", Some(ALICE), &body)
        .await;
    let url = presigned["files"][0]["upload"]["url"].as_str().unwrap();
    let put = |bytes: Vec<u8>| {
        server
            .client
            .put(url)
            .header("content-type", "image/png")
            .body(bytes)
            .send()
    };
    assert_eq!(put(photo.clone()).await.unwrap().status(), StatusCode::OK);
    let job = server
        .wait_for_job(ALICE, presigned["files"][0]["job_id"].as_str().unwrap())
        .await;
    assert_eq!(job["status"], "completed");
    let file_id = presigned["files"][0]["file_id"].as_str().unwrap();
    let (_, file) = server
        .get_json(&format!("/api/v1/files/{file_id}"), Some(ALICE))
        .await;

    // Within the URL's expiry, HTML of the same length: refused, nothing stored.
    let mut html = b"<html><script>alert(1)</script>".to_vec();
    html.resize(photo.len(), b' ');
    let (status, answer) = json_of(put(html).await.unwrap()).await;
    assert_error(status, &answer, 409, "UPLOAD_ALREADY_RECEIVED");
    let key = format!("uploads/alice/{file_id}");
    assert_eq!(server.ctx.storage.get(&key).await.unwrap().to_vec(), photo);
    let (_, after) = server
        .get_json(&format!("/api/v1/files/{file_id}"), Some(ALICE))
        .await;
    assert_eq!(after, file, "the record is untouched");
}

/// Asks for `format` of `job_id` until it is made (202 with `Retry-After` until then, within a
/// deadline); returns the link and how many 202s came first.
async fn format_link(server: &TestServer, job_id: &str, format: &str) -> (Value, usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut converting = 0;
    loop {
        let response = server
            .request(
                Method::GET,
                &format!("/api/v1/download/{job_id}?format={format}&redirect=false"),
                Some(ALICE),
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap();
        if status == StatusCode::OK {
            return (body, converting);
        }
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(
            (body["status"].as_str(), body["format"].as_str()),
            (Some("converting"), Some(format))
        );
        let seconds: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
        assert_eq!(body["retry_after"].as_u64(), Some(seconds));
        converting += 1;
        assert!(
            tokio::time::Instant::now() < deadline,
            "{format} never made"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_format_downloads_made_once_and_goes_with_its_job() {
    let server = TestServer::start().await;
    let (file_id, _) = server
        .upload_presigned(ALICE, &jpeg(160, 120), "image/jpeg", false)
        .await;
    server.wait_for_file(ALICE, &file_id).await;
    let (status, created) = server
        .post_json(
            "/api/v1/jobs",
            Some(ALICE),
            &json!({"file_id": file_id, "options": {"formats": ["glb", "usdz"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let job_id = created["job_id"].as_str().unwrap().to_owned();
    let job = server.wait_for_job(ALICE, &job_id).await;
    let statuses: Vec<(&str, &str)> = job["result"]["formats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["format"].as_str().unwrap(), f["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("glb", "ready"),
            ("usdz", "ready"),
            ("obj", "on_request"),
            ("stl", "on_request")
        ]
    );

    // Asked for at creation: there at once. Another: made on its first request, then kept.
    let (usdz, waits) = format_link(&server, &job_id, "usdz").await;
    assert_eq!(waits, 0);
    assert_eq!(
        (usdz["filename"].as_str(), usdz["content_type"].as_str()),
        (Some("photo.usdz"), Some("model/vnd.usdz+zip"))
    );
    let (stl, waits) = format_link(&server, &job_id, "stl").await;
    assert!(waits >= 1, "the first request for stl converts");
    let bytes = server.fetch(stl["url"].as_str().unwrap()).await;
    assert_eq!(bytes.len() as u64, stl["size"].as_u64().unwrap());
    let facets = u32::from_le_bytes(bytes[80..84].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), 84 + 50 * facets, "a binary STL");
    assert_eq!(format_link(&server, &job_id, "stl").await.1, 0);
    // The job's view says so too, with the size.
    let job = server.wait_for_job(ALICE, &job_id).await;
    let stl_view = job["result"]["formats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["format"] == "stl")
        .cloned()
        .unwrap();
    assert_eq!(stl_view["status"], "ready", "{job}");
    assert_eq!(stl_view["size"], stl["size"]);

    let (_, all) = server
        .get_json(&format!("/api/v1/download/{job_id}/all"), Some(ALICE))
        .await;
    let listed: Vec<&str> = all["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["photo.glb", "photo.usdz", "photo.stl"], "{all}");
    assert_eq!(all["total_files"], 3);
    let named = server
        .request(
            Method::GET,
            &format!("/api/v1/download/{job_id}/photo.stl"),
            Some(ALICE),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), StatusCode::FOUND);
    let location = named.headers()["location"].to_str().unwrap();
    assert!(location.contains("model%2Estl"), "{location}");

    let (status, body) = server
        .get_json(
            &format!("/api/v1/download/{job_id}?format=fbx"),
            Some(ALICE),
        )
        .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");

    // Deleting the job deletes its model with every conversion.
    let prefix = format!("results/{job_id}/");
    let kept: Vec<String> = (server.ctx.storage.list(&prefix).await.unwrap())
        .into_iter()
        .map(|o| o.key.trim_start_matches(&prefix).to_owned())
        .collect();
    for name in ["model.glb", "model.usdz", "model.stl"] {
        assert!(kept.iter().any(|k| k == name), "{kept:?}");
    }
    let deleted = server
        .request(
            Method::DELETE,
            &format!("/api/v1/admin/jobs/{job_id}"),
            Some(ADMIN),
        )
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert!(server.ctx.storage.list(&prefix).await.unwrap().is_empty());
}
