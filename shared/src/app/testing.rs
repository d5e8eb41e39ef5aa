//! What the services' unit tests share: a context on the embedded adapters in a temp dir, files
//! made of real image bytes, and a look into the work queue.

use super::enqueue::WorkMessage;
use crate::config::{Config, NamedKey};
use crate::context::{AppContext, EmbeddedAdapters};
use crate::domain::{GenerationJob, JobResult, UploadedFile};
use crate::keys::Caller;
use crate::validation::inspect_image;
use bytes::Bytes;
use chrono::Utc;
use std::io::Cursor;
use std::time::Duration;
use tempfile::TempDir;

/// A context on the embedded adapters of its own temp dir (removed when dropped).
pub struct TestContext {
    pub ctx: AppContext,
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
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        user_keys: vec![NamedKey {
            name: "alice".into(),
            key: "alice-key-0123456789".into(),
        }],
        ..Config::default()
    };
    adjust(&mut config);
    let adapters = EmbeddedAdapters::open(&config, "http://127.0.0.1:1").expect("adapters open");
    TestContext {
        ctx: AppContext::embedded(config, &adapters),
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
    let model = crate::domain::models::find(crate::domain::models::DEFAULT_MODEL).expect("default");
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
    let job = GenerationJob::new(
        file.file_id,
        &file.owner,
        model_type,
        Default::default(),
        None,
        Utc::now(),
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
