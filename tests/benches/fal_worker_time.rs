//! What the FAL path costs us, against the fake FAL on loopback: worker time per job (the time
//! Lambda would bill) versus the generation time spent waiting at FAL, the messages and FAL calls
//! per job, and the cost of verifying one webhook signature.
//!
//! `cargo bench -p image2model-tests --bench fal_worker_time`

use bytes::Bytes;
use chrono::Utc;
use image2model_shared::AppContext;
use image2model_shared::adapters::embedded::EmbeddedAdapters;
use image2model_shared::adapters::fal::FalClient;
use image2model_shared::app::work::{MessageOutcome, Worker};
use image2model_shared::domain::{JobId, JobStatus};
use image2model_tests::contract::file;
use image2model_tests::fake_fal::{FakeFal, Script};
use image2model_tests::{jpeg, test_config};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const JOBS: usize = 20;
const FAL_RUN_TIME: Duration = Duration::from_secs(3);

async fn create_jobs(ctx: &AppContext) -> Vec<JobId> {
    let mut jobs = Vec::new();
    for _ in 0..JOBS {
        let mut upload = file("alice");
        upload.filename = "photo.jpg".into();
        ctx.store.create_file(&upload).await.unwrap();
        ctx.storage
            .put(
                &upload.object_key,
                Bytes::from(jpeg(320, 240)),
                "image/jpeg",
            )
            .await
            .unwrap();
        image2model_shared::app::ingest::ingest_object(ctx, &upload.object_key)
            .await
            .unwrap();
        let request = serde_json::from_value(
            serde_json::json!({"file_id": upload.file_id, "model_type": "tripo3d"}),
        )
        .unwrap();
        let job = image2model_shared::app::create_job::create_job(ctx, "alice", request, None)
            .await
            .unwrap();
        jobs.push(job.job_id);
    }
    jobs
}

async fn worker_time() {
    let fake = FakeFal::start(Script {
        run_time: FAL_RUN_TIME,
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    fake.configure(&mut config);
    config.fal.poll_initial = Duration::from_millis(500);
    config.fal.poll_max = Duration::from_secs(2);
    config.fal.max_in_flight = JOBS as u32;
    config.fal.daily_quota = 1000;
    // Nobody serves these presigned input URLs: fetching the input is FAL's time, not ours.
    let adapters = EmbeddedAdapters::open(&config, "http://127.0.0.1:9").unwrap();
    let ctx = image2model_shared::wiring::embedded_context(config, &adapters).unwrap();
    let worker = Worker::new(ctx.clone(), Vec::new())
        .with_fal(FalClient::new(&ctx.config.fal).unwrap().unwrap());
    let jobs = create_jobs(&ctx).await;

    let busy_micros = Arc::new(AtomicU64::new(0));
    let messages = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    loop {
        let mut open = 0;
        for id in &jobs {
            let job = ctx.store.get_job(*id).await.unwrap().unwrap();
            if !job.status.is_terminal() {
                open += 1;
            }
        }
        if open == 0 {
            break;
        }
        let received = ctx
            .queue
            .receive(10, Duration::from_secs(60))
            .await
            .unwrap();
        if received.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let handles: Vec<_> = received
            .into_iter()
            .map(|message| {
                let (worker, queue) = (worker.clone(), ctx.queue.clone());
                let (busy, count) = (busy_micros.clone(), messages.clone());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let outcome = worker.handle_message(&message.body).await;
                    busy.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                    count.fetch_add(1, Ordering::Relaxed);
                    if outcome == MessageOutcome::Done {
                        queue.delete(&message.receipt).await.unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    }
    let wall = started.elapsed();
    let mut completed = 0;
    for id in &jobs {
        if ctx.store.get_job(*id).await.unwrap().unwrap().status == JobStatus::Completed {
            completed += 1;
        }
    }
    let busy = Duration::from_micros(busy_micros.load(Ordering::Relaxed));
    let handled = messages.load(Ordering::Relaxed);
    println!(
        "FAL path: {JOBS} tripo3d jobs, {:.1} s each at FAL: {completed} completed in {:.2} s wall",
        FAL_RUN_TIME.as_secs_f64(),
        wall.as_secs_f64()
    );
    println!(
        "  worker busy {:.0} ms in total = {:.1} ms per job ({:.2}% of the time the job spent at FAL)",
        busy.as_secs_f64() * 1000.0,
        busy.as_secs_f64() * 1000.0 / JOBS as f64,
        100.0 * busy.as_secs_f64() / (JOBS as f64 * FAL_RUN_TIME.as_secs_f64())
    );
    println!(
        "  {handled} messages ({:.1} per job), {} FAL submissions, {} status calls ({:.1} per job)",
        handled as f64 / JOBS as f64,
        fake.submissions().len(),
        fake.status_calls(),
        f64::from(fake.status_calls()) / JOBS as f64
    );
}

async fn signature_cost() {
    let fake = FakeFal::start(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    fake.configure(&mut config);
    let verifier = image2model_webhook::SignatureVerifier::new(&config.fal).unwrap();
    let body = br#"{"request_id":"r-1","gateway_request_id":"r-1","status":"OK","payload":{"model_mesh":{"url":"https://x/model.glb"}}}"#;
    let now = Utc::now();
    let mut headers = http::HeaderMap::new();
    for (name, value) in fake.sign("r-1", now.timestamp(), body, true) {
        headers.insert(name, value.parse().unwrap());
    }
    verifier.verify(&headers, body, now).await.unwrap(); // fetches and caches the keys
    let rounds = 5_000;
    let t = Instant::now();
    for _ in 0..rounds {
        verifier.verify(&headers, body, now).await.unwrap();
    }
    println!(
        "webhook signature check (keys cached): {:.1} µs each over {rounds} deliveries",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
    );
}

#[tokio::main]
async fn main() {
    signature_cost().await;
    worker_time().await;
}
