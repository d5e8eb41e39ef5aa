//! The functions as Lambda runs them, fed real event JSON from `tests/fixtures/events`: an S3
//! object-created event to ingest, an SQS batch to the worker (reporting only the failed item),
//! and API Gateway HTTP API events (including a FAL webhook delivery) through the same router the
//! HTTP functions serve.

use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::SqsEvent;
use bytes::Bytes;
use http_body_util::BodyExt;
use image2model_ingest::handle_s3_event;
use image2model_shared::AppContext;
use image2model_shared::adapters::embedded::EmbeddedAdapters;
use image2model_shared::app::ingest::IngestOutcome;
use image2model_shared::app::work::Worker;
use image2model_shared::builtin_generator::BuiltinGenerator;
use image2model_shared::domain::{FileId, FileStatus, JobId, JobStatus, UploadedFile};
use image2model_shared::ports::{
    GeneratedModel, GenerationRequest, Generator, GeneratorError, ProgressReporter,
};
use image2model_tests::contract::{file, insert_job, job};
use image2model_tests::{png, test_config};
use std::sync::Arc;
use tower::ServiceExt;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn context() -> (tempfile::TempDir, AppContext) {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let adapters = EmbeddedAdapters::open(&config, "http://127.0.0.1:1").unwrap();
    (
        dir,
        image2model_shared::wiring::embedded_context(config, &adapters).unwrap(),
    )
}

fn fixed_id(n: u8) -> uuid::Uuid {
    format!("00000000-0000-4000-8000-00000000000{n}")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn s3_object_created_event_runs_ingestion() {
    let (_dir, ctx) = context();
    let mut pending = file("alice");
    pending.file_id = FileId::from_uuid(fixed_id(1));
    pending.object_key = format!("uploads/alice/{}", pending.file_id);
    ctx.store.create_file(&pending).await.unwrap();
    ctx.storage
        .put(&pending.object_key, Bytes::from(png(30, 20)), "image/png")
        .await
        .unwrap();
    let waiting = job("alice", pending.file_id);
    insert_job(ctx.store.as_ref(), &waiting).await;

    let event: S3Event = serde_json::from_str(&fixture("s3_object_created.json")).unwrap();
    let outcomes = handle_s3_event(&ctx, event.clone()).await.unwrap();
    assert_eq!(
        outcomes,
        [IngestOutcome::Accepted {
            file_id: pending.file_id,
            released_jobs: 1
        }]
    );
    let stored = ctx.store.get_file(pending.file_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.width, stored.height),
        (FileStatus::Ready, Some(30), Some(20))
    );
    // S3 delivers at least once: the duplicate changes nothing.
    assert_eq!(
        handle_s3_event(&ctx, event).await.unwrap(),
        [IngestOutcome::AlreadyProcessed {
            file_id: pending.file_id
        }]
    );
    assert_eq!(ctx.queue.depth().await.unwrap().visible, 1);
}

#[tokio::test]
async fn sqs_batch_reports_only_the_failed_message() {
    let (_dir, ctx) = context();
    let bytes = png(40, 30);
    let image =
        image2model_shared::validation::inspect_image(&bytes, ctx.config.image_limits()).unwrap();
    let now = chrono::Utc::now();
    let ready = UploadedFile::ready("alice", "a.png", image, now, ctx.config.expires_at(now));
    ctx.storage
        .put(&ready.object_key, Bytes::from(bytes), "image/png")
        .await
        .unwrap();
    ctx.store.create_file(&ready).await.unwrap();
    let mut j = job("alice", ready.file_id);
    j.job_id = JobId::from_uuid(fixed_id(2));
    insert_job(ctx.store.as_ref(), &j).await;

    let worker = Worker::new(
        ctx.clone(),
        vec![Arc::new(BuiltinGenerator::new(ctx.config.image_limits()))],
    );
    let event: SqsEvent = serde_json::from_str(&fixture("sqs_generate_batch.json")).unwrap();
    let response = image2model_worker::handle_sqs_event(&worker, event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["2e1424d4-f796-459a-8184-9c92662be6da"]);
    assert_eq!(
        ctx.store.get_job(j.job_id).await.unwrap().unwrap().status,
        JobStatus::Completed
    );
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(
        json["batchItemFailures"][0]["itemIdentifier"],
        "2e1424d4-f796-459a-8184-9c92662be6da"
    );
}

/// The built-in generator behind one that panics the first time it is asked what it serves: a
/// bug met by one message of a batch.
struct PanicsOnce {
    inner: BuiltinGenerator,
    panicked: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Generator for PanicsOnce {
    fn supports(&self, model_type: &str) -> bool {
        if !self
            .panicked
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("a bug met by one message");
        }
        self.inner.supports(model_type)
    }

    async fn generate(
        &self,
        request: GenerationRequest,
        progress: &dyn ProgressReporter,
    ) -> Result<GeneratedModel, GeneratorError> {
        self.inner.generate(request, progress).await
    }
}

