//! A fake FAL.AI on loopback that speaks FAL's queue protocol: submit (fetching the input image
//! from the URL it is given), status with queue positions and logs, result, cancel, result
//! files, and webhook deliveries signed with a test Ed25519 key published as a JWKS. Each test
//! scripts its behaviour (errors, latency, malformed answers, expired files, webhook modes) and
//! reads back what happened (submissions, cancels, concurrency, webhook answers).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

pub const FAKE_FAL_KEY: &str = "fal-test-key-0123456789";
const SIGNING_SEED: [u8; 32] = [42; 32];

/// How the fake answers one submission.
#[derive(Debug, Clone)]
pub enum Reply {
    Accept,
    /// An error status with a body (and optionally `Retry-After` / `X-Fal-Error-Type`).
    Error {
        status: u16,
        body: Value,
        retry_after: Option<&'static str>,
        error_type: Option<&'static str>,
    },
    /// A 200 whose body is not JSON.
    Malformed,
    /// Answers after this long (clients with a shorter timeout give up); nothing is queued.
    Slow(Duration),
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self::Error {
            status,
            body: json!({"detail": format!("scripted {status}")}),
            retry_after: None,
            error_type: None,
        }
    }
}

/// What a completed request's result is.
#[derive(Debug, Clone)]
pub enum Output {
    /// `model_mesh` pointing at these GLB bytes.
    Mesh(Vec<u8>),
    /// `image` pointing at this depth-map PNG.
    DepthMap(Vec<u8>),
    /// The model's own error (e.g. 422 with `detail`).
    Error { status: u16, body: Value },
    /// A 200 whose body is not JSON.
    Malformed,
    /// COMPLETED, but without `model_mesh` (or `image`).
    Without,
}

/// How completions are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhooks {
    /// No deliveries (completion is found by polling).
    Off,
    /// This many signed deliveries of the completion (FAL retries; duplicates happen).
    Deliver(u32),
    /// One delivery signed with a key that is not FAL's.
    BadSignature,
    /// A delivery for an earlier, unknown request first, then the real one.
    StaleFirst,
    /// One delivery made before the submission is even answered (set `run_time` to zero): it
    /// overtakes the record of the submission.
    BeforeAnswer,
}

#[derive(Debug, Clone)]
pub struct Script {
    /// Answers to successive submissions; `Accept` once empty.
    pub submit: VecDeque<Reply>,
    /// Error statuses answered to status polls before the real status.
    pub status_errors: VecDeque<u16>,
    /// Time from submission to COMPLETED: the first half in the queue, the second running.
    pub run_time: Duration,
    pub output: Output,
    /// When set, requests of depth-map applications answer with this PNG instead of `output`.
    pub depth_output: Option<Vec<u8>>,
    /// The first this many result-file downloads answer 404 (an expired URL).
    pub expired_downloads: u32,
    pub webhooks: Webhooks,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            submit: VecDeque::new(),
            status_errors: VecDeque::new(),
            run_time: Duration::from_millis(400),
            output: Output::Mesh(sample_glb()),
            depth_output: None,
            expired_downloads: 0,
            webhooks: Webhooks::Off,
        }
    }
}

/// One submission as the fake received it.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub app: String,
    pub input: Value,
    pub webhook: Option<String>,
    /// The bytes behind the input image URL, fetched at submission (`None` if unreachable).
    pub input_image: Option<Vec<u8>>,
}

struct Request {
    app: String,
    submitted_at: Instant,
    cancelled: bool,
    settled: bool,
}

#[derive(Default)]
struct Recorded {
    submissions: Vec<Submitted>,
    requests: HashMap<String, Request>,
    cancels: Vec<String>,
    status_calls: u32,
    max_in_flight: usize,
    file_downloads_with_key: u32,
    webhook_answers: Vec<u16>,
}

struct Inner {
    base: String,
    script: Mutex<Script>,
    recorded: Mutex<Recorded>,
    key: SigningKey,
    http: reqwest::Client,
}

pub struct FakeFal {
    pub base: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeFal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The picture the fake renders of every mesh (`rendered_image`).
pub fn rendered_image() -> Vec<u8> {
    crate::webp(40, 30)
}

/// The mesh the fake serves: a GLB like those of FAL's image-to-3D models, with two meshes on
/// nested, transformed nodes, three materials (PBR textures, one with `KHR_texture_transform`)
/// and 16- and 32-bit indices (`tests/formats/make_fal_fixture.py` writes it; the Khronos
/// validator passes it with no finding).
pub fn sample_glb() -> Vec<u8> {
    include_bytes!("../fixtures/fal/multi_mesh.glb").to_vec()
}

/// A depth map as FAL's depth model returns it: a grayscale PNG, bright = near.
pub fn depth_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - w as f32 / 2.0, y as f32 - h as f32 / 2.0);
        image::Luma([(255.0 - (dx * dx + dy * dy).sqrt() * 3.0).clamp(0.0, 255.0) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode");
    out.into_inner()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Key {FAKE_FAL_KEY}"))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"detail": "No user found for Key ID and Secret"})),
    )
        .into_response()
}

