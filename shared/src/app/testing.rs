//! What the services' unit tests (and, with the feature `testing`, the function crates' route
//! tests) share: a context on the embedded adapters in a temp dir, with two users' keys and the
//! admin key, files made of real image bytes, a look into the work queue, and a scripted FAL.AI
//! in memory.

use super::enqueue::WorkMessage;
use super::work::Worker;
use crate::adapters::embedded::EmbeddedAdapters;
use crate::adapters::fal::{
    answer_body, download_error, read_cancel, read_json, read_queue_status, read_submission,
};
use crate::config::{Config, NamedKey, Secret};
use crate::context::AppContext;
use crate::domain::{FalRequest, GenerationJob, JobResult, UploadedFile};
use crate::keys::{Caller, random_secret};
use crate::ports::{FalError, FalQueue, QueueStatus, Submission};
use crate::validation::inspect_image;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;

/// The keys of the users `alice` and `bob` in every test context.
pub const ALICE_KEY: &str = "alice-key-0123456789";
pub const BOB_KEY: &str = "bob-key-0123456789";
/// The admin key of every test context.
pub const ADMIN_KEY: &str = "admin-key-0123456789";

/// A context on the embedded adapters of its own temp dir (removed when dropped), and the
/// scripted FAL its worker calls (`fal_context`).
pub struct TestContext {
    pub ctx: AppContext,
    pub fal: Option<FakeFal>,
    _dir: TempDir,
}

impl std::ops::Deref for TestContext {
    type Target = AppContext;
    fn deref(&self) -> &AppContext {
        &self.ctx
    }
}

pub fn context() -> TestContext {
    context_with(|_| {})
}

pub fn context_with(adjust: impl FnOnce(&mut Config)) -> TestContext {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.local.data_dir = dir.path().to_owned();
    config.sign_in.user_keys = vec![
        NamedKey {
            name: "alice".into(),
            key: ALICE_KEY.into(),
        },
        NamedKey {
            name: "bob".into(),
            key: BOB_KEY.into(),
        },
    ];
    config.sign_in.admin_key = Some(Secret(ADMIN_KEY.into()));
    adjust(&mut config);
    let adapters = EmbeddedAdapters::open(&config, "http://127.0.0.1:1").expect("adapters open");
    TestContext {
        ctx: AppContext::new(config, Secret(random_secret()), adapters.ports()),
        fal: None,
        _dir: dir,
    }
}

pub fn caller(owner: &str) -> Caller {
    Caller {
        owner: owner.to_owned(),
        is_admin: false,
    }
}

/// A real PNG of `w` x `h` pixels.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encodes");
    out.into_inner()
}

/// A pending file of `owner` (its record only, as after a presign).
pub async fn pending_file(ctx: &AppContext, owner: &str) -> UploadedFile {
    let now = Utc::now();
    let file = UploadedFile::pending(owner, "photo.png", "image/png", 1, now, now);
    ctx.store.create_file(&file).await.expect("file recorded");
    file
}

/// Puts real PNG bytes where `file`'s upload goes.
pub async fn upload_bytes(ctx: &AppContext, file: &UploadedFile) {
    ctx.storage
        .put(&file.object_key, Bytes::from(png(48, 32)), "image/png")
        .await
        .expect("bytes stored");
}

/// Two ready files of `owner` and a batch of default-model jobs on them.
pub async fn batch_of_two(
    ctx: &AppContext,
    owner: &str,
) -> ([UploadedFile; 2], crate::domain::Batch, Vec<GenerationJob>) {
    let files = [ready_file(ctx, owner).await, ready_file(ctx, owner).await];
    let model = crate::domain::models::find(crate::domain::models::RELIEF_MODEL).expect("default");
    let (batch, jobs) = super::create_job::create_batch(
        ctx,
        owner,
        &files,
        model,
        &crate::domain::JobOptions::default(),
    )
    .await
    .expect("a batch");
    (files, batch, jobs)
}

