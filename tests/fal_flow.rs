//! The FAL.AI path end to end against a fake FAL on loopback: the local server (routes, worker,
//! webhook function) submits, polls or receives webhooks, and copies results into its storage.
//! Each scenario asserts the job's final state, how many submissions FAL saw, and that the
//! stored model is what FAL served.

use image2model_shared::config::Config;
use image2model_shared::ports::FalQueue;
use image2model_tests::fake_fal::{
    FakeFal, Output, Reply, Script, Webhooks, depth_png, sample_glb,
};
use image2model_tests::{ADMIN, ALICE, BOB, TestServer, assert_error, fake_fal, png};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// Signature headers of a webhook delivery.
type Signed = Vec<(&'static str, String)>;

/// A fake FAL following `script`, and a local server pointed at it (with its webhook URL when
/// `webhooks`), adjusted by `adjust`.
async fn setup(
    script: Script,
    webhooks: bool,
    adjust: impl FnOnce(&mut Config),
) -> (FakeFal, TestServer) {
    let fake = FakeFal::start(script).await;
    let server = TestServer::start_at(|config, base| {
        fake.configure(config);
        if webhooks {
            config.fal.webhook_url = Some(format!("{base}/api/v1/webhooks/fal"));
        }
        adjust(config);
    })
    .await;
    (fake, server)
}

/// Uploads a photo for `key` and creates a job of `model_type`; returns the job id and photo.
async fn start_job(
    server: &TestServer,
    key: &str,
    model_type: &str,
    options: Value,
) -> (String, Vec<u8>) {
    let photo = png(96, 64);
    let (file_id, _) = server
        .upload_presigned(key, &photo, "image/png", false)
        .await;
    server.wait_for_file(key, &file_id).await;
    let (status, body) = server
        .post_json(
            "/api/v1/jobs",
            Some(key),
            &json!({"file_id": file_id, "model_type": model_type, "options": options}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    (body["job_id"].as_str().unwrap().to_owned(), photo)
}

/// Follows a job to its end, recording every (progress, message) seen on the way.
async fn watch(server: &TestServer, job_id: &str) -> (Value, Vec<(u64, String)>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<(u64, String)> = Vec::new();
    loop {
        let (_, job) = server
            .get_json(&format!("/api/v1/jobs/{job_id}"), Some(ALICE))
            .await;
        let step = (
            job["progress"].as_u64().unwrap(),
            job["message"].as_str().unwrap_or_default().to_owned(),
        );
        if seen.last() != Some(&step) {
            seen.push(step);
        }
        if ["completed", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
            return (job, seen);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job never finished: {job}"
        );
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// The FAL request id recorded on a job.
async fn fal_request_id(server: &TestServer, job_id: &str) -> String {
    let job = server
        .ctx
        .store
        .get_job(job_id.parse().unwrap())
        .await
        .unwrap();
    job.and_then(|j| j.fal)
        .expect("a recorded FAL request")
        .request_id
}

fn assert_failed(job: &Value, code: &str) {
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], code, "{job}");
    assert!(
        job["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

async fn fal_stats(server: &TestServer) -> Value {
    let (status, stats) = server.get_json("/api/v1/admin/stats", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    stats
}

#[tokio::test]
async fn tripo_job_is_submitted_once_polled_with_real_progress_and_copied_into_storage() {
    let (fake, server) = setup(Script::default(), false, |_| {}).await;
    let (job_id, photo) = start_job(
        &server,
        ALICE,
        "tripo3d",
        json!({"texture": "HD", "face_limit": 8000, "seed": 3, "formats": ["usdz", "obj", "stl"]}),
    )
    .await;
    let (job, seen) = watch(&server, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    // FAL's multi-mesh, multi-material GLB was converted to every format asked for.
    let formats = job["result"]["formats"].as_array().unwrap();
    assert_eq!(formats.len(), 4, "{job}");
    for format in formats {
        assert_eq!(format["status"], "ready", "{job}");
        assert!(format["size"].as_u64().unwrap() > 500, "{job}");
    }
    assert!(job["fal_request_id"].is_string(), "{job}");
    assert!(job.get("fal").is_none(), "FAL's URLs stay inside: {job}");

    let submissions = fake.submissions();
    assert_eq!(submissions.len(), 1);
    let sent = &submissions[0];
    assert_eq!(sent.app, "tripo3d/tripo/v2.5/image-to-3d");
    assert_eq!(sent.input["texture"], "HD");
    assert_eq!(sent.input["face_limit"], 8000);
    assert_eq!(sent.input["seed"], 3);
    assert!(sent.input.get("quad").is_none());
    assert!(
        sent.input.get("formats").is_none(),
        "formats are ours, not FAL's"
    );
    assert_eq!(sent.webhook, None);
    assert_eq!(
        sent.input_image.as_deref(),
        Some(photo.as_slice()),
        "FAL fetched the upload through the presigned GET URL"
    );

    // Progress came from FAL's queue position and logs, and never went back.
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert!(
        seen.iter().any(|(_, m)| m.contains("FAL.AI queue")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(_, m)| m.contains("step")), "{seen:?}");
    assert!(fake.status_calls() >= 2);

    assert_eq!(server.download_model(ALICE, &job_id).await, sample_glb());
    // FAL's rendered image is ours now: copied, listed, byte-identical.
    let (_, all) = server
        .get_json(&format!("/api/v1/download/{job_id}/all"), Some(ALICE))
        .await;
    let rendered = &all["files"][0]["rendered_image"];
    assert_eq!(rendered["content_type"], "image/webp", "{all}");
    let copy = server
        .client
        .get(rendered["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(copy.as_ref(), fake_fal::rendered_image().as_slice());
    assert_eq!(rendered["file_size"].as_u64(), Some(copy.len() as u64));
    assert_eq!(
        fake.file_downloads_with_key(),
        0,
        "our FAL key never goes to file hosts"
    );

    let (_, metrics) = server.get_json("/api/v1/health/metrics", None).await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(r#"fal_api_requests_total{operation="submit",outcome="ok"} 1"#),
        "{metrics}"
    );
    // The mesh and its rendered image.
    assert!(metrics.contains(r#"fal_api_requests_total{operation="download",outcome="ok"} 2"#));
    assert!(
        metrics.contains(r#"fal_api_request_duration_seconds_count{operation="submit"} 1"#),
        "{metrics}"
    );

    let stats = fal_stats(&server).await;
    assert_eq!(stats["fal"]["in_flight"], 0, "{stats}");
    assert_eq!(stats["fal"]["circuit_breaker"]["state"], "closed");
    assert_eq!(stats["spend"]["daily"][0]["runs"]["tripo3d"], 1, "{stats}");
    assert_eq!(stats["spend"]["today_usd"], 0.3);
}

#[tokio::test]
async fn duplicate_and_redelivered_messages_never_submit_twice() {
    let (fake, server) = setup(Script::default(), false, |c| c.local.worker_concurrency = 4).await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let id = job_id.parse().unwrap();
    let queue = server.ctx.queue.as_ref();
    for _ in 0..3 {
        image2model_tests::send_generate(queue, id).await.unwrap();
    }
    while fake.submissions().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Redelivered after the submission was recorded: looked at, not submitted.
    image2model_tests::send_generate(queue, id).await.unwrap();
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    // Redeliveries that met the running job were set aside until their visibility timeout; one
    // that meets the finished job is acknowledged without a submission.
    let late = image2model_tests::send_generate(queue, id).await.unwrap();
    server.wait_for_message_acknowledged(&late).await;
    assert_eq!(fake.submissions().len(), 1);
    let (_, after) = server
        .get_json(&format!("/api/v1/jobs/{job_id}"), Some(ALICE))
        .await;
    assert_eq!(
        after["version"], job["version"],
        "a finished job stays as it is"
    );
    assert_eq!(after["attempts"], 1);
}

#[tokio::test]
async fn each_model_gets_its_own_input_schema() {
    let (fake, server) = setup(Script::default(), false, |_| {}).await;
    for model in ["hunyuan3d", "trellis"] {
        let (job_id, _) = start_job(&server, ALICE, model, json!({})).await;
        assert_eq!(
            server.wait_for_job(ALICE, &job_id).await["status"],
            "completed"
        );
    }
    let submissions = fake.submissions();
    assert_eq!(submissions[0].app, "fal-ai/hunyuan3d/v2");
    assert!(submissions[0].input["input_image_url"].is_string());
    assert!(submissions[0].input.get("image_url").is_none());
    assert_eq!(submissions[1].app, "fal-ai/trellis");
    assert!(submissions[1].input["image_url"].is_string());

    // Options a model does not take are refused at creation, naming the field.
    let (file_id, _) = server
        .upload_presigned(ALICE, &png(32, 32), "image/png", false)
        .await;
    let (status, body) = server
        .post_json(
            "/api/v1/jobs",
            Some(ALICE),
            &json!({"file_id": file_id, "model_type": "trellis", "options": {"texture": "HD"}}),
        )
        .await;
    assert_error(status, &body, 400, "UNSUPPORTED_OPTION");
    assert_eq!(body["details"]["field"], "options.texture");
    assert_eq!(body["details"]["model_type"], "trellis");
}

#[tokio::test]
async fn depth_model_turns_fals_depth_map_into_our_relief_mesh() {
    let depth = depth_png(64, 48);
    let (fake, server) = setup(
        Script {
            depth_output: Some(depth.clone()),
            ..Script::default()
        },
        false,
        |_| {},
    )
    .await;
    let (job_id, photo) = start_job(
        &server,
        ALICE,
        "depth_anything_v2",
        json!({"face_limit": 4000}),
    )
    .await;
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        fake.submissions()[0].app,
        "fal-ai/image-preprocessors/depth-anything/v2"
    );
    let expected = image2model_shared::builtin_generator::relief_from_depth_image(
        &photo,
        &depth,
        server.ctx.config.image_limits(),
        Some(4000),
    )
    .unwrap()
    .glb;
    let stored = server.download_model(ALICE, &job_id).await;
    assert_eq!(stored, expected);
    let (_, triangles, _) = image2model_tests::inspect_glb(&stored);
    assert!(triangles > 1000);
}

#[tokio::test]
async fn duplicate_webhooks_finish_the_job_once() {
    // Polls start only after a minute: completion must come by webhook.
    let (fake, server) = setup(
        Script {
            webhooks: Webhooks::Deliver(3),
            ..Script::default()
        },
        true,
        |c| c.fal.poll_initial = Duration::from_secs(60),
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let submissions = fake.submissions();
    assert_eq!(submissions.len(), 1);
    let hook = submissions[0].webhook.as_deref().unwrap();
    assert!(
        hook.ends_with(&format!("/api/v1/webhooks/fal?job_id={job_id}")),
        "{hook}"
    );
    assert!(
        (1..=3).contains(&fake.status_calls()),
        "only the deliveries made the worker look; no poll had started"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fake.webhook_answers().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            fake.webhook_answers()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.wait_for_queue_drained().await;
    assert_eq!(fake.webhook_answers(), [200, 200, 200]);
    let (_, after) = server
        .get_json(&format!("/api/v1/jobs/{job_id}"), Some(ALICE))
        .await;
    assert_eq!(
        after["version"], job["version"],
        "duplicates changed nothing"
    );
    assert_eq!(server.download_model(ALICE, &job_id).await, sample_glb());
}

#[tokio::test]
async fn a_webhook_for_an_earlier_request_is_ignored() {
    let (fake, server) = setup(
        Script {
            webhooks: Webhooks::StaleFirst,
            ..Script::default()
        },
        true,
        |c| c.fal.poll_initial = Duration::from_secs(60),
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(fake.submissions().len(), 1);
    assert_eq!(fake.webhook_answers(), [200, 200]);
}

#[tokio::test]
async fn a_webhook_that_overtakes_its_submission_still_finishes_the_job() {
    // FAL finishes at once and calls back before answering the submission; polls would only
    // start after a minute.
    let (fake, server) = setup(
        Script {
            webhooks: Webhooks::BeforeAnswer,
            run_time: Duration::ZERO,
            ..Script::default()
        },
        true,
        |c| c.fal.poll_initial = Duration::from_secs(60),
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let started = tokio::time::Instant::now();
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "done by the webhook, not a poll"
    );
    assert_eq!(fake.webhook_answers(), [200]);
    assert_eq!(fake.submissions().len(), 1);
    assert_eq!(server.download_model(ALICE, &job_id).await, sample_glb());
}

/// On Lambda a webhook's message can be handled while the submission is still being recorded:
/// the worker looks again a few times, then leaves the job to its poll chain.
#[tokio::test]
async fn a_webhook_message_ahead_of_the_record_waits_for_it() {
    use image2model_shared::app::enqueue::{WorkMessage, WorkStep};
    let dir = tempfile::tempdir().unwrap();
    let mut config = image2model_tests::test_config(dir.path());
    let fake = FakeFal::start(Script::default()).await;
    fake.configure(&mut config);
    let adapters = image2model_shared::adapters::embedded::EmbeddedAdapters::open(
        &config,
        "http://127.0.0.1:9",
    )
    .unwrap();
    let ctx = image2model_shared::wiring::embedded_context(config, &adapters).unwrap();
    let client = image2model_shared::adapters::fal::FalClient::new(&ctx.config.fal)
        .unwrap()
        .unwrap();
    let worker =
        image2model_shared::app::work::Worker::new(ctx.clone(), Vec::new()).with_fal(client);
    let queued =
        image2model_tests::contract::job("alice", image2model_shared::domain::FileId::new());
    image2model_tests::contract::insert_job(ctx.store.as_ref(), &queued).await;
    let running = queued.start(chrono::Utc::now()).unwrap();
    ctx.store.update_job(&running).await.unwrap();

    let handle = |attempt: u32| {
        let body = serde_json::to_string(&WorkMessage {
            job_id: running.job_id,
            step: WorkStep::Webhook { attempt },
        })
        .unwrap();
        let worker = worker.clone();
        async move { worker.handle_message(&body).await }
    };
    // Not recorded yet: look again in 2 s.
    assert_eq!(
        handle(0).await,
        image2model_shared::app::work::MessageOutcome::Done
    );
    let depth = ctx.queue.depth().await.unwrap();
    assert_eq!((depth.visible, depth.delayed), (0, 1), "one delayed look");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let next = ctx.queue.receive(1, Duration::from_secs(30)).await.unwrap();
    let message: WorkMessage = serde_json::from_str(&next[0].body).unwrap();
    assert_eq!(message.step, WorkStep::Webhook { attempt: 1 });
    ctx.queue.delete(&next[0].receipt).await.unwrap();
    // After five looks it stops: the poll chain (or the sweeper) takes over.
    assert_eq!(
        handle(5).await,
        image2model_shared::app::work::MessageOutcome::Done
    );
    assert_eq!(ctx.queue.depth().await.unwrap().delayed, 0);

    // Once the submission is recorded, the same message looks at FAL and starts no chain.
    let client = image2model_shared::adapters::fal::FalClient::new(&ctx.config.fal)
        .unwrap()
        .unwrap();
    let submitted = client
        .submit(
            "fal-ai/trellis",
            &json!({"image_url": "http://127.0.0.1:9/x"}),
            None,
        )
        .await
        .unwrap();
    let request = image2model_shared::domain::FalRequest {
        request_id: submitted.request_id,
        status_url: submitted.status_url,
        response_url: submitted.response_url,
        cancel_url: submitted.cancel_url,
        submitted_at: chrono::Utc::now(),
    };
    let recorded = running
        .record_submission(request, chrono::Utc::now())
        .unwrap();
    ctx.store.update_job(&recorded).await.unwrap();
    assert_eq!(
        handle(0).await,
        image2model_shared::app::work::MessageOutcome::Done
    );
    assert_eq!(fake.status_calls(), 1);
    let depth = ctx.queue.depth().await.unwrap();
    assert_eq!((depth.visible, depth.delayed), (0, 0));
}

#[tokio::test]
async fn unverifiable_webhooks_are_refused_and_change_nothing() {
    let (fake, server) = setup(
        Script {
            webhooks: Webhooks::BadSignature,
            run_time: Duration::from_millis(200),
            ..Script::default()
        },
        true,
        |c| {
            c.fal.poll_initial = Duration::from_secs(2);
            c.fal.poll_max = Duration::from_secs(2);
        },
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    // The impostor's delivery is refused; polling still finishes the job.
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(fake.webhook_answers(), [401]);

    // Hand-made deliveries against the finished job: every refusal is a 401 and leaves it as is.
    let request_id = fal_request_id(&server, &job_id).await;
    let body = serde_json::to_vec(
        &json!({"request_id": request_id, "gateway_request_id": request_id,
        "status": "OK", "payload": {}, "error": null, "payload_error": null}),
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let url = format!("/api/v1/webhooks/fal?job_id={job_id}");
    let cases: Vec<(&str, Signed, Vec<u8>)> = vec![
        (
            "impostor key",
            fake.sign(&request_id, now, &body, false),
            body.clone(),
        ),
        (
            "stale timestamp",
            fake.sign(&request_id, now - 301, &body, true),
            body.clone(),
        ),
        (
            "future timestamp",
            fake.sign(&request_id, now + 301, &body, true),
            body.clone(),
        ),
        ("tampered body", fake.sign(&request_id, now, &body, true), {
            let mut b = body.clone();
            b[2] ^= 1;
            b
        }),
        ("no signature", vec![], body.clone()),
    ];
    for (case, headers, payload) in cases {
        let mut request = server.request(Method::POST, &url, None).body(payload);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let (status, answer) = image2model_tests::json_of(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {answer}");
        assert_error(status, &answer, 401, "WEBHOOK_SIGNATURE_INVALID");
    }
    let (_, after) = server
        .get_json(&format!("/api/v1/jobs/{job_id}"), Some(ALICE))
        .await;
    assert_eq!(after["version"], job["version"]);

    // A genuine late delivery for the finished job is acknowledged and ignored.
    let mut request = server.request(Method::POST, &url, None).body(body.clone());
    for (name, value) in fake.sign(&request_id, now, &body, true) {
        request = request.header(name, value);
    }
    let (status, answer) = image2model_tests::json_of(request.send().await.unwrap()).await;
    assert_eq!(
        (status, &answer["accepted"]),
        (StatusCode::OK, &json!(false)),
        "{answer}"
    );
}

#[tokio::test]
async fn refusals_at_submit_fail_the_job_without_retrying() {
    let cases = [
        (Reply::status(401), "FAL_UNAUTHORIZED"),
        (Reply::status(403), "FAL_ACCOUNT_LOCKED"),
        (
            Reply::Error {
                status: 422,
                body: json!({"detail": [{"loc": ["body", "image_url"], "msg": "Could not load the image", "type": "value_error"}]}),
                retry_after: None,
                error_type: Some("image_load_error"),
            },
            "FAL_INVALID_INPUT",
        ),
        (Reply::Malformed, "FAL_BAD_RESPONSE"),
    ];
    for (reply, code) in cases {
        let (fake, server) = setup(
            Script {
                submit: [reply].into(),
                ..Script::default()
            },
            false,
            |_| {},
        )
        .await;
        let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
        let job = server.wait_for_job(ALICE, &job_id).await;
        assert_failed(&job, code);
        assert_eq!(fake.submissions().len(), 1, "{code}: no retry");
        if code == "FAL_INVALID_INPUT" {
            let message = job["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("image_load_error: body.image_url: Could not load the image"),
                "{message}"
            );
        }
        assert_eq!(fal_stats(&server).await["fal"]["in_flight"], 0);
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_until_fal_accepts() {
    let (fake, server) = setup(
        Script {
            submit: [
                Reply::Error {
                    status: 429,
                    body: json!({"detail": "Too many requests"}),
                    retry_after: Some("0.1"),
                    error_type: None,
                },
                Reply::status(503),
                Reply::status(500),
            ]
            .into(),
            ..Script::default()
        },
        false,
        |_| {},
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        fake.submissions().len(),
        4,
        "three answers asked for a retry"
    );
    assert_eq!(job["attempts"], 1, "retried within one attempt");
    assert_eq!(server.download_model(ALICE, &job_id).await, sample_glb());
}

#[tokio::test]
async fn a_long_retry_after_requeues_the_job_instead_of_sleeping() {
    let (fake, server) = setup(
        Script {
            submit: [Reply::Error {
                status: 429,
                body: json!({"detail": "Too many requests"}),
                retry_after: Some("1"),
                error_type: None,
            }]
            .into(),
            ..Script::default()
        },
        false,
        |_| {},
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let started = tokio::time::Instant::now();
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(fake.submissions().len(), 2);
    assert_eq!(job["attempts"], 2);
}

#[tokio::test]
async fn persistent_outages_fail_after_the_last_attempt() {
    let (fake, server) = setup(
        Script {
            submit: std::iter::repeat_n(Reply::status(502), 20).collect(),
            ..Script::default()
        },
        false,
        |c| {
            c.jobs.max_attempts = 2;
            c.fal.max_retries = 2;
            c.fal.breaker_threshold = 100;
        },
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let job = tokio::time::timeout(Duration::from_secs(30), server.wait_for_job(ALICE, &job_id))
        .await
        .unwrap();
    assert_failed(&job, "FAL_UNAVAILABLE");
    assert_eq!(
        fake.submissions().len(),
        6,
        "2 attempts x (1 call + 2 retries)"
    );
}

#[tokio::test]
async fn a_submit_timeout_is_retried() {
    let (fake, server) = setup(
        Script {
            submit: [Reply::Slow(Duration::from_secs(2))].into(),
            ..Script::default()
        },
        false,
        |c| c.fal.request_timeout = Duration::from_millis(500),
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(fake.submissions().len(), 2);
}

#[tokio::test]
async fn status_errors_during_polling_are_ridden_out() {
    let (fake, server) = setup(
        Script {
            status_errors: [503, 500, 503].into(),
            ..Script::default()
        },
        false,
        |c| c.fal.max_retries = 0,
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(fake.submissions().len(), 1);
}

#[tokio::test]
async fn bad_results_fail_with_their_own_codes() {
    let cases = [
        (
            Output::Error {
                status: 422,
                body: json!({"detail": [{"loc": ["body", "image_url"], "msg": "No object found in the image", "type": "value_error"}]}),
            },
            "FAL_INVALID_INPUT",
        ),
        (Output::Malformed, "FAL_BAD_RESPONSE"),
        (Output::Without, "FAL_OUTPUT_MISSING"),
        (
            Output::Mesh(b"Kaydara FBX Binary  \0 not a glb".to_vec()),
            "FAL_BAD_OUTPUT",
        ),
    ];
    for (output, code) in cases {
        let (fake, server) = setup(
            Script {
                output,
                run_time: Duration::from_millis(100),
                ..Script::default()
            },
            false,
            |_| {},
        )
        .await;
        let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
        let job = server.wait_for_job(ALICE, &job_id).await;
        assert_failed(&job, code);
        assert_eq!(fake.submissions().len(), 1, "{code}");
        assert!(job["result"].is_null());
    }
}

#[tokio::test]
async fn an_expired_result_url_resubmits_the_job() {
    let (fake, server) = setup(
        Script {
            expired_downloads: 1,
            run_time: Duration::from_millis(100),
            ..Script::default()
        },
        false,
        |_| {},
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        fake.submissions().len(),
        2,
        "the lost result was generated again"
    );
    assert_eq!(server.download_model(ALICE, &job_id).await, sample_glb());

    // Without attempts left, the job fails with the expiry.
    let (_fake, server) = setup(
        Script {
            expired_downloads: 10,
            run_time: Duration::from_millis(100),
            ..Script::default()
        },
        false,
        |c| c.jobs.max_attempts = 1,
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    assert_failed(
        &server.wait_for_job(ALICE, &job_id).await,
        "FAL_RESULT_EXPIRED",
    );
}

#[tokio::test]
async fn a_job_past_its_deadline_is_cancelled_at_fal() {
    let (fake, server) = setup(
        Script {
            run_time: Duration::from_secs(3600),
            ..Script::default()
        },
        false,
        |c| c.fal.generation_timeout = Duration::from_millis(700),
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let job = server.wait_for_job(ALICE, &job_id).await;
    assert_failed(&job, "GENERATION_TIMEOUT");
    let request_id = fal_request_id(&server, &job_id).await;
    assert_eq!(fake.cancels(), [request_id]);
    assert_eq!(fal_stats(&server).await["fal"]["in_flight"], 0);
}

#[tokio::test]
async fn cancelling_a_job_cancels_its_fal_request() {
    let (fake, server) = setup(
        Script {
            run_time: Duration::from_secs(3600),
            ..Script::default()
        },
        false,
        |_| {},
    )
    .await;
    let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    while fake.status_calls() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/jobs/{job_id}"),
            Some(ALICE),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fake.cancels().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "FAL request never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.wait_for_job(ALICE, &job_id).await["status"],
        "cancelled"
    );
    assert_eq!(fake.submissions().len(), 1);
}

#[tokio::test]
async fn the_circuit_breaker_opens_holds_submissions_and_closes_after_one_probe() {
    let (fake, server) = setup(
        Script {
            submit: [Reply::status(503), Reply::status(503)].into(),
            run_time: Duration::from_millis(100),
            ..Script::default()
        },
        false,
        |c| {
            c.jobs.max_attempts = 1;
            c.fal.max_retries = 0;
            c.fal.breaker_threshold = 2;
            c.fal.breaker_cooldown = Duration::from_secs(5);
        },
    )
    .await;
    for _ in 0..2 {
        let (job_id, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
        assert_failed(
            &server.wait_for_job(ALICE, &job_id).await,
            "FAL_UNAVAILABLE",
        );
    }
    let (_, health) = server.get_json("/api/v1/health/detailed", None).await;
    assert_eq!(
        health["fal"]["circuit_breaker"]["state"], "open",
        "{health}"
    );
    assert_eq!(health["fal"]["circuit_breaker"]["consecutive_failures"], 2);
    assert_eq!(
        fal_stats(&server).await["fal"]["circuit_breaker"]["state"],
        "open"
    );

    // While open, new jobs wait (queued, nothing submitted) instead of failing.
    let (first, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    let (second, _) = start_job(&server, ALICE, "tripo3d", json!({})).await;
    server.wait_for_queue_drained().await;
    assert_eq!(fake.submissions().len(), 2);
    for job_id in [&first, &second] {
        let (_, job) = server
            .get_json(&format!("/api/v1/jobs/{job_id}"), Some(ALICE))
            .await;
        assert_eq!(job["status"], "queued", "{job}");
    }

    // After the cooldown one probe goes through; its success closes the breaker for the rest.
    for job_id in [&first, &second] {
        assert_eq!(
            server.wait_for_job(ALICE, job_id).await["status"],
            "completed"
        );
    }
    assert_eq!(fake.submissions().len(), 4);
    let (_, health) = server.get_json("/api/v1/health/detailed", None).await;
    assert_eq!(
        health["fal"]["circuit_breaker"]["state"], "closed",
        "{health}"
    );
    assert_eq!(health["fal"]["circuit_breaker"]["consecutive_failures"], 0);
}

#[tokio::test]
async fn the_in_flight_cap_holds_across_jobs() {
    let (fake, server) = setup(
        Script {
            run_time: Duration::from_millis(300),
            ..Script::default()
        },
        false,
        |c| {
            c.fal.max_in_flight = 1;
            c.local.worker_concurrency = 4;
        },
    )
    .await;
    let mut jobs = Vec::new();
    for _ in 0..3 {
        jobs.push(start_job(&server, ALICE, "tripo3d", json!({})).await.0);
    }
    for job_id in &jobs {
        assert_eq!(
            server.wait_for_job(ALICE, job_id).await["status"],
            "completed"
        );
    }
    assert_eq!(fake.submissions().len(), 3);
    assert_eq!(
        fake.max_in_flight(),
        1,
        "never more than one job at FAL at once"
    );
}

#[tokio::test]
async fn the_daily_quota_is_per_key_and_refuses_with_429() {
    let (_fake, server) = setup(Script::default(), false, |c| c.fal.daily_quota = 2).await;
    let (file_id, _) = server
        .upload_presigned(ALICE, &png(32, 32), "image/png", false)
        .await;
    server.wait_for_file(ALICE, &file_id).await;
    let create = |key: Option<&'static str>| {
        let body = json!({"file_id": file_id, "model_type": "tripo3d"});
        let server = &server;
        async move { server.post_json("/api/v1/jobs", key, &body).await }
    };
    for _ in 0..2 {
        assert_eq!(create(Some(ALICE)).await.0, StatusCode::ACCEPTED);
    }
    let (status, body) = create(Some(ALICE)).await;
    assert_error(status, &body, 429, "QUOTA_EXCEEDED");
    assert_eq!(body["details"]["limit"], 2);
    assert!(body["details"]["retry_after"].as_u64().unwrap() <= 86_400);

    // Another key has its own quota.
    let (bob_file, _) = server
        .upload_presigned(BOB, &png(32, 32), "image/png", false)
        .await;
    let (status, _) = server
        .post_json(
            "/api/v1/jobs",
            Some(BOB),
            &json!({"file_id": bob_file, "model_type": "tripo3d"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, listed) = server.get_json("/api/v1/jobs", Some(ALICE)).await;
    assert_eq!(
        listed["jobs"].as_array().unwrap().len(),
        2,
        "the refused job was not created"
    );
}

#[tokio::test]
async fn without_a_key_health_shows_fal_unconfigured() {
    let server = TestServer::start().await;
    let (_, health) = server.get_json("/api/v1/health/detailed", None).await;
    assert_eq!(health["generator"], "builtin", "{health}");
    assert_eq!(health["fal"]["configured"], false);
    assert_eq!(health["fal"]["circuit_breaker"]["state"], "closed");
    assert_eq!(health["fal"]["in_flight"], 0);
}
