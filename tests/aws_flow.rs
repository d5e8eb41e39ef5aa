//! The whole flow on the AWS API emulator, each function invoked as Lambda would: presign ->
//! PUT to the presigned S3 URL -> the S3 notification -> the ingest handler -> SQS -> the worker
//! handler with the received batch -> the result in S3 -> status -> presigned download. And the
//! FAL path on the same adapters: FAL fetches the upload through a presigned S3 GET URL, polls
//! travel as delayed SQS messages, the breaker and slots live in DynamoDB.

use aws_lambda_events::event::s3::S3Event;
use http_body_util::BodyExt;
use image2model_ingest::handle_s3_event;
use image2model_shared::AppContext;
use image2model_shared::app::ingest::IngestOutcome;
use image2model_shared::app::work::Worker;
use image2model_shared::builtin_generator::BuiltinGenerator;
use image2model_shared::config::Config;
use image2model_shared::wiring::aws_context;
use image2model_tests::contract::file;
use image2model_tests::fake_fal::{FakeFal, Script, sample_glb};
use image2model_tests::{ADMIN, ALICE, aws, inspect_glb, jpeg, test_config};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

async fn call(
    ctx: &AppContext,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (http::StatusCode, Value) {
    call_as(ctx, ALICE, method, path, body).await
}

async fn call_as(
    ctx: &AppContext,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (http::StatusCode, Value) {
    let service = image2model_shared::web::into_service(
        image2model_local::api_router(ctx)
            .expect("router")
            .with_state(ctx.clone()),
        &ctx.config,
    );
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"));
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            axum::body::Body::from(json.to_string())
        }
        None => axum::body::Body::empty(),
    };
    let response = service.oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Receives from an SQS queue by URL with the raw SDK, as the Lambda event source does.
async fn receive_raw(url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let sdk = image2model_shared::adapters::aws::sdk_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    for _ in 0..50 {
        let output = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = output.messages.unwrap_or_default();
        if !messages.is_empty() {
            for m in &messages {
                client
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            return messages;
        }
    }
    panic!("no message arrived on {url}");
}

/// A deployment without the status-token secret does not start: with an empty key, tokens
/// would verify under a key anyone knows, and with a key of its own each instance would refuse
/// the others' tokens.
#[tokio::test]
async fn a_deployment_without_the_status_token_secret_refuses_to_start() {
    let mut config = Config::from_env().expect("valid environment");
    let resources = config.aws.clone().expect("run `bash scripts/test.sh`");
    config.status.status_token_secret = None;
    let sdk = image2model_shared::adapters::aws::sdk_config().await;
    let Err(refused) = aws_context(config, &resources, &sdk) else {
        panic!("a context without STATUS_TOKEN_SECRET was built");
    };
    assert!(
        refused
            .to_string()
            .contains("STATUS_TOKEN_SECRET is not set"),
        "{refused}"
    );
}

#[tokio::test]
async fn photo_to_glb_on_s3_dynamodb_and_sqs() {
    let ctx = aws::context().await;
    let photo = jpeg(160, 120);
    let (status, presigned) = call(
        &ctx,
        "POST",
        "/api/v1/uploads/presign",
        Some(json!({"files": [{"filename": "cat.jpg", "content_type": "image/jpeg", "size": photo.len()}], "generate": {}})),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{presigned}");
    let entry = &presigned["files"][0];
    let job_id = entry["job_id"].as_str().unwrap().to_owned();
    let upload = &entry["upload"];
    assert!(upload["url"].as_str().unwrap().contains("X-Amz-Signature="));

    let client = reqwest::Client::new();
    let mut put = client
        .put(upload["url"].as_str().unwrap())
        .body(photo.clone());
    for (name, value) in upload["headers"].as_object().unwrap() {
        put = put.header(name.as_str(), value.as_str().unwrap());
    }
    assert!(put.send().await.unwrap().status().is_success());

    // S3 -> notification queue -> the ingest handler, with the event body exactly as sent.
    let events_url =
        std::env::var("UPLOAD_EVENTS_QUEUE_URL").expect("provisioned by scripts/test.sh");
    // Other tests upload to the same bucket: their events are ignored (not our file) or
    // accepted for their own files; ours must be accepted with its job released.
    let file_id: image2model_shared::domain::FileId =
        entry["file_id"].as_str().unwrap().parse().unwrap();
    let ours = |o: &IngestOutcome| matches!(o, IngestOutcome::Accepted { file_id: id, .. } if *id == file_id);
    let mut outcomes = Vec::new();
    while !outcomes.iter().any(ours) {
        for message in receive_raw(&events_url).await {
            let mut body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            let Some(records) = body.get_mut("Records").and_then(Value::as_array_mut) else {
                continue; // the s3:TestEvent sent when notifications are configured
            };
            // moto leaves out three fields real S3 always sends; Lambda would deliver them.
            for record in records.iter_mut() {
                let record = record.as_object_mut().unwrap();
                record
                    .entry("userIdentity")
                    .or_insert(json!({"principalId": "AWS:EMULATOR"}));
                record
                    .entry("requestParameters")
                    .or_insert(json!({"sourceIPAddress": "127.0.0.1"}));
                record.entry("responseElements").or_insert(json!({}));
            }
            let event: S3Event =
                serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{e}: {body}"));
            outcomes.extend(handle_s3_event(&ctx, event).await.unwrap());
        }
    }
    assert!(
        outcomes.contains(&IngestOutcome::Accepted {
            file_id,
            released_jobs: 1
        }),
        "{outcomes:?}"
    );

    // SQS -> the worker handler with the batch as Lambda builds it; acknowledged on success.
    let worker = Worker::new(
        ctx.clone(),
        vec![Arc::new(BuiltinGenerator::new(ctx.config.image_limits()))],
    );
    let work_url = std::env::var("QUEUE_URL").unwrap();
    let mut finished = false;
    for _ in 0..10 {
        let event = aws::sqs_event(&receive_raw(&work_url).await);
        let response = image2model_worker::handle_sqs_event(&worker, event).await;
        assert!(response.batch_item_failures.is_empty());
        let (_, job) = call(&ctx, "GET", &format!("/api/v1/jobs/{job_id}"), None).await;
        if job["status"] == "completed" {
            finished = true;
            break;
        }
    }
    assert!(finished, "the job completed");

    let (status, task) = call(
        &ctx,
        "GET",
        &format!("/api/v1/status/tasks/{job_id}/status"),
        None,
    )
    .await;
    assert_eq!(
        (status, task["status"].as_str(), task["progress"].as_u64()),
        (http::StatusCode::OK, Some("completed"), Some(100))
    );
    let (status, link) = call(
        &ctx,
        "GET",
        &format!("/api/v1/download/{job_id}?redirect=false"),
        None,
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(url.contains("response-content-disposition="), "{url}");
    let model = client
        .get(url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert!(model.status().is_success());
    let glb = model.bytes().await.unwrap();
    let (_, triangles, texture) = inspect_glb(&glb);
    assert!(triangles > 1000);
    assert_eq!(texture, (160, 120));
    let (status, health) = call(&ctx, "GET", "/api/v1/health/readiness", None).await;
    assert_eq!(status, http::StatusCode::OK, "{health}");

    // The old API's routes on AWS: the file's status, the model by name, storage figures from
    // the bucket (no disk to measure: the disk fields are null and say why).
    let file_id = entry["file_id"].as_str().unwrap();
    let (status, upload) = call(
        &ctx,
        "GET",
        &format!("/api/v1/upload/status/{file_id}"),
        None,
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{upload}");
    assert_eq!(
        (
            upload["status"].as_str(),
            upload["processing_status"].as_str()
        ),
        (Some("uploaded"), Some("completed"))
    );
    let (status, _) = call(
        &ctx,
        "GET",
        &format!("/api/v1/download/{job_id}/cat.glb"),
        None,
    )
    .await;
    assert_eq!(status, http::StatusCode::FOUND);
    let (status, usage) = call_as(&ctx, ADMIN, "GET", "/api/v1/admin/disk-usage", None).await;
    assert_eq!(status, http::StatusCode::OK, "{usage}");
    for dir in ["upload_dir", "output_dir"] {
        let d = &usage[dir];
        assert!(d["path"].as_str().unwrap().starts_with("s3://"), "{d}");
        assert!(d["file_count"].as_u64().unwrap() >= 1, "{d}");
        assert!(
            d["disk_total_gb"].is_null() && d["disk_note"].is_string(),
            "{d}"
        );
    }
    let (status, list) = call_as(
        &ctx,
        ADMIN,
        "GET",
        "/api/v1/admin/list-files?directory=results&limit=5",
        None,
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{list}");
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["path"].as_str().unwrap().starts_with("results/"))
    );
}

/// A work queue of this test's own, so no other test's worker takes its messages.
async fn own_queue_url() -> (String, String) {
    let sdk = image2model_shared::adapters::aws::sdk_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("fal-flow-{}", uuid::Uuid::new_v4().simple());
    let mut urls = Vec::new();
    for queue in [format!("{name}-dead"), name] {
        let created = client
            .create_queue()
            .queue_name(queue)
            .send()
            .await
            .unwrap();
        urls.push(created.queue_url().unwrap().to_owned());
    }
    (urls.pop().unwrap(), urls.pop().unwrap())
}

#[tokio::test]
async fn fal_job_on_s3_dynamodb_and_sqs() {
    let fake = FakeFal::start(Script {
        run_time: Duration::from_millis(1500),
        ..Script::default()
    })
    .await;
    let mut config = Config::from_env().expect("valid environment");
    let mut resources = config.aws.clone().expect("run `bash scripts/test.sh`");
    (resources.queue_url, resources.dead_letter_queue_url) = own_queue_url().await;
    let keys = test_config(std::path::Path::new("."));
    config.sign_in.user_keys = keys.sign_in.user_keys;
    config.sign_in.admin_key = keys.sign_in.admin_key;
    fake.configure(&mut config);
    config.fal.poll_initial = Duration::from_secs(1);
    config.fal.poll_max = Duration::from_secs(1);
    let sdk = image2model_shared::adapters::aws::sdk_config().await;
    let ctx = aws_context(config, &resources, &sdk)
        .expect("STATUS_TOKEN_SECRET is provisioned by scripts/test.sh");

    // An upload ingested as the S3 event would, then a tripo3d job through the jobs route.
    let photo = jpeg(120, 90);
    let mut upload = file("alice");
    upload.filename = "rocket.jpg".into();
    upload.content_type = "image/jpeg".into();
    ctx.store.create_file(&upload).await.unwrap();
    ctx.storage
        .put(
            &upload.object_key,
            bytes::Bytes::from(photo.clone()),
            "image/jpeg",
        )
        .await
        .unwrap();
    image2model_shared::app::ingest::ingest_object(&ctx, &upload.object_key)
        .await
        .unwrap();
    let (status, created) = call(
        &ctx,
        "POST",
        "/api/v1/jobs",
        Some(json!({"file_id": upload.file_id, "model_type": "tripo3d"})),
    )
    .await;
    assert_eq!(status, http::StatusCode::ACCEPTED, "{created}");
    let job_id: image2model_shared::domain::JobId =
        created["job_id"].as_str().unwrap().parse().unwrap();

    // The worker takes messages as Lambda would: submit, then delayed polls until completion.
    let client = aws_sdk_sqs::Client::new(&sdk);
    let worker = Worker::new(ctx.clone(), Vec::new()).with_fal(
        image2model_shared::adapters::fal::FalClient::new(&ctx.config.fal)
            .unwrap()
            .unwrap(),
    );
    let mut handled = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = ctx.store.get_job(job_id).await.unwrap().unwrap();
        if job.status.is_terminal() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job never finished: {job:?}"
        );
        let output = client
            .receive_message()
            .queue_url(&resources.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = output.messages.unwrap_or_default();
        handled += messages.len();
        let receipts: Vec<String> = messages
            .iter()
            .map(|m| m.receipt_handle().unwrap().to_owned())
            .collect();
        let event = aws::sqs_event(&messages);
        assert!(
            image2model_worker::handle_sqs_event(&worker, event)
                .await
                .batch_item_failures
                .is_empty()
        );
        for receipt in receipts {
            client
                .delete_message()
                .queue_url(&resources.queue_url)
                .receipt_handle(receipt)
                .send()
                .await
                .unwrap();
        }
    }
    let job = ctx.store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!(
        job.status,
        image2model_shared::domain::JobStatus::Completed,
        "{job:?}"
    );
    assert!(
        handled >= 3,
        "a submission and at least two polls: {handled}"
    );

    let submissions = fake.submissions();
    assert_eq!(submissions.len(), 1);
    let image_url = submissions[0].input["image_url"].as_str().unwrap();
    assert!(image_url.contains("X-Amz-Signature="), "{image_url}");
    assert_eq!(
        submissions[0].input_image.as_deref(),
        Some(photo.as_slice())
    );
    let stored = ctx
        .storage
        .get(&job.result.unwrap().object_key)
        .await
        .unwrap();
    assert_eq!(stored.as_ref(), sample_glb().as_slice());

    let (status, stats) = call_as(&ctx, ADMIN, "GET", "/api/v1/admin/stats", None).await;
    assert_eq!(status, http::StatusCode::OK, "{stats}");
    assert_eq!(stats["fal"]["in_flight"], 0, "{stats}");
    assert_eq!(stats["fal"]["circuit_breaker"]["state"], "closed");
    assert!(
        stats["spend"]["daily"][0]["runs"]["tripo3d"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

/// A worker invocation that dies after claiming its job (Lambda's process frozen or killed: the
/// batch never answered) on the emulator: the message comes back after the queue's visibility
/// timeout, the next invocation takes the lapsed lease over and completes the job once.
#[tokio::test]
async fn a_worker_that_dies_after_claiming_is_taken_over_on_redelivery() {
    let sdk = image2model_shared::adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("takeover-{}", uuid::Uuid::new_v4().simple());
    let mut urls = Vec::new();
    for queue in [format!("{name}-dead"), name] {
        let created = sqs
            .create_queue()
            .queue_name(queue)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "2",
            )
            .send()
            .await
            .unwrap();
        urls.push(created.queue_url().unwrap().to_owned());
    }
    let mut config = Config::from_env().expect("valid environment");
    let mut resources = config.aws.clone().expect("run `bash scripts/test.sh`");
    (resources.queue_url, resources.dead_letter_queue_url) = (urls[1].clone(), urls[0].clone());
    let keys = test_config(std::path::Path::new("."));
    config.sign_in.user_keys = keys.sign_in.user_keys;
    config.jobs.visibility_timeout = Duration::from_secs(2);
    let ctx = aws_context(config, &resources, &sdk)
        .expect("STATUS_TOKEN_SECRET is provisioned by scripts/test.sh");

    // A big photo, so that generating takes long enough to be cut short.
    let photo = image2model_tests::noisy_png(1600, 1200);
    let mut upload = file("alice");
    upload.content_type = "image/png".into();
    ctx.store.create_file(&upload).await.unwrap();
    ctx.storage
        .put(&upload.object_key, bytes::Bytes::from(photo), "image/png")
        .await
        .unwrap();
    image2model_shared::app::ingest::ingest_object(&ctx, &upload.object_key)
        .await
        .unwrap();
    let (status, created) = call(
        &ctx,
        "POST",
        "/api/v1/jobs",
        Some(json!({"file_id": upload.file_id})),
    )
    .await;
    assert_eq!(status, http::StatusCode::ACCEPTED, "{created}");
    let job_id: image2model_shared::domain::JobId =
        created["job_id"].as_str().unwrap().parse().unwrap();

    let worker = Worker::new(
        ctx.clone(),
        vec![Arc::new(BuiltinGenerator::new(ctx.config.image_limits()))],
    );
    let receive = || async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let output = sqs
                .receive_message()
                .queue_url(&urls[1])
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let messages = output.messages.unwrap_or_default();
            if !messages.is_empty() {
                return messages;
            }
            assert!(tokio::time::Instant::now() < deadline, "no message came");
        }
    };

    // The first invocation claims the job and dies mid-generation (never answering).
    let first = aws::sqs_event(&receive().await);
    let dying = {
        let worker = worker.clone();
        tokio::spawn(async move { image2model_worker::handle_sqs_event(&worker, first).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = ctx.store.get_job(job_id).await.unwrap().unwrap();
        // Claimed and decoding (the built-in generator reports 10 when it starts decoding).
        if job.status == image2model_shared::domain::JobStatus::Processing && job.progress >= 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never started: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dying.abort();
    assert!(
        dying.await.unwrap_err().is_cancelled(),
        "cut short while generating"
    );

    // Redeliveries, after the visibility timeout, go to new invocations as Lambda would (one
    // that comes while the dead run's lease still holds is set aside), until the job ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job = ctx.store.get_job(job_id).await.unwrap().unwrap();
        if job.status.is_terminal() {
            break job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never taken over: {job:?}"
        );
        let messages = receive().await;
        let answer = image2model_worker::handle_sqs_event(&worker, aws::sqs_event(&messages)).await;
        for m in &messages {
            let failed = answer
                .batch_item_failures
                .iter()
                .any(|f| Some(f.item_identifier.as_str()) == m.message_id());
            if !failed {
                sqs.delete_message()
                    .queue_url(&urls[1])
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    };
    assert_eq!(
        (job.status, job.attempts),
        (image2model_shared::domain::JobStatus::Completed, 2),
        "{job:?}"
    );
    let results = ctx
        .storage
        .list(&format!("results/{job_id}/"))
        .await
        .unwrap();
    assert_eq!(results.len(), 2, "one model and one preview: {results:?}");
}