/// A ready file of `owner`: validated PNG bytes and their record.
pub async fn ready_file(ctx: &AppContext, owner: &str) -> UploadedFile {
    let bytes = png(48, 32);
    let image = inspect_image(&bytes, ctx.config.image_limits()).expect("a valid PNG");
    let now = Utc::now();
    let file = UploadedFile::ready(owner, "photo.png", image, now, ctx.config.expires_at(now));
    ctx.storage
        .put(&file.object_key, Bytes::from(bytes), "image/png")
        .await
        .expect("bytes stored");
    ctx.store.create_file(&file).await.expect("file recorded");
    file
}

/// A queued job of the file's owner, stored.
pub async fn queued_job(ctx: &AppContext, file: &UploadedFile, model_type: &str) -> GenerationJob {
    queued_job_at(ctx, file, model_type, Utc::now()).await
}

/// A queued job of the file's owner created at `at`, stored.
async fn queued_job_at(
    ctx: &AppContext,
    file: &UploadedFile,
    model_type: &str,
    at: DateTime<Utc>,
) -> GenerationJob {
    let job = GenerationJob::new(
        file.file_id,
        &file.owner,
        model_type,
        Default::default(),
        None,
        at,
    );
    ctx.store
        .create_jobs(std::slice::from_ref(&job), None, None)
        .await
        .expect("job created");
    job
}

/// Runs `job` to completion with a small model stored as its result; returns it as stored.
pub async fn completed(ctx: &AppContext, job: &GenerationJob) -> GenerationJob {
    let now = Utc::now();
    let running = job.start(now).expect("a queued job starts");
    ctx.store.update_job(&running).await.expect("started");
    let key = JobResult::object_key_for(job.job_id, "glb");
    ctx.storage
        .put(&key, Bytes::from_static(b"glTF"), "model/gltf-binary")
        .await
        .expect("model stored");
    let result = JobResult {
        object_key: key,
        filename: "photo.glb".into(),
        size: 4,
        content_type: "model/gltf-binary".into(),
        preview_key: None,
        ..JobResult::default()
    };
    let done = running
        .complete(result, now)
        .expect("a running job completes");
    ctx.store.update_job(&done).await.expect("completed");
    done
}

pub async fn stored(ctx: &AppContext, job: &GenerationJob) -> GenerationJob {
    ctx.store
        .get_job(job.job_id)
        .await
        .expect("store answers")
        .expect("job exists")
}

/// Takes every message visible now off the queue (acknowledging them).
pub async fn drain(ctx: &AppContext) -> Vec<WorkMessage> {
    let mut out = Vec::new();
    loop {
        let batch = ctx
            .queue
            .receive(10, Duration::from_secs(60))
            .await
            .expect("queue answers");
        if batch.is_empty() {
            return out;
        }
        for message in batch {
            ctx.queue.delete(&message.receipt).await.expect("ack");
            out.push(serde_json::from_str(&message.body).expect("a work message"));
        }
    }
}

/// Takes every message off the work queue, delayed or not, each with the delay it was sent with
/// (messages never received: receiving one moves its visibility).
pub fn take_queued(t: &TestContext) -> Vec<(WorkMessage, Duration)> {
    let db =
        rusqlite::Connection::open(t.config.local.data_dir.join("image2model.db")).expect("db");
    let messages = db
        .prepare("SELECT body, visible_at - sent_at FROM queue ORDER BY sent_at")
        .expect("the queue table")
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .expect("the queue rows")
        .map(|row| {
            let (body, delay) = row.expect("a queue row");
            let delay = Duration::from_micros(u64::try_from(delay).expect("a delay"));
            (serde_json::from_str(&body).expect("a work message"), delay)
        })
        .collect();
    db.execute("DELETE FROM queue", [])
        .expect("the queue emptied");
    messages
}

#[derive(Default)]
struct FalScript {
    /// Replies by route, in order.
    replies: HashMap<String, VecDeque<(http::StatusCode, Bytes)>>,
    /// Request bodies by route, in order.
    calls: HashMap<String, Vec<Bytes>>,
    /// Requests to routes no reply was scripted for.
    unscripted: Vec<String>,
}

