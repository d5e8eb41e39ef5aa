//! Test support: a local server on a free loopback port with its own data directory, test keys,
//! HTTP helpers, images made on the fly, and GLB checks.

pub mod aws;
pub mod aws_calls;
pub mod contract;
pub mod costs;
pub mod fake_fal;
pub mod process;
pub mod template;

use image::{ImageBuffer, ImageFormat, Rgb, Rgba};
use image2model_local::RunningServer;
use image2model_shared::AppContext;
use image2model_shared::app::enqueue::WorkMessage;
use image2model_shared::config::{Config, NamedKey};
use image2model_shared::domain::JobId;
use image2model_shared::ports::{QueueError, WorkQueue};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use std::io::Cursor;
use std::time::Duration;
use tempfile::TempDir;

pub const ALICE: &str = "alice-key-0123456789";
pub const BOB: &str = "bob-key-0123456789";
pub const ADMIN: &str = "admin-key-0123456789";

/// The shared photos: `PHOTO_FIXTURES` (set by `scripts/test.sh`), or `../shared/fixtures/photos`
/// beside the project.
pub fn photo_fixtures_dir() -> std::path::PathBuf {
    std::env::var_os("PHOTO_FIXTURES").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/photos"),
        std::path::PathBuf::from,
    )
}

/// Sends a generate message for `job_id` whatever its state, as a duplicate or redelivered
/// message would arrive. Returns the message's id.
pub async fn send_generate(queue: &dyn WorkQueue, job_id: JobId) -> Result<String, QueueError> {
    let body = serde_json::to_string(&WorkMessage::generate(job_id)).expect("a message");
    queue.send(&body, Duration::ZERO).await
}

/// The configuration every test starts from: two users, an admin, fast polling.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.local.data_dir = dir.to_owned();
    config.local.sweep_interval = Duration::from_secs(3600);
    config.sign_in.user_keys = vec![
        NamedKey {
            name: "alice".into(),
            key: ALICE.into(),
        },
        NamedKey {
            name: "bob".into(),
            key: BOB.into(),
        },
    ];
    config.sign_in.admin_key = Some(image2model_shared::config::Secret(ADMIN.into()));
    config.status.sse_poll_interval = Duration::from_millis(50);
    config
}