fn json_response(status: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(status).expect("status"),
        axum::Json(body.clone()),
    )
        .into_response()
}

impl Inner {
    fn in_flight(recorded: &Recorded) -> usize {
        recorded.requests.values().filter(|r| !r.settled).count()
    }

    /// What the request answers: the depth map for depth applications when the script has
    /// one, the script's output otherwise.
    fn output_for(&self, request_id: &str) -> Output {
        let (output, depth) = {
            let script = self.script.lock().unwrap();
            (script.output.clone(), script.depth_output.clone())
        };
        let is_depth = self
            .recorded
            .lock()
            .unwrap()
            .requests
            .get(request_id)
            .is_some_and(|r| r.app.contains("depth-anything"));
        match depth {
            Some(png) if is_depth => Output::DepthMap(png),
            _ => output,
        }
    }

    fn result_body(&self, request_id: &str, output: &Output) -> Option<Value> {
        let file = |ext: &str| format!("{}/files/{request_id}.{ext}", self.base);
        match output {
            Output::Mesh(bytes) => Some(json!({
                "model_mesh": {"url": file("glb"), "file_size": bytes.len(),
                               "content_type": "model/gltf-binary", "file_name": "model.glb"},
                "rendered_image": {"url": file("webp"), "content_type": "image/webp"}
            })),
            Output::DepthMap(_) => Some(json!({
                "image": {"url": file("png"), "content_type": "image/png", "width": 64, "height": 48}
            })),
            Output::Without => Some(json!({
                "rendered_image": {"url": file("webp"), "content_type": "image/webp"}
            })),
            Output::Error { .. } | Output::Malformed => None,
        }
    }

    /// Signs a delivery of `body` for `request_id` at `timestamp` with `key`.
    fn signed_headers(
        key: &SigningKey,
        request_id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        let user_id = "fake-user";
        let message = format!(
            "{request_id}\n{user_id}\n{timestamp}\n{}",
            hex::encode(Sha256::digest(body))
        );
        vec![
            ("x-fal-webhook-request-id", request_id.to_owned()),
            ("x-fal-webhook-user-id", user_id.to_owned()),
            ("x-fal-webhook-timestamp", timestamp.to_string()),
            (
                "x-fal-webhook-signature",
                hex::encode(key.sign(message.as_bytes()).to_bytes()),
            ),
        ]
    }

    async fn deliver(&self, url: &str, request_id: &str, payload: Value, key: &SigningKey) {
        let body = serde_json::to_vec(&json!({
            "request_id": request_id, "gateway_request_id": request_id,
            "status": "OK", "payload": payload, "error": null, "payload_error": null
        }))
        .expect("json");
        let mut post = self
            .http
            .post(url)
            .header("content-type", "application/json");
        for (name, value) in
            Self::signed_headers(key, request_id, chrono::Utc::now().timestamp(), &body)
        {
            post = post.header(name, value);
        }
        let status = match post.body(body).send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        self.recorded.lock().unwrap().webhook_answers.push(status);
    }

