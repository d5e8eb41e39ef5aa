//! The upload function over real HTTP: multipart uploads judged by their bytes, the rate limit on
//! uploads, signed uploads from behind a shared address.

use super::*;
use image2model_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

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