pub struct TestServer {
    pub base: String,
    pub client: Client,
    pub ctx: AppContext,
    server: Option<RunningServer>,
    pub dir: TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_at(|config, _| adjust(config)).await
    }

    /// Starts with a configuration that may depend on the server's own base URL (webhooks).
    pub async fn start_at(adjust: impl FnOnce(&mut Config, &str)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let mut config = test_config(dir.path());
        adjust(&mut config, &base);
        Self::serve(dir, config, listener).await
    }

    async fn start_in(dir: TempDir, config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::serve(dir, config, listener).await
    }

    async fn serve(dir: TempDir, config: Config, listener: tokio::net::TcpListener) -> Self {
        let server = image2model_local::start(config, listener)
            .await
            .expect("server starts");
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            base: format!("http://{}", server.addr),
            client,
            ctx: server.ctx.clone(),
            server: Some(server),
            dir,
        }
    }

    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart(mut self) -> Self {
        let config = (*self.ctx.config).clone();
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        Self::start_in(self.dir, config).await
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub fn request(&self, method: Method, path: &str, key: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// Sends a request without a body and reads the JSON answer.
    pub async fn call(&self, method: Method, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        json_of(
            self.request(method, path, key)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn get_json(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        json_of(
            self.request(Method::GET, path, key)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn post_json(
        &self,
        path: &str,
        key: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        json_of(
            self.request(Method::POST, path, key)
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// Presigns one file (optionally with a job), PUTs its bytes, returns (file_id, job_id).
    pub async fn upload_presigned(
        &self,
        key: &str,
        bytes: &[u8],
        content_type: &str,
        generate: bool,
    ) -> (String, Option<String>) {
        let mut body = json!({"files": [{"filename": "photo.img", "content_type": content_type, "size": bytes.len()}]});
        body["files"][0]["filename"] = json!(match content_type {
            "image/png" => "photo.png",
            "image/webp" => "photo.webp",
            _ => "photo.jpg",
        });
        if generate {
            body["generate"] = json!({"model_type": "relief", "options": {"face_limit": 20000}});
        }
        let (status, presigned) = self
            .post_json("/api/v1/uploads/presign", Some(key), &body)
            .await;
        assert_eq!(status, StatusCode::OK, "{presigned}");
        let file = &presigned["files"][0];
        self.put_signed(&file["upload"], bytes).await;
        (
            file["file_id"].as_str().unwrap().to_owned(),
            file["job_id"].as_str().map(str::to_owned),
        )
    }

    /// PUTs `bytes` to a presign answer's `upload` (its URL, with the headers it names).
    pub async fn put_signed(&self, upload: &Value, bytes: &[u8]) {
        let mut put = self.client.put(upload["url"].as_str().expect("a URL"));
        for (name, value) in upload["headers"].as_object().expect("headers") {
            put = put.header(name.as_str(), value.as_str().expect("a value"));
        }
        let response = put.body(bytes.to_vec()).send().await.expect("PUT");
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Downloads a completed job's model through the download route's redirect.
    pub async fn download_model(&self, key: &str, job_id: &str) -> Vec<u8> {
        let response = self
            .request(
                Method::GET,
                &format!("/api/v1/download/{job_id}"),
                Some(key),
            )
            .send()
            .await
            .expect("download");
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let model = self.client.get(&location).send().await.expect("model");
        assert_eq!(model.status(), StatusCode::OK);
        assert_eq!(model.headers()["content-type"], "model/gltf-binary");
        assert!(
            model.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment; filename=")
        );
        model.bytes().await.expect("body").to_vec()
    }

    /// Polls a job until it is in a terminal state (or the timeout passes).
    /// The body at `url` (a signed link), which must answer 200.
    pub async fn fetch(&self, url: &str) -> bytes::Bytes {
        let response = self.client.get(url).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        response.bytes().await.expect("body")
    }

    pub async fn wait_for_job(&self, key: &str, job_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, job) = self
                .get_json(&format!("/api/v1/jobs/{job_id}"), Some(key))
                .await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if ["completed", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job never finished: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the worker has handled every message that is due (none visible, none in
    /// flight), so that a test may then assert that something did not happen. Messages sent
    /// with a delay (a job waiting for the breaker or a FAL slot) are not due yet: that the
    /// worker deferred them is what such a test asserts.
    pub async fn wait_for_queue_drained(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let depth = self.ctx.queue.depth().await.expect("queue depth");
            if depth.visible == 0 && depth.in_flight == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the queue never drained: {depth:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the worker acknowledged (deleted) the message `message_id` from the embedded
    /// queue: it was received and handled to the end, neither left for redelivery nor dead.
    pub async fn wait_for_message_acknowledged(&self, message_id: &str) {
        let db = rusqlite::Connection::open(self.dir.path().join("image2model.db")).expect("db");
        db.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (queued, dead): (i64, i64) = db
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM queue WHERE message_id = ?1),
                            (SELECT COUNT(*) FROM dead_letters WHERE message_id = ?1)",
                    [message_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("the queue tables");
            assert_eq!(dead, 0, "message {message_id} went to the dead letters");
            if queued == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "message {message_id} never acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many uploads are stored (a refused request must leave none).
    pub async fn stored_uploads(&self) -> usize {
        self.ctx.storage.list("uploads/").await.unwrap().len()
    }

    /// Polls a file until ingestion settled it.
    pub async fn wait_for_file(&self, key: &str, file_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, file) = self
                .get_json(&format!("/api/v1/files/{file_id}"), Some(key))
                .await;
            if file["status"] != "pending" {
                return file;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "file never ingested: {file}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

/// Reads an SSE response to its end; returns (event, data) frames.
pub async fn read_sse(response: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut body = futures_util::StreamExt::boxed(response.bytes_stream());
    let read = async {
        while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("stream ends after the terminal event");
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let event = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default()
                .to_owned();
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("null");
            (event, serde_json::from_str(data).unwrap())
        })
        .collect()
}

pub async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Asserts the error envelope: status, stable code and every envelope field.
pub fn assert_error(status: StatusCode, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["error"], json!(true), "{body}");
    assert_eq!(body["error_code"], json!(code), "{body}");
    assert_eq!(body["status_code"], json!(expected_status), "{body}");
    for field in ["message", "detail", "request_id"] {
        assert!(
            body[field].as_str().is_some_and(|s| !s.is_empty()),
            "missing {field}: {body}"
        );
    }
    assert!(body["details"].is_object(), "{body}");
}

fn encode_rgb(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = ImageBuffer::from_fn(w, h, |x, y| {
        let inside = (x as i64 - w as i64 / 2).pow(2) + (y as i64 - h as i64 / 2).pow(2)
            < (w.min(h) as i64 / 3).pow(2);
        if inside {
            Rgb([200, (x * 255 / w) as u8, (y * 255 / h) as u8])
        } else {
            Rgb([245, 245, 240])
        }
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

pub fn png(w: u32, h: u32) -> Vec<u8> {
    encode_rgb(w, h, ImageFormat::Png)
}

pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode_rgb(w, h, ImageFormat::Jpeg)
}

pub fn webp(w: u32, h: u32) -> Vec<u8> {
    encode_rgb(w, h, ImageFormat::WebP)
}

pub fn rgba_png(w: u32, h: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(w, h, |x, y| {
        let inside = x > w / 4 && x < 3 * w / 4 && y > h / 4 && y < 3 * h / 4;
        if inside {
            Rgba([30u8, 120, 200, 255])
        } else {
            Rgba([0u8, 0, 0, 0])
        }
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).expect("encode");
    out.into_inner()
}

/// Parses a GLB with the `gltf` crate; returns (vertices, triangles, texture width and height).
pub fn inspect_glb(bytes: &[u8]) -> (usize, usize, (u32, u32)) {
    assert_eq!(&bytes[..4], b"glTF");
    let (doc, buffers, images) = gltf::import_slice(bytes).expect("a valid glTF binary");
    let primitive = doc
        .meshes()
        .next()
        .expect("a mesh")
        .primitives()
        .next()
        .expect("a primitive");
    let reader = primitive.reader(|b| Some(&buffers[b.index()]));
    let vertices = reader.read_positions().expect("positions").count();
    let triangles = reader.read_indices().expect("indices").into_u32().count() / 3;
    primitive
        .material()
        .pbr_metallic_roughness()
        .base_color_texture()
        .expect("a texture");
    (vertices, triangles, (images[0].width, images[0].height))
}

/// A PNG of pseudo-random pixels: it does not compress, so its size is about 3 bytes a pixel.
pub fn noisy_png(w: u32, h: u32) -> Vec<u8> {
    let mut state = 0x2545_F491_u32;
    let img = ImageBuffer::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, _] = state.to_le_bytes();
        Rgb([a, b, c])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).expect("encode");
    out.into_inner()
}

/// FAL's four webhook headers, plausible enough (a fresh timestamp, a signature of Ed25519's
/// shape) for the webhook route to read the body, though no key signed it.
pub fn plausible_fal_headers(request: RequestBuilder) -> RequestBuilder {
    request
        .header("x-fal-webhook-request-id", "r")
        .header("x-fal-webhook-user-id", "u")
        .header(
            "x-fal-webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("x-fal-webhook-signature", "ab".repeat(64))
}