    /// Announces a completion the way the script says.
    async fn announce(self: Arc<Self>, url: String, request_id: String, run_time: Duration) {
        tokio::time::sleep(run_time).await;
        let mode = self.script.lock().unwrap().webhooks;
        let output = self.output_for(&request_id);
        let payload = self
            .result_body(&request_id, &output)
            .unwrap_or(Value::Null);
        match mode {
            Webhooks::Off | Webhooks::BeforeAnswer => {}
            Webhooks::Deliver(times) => {
                for _ in 0..times {
                    self.deliver(&url, &request_id, payload.clone(), &self.key)
                        .await;
                }
            }
            Webhooks::BadSignature => {
                let impostor = SigningKey::from_bytes(&[7; 32]);
                self.deliver(&url, &request_id, payload, &impostor).await;
            }
            Webhooks::StaleFirst => {
                let stale = uuid::Uuid::new_v4().to_string();
                self.deliver(&url, &stale, payload.clone(), &self.key).await;
                self.deliver(&url, &request_id, payload, &self.key).await;
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct SubmitQuery {
    fal_webhook: Option<String>,
}

async fn submit(
    State(inner): State<Arc<Inner>>,
    Path(app): Path<String>,
    Query(query): Query<SubmitQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let image_url = input
        .get("image_url")
        .or_else(|| input.get("input_image_url"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let input_image = match image_url {
        Some(url) => match inner.http.get(&url).send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.ok().map(|b| b.to_vec()),
            _ => None,
        },
        None => None,
    };
    let reply = {
        let mut script = inner.script.lock().unwrap();
        script.submit.pop_front().unwrap_or(Reply::Accept)
    };
    inner.recorded.lock().unwrap().submissions.push(Submitted {
        app: app.clone(),
        input,
        webhook: query.fal_webhook.clone(),
        input_image,
    });
    match reply {
        Reply::Accept => {}
        Reply::Error {
            status,
            body,
            retry_after,
            error_type,
        } => {
            let mut response = json_response(status, &body);
            if let Some(after) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", after.parse().expect("header"));
            }
            if let Some(kind) = error_type {
                response
                    .headers_mut()
                    .insert("x-fal-error-type", kind.parse().expect("header"));
            }
            return response;
        }
        Reply::Malformed => return (StatusCode::OK, "{\"request_id\": ").into_response(),
        Reply::Slow(delay) => {
            tokio::time::sleep(delay).await;
            return json_response(503, &json!({"detail": "too slow"}));
        }
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let run_time = inner.script.lock().unwrap().run_time;
    {
        let mut recorded = inner.recorded.lock().unwrap();
        recorded.requests.insert(
            request_id.clone(),
            Request {
                app: app.clone(),
                submitted_at: Instant::now(),
                cancelled: false,
                settled: false,
            },
        );
        recorded.max_in_flight = recorded.max_in_flight.max(Inner::in_flight(&recorded));
    }
    if let Some(hook) = query.fal_webhook {
        let mode = inner.script.lock().unwrap().webhooks;
        if mode == Webhooks::BeforeAnswer {
            let output = inner.output_for(&request_id);
            let payload = inner
                .result_body(&request_id, &output)
                .unwrap_or(Value::Null);
            inner.deliver(&hook, &request_id, payload, &inner.key).await;
            // Give the worker time to look before the submission is even recorded.
            tokio::time::sleep(Duration::from_millis(500)).await;
        } else {
            tokio::spawn(inner.clone().announce(hook, request_id.clone(), run_time));
        }
    }
    // Status, result and cancel live under a different prefix than submissions: clients must
    // use these URLs, not rebuild them.
    let base = format!("{}/q/requests/{request_id}", inner.base);
    json_response(
        200,
        &json!({
            "request_id": request_id, "gateway_request_id": request_id,
            "status_url": format!("{base}/status"), "response_url": base,
            "cancel_url": format!("{base}/cancel"), "queue_position": 3
        }),
    )
}

#[derive(serde::Deserialize)]
struct StatusQuery {
    logs: Option<String>,
}

async fn status(
    State(inner): State<Arc<Inner>>,
    Path(request_id): Path<String>,
    Query(query): Query<StatusQuery>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let (error, run_time) = {
        let mut script = inner.script.lock().unwrap();
        (script.status_errors.pop_front(), script.run_time)
    };
    let mut recorded = inner.recorded.lock().unwrap();
    recorded.status_calls += 1;
    if let Some(code) = error {
        return json_response(code, &json!({"detail": "scripted status failure"}));
    }
    let Some(request) = recorded.requests.get(&request_id) else {
        return json_response(404, &json!({"detail": "Request not found"}));
    };
    let elapsed = request.submitted_at.elapsed();
    let half = run_time / 2;
    let with_logs = query.logs.as_deref() == Some("1");
    let logs = |n: usize| -> Value {
        if with_logs {
            json!(
                (0..n)
                    .map(|i| json!({"message": format!("step {} of 4", i + 1), "level": "INFO"}))
                    .collect::<Vec<_>>()
            )
        } else {
            Value::Null
        }
    };
    if request.cancelled || elapsed >= run_time {
        json_response(200, &json!({"status": "COMPLETED", "logs": logs(4)}))
    } else if elapsed < half {
        let position = 3 - (3.0 * elapsed.as_secs_f64() / half.as_secs_f64()).floor() as u32;
        json_response(
            202,
            &json!({"status": "IN_QUEUE", "queue_position": position}),
        )
    } else {
        let n = 1 + (3.0 * (elapsed - half).as_secs_f64() / half.as_secs_f64()) as usize;
        json_response(202, &json!({"status": "IN_PROGRESS", "logs": logs(n)}))
    }
}

async fn result(
    State(inner): State<Arc<Inner>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let run_time = inner.script.lock().unwrap().run_time;
    let output = inner.output_for(&request_id);
    {
        let mut recorded = inner.recorded.lock().unwrap();
        let Some(request) = recorded.requests.get_mut(&request_id) else {
            return json_response(404, &json!({"detail": "Request not found"}));
        };
        if request.submitted_at.elapsed() < run_time && !request.cancelled {
            return json_response(400, &json!({"detail": "Request is still in progress"}));
        }
        request.settled = true;
    }
    match output {
        Output::Error { status, body } => json_response(status, &body),
        Output::Malformed => (StatusCode::OK, "{\"model_mesh\": {").into_response(),
        other => json_response(
            200,
            &inner.result_body(&request_id, &other).expect("a result"),
        ),
    }
}

async fn cancel(
    State(inner): State<Arc<Inner>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let mut recorded = inner.recorded.lock().unwrap();
    recorded.cancels.push(request_id.clone());
    match recorded.requests.get_mut(&request_id) {
        Some(request) => {
            request.cancelled = true;
            request.settled = true;
            json_response(202, &json!({"status": "CANCELLATION_REQUESTED"}))
        }
        None => json_response(404, &json!({"detail": "Request not found"})),
    }
}

async fn file(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if headers.contains_key("authorization") {
        inner.recorded.lock().unwrap().file_downloads_with_key += 1;
    }
    {
        let mut script = inner.script.lock().unwrap();
        if script.expired_downloads > 0 {
            script.expired_downloads -= 1;
            return json_response(404, &json!({"detail": "File not found"}));
        }
    }
    let (request_id, ext) = name.rsplit_once('.').unwrap_or((&name, ""));
    match (inner.output_for(request_id), Some(ext)) {
        (Output::Mesh(bytes), Some("glb")) => {
            ([("content-type", "model/gltf-binary")], bytes).into_response()
        }
        (Output::Mesh(_) | Output::Without, Some("webp")) => {
            ([("content-type", "image/webp")], rendered_image()).into_response()
        }
        (Output::DepthMap(bytes), Some("png")) => {
            ([("content-type", "image/png")], bytes).into_response()
        }
        _ => json_response(404, &json!({"detail": "File not found"})),
    }
}

async fn jwks(State(inner): State<Arc<Inner>>) -> Response {
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(inner.key.verifying_key().as_bytes());
    json_response(
        200,
        &json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "fake", "use": "sig", "alg": "EdDSA"}]}),
    )
}

impl FakeFal {
    pub async fn start(script: Script) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let inner = Arc::new(Inner {
            base: base.clone(),
            script: Mutex::new(script),
            recorded: Mutex::new(Recorded::default()),
            key: SigningKey::from_bytes(&SIGNING_SEED),
            http: reqwest::Client::new(),
        });
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/files/{name}", get(file))
            .route("/q/requests/{id}/status", get(status))
            .route("/q/requests/{id}/cancel", put(cancel))
            .route("/q/requests/{id}", get(result))
            .route("/{*app}", post(submit))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake FAL serves");
        });
        Self { base, inner, task }
    }

    /// Points a configuration at this fake (key, base URL, JWKS) with fast polls and retries.
    pub fn configure(&self, config: &mut image2model_shared::config::Config) {
        let fal = &mut config.fal;
        fal.key = Some(image2model_shared::config::Secret(FAKE_FAL_KEY.to_owned()));
        fal.base_url = self.base.clone();
        fal.jwks_url = format!("{}/.well-known/jwks.json", self.base);
        fal.request_timeout = Duration::from_secs(5);
        fal.retry_base = Duration::from_millis(10);
        fal.retry_max = Duration::from_millis(200);
        fal.poll_initial = Duration::from_millis(50);
        fal.poll_max = Duration::from_millis(200);
        fal.generation_timeout = Duration::from_secs(30);
    }

    pub fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.inner.script.lock().unwrap());
    }

    pub fn submissions(&self) -> Vec<Submitted> {
        self.inner.recorded.lock().unwrap().submissions.clone()
    }

    pub fn cancels(&self) -> Vec<String> {
        self.inner.recorded.lock().unwrap().cancels.clone()
    }

    pub fn status_calls(&self) -> u32 {
        self.inner.recorded.lock().unwrap().status_calls
    }

    /// The most requests the fake ever held at once (submitted, result not yet fetched).
    pub fn max_in_flight(&self) -> usize {
        self.inner.recorded.lock().unwrap().max_in_flight
    }

    /// Result-file downloads that carried an Authorization header (our FAL key must not leak).
    pub fn file_downloads_with_key(&self) -> u32 {
        self.inner.recorded.lock().unwrap().file_downloads_with_key
    }

    /// HTTP statuses our webhook route answered to the fake's deliveries.
    pub fn webhook_answers(&self) -> Vec<u16> {
        self.inner.recorded.lock().unwrap().webhook_answers.clone()
    }

    /// Signature headers of a delivery of `body`, signed by FAL's (the fake's) key, or by an
    /// impostor's.
    pub fn sign(
        &self,
        request_id: &str,
        timestamp: i64,
        body: &[u8],
        genuine: bool,
    ) -> Vec<(&'static str, String)> {
        let impostor = SigningKey::from_bytes(&[7; 32]);
        let key = if genuine { &self.inner.key } else { &impostor };
        Inner::signed_headers(key, request_id, timestamp, body)
    }
}
