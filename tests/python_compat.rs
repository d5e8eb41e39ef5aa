//! The Python API's clients against the local server, over HTTP, exactly as they spoke to the
//! old service (`../shared/reference/original-api.md`): its paths (trailing slashes included),
//! its bodies, `Authorization: Bearer` keys. One test per gap that issue 12 listed, each
//! asserting the old shape field by field, then every deliberate difference asserted as ours.

use image2model_tests::fake_fal::{FakeFal, Reply, Script};
use image2model_tests::*;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The old site's upload: `POST /api/v1/upload/` with every photo as `files`.
async fn upload_batch(
    server: &TestServer,
    key: &str,
    photos: &[(&str, Vec<u8>)],
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = Form::new();
    for (name, value) in extra {
        form = form.text(name.to_string(), value.to_string());
    }
    for (name, bytes) in photos {
        let mime = if name.ends_with(".png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        form = form.part(
            "files",
            Part::bytes(bytes.clone())
                .file_name(name.to_string())
                .mime_str(mime)
                .unwrap(),
        );
    }
    json_of(
        server
            .request(Method::POST, "/api/v1/upload/", Some(key))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Follows `task_id` on the old stream path to its end.
async fn stream(server: &TestServer, key: &str, task_id: &str) -> Vec<(String, Value)> {
    read_sse(
        server
            .request(
                Method::GET,
                &format!("/api/v1/status/tasks/{task_id}/stream"),
                Some(key),
            )
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Two photos uploaded the old way and followed to completion; returns the upload answer.
async fn completed_batch(server: &TestServer) -> Value {
    let (status, batch) = upload_batch(
        server,
        ALICE,
        &[("chair.png", png(96, 64)), ("table.jpg", jpeg(80, 80))],
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    let frames = stream(server, ALICE, batch["task_id"].as_str().unwrap()).await;
    assert_eq!(frames.last().unwrap().0, "task_completed", "{frames:?}");
    batch
}

fn is_number(v: &Value) -> bool {
    v.as_f64().is_some()
}

/// Gap 1: the old operator routes, admin key only, with real figures.
#[tokio::test]
async fn old_admin_routes_report_and_remove_real_data() {
    let server = TestServer::start().await;
    let batch = completed_batch(&server).await;
    let batch_id = batch["job_id"].as_str().unwrap();

    let (status, usage) = server
        .get_json("/api/v1/admin/disk-usage", Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    for (dir, files) in [("upload_dir", 2), ("output_dir", 4)] {
        let d = &usage[dir];
        assert_eq!(
            d["file_count"], files,
            "{dir} (models with their previews): {d}"
        );
        assert!(d["path"].is_string() && d["size_mb"].as_f64().unwrap() >= 0.0);
        assert!(d["directory_count"].as_u64().unwrap() >= 1);
        for field in [
            "disk_total_gb",
            "disk_used_gb",
            "disk_free_gb",
            "disk_usage_percent",
        ] {
            assert!(is_number(&d[field]), "{dir}.{field}: {d}");
        }
        assert!(d["disk_usage_percent"].as_f64().unwrap() <= 100.0);
    }
    assert!(usage["timestamp"].is_string());

    let (status, health) = server
        .get_json("/api/v1/admin/system-health", Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(["healthy", "warning", "critical"].contains(&health["status"].as_str().unwrap()));
    assert!(health["warnings"].is_array() && health["timestamp"].is_string());
    assert_eq!(health["disk_usage"]["upload_dir"]["file_count"], 2);

    let (status, list) = server
        .get_json(
            "/api/v1/admin/list-files?directory=uploads&limit=1",
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        (list["directory"].as_str(), list["total_files"].as_u64()),
        (Some("uploads"), Some(2))
    );
    assert!(is_number(&list["total_size_mb"]));
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert!(item["path"].as_str().unwrap().starts_with("uploads/"));
    assert!(item["modified"].as_str().unwrap().parse::<f64>().unwrap() > 1.7e9);
    assert_eq!(
        (item["is_directory"].as_bool(), item["file_count"].is_null()),
        (Some(false), true)
    );
    assert!(is_number(&item["size_mb"]));
    let (status, body) = server
        .get_json("/api/v1/admin/list-files?directory=../etc", Some(ADMIN))
        .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");

    // Admin key only: no key 401, a user key 403.
    for path in [
        "/api/v1/admin/disk-usage",
        "/api/v1/admin/system-health",
        "/api/v1/admin/list-files?directory=results",
    ] {
        let (status, body) = server.get_json(path, None).await;
        assert_error(status, &body, 401, "UNAUTHORIZED");
        let (status, body) = server.get_json(path, Some(ALICE)).await;
        assert_error(status, &body, 403, "FORBIDDEN");
    }

    // cleanup-job removes the batch's uploads and models; ids are validated.
    let (status, body) = server
        .post_json(
            "/api/v1/admin/cleanup-job",
            Some(ADMIN),
            &json!({"job_id": "../../etc"}),
        )
        .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");
    let (status, cleaned) = server
        .post_json(
            "/api/v1/admin/cleanup-job",
            Some(ADMIN),
            &json!({"job_id": batch_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleaned}");
    assert_eq!(cleaned["job_id"], batch_id);
    assert_eq!(
        cleaned["files_removed"], 6,
        "2 photos, 2 models, 2 previews: {cleaned}"
    );
    assert!(cleaned["freed_space_mb"].as_f64().unwrap() > 0.0);
    assert_eq!(cleaned["errors"], json!([]));
    assert!(cleaned["timestamp"].is_string());
    let (status, usage) = server
        .get_json("/api/v1/admin/disk-usage", Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            usage["upload_dir"]["file_count"].as_u64(),
            usage["output_dir"]["file_count"].as_u64()
        ),
        (Some(0), Some(0))
    );
    let (status, body) = server
        .get_json(&format!("/api/v1/download/{batch_id}/all"), Some(ALICE))
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");

    // delete-job: the same removal, the old answer; then 404; a path that is no id is 400.
    let batch = completed_batch(&server).await;
    let job_id = batch["uploaded_files"][0]["job_id"].as_str().unwrap();
    let (status, deleted) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/delete-job/{job_id}"),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert!(deleted["message"].is_string());
    assert_eq!(
        deleted["files_removed"], 3,
        "its photo, its model and its preview: {deleted}"
    );
    assert!(is_number(&deleted["freed_space_mb"]));
    let (status, body) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/delete-job/{job_id}"),
            Some(ADMIN),
        )
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
    let (status, body) = server
        .call(
            Method::DELETE,
            "/api/v1/admin/delete-job/..%2F..%2Fetc",
            Some(ADMIN),
        )
        .await;
    assert_error(status, &body, 400, "INVALID_JOB_ID");
    // The batch's other job and photo remain.
    let (_, usage) = server
        .get_json("/api/v1/admin/disk-usage", Some(ADMIN))
        .await;
    assert_eq!(usage["upload_dir"]["file_count"], 1, "{usage}");
}

/// Gap 2: cleanup with no body is `{hours: 24, dry_run: false}`; a dry run works.
#[tokio::test]
async fn old_cleanup_takes_no_body_and_dry_runs() {
    let server = TestServer::start().await;
    completed_batch(&server).await;
    let response = server
        .request(Method::POST, "/api/v1/admin/cleanup", Some(ADMIN))
        .send()
        .await
        .unwrap();
    let (status, report) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (
            report["cleanup_hours"].as_f64(),
            report["dry_run"].as_bool()
        ),
        (Some(24.0), Some(false))
    );
    assert_eq!(report["files_removed"], 0, "nothing is a day old: {report}");
    for field in ["freed_space_mb", "directories_removed"] {
        assert!(is_number(&report[field]), "{field}: {report}");
    }
    assert_eq!(report["errors"], json!([]));
    assert!(report["timestamp"].is_string());
    let (status, report) = json_of(
        server
            .request(Method::POST, "/api/v1/admin/cleanup", Some(ADMIN))
            .header("content-type", "application/json")
            .body("null")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, report["cleanup_hours"].as_f64()),
        (StatusCode::OK, Some(24.0)),
        "JSON null is no body"
    );

    let (status, dry) = server
        .post_json(
            "/api/v1/admin/cleanup",
            Some(ADMIN),
            &json!({"hours": 0, "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["files_removed"], 6, "{dry}");
    assert!(dry["freed_space_mb"].as_f64().unwrap() > 0.0);
    let (_, usage) = server
        .get_json("/api/v1/admin/disk-usage", Some(ADMIN))
        .await;
    assert_eq!(
        usage["upload_dir"]["file_count"], 2,
        "a dry run deletes nothing"
    );

    let (status, real) = server
        .post_json("/api/v1/admin/cleanup", Some(ADMIN), &json!({"hours": 0}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            real["files_removed"].as_u64(),
            real["directories_removed"].as_u64()
        ),
        (Some(6), Some(1))
    );
    let (_, usage) = server
        .get_json("/api/v1/admin/disk-usage", Some(ADMIN))
        .await;
    assert_eq!(usage["upload_dir"]["file_count"], 0);
}

/// Gap 3: liveness, readiness and the detailed report in the old shapes.
#[tokio::test]
async fn old_health_shapes() {
    let server = TestServer::start().await;
    let (status, banner) = server.get_json("/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(banner["message"], "Image2Model API");
    assert!(banner["version"].is_string());
    for path in ["/health", "/api/v1/health/"] {
        let (status, health) = server.get_json(path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (health["status"].as_str(), health["service"].is_string()),
            (Some("healthy"), true)
        );
    }
    let (status, alive) = server.get_json("/api/v1/health/liveness", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alive.as_object().unwrap().len(), 2, "{alive}");
    assert_eq!(alive["status"], "alive");
    assert!(alive["timestamp"].is_string());

    let (status, ready) = server.get_json("/api/v1/health/readiness", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["components"],
        json!([
            {"name": "store", "status": "healthy"},
            {"name": "object_storage", "status": "healthy"},
            {"name": "queue", "status": "healthy"},
        ])
    );

    let (status, detailed) = server.get_json("/api/v1/health/detailed", None).await;
    assert_eq!(status, StatusCode::OK, "{detailed}");
    for field in ["service", "version", "timestamp"] {
        assert!(detailed[field].is_string(), "{field}");
    }
    assert_eq!(detailed["status"], "healthy", "the old overall status");
    let components = detailed["components"].as_array().unwrap();
    let names: Vec<&str> = components
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["store", "object_storage", "queue"],
        "no FAL without a key"
    );
    for c in components {
        assert_eq!(c["status"], "healthy");
        assert!(c["response_time_ms"].as_f64().unwrap() >= 0.0);
        assert!(c["details"].is_object());
    }
    let system = &detailed["system"];
    assert_eq!(system["platform"], std::env::consts::OS);
    for field in [
        "memory_usage_percent",
        "memory_available_gb",
        "disk_usage_percent",
        "disk_free_gb",
        "cpu_count",
    ] {
        assert!(is_number(&system[field]), "system.{field}: {system}");
    }
    assert_eq!(system["load_average"].as_array().unwrap().len(), 3);
    assert!(detailed["uptime_seconds"].as_f64().unwrap() >= 0.0);

    // A failed component: 503, its name in `failed_components`, and `unhealthy` in the list.
    std::fs::remove_dir_all(server.dir.path().join("objects").join("tmp")).unwrap();
    for path in ["/api/v1/health/readiness", "/api/v1/health/detailed"] {
        let (status, body) = server.get_json(path, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(body["failed_components"], json!(["object_storage"]));
        let expected = if path.ends_with("readiness") {
            "not_ready"
        } else {
            "unhealthy"
        };
        assert_eq!(body["status"], expected, "{path}");
        let storage = body["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "object_storage")
            .unwrap();
        assert_eq!(storage["status"], "unhealthy");
    }
}

/// Gap 3 with FAL configured: its component is listed, from the breaker workers share.
#[tokio::test]
async fn old_health_lists_fal_when_configured() {
    let fake = FakeFal::start(Script::default()).await;
    let server = TestServer::start_with(|config| fake.configure(config)).await;
    let (_, detailed) = server.get_json("/api/v1/health/detailed", None).await;
    let fal = detailed["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "fal_api")
        .cloned()
        .unwrap_or_else(|| panic!("{detailed}"));
    assert_eq!(fal["status"], "healthy");
    assert_eq!(fal["details"]["circuit_breaker"], "closed");
}

/// Gap 4: the old metric names, labelled by route template.
#[tokio::test]
async fn old_metric_names() {
    let server = TestServer::start().await;
    server.get_json("/api/v1/health/liveness", None).await;
    let text = server
        .request(Method::GET, "/api/v1/health/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "http_requests_total counter",
        "http_request_duration_seconds histogram",
        "active_jobs_total gauge",
        "system_cpu_usage_percent gauge",
        "system_memory_usage_percent gauge",
        "system_disk_usage_percent gauge",
        "process_cpu_seconds_total counter",
        "process_resident_memory_bytes gauge",
    ] {
        assert!(text.contains(&format!("# TYPE {family}")), "{family}");
    }
    assert!(text.contains(
        r#"http_requests_total{endpoint="/api/v1/health/liveness",method="GET",status_code="200"}"#
    ));
}

/// Gap 5: each uploaded file answers `status: "uploaded"`; the batch ids stay.
#[tokio::test]
async fn old_upload_answers_uploaded_per_file() {
    let server = TestServer::start().await;
    for path in ["/api/v1/upload/", "/api/v1/upload"] {
        let form = Form::new().text("face_limit", "5000").part(
            "files",
            Part::bytes(png(64, 48))
                .file_name("a.png")
                .mime_str("image/png")
                .unwrap(),
        );
        let (status, body) = json_of(
            server
                .request(Method::POST, path, Some(ALICE))
                .multipart(form)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        for id in ["batch_id", "job_id", "task_id"] {
            assert!(
                body[id].as_str().unwrap().parse::<uuid::Uuid>().is_ok(),
                "{id}"
            );
        }
        assert_eq!(
            (
                body["total_files"].as_u64(),
                body["face_limit"].as_u64(),
                body["status"].as_str()
            ),
            (Some(1), Some(5000), Some("uploaded"))
        );
        assert!(body["message"].is_string());
        let file = &body["uploaded_files"][0];
        assert_eq!(file["status"], "uploaded");
        assert_eq!(file["file_status"], "ready");
        assert_eq!(
            (file["filename"].as_str(), file["content_type"].as_str()),
            (Some("a.png"), Some("image/png"))
        );
        assert!(file["file_id"].is_string() && file["file_size"].as_u64().unwrap() > 0);
    }
}

/// Gap 6: the models routes: a list, a creation that works, the job's real status, a download.
#[tokio::test]
async fn old_models_routes_work() {
    let server = TestServer::start().await;
    let (status, models) = server.get_json("/api/v1/models/available", None).await;
    assert_eq!(status, StatusCode::OK);
    for m in models.as_array().unwrap() {
        for field in ["name", "description", "type"] {
            assert!(m[field].is_string(), "{field}: {m}");
        }
        assert_eq!(m["supported_formats"], json!(["glb", "usdz", "obj", "stl"]));
        for field in ["display_name", "makes"] {
            assert!(
                m[field].as_str().is_some_and(|t| !t.is_empty()),
                "{field}: {m}"
            );
        }
        assert!(
            m["available"].is_boolean() && m["default"].is_boolean() && is_number(&m["price_usd"])
        );
    }

    let (file_id, _) = server
        .upload_presigned(ALICE, &png(80, 60), "image/png", false)
        .await;
    server.wait_for_file(ALICE, &file_id).await;
    let generate = |body: Value| {
        let server = &server;
        async move {
            server
                .post_json("/api/v1/models/generate", Some(ALICE), &body)
                .await
        }
    };
    let (status, body) = generate(json!({"file_id": file_id, "model_type": "tripo3d"})).await;
    assert_error(status, &body, 400, "MODEL_UNAVAILABLE");
    let (status, body) = generate(json!({"file_id": file_id, "quality": "ultra"})).await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");
    // The old body with its defaults spelled out.
    let (status, created) =
        generate(json!({"file_id": file_id, "quality": "standard", "texture_enabled": true})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["status"], "queued");
    assert!(created.as_object().unwrap().contains_key("estimated_time"));
    let job_id = created["job_id"].as_str().unwrap();
    server.wait_for_job(ALICE, job_id).await;

    let (status, job) = server
        .get_json(&format!("/api/v1/models/job/{job_id}"), Some(ALICE))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            job["job_id"].as_str(),
            job["status"].as_str(),
            job["progress"].as_u64()
        ),
        (Some(job_id), Some("completed"), Some(100))
    );
    assert!(job.as_object().unwrap().contains_key("estimated_remaining"));
    let result_url = job["result_url"].as_str().unwrap();
    let response = server
        .request(Method::GET, result_url, Some(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let glb = server
        .client
        .get(response.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(inspect_glb(&glb).1 > 0);
    // The old route's `format=obj` (its 501) now converts: 202 until made, then the package.
    let (status, body) = server
        .get_json(
            &format!("/api/v1/models/download/{job_id}?format=obj"),
            Some(ALICE),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        (body["format"].as_str(), body["status"].as_str()),
        (Some("obj"), Some("converting"))
    );
    let (status, body) = server
        .get_json(
            &format!("/api/v1/models/download/{job_id}?format=fbx"),
            Some(ALICE),
        )
        .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR");
    let (status, body) = server
        .get_json(&format!("/api/v1/models/job/{job_id}"), Some(BOB))
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
}

/// Gap 7: the per-file download route redirects to the file a client named, by the old rules.
#[tokio::test]
async fn old_per_file_download_route() {
    let server = TestServer::start().await;
    let batch = completed_batch(&server).await;
    let batch_id = batch["job_id"].as_str().unwrap();
    let (_, all) = server
        .get_json(&format!("/api/v1/download/{batch_id}/all"), Some(ALICE))
        .await;
    let names: Vec<&str> = all["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["filename"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{all}");
    // Every model has its preview: a 512 px PNG of the textured relief, not an empty frame.
    for file in all["files"].as_array().unwrap() {
        let rendered = &file["rendered_image"];
        assert_eq!(rendered["content_type"], "image/png", "{file}");
        let png = server
            .client
            .get(rendered["url"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(rendered["file_size"].as_u64(), Some(png.len() as u64));
        let image = image::load_from_memory(&png).unwrap().to_rgba8();
        assert_eq!(image.dimensions(), (512, 512));
        let background = image2model_relief::preview::BACKGROUND;
        let drawn = image.pixels().filter(|p| p.0 != background).count();
        assert!(
            drawn > 512 * 512 / 10,
            "the model fills the preview: {drawn} pixels"
        );
    }
    for (name, listed_url) in names.iter().zip(all["download_urls"].as_array().unwrap()) {
        let encoded =
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        let response = server
            .request(
                Method::GET,
                &format!("/api/v1/download/{batch_id}/{encoded}"),
                Some(ALICE),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{name}");
        let location = response.headers()["location"].to_str().unwrap();
        let model = server.client.get(location).send().await.unwrap();
        assert_eq!(model.status(), StatusCode::OK);
        let bytes = model.bytes().await.unwrap();
        let listed = server
            .client
            .get(listed_url.as_str().unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(bytes, listed, "the file the listing names");
    }
    for bad in [
        "a..b.glb",
        "x%2Fy.glb",
        "x%5Cy.glb",
        "x%00.glb",
        "x%0D.glb",
        "x%0A.glb",
        "model.png",
        &"a".repeat(256),
    ] {
        let (status, body) = server
            .get_json(&format!("/api/v1/download/{batch_id}/{bad}"), Some(ALICE))
            .await;
        assert_error(status, &body, 400, "INVALID_FILENAME");
    }
    let (status, body) = server
        .get_json(
            &format!("/api/v1/download/{batch_id}/nope.glb"),
            Some(ALICE),
        )
        .await;
    assert_error(status, &body, 404, "RESULT_FILE_NOT_FOUND");
    let (status, body) = server
        .get_json(
            &format!("/api/v1/download/{batch_id}/{}", names[0]),
            Some(BOB),
        )
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
    let (status, body) = server
        .get_json(&format!("/api/v1/download/{batch_id}/{}", names[0]), None)
        .await;
    assert_error(status, &body, 401, "UNAUTHORIZED");
}

/// Gap 8: the upload status routes answer real data in the old shapes.
#[tokio::test]
async fn old_upload_status_routes_answer_real_data() {
    let server = TestServer::start().await;
    let photo = png(64, 64);
    let (status, presigned) = server
        .post_json(
            "/api/v1/uploads/presign",
            Some(ALICE),
            &json!({"files": [{"filename": "a.png", "content_type": "image/png", "size": photo.len()}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let file_id = presigned["files"][0]["file_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/upload/status/{file_id}");
    let (status, before) = server.get_json(&path, Some(ALICE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            before["file_id"].as_str(),
            before["status"].as_str(),
            before["processing_status"].as_str()
        ),
        (Some(file_id.as_str()), Some("pending"), Some("pending"))
    );

    let batch = completed_batch(&server).await;
    let uploaded = batch["uploaded_files"][0]["file_id"].as_str().unwrap();
    let (_, after) = server
        .get_json(&format!("/api/v1/upload/status/{uploaded}"), Some(ALICE))
        .await;
    assert_eq!(
        (
            after["status"].as_str(),
            after["processing_status"].as_str()
        ),
        (Some("uploaded"), Some("completed")),
        "{after}"
    );

    let batch_id = batch["batch_id"].as_str().unwrap();
    let (status, progress) = server
        .get_json(
            &format!("/api/v1/upload/batch/{batch_id}/status"),
            Some(ALICE),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{progress}");
    assert_eq!(progress["batch_id"], batch_id);
    assert_eq!(progress["status"], "completed");
    assert!(progress["message"].is_string());
    assert_eq!(
        (
            progress["progress"]["total_files"].as_u64(),
            progress["progress"]["processed_files"].as_u64(),
            progress["progress"]["failed_files"].as_u64()
        ),
        (Some(2), Some(2), Some(0))
    );

    for (path, code) in [
        (
            format!("/api/v1/upload/status/{uploaded}"),
            "FILE_NOT_FOUND",
        ),
        (
            format!("/api/v1/upload/batch/{batch_id}/status"),
            "JOB_NOT_FOUND",
        ),
    ] {
        let (status, body) = server.get_json(&path, Some(BOB)).await;
        assert_error(status, &body, 404, code);
    }
    // A job's id is not a batch's.
    let job_id = batch["uploaded_files"][0]["job_id"].as_str().unwrap();
    let (status, body) = server
        .get_json(
            &format!("/api/v1/upload/batch/{job_id}/status"),
            Some(ALICE),
        )
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
    let (status, body) = server
        .get_json("/api/v1/upload/status/not-a-uuid", Some(ALICE))
        .await;
    assert_error(status, &body, 400, "INVALID_FILE_ID");
}

/// Gap 9: the stream's events carry the old data fields; an all-failed batch ends in
/// `task_failed`.
#[tokio::test]
async fn old_progress_events_carry_the_old_fields() {
    let fake = FakeFal::start(Script::default()).await;
    let server = TestServer::start_with(|config| fake.configure(config)).await;
    let photos = [("a.png", png(96, 64)), ("b.png", png(64, 96))];
    let (status, batch) = upload_batch(&server, ALICE, &photos, &[("model_type", "tripo3d")]).await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    let task_id = batch["task_id"].as_str().unwrap();
    let frames = stream(&server, ALICE, task_id).await;
    let progress: Vec<&Value> = frames
        .iter()
        .filter(|(e, _)| e == "task_progress")
        .map(|(_, d)| d)
        .collect();
    assert!(!progress.is_empty(), "{frames:?}");
    for data in &progress {
        assert_eq!(data["status"], "processing");
        assert_eq!(data["task_id"], task_id);
        assert_eq!(
            (data["total"].as_u64(), data["total_files"].as_u64()),
            (Some(2), Some(2))
        );
        assert!(data["current"].as_u64().unwrap() <= 2);
        assert!(data["progress"].as_u64().unwrap() <= 100 && data["message"].is_string());
        assert!(
            data["timestamp"].as_i64().unwrap() > 1_700_000_000_000,
            "epoch ms"
        );
    }
    let (event, done) = frames.last().unwrap();
    assert_eq!(event, "task_completed");
    assert_eq!(
        done["result"]["job_id"], task_id,
        "the old client reads result.job_id"
    );
    assert_eq!(
        done["summary"],
        json!({"total_files": 2, "successful_files": 2, "failed_files": 0})
    );
    assert!(done["timestamp"].is_i64());

    // Every file fails at FAL: the batch ends in task_failed with the error as text.
    fake.script(|s| s.submit = [Reply::status(422), Reply::status(422)].into());
    let (_, batch) = upload_batch(&server, ALICE, &photos, &[("model_type", "tripo3d")]).await;
    let frames = stream(&server, ALICE, batch["task_id"].as_str().unwrap()).await;
    let (event, failed) = frames.last().unwrap();
    assert_eq!(event, "task_failed", "{frames:?}");
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    assert_eq!(failed["error_code"], "FAL_INVALID_INPUT");
    assert_eq!(
        (failed["status"].as_str(), failed["failed_files"].as_u64()),
        (Some("failed"), Some(2))
    );
}

/// Gap 10: the old log routes are gone: 410 naming the replacement, admin key only.
#[tokio::test]
async fn old_log_routes_are_gone() {
    let server = TestServer::start().await;
    for (method, path) in [
        (Method::GET, "/api/v1/logs/statistics"),
        (
            Method::GET,
            "/api/v1/logs/analyze?log_type=celery_worker&hours_back=24",
        ),
        (Method::GET, "/api/v1/logs/types"),
        (Method::GET, "/api/v1/logs/health"),
        (Method::GET, "/api/v1/logs/summary/daily?date=2025-01-01"),
        (Method::POST, "/api/v1/logs/rotate"),
        (Method::POST, "/api/v1/logs/export?format=json"),
        (Method::DELETE, "/api/v1/logs/cleanup?older_than_days=30"),
    ] {
        let (status, body) = server.call(method.clone(), path, Some(ADMIN)).await;
        assert_error(status, &body, 410, "GONE");
        assert!(
            body["details"]["replacement"]
                .as_str()
                .unwrap()
                .contains("CloudWatch"),
            "{body}"
        );
        let (status, body) = server.call(method.clone(), path, Some(ALICE)).await;
        assert_error(status, &body, 403, "FORBIDDEN");
        let (status, body) = server.call(method, path, None).await;
        assert_error(status, &body, 401, "UNAUTHORIZED");
    }
}

/// What we changed on purpose, asserted as ours (README: "Differences from the Python API").
#[tokio::test]
async fn deliberate_differences_from_the_old_api() {
    let server = TestServer::start().await;
    // 401 with WWW-Authenticate for a missing or unknown key (the old one said 403).
    for key in [None, Some("not-a-key-0123456789")] {
        let response = server
            .request(Method::GET, "/api/v1/jobs", key)
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("www-authenticate"));
        let (status, body) = json_of(response).await;
        assert_error(status, &body, 401, "UNAUTHORIZED");
        assert!(!body["error_code"].as_str().unwrap().starts_with("HTTP_"));
    }
    // Ids that are not UUIDs: 400 INVALID_JOB_ID; unknown tasks: 404 (the old one streamed
    // "queued" until its timeout).
    let (status, body) = server
        .get_json("/api/v1/status/tasks/xyz/status", Some(ALICE))
        .await;
    assert_error(status, &body, 400, "INVALID_JOB_ID");
    let unknown = uuid::Uuid::new_v4();
    for suffix in ["status", "stream"] {
        let (status, body) = server
            .get_json(
                &format!("/api/v1/status/tasks/{unknown}/{suffix}"),
                Some(ALICE),
            )
            .await;
        assert_error(status, &body, 404, "JOB_NOT_FOUND");
    }
    // Status and downloads are their owner's.
    let batch = completed_batch(&server).await;
    let task = batch["task_id"].as_str().unwrap();
    for path in [
        format!("/api/v1/status/tasks/{task}/status"),
        format!("/api/v1/download/{task}/all"),
    ] {
        let (status, body) = server.get_json(&path, Some(BOB)).await;
        assert_error(status, &body, 404, "JOB_NOT_FOUND");
    }
    // Downloads are short-lived signed URLs, not open paths.
    let (_, all) = server
        .get_json(&format!("/api/v1/download/{task}/all"), Some(ALICE))
        .await;
    let url = all["download_urls"][0].as_str().unwrap();
    assert!(url.contains("signature="), "{url}");
    let tampered = url.replace("signature=", "signature=0");
    assert_eq!(
        server.client.get(&tampered).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Validation by content: text named .jpg and declared image/jpeg is refused (the old API
    // took it); an oversized file is 413 (the old one answered 500).
    let (status, body) = upload_batch(
        &server,
        ALICE,
        &[("x.jpg", b"<html>not a photo</html>".to_vec())],
        &[],
    )
    .await;
    assert_error(status, &body, 400, "INVALID_FILE_TYPE");
    // On Lambda the routes that carry the bytes take what the platform can (4 MiB): a bigger
    // photo is 413 naming the presigned route, which takes it.
    let lambda =
        image2model_shared::config::Config::from_vars(&std::collections::HashMap::from([(
            "AWS_LAMBDA_FUNCTION_NAME".to_owned(),
            "image2model-upload".to_owned(),
        )]))
        .unwrap();
    assert_eq!(lambda.sync_upload_limit(), 4 * 1024 * 1024);
    let sync_limited = TestServer::start_with(|c| c.limits.max_sync_upload_bytes = 1000).await;
    let photo = noisy_png(64, 64);
    let (status, body) =
        upload_batch(&sync_limited, ALICE, &[("big.png", photo.clone())], &[]).await;
    assert_error(status, &body, 413, "FILE_TOO_LARGE");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("/api/v1/uploads/presign"),
        "{body}"
    );
    assert_eq!(body["details"]["limit"], 1000);
    let (file_id, _) = sync_limited
        .upload_presigned(ALICE, &photo, "image/png", false)
        .await;
    assert_eq!(
        sync_limited.wait_for_file(ALICE, &file_id).await["status"],
        "ready"
    );
    let small = TestServer::start_with(|c| c.limits.max_upload_bytes = 1000).await;
    let (status, body) = upload_batch(&small, ALICE, &[("big.png", noisy_png(64, 64))], &[]).await;
    assert_error(status, &body, 413, "FILE_TOO_LARGE");
}
