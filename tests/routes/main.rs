//! Every route over real HTTP against the local server, by the function that serves it (the
//! functions' own in-process route tests are in their crates' `route_tests.rs`): success, and each
//! error code it can answer with.

mod admin;
mod health;
mod openapi;
mod status;
mod upload;
mod web_layer;

use image2model_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub(crate) async fn pending_file(server: &TestServer, key: &str) -> String {
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

pub(crate) async fn upload_image(
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
