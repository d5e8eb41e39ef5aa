//! What every function's routes share (the web layer), over real HTTP: keys and the admin key,
//! hostile ids, the envelope of unknown routes, body limits, repeated fields, the rate limit across
//! functions, requests that could mean two things, CORS.

use super::*;
use image2model_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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