/// A message that panics the worker fails alone: it is the one item reported in
/// `batchItemFailures` (SQS redelivers it), and the rest of its batch completes.
#[tokio::test]
async fn a_panicking_message_fails_alone_and_its_batch_completes() {
    let (_dir, ctx) = context();
    let bytes = png(40, 30);
    let image =
        image2model_shared::validation::inspect_image(&bytes, ctx.config.image_limits()).unwrap();
    let template: SqsEvent = serde_json::from_str(&fixture("sqs_generate_batch.json")).unwrap();
    let mut event = template.clone();
    event.records.clear();
    let mut jobs = Vec::new();
    for n in 0..3 {
        let now = chrono::Utc::now();
        let ready = UploadedFile::ready("alice", "a.png", image.clone(), now, now);
        ctx.storage
            .put(&ready.object_key, Bytes::from(bytes.clone()), "image/png")
            .await
            .unwrap();
        ctx.store.create_file(&ready).await.unwrap();
        let j = job("alice", ready.file_id);
        insert_job(ctx.store.as_ref(), &j).await;
        let mut record = template.records[0].clone();
        record.message_id = Some(format!("message-{n}"));
        record.body = Some(format!("{{\"job_id\":\"{}\"}}", j.job_id));
        event.records.push(record);
        jobs.push(j.job_id);
    }
    let generator = PanicsOnce {
        inner: BuiltinGenerator::new(ctx.config.image_limits()),
        panicked: Default::default(),
    };
    let worker = Worker::new(ctx.clone(), vec![Arc::new(generator)]);
    let response = image2model_worker::handle_sqs_event(&worker, event).await;
    assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
    let failed = &response.batch_item_failures[0].item_identifier;
    for (n, job_id) in jobs.iter().enumerate() {
        let status = ctx.store.get_job(*job_id).await.unwrap().unwrap().status;
        if *failed == format!("message-{n}") {
            assert_eq!(status, JobStatus::Queued, "left for redelivery");
        } else {
            assert_eq!(status, JobStatus::Completed);
        }
    }
}

async fn invoke(
    ctx: &AppContext,
    event: &str,
) -> (http::StatusCode, http::HeaderMap, serde_json::Value) {
    let request = lambda_http::request::from_str(event).expect("a valid API Gateway event");
    let service = image2model_shared::web::into_service(
        image2model_local::api_router(ctx)
            .expect("router")
            .with_state(ctx.clone()),
        &ctx.config,
    );
    let response = service.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap(),
    )
}

/// A stream whose store stops answering right after it opened still ends at its `timeout`
/// (under Lambda's response streaming, a stream that never ends bills until the 900 s limit):
/// its first frame is the snapshot it opened with, then the deadline holds whatever the reads
/// say.
#[tokio::test]
async fn a_stream_whose_reads_fail_from_the_start_ends_at_its_timeout() {
    let (dir, ctx) = context();
    let waiting = job("alice", FileId::new());
    insert_job(ctx.store.as_ref(), &waiting).await;
    let service = image2model_shared::web::into_service(
        image2model_local::api_router(&ctx)
            .expect("router")
            .with_state(ctx.clone()),
        &ctx.config,
    );
    let request = http::Request::get(format!(
        "/api/v1/status/tasks/{}/sse?timeout=1",
        waiting.job_id
    ))
    .header(
        "authorization",
        format!("Bearer {}", image2model_tests::ALICE),
    )
    .body(axum::body::Body::empty())
    .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    // The store fails from here on, before the stream's body is read.
    rusqlite::Connection::open(dir.path().join("image2model.db"))
        .unwrap()
        .execute_batch("ALTER TABLE jobs RENAME TO jobs_unreachable")
        .unwrap();
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        response.into_body().collect(),
    )
    .await
    .expect("the stream ends by its timeout")
    .unwrap()
    .to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"task_queued"), "{text}");
    assert_eq!(events.last(), Some(&"timeout"), "{text}");
}

#[tokio::test]
async fn api_gateway_http_events_run_through_the_routers() {
    let (_dir, ctx) = context();
    let (status, headers, body) = invoke(&ctx, &fixture("apigw_http_health.json")).await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(body["status"], "healthy");
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert!(headers.contains_key("x-request-id"));

    let (status, _, body) = invoke(&ctx, &fixture("apigw_http_list_jobs.json")).await;
    assert_eq!(status, http::StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["jobs"].as_array().map(Vec::len),
            body["limit"].as_u64()
        ),
        (Some(0), Some(5))
    );

    let unauthenticated = fixture("apigw_http_list_jobs.json")
        .replace("\"authorization\": \"Bearer alice-key-0123456789\",", "");
    let (status, headers, body) = invoke(&ctx, &unauthenticated).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (http::StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED"))
    );
    assert!(headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn a_fal_webhook_event_with_a_stale_signature_is_refused_and_changes_nothing() {
    let (_dir, ctx) = context();
    let mut waiting = job("alice", FileId::new());
    waiting.job_id = JobId::from_uuid(fixed_id(7));
    insert_job(ctx.store.as_ref(), &waiting).await;
    let (status, _, body) = invoke(&ctx, &fixture("apigw_http_fal_webhook.json")).await;
    assert_eq!(status, http::StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error_code"], "WEBHOOK_SIGNATURE_INVALID");
    assert!(
        body["detail"].as_str().unwrap().contains("timestamp"),
        "{body}"
    );
    assert_eq!(
        ctx.store.get_job(waiting.job_id).await.unwrap().unwrap(),
        waiting
    );
    assert_eq!(
        ctx.queue.depth().await.unwrap().visible,
        0,
        "nothing was enqueued"
    );
}