impl Drop for FalScript {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(
                self.unscripted,
                Vec::<String>::new(),
                "unscripted FAL calls"
            );
        }
    }
}

/// A scripted FAL.AI, the unit tests' implementation of the [`FalQueue`] port (the HTTPS client
/// is the other). Each call is a route (`"POST /app"`, `"GET /r/1/status"`, `"PUT /r/1/cancel"`:
/// the method and the path of the URL called) that answers from its own list of replies, the last
/// of which repeats, read by the client's own readers (`adapters::fal::read_*`), so a scripted
/// 422 is the error FAL's 422 is. Every call's body is recorded by route. A call to a route
/// without replies answers 404 and fails the test when the script is dropped: a worker calling
/// where it should not is never mistaken for FAL's refusal.
#[derive(Clone)]
pub struct FakeFal {
    pub base: String,
    script: Arc<Mutex<FalScript>>,
}

impl Default for FakeFal {
    fn default() -> Self {
        Self {
            base: "https://fal.test".to_owned(),
            script: Arc::default(),
        }
    }
}

impl FakeFal {
    /// The scripted answer of `method` on `url`, recording `body`.
    fn reply(&self, method: &str, url: &str, body: Bytes) -> (http::StatusCode, Bytes) {
        let path = url
            .strip_prefix(&self.base)
            .unwrap_or(url)
            .split('?')
            .next()
            .unwrap_or_default();
        let route = format!("{method} {path}");
        let mut script = self.script.lock().unwrap();
        script.calls.entry(route.clone()).or_default().push(body);
        let reply = match script.replies.get_mut(&route) {
            Some(replies) if replies.len() > 1 => replies.pop_front(),
            Some(replies) => replies.front().cloned(),
            None => None,
        };
        reply.unwrap_or_else(|| {
            script.unscripted.push(route);
            (http::StatusCode::NOT_FOUND, Bytes::from_static(b"{}"))
        })
    }

    /// The scripted answer of `method` on `url` as FAL's API gives it: the body of a success,
    /// the error an answer's status says otherwise.
    fn answer_to(&self, method: &str, url: &str, body: Bytes) -> Result<String, FalError> {
        let (status, body) = self.reply(method, url, body);
        let text = String::from_utf8_lossy(&body).into_owned();
        answer_body(status, &HeaderMap::new(), text)
    }

    /// Adds a reply to `route`'s list.
    pub fn answer(&self, route: &str, status: u16, body: impl Into<Bytes>) {
        let status = http::StatusCode::from_u16(status).expect("an HTTP status");
        let mut script = self.script.lock().unwrap();
        let replies = script.replies.entry(route.to_owned()).or_default();
        replies.push_back((status, body.into()));
    }

    /// Adds a JSON reply to `route`'s list.
    pub fn answer_json(&self, route: &str, status: u16, body: serde_json::Value) {
        self.answer(route, status, body.to_string());
    }

    /// Accepts the next submission to `app` as request `id` (its URLs under `/r/<id>`).
    pub fn accept(&self, app: &str, id: &str, queue_position: u32) {
        self.answer_json(
            &format!("POST /{app}"),
            200,
            serde_json::json!({
                "request_id": id,
                "status_url": self.url(&format!("/r/{id}/status")),
                "response_url": self.url(&format!("/r/{id}")),
                "cancel_url": self.url(&format!("/r/{id}/cancel")),
                "queue_position": queue_position,
            }),
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The bodies of the requests `route` received, in order.
    pub fn calls(&self, route: &str) -> Vec<Bytes> {
        let script = self.script.lock().unwrap();
        script.calls.get(route).cloned().unwrap_or_default()
    }

    /// The request recorded for a job submitted as `id` at `submitted_at`.
    pub fn request(&self, id: &str, submitted_at: DateTime<Utc>) -> FalRequest {
        FalRequest {
            request_id: id.to_owned(),
            status_url: self.url(&format!("/r/{id}/status")),
            response_url: self.url(&format!("/r/{id}")),
            cancel_url: self.url(&format!("/r/{id}/cancel")),
            submitted_at,
        }
    }
}

#[async_trait::async_trait]
impl FalQueue for FakeFal {
    async fn submit(
        &self,
        app: &str,
        input: &serde_json::Value,
        _webhook: Option<&str>,
    ) -> Result<Submission, FalError> {
        let url = self.url(&format!("/{app}"));
        read_submission(&self.answer_to("POST", &url, Bytes::from(input.to_string()))?)
    }

    async fn status(&self, status_url: &str) -> Result<QueueStatus, FalError> {
        read_queue_status(&self.answer_to("GET", status_url, Bytes::new())?)
    }

    async fn result(&self, response_url: &str) -> Result<serde_json::Value, FalError> {
        read_json(&self.answer_to("GET", response_url, Bytes::new())?)
    }

    async fn cancel(&self, cancel_url: &str) -> Result<(), FalError> {
        read_cancel(self.answer_to("PUT", cancel_url, Bytes::new()))
    }

    async fn download(&self, url: &str) -> Result<Bytes, FalError> {
        match self.reply("GET", url, Bytes::new()) {
            (status, body) if status.is_success() => Ok(body),
            (status, body) => Err(download_error(
                status,
                &HeaderMap::new(),
                &String::from_utf8_lossy(&body),
            )),
        }
    }
}

/// A context with a FAL key whose worker (`fal_worker`) calls `fal`, adjusted by `adjust`.
pub fn fal_context(fal: &FakeFal, adjust: impl FnOnce(&mut Config)) -> TestContext {
    let mut t = context_with(|c| {
        c.fal.key = Some(Secret("fal-test-key".into()));
        c.fal.base_url = fal.base.clone();
        adjust(c);
    });
    t.fal = Some(fal.clone());
    t
}

/// A worker that runs every job at the FAL of `t`'s settings.
pub fn fal_worker(t: &TestContext) -> Worker {
    let fal = t.fal.clone().expect("a context made by fal_context");
    Worker::new(t.ctx.clone(), Vec::new()).with_fal(fal)
}

/// A job of `model_type` on a new ready file, created, claimed and recorded as submitted to FAL
/// as `request`, all at `at`; stored.
pub async fn submitted_job(
    t: &TestContext,
    model_type: &str,
    request: FalRequest,
    at: DateTime<Utc>,
) -> GenerationJob {
    let job = queued_job_at(t, &ready_file(t, "alice").await, model_type, at).await;
    let running = job.start(at).expect("a queued job starts");
    t.store.update_job(&running).await.expect("claimed");
    let submitted = running
        .record_submission(request, at)
        .expect("a running job records its submission");
    t.store.update_job(&submitted).await.expect("recorded");
    submitted
}

/// A glTF 2.0 binary header of the length it claims (what FAL's mesh check reads).
pub fn tiny_glb() -> Vec<u8> {
    let mut glb = b"glTF".to_vec();
    glb.extend(2u32.to_le_bytes());
    glb.extend(20u32.to_le_bytes());
    glb.extend([0; 8]);
    glb
}

/// A real GLB, small: the built-in relief of a 48x32 gradient, textured with it.
pub fn relief_glb() -> Bytes {
    let photo = image::RgbaImage::from_fn(48, 32, |x, y| {
        image::Rgba([(x * 5) as u8, (y * 7) as u8, 90, 255])
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(photo.clone())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("a PNG encodes");
    Bytes::from(image2model_relief::generate_glb(
        &photo,
        (&png, "image/png"),
        None,
    ))
}

/// [`completed`], with a real GLB (see [`relief_glb`]) as its model.
pub async fn completed_with_model(ctx: &AppContext, job: &GenerationJob) -> GenerationJob {
    let mut done = completed(ctx, job).await;
    let glb = relief_glb();
    let result = done.result.as_mut().expect("a completed job has a result");
    result.size = glb.len() as u64;
    ctx.storage
        .put(&result.object_key, glb, "model/gltf-binary")
        .await
        .expect("model stored");
    done
}
