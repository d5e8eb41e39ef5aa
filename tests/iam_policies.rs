//! Every function's IAM role, as `template.yaml` gives it, against what the function's code
//! really asks of AWS. The emulator enforces no IAM, so this test does what IAM would:
//!
//! 1. It provisions a set of resources of its own on the emulator (`provision.py`) and expands
//!    the template's roles with them (`iam_policies.py`: the SAM transform CloudFormation runs,
//!    intrinsics resolved to those names).
//! 2. It deploys every function as on AWS: each with its own credentials, behind a recording
//!    proxy that notes each request as the authorizations AWS would check (action, resource ARN),
//!    charged to the credentials that signed it (SDK calls, presigned URLs and POST policies
//!    alike); HTTP requests reach the function `template.yaml` routes them to.
//! 3. It drives the whole product through that deployment: uploads of every kind, ingestion,
//!    jobs on the built-in generator and on a fake FAL with webhooks, status and streams,
//!    downloads, every admin and health route, the sweeper.
//! 4. Each recorded authorization must be allowed by the function's role; each action the role
//!    grants must have been used by the function (an unused grant is a finding), except the
//!    platform's own (logs, the SQS event source's polling); and every AWS operation the
//!    adapters' code contains must have been seen, so the drive misses no call site.

use aws_lambda_events::event::s3::S3Event;
use image2model_shared::AppContext;
use image2model_shared::app::maintenance::run_maintenance;
use image2model_shared::app::work::Worker;
use image2model_shared::builtin_generator::BuiltinGenerator;
use image2model_shared::config::AwsResources;
use image2model_shared::web::HttpService;
use image2model_shared::wiring::aws_context;
use image2model_tests::aws_calls::{Authorization, RecordingProxy, iam_match};
use image2model_tests::fake_fal::{FakeFal, Output, Script, Webhooks, depth_png};
use image2model_tests::template::{self, HttpRoutes};
use image2model_tests::{ADMIN, ALICE, BOB, costs, jpeg, png, test_config};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const FUNCTIONS: [&str; 12] = [
    "image2model-upload",
    "image2model-ingest",
    "image2model-jobs",
    "image2model-worker",
    "image2model-status",
    "image2model-download",
    "image2model-admin",
    "image2model-health",
    "image2model-webhook",
    "image2model-sweeper",
    "image2model-endpoints",
    "image2model-deliver",
];

/// Runs one of `infra/emulator`'s scripts with the venv's Python (`scripts/test.sh` puts it
/// first on `PATH`) and returns what it printed.
fn python(script: &str, args: &[&str], env: &BTreeMap<String, String>) -> String {
    let output = std::process::Command::new("python3")
        .arg(template::root().join("infra/emulator").join(script))
        .args(args)
        .envs(env)
        .current_dir(template::root())
        .output()
        .expect("python3 runs (run `bash scripts/test.sh`: it makes the venv)");
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The functions as deployed: one context per function, each signing with its own key.
struct Deployment {
    routes: HttpRoutes,
    contexts: HashMap<&'static str, AppContext>,
    services: HashMap<&'static str, HttpService>,
}

impl Deployment {
    fn ctx(&self, binary: &str) -> &AppContext {
        &self.contexts[binary]
    }
}

/// API Gateway (one address) or the function URL (another): each request goes to the function
/// the template names for that address. API Gateway buffers answers, so its requests are marked
/// as Lambda's adapter marks them.
async fn gateway(
    axum::extract::State((deployment, api)): axum::extract::State<(Arc<Deployment>, bool)>,
    mut request: axum::extract::Request,
) -> axum::response::Response {
    let path = request.uri().path().to_owned();
    let binary = if api {
        request
            .extensions_mut()
            .insert(image2model_shared::web::buffered::Buffered);
        deployment
            .routes
            .function_for(request.method().as_str(), &path)
            .unwrap_or_else(|| panic!("the HTTP API routes no {path}"))
    } else {
        deployment.routes.with_url[0].as_str()
    };
    let service = deployment.services[binary].clone();
    let response = service.oneshot(request).await.expect("infallible");
    response.map(axum::body::Body::new)
}

fn http_service(binary: &str, ctx: &AppContext) -> Option<HttpService> {
    let router = match binary {
        "image2model-upload" => image2model_upload::router(ctx),
        "image2model-jobs" => image2model_jobs::router(ctx),
        "image2model-status" => image2model_status::router(ctx),
        "image2model-download" => image2model_download::router(),
        "image2model-admin" => image2model_admin::router(),
        "image2model-health" => image2model_health::router(),
        "image2model-endpoints" => image2model_endpoints::router(ctx),
        "image2model-webhook" => image2model_webhook::router(Arc::new(
            image2model_webhook::SignatureVerifier::new(&ctx.config.fal).expect("verifier"),
        )),
        _ => return None,
    };
    Some(image2model_shared::web::into_service(
        router.split_for_parts().0.with_state(ctx.clone()),
        &ctx.config,
    ))
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn call(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {key}"))
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn ok(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(key, method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// Presigns one file (PUT or POST) and uploads `bytes` with the grant.
    async fn upload(&self, bytes: &[u8], method: &str, generate: bool) -> Value {
        let mut body = json!({"files": [{"filename": "photo.png", "content_type": "image/png", "size": bytes.len()}], "upload_method": method});
        if generate {
            body["generate"] = json!({});
        }
        let answer = self
            .ok(ALICE, "POST", "/api/v1/uploads/presign", Some(body))
            .await;
        let entry = answer["files"][0].clone();
        let grant = &entry["upload"];
        let url = grant["url"].as_str().unwrap();
        let sent = if method == "POST" {
            let mut form = reqwest::multipart::Form::new();
            for (name, value) in grant["fields"].as_object().unwrap() {
                form = form.text(name.clone(), value.as_str().unwrap().to_owned());
            }
            let part = reqwest::multipart::Part::bytes(bytes.to_vec())
                .file_name("photo.png")
                .mime_str("image/png")
                .unwrap();
            self.http.post(url).multipart(form.part("file", part))
        } else {
            let mut put = self.http.put(url).body(bytes.to_vec());
            for (name, value) in grant["headers"].as_object().unwrap() {
                put = put.header(name.as_str(), value.as_str().unwrap());
            }
            put
        };
        let status = sent.send().await.unwrap().status();
        assert!(status.is_success(), "upload answered {status}");
        entry
    }
}

/// Receives what a queue holds now (an empty answer after a short wait), as an event source.
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let output = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let messages = output.messages.unwrap_or_default();
    for m in &messages {
        sqs.delete_message()
            .queue_url(url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    messages
}

/// Hands every pending S3 notification to the ingest function until `wanted` objects of ours
/// have been handled.
async fn ingest(d: &Deployment, sqs: &aws_sdk_sqs::Client, events_url: &str, wanted: usize) {
    let mut handled = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while handled < wanted {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{handled} of {wanted} objects ingested"
        );
        for message in receive(sqs, events_url).await {
            let mut body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            let Some(records) = body.get_mut("Records").and_then(Value::as_array_mut) else {
                continue; // the test event S3 sends when notifications are configured
            };
            for record in records.iter_mut() {
                let record = record.as_object_mut().unwrap();
                // Fields real S3 sends and the emulator leaves out.
                record
                    .entry("userIdentity")
                    .or_insert(json!({"principalId": "AWS:EMULATOR"}));
                record
                    .entry("requestParameters")
                    .or_insert(json!({"sourceIPAddress": "127.0.0.1"}));
                record.entry("responseElements").or_insert(json!({}));
            }
            let event: S3Event = serde_json::from_value(body).unwrap();
            handled += image2model_ingest::handle_s3_event(d.ctx("image2model-ingest"), event)
                .await
                .unwrap()
                .len();
        }
    }
}

/// Runs the worker on the work queue, batch by batch as Lambda would, until `done` holds.
async fn work_until(
    worker: &Worker,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    mut done: impl AsyncFnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the jobs never finished"
        );
        let event = image2model_tests::aws::sqs_event(&receive(sqs, queue_url).await);
        image2model_worker::handle_sqs_event(worker, event).await;
    }
}

fn job_status(job: &Value) -> &str {
    job["status"].as_str().unwrap_or_default()
}

/// A webhook receiver on loopback: `/ok` answers 200 to every delivery, `/gone` 410, any other
/// path (`/flaky`) 500 to its first delivery and 200 after. Returns its origin and the (path,
/// `webhook-id`) of each delivery.
async fn webhook_receiver() -> (String, Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    let seen: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::post(
            move |axum::extract::Path(name): axum::extract::Path<String>,
                  headers: axum::http::HeaderMap| {
                let log = log.clone();
                async move {
                    let id = headers["webhook-id"].to_str().unwrap().to_owned();
                    let mut seen = log.lock().unwrap();
                    let first = !seen.iter().any(|(p, _)| *p == name);
                    seen.push((name.clone(), id));
                    match name.as_str() {
                        "ok" => axum::http::StatusCode::OK,
                        "gone" => axum::http::StatusCode::GONE,
                        _ if first => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        _ => axum::http::StatusCode::OK,
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (origin, seen)
}

/// Runs the delivery function on the deliveries' queue, batch by batch as Lambda would, until
/// `done` holds.
async fn deliver_until(
    d: &Deployment,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    mut done: impl FnMut() -> bool,
) {
    let deliverer =
        image2model_shared::app::deliver::Deliverer::new(d.ctx("image2model-deliver").clone())
            .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the webhooks were never delivered"
        );
        let event = image2model_tests::aws::sqs_event(&receive(sqs, queue_url).await);
        image2model_deliver::handle_sqs_event(&deliverer, event).await;
    }
}

/// What the journeys of the drive share: the deployment, its client, the fake FAL, the
/// environment, the SQS and S3 clients the platform itself would use (event sources, a stranger
/// writing to the bucket), and the worker as Lambda runs it.
struct Drive<'a> {
    d: &'a Deployment,
    client: &'a Client,
    fake: &'a FakeFal,
    env: &'a BTreeMap<String, String>,
    sqs: &'a aws_sdk_sqs::Client,
    s3: &'a aws_sdk_s3::Client,
    worker: &'a Worker,
}

/// The webhook endpoints registered first, and what their receiver saw.
struct Endpoints {
    seen: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    flaky_id: String,
    gone_endpoint: Value,
}

/// The uploads of every kind: a plain one (`file_id`), with a job (`posted`, `generated`), not an
/// image (`junk`), and the synchronous batch.
struct Uploads {
    plain: Value,
    posted: Value,
    generated: Value,
    junk: Value,
    batch_id: String,
}

/// The jobs created every way: the idempotent pair, by the new and the old routes, at FAL.
struct Jobs {
    created: Vec<Value>,
    built: Value,
    old: Value,
    fal_job: Value,
}

/// Drives every route and handler of the product through the deployment, journey by journey.
async fn drive(
    d: &Deployment,
    client: &Client,
    fake: &FakeFal,
    env: &BTreeMap<String, String>,
    proxy: &RecordingProxy,
) {
    let sdk = image2model_shared::adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let worker_ctx = d.ctx("image2model-worker");
    let worker = Worker::new(
        worker_ctx.clone(),
        vec![Arc::new(BuiltinGenerator::new(
            worker_ctx.config.image_limits(),
        ))],
    )
    .with_fal(
        image2model_shared::adapters::fal::FalClient::new(&worker_ctx.config.fal)
            .unwrap()
            .unwrap(),
    );
    let drive = Drive {
        d,
        client,
        fake,
        env,
        sqs: &sqs,
        s3: &s3,
        worker: &worker,
    };
    drive.one_model_and_what_following_it_costs(proxy).await;
    let endpoints = drive.register_webhook_endpoints().await;
    let uploads = drive.upload_every_way().await;
    let file_id = uploads.plain["file_id"].as_str().unwrap().to_owned();
    let jobs = drive.create_jobs_every_way(&file_id).await;
    let mut waited = drive.run_every_job(&uploads, &jobs).await;
    drive.fail_at_fal_then_retry(&file_id, &mut waited).await;
    let done = jobs.created[0].as_str().unwrap().to_owned();
    drive
        .follow_and_download(&done, &file_id, &uploads.batch_id)
        .await;
    drive.health_as_anyone_sees_it().await;
    drive.every_admin_route(&uploads).await;
    drive.read_what_is_gone(&done).await;
    drive.reuse_a_stale_idempotency_key(&done, &file_id).await;
    drive.deliver_every_announcement(&endpoints).await;
    drive.sweep_on_its_own_clock(&file_id).await;
}

/// The AWS calls recorded since the `from`th, per function and action.
fn calls_since(proxy: &RecordingProxy, from: usize) -> costs::Calls {
    let mut calls = costs::Calls::new();
    for a in &proxy.authorizations()[from..] {
        *calls
            .entry((a.access_key.clone(), a.action.clone()))
            .or_default() += 1;
    }
    calls
}

impl Drive<'_> {
    /// One model on the built-in generator, step by step, with the AWS calls each step makes
    /// held to `support::costs` (the README's cost table is computed from it): made (presigned,
    /// uploaded, ingested, generated) and downloaded once; followed by a poll with the key, a
    /// poll without one, the stream, and a webhook endpoint told of its end. Bob's, before
    /// anything else, so that no other journey's records or endpoints weigh in.
    async fn one_model_and_what_following_it_costs(&self, proxy: &RecordingProxy) {
        let Drive {
            d,
            client,
            env,
            sqs,
            ..
        } = self;
        let (receiver, delivered) = webhook_receiver().await;
        client
            .ok(
                BOB,
                "POST",
                "/api/v1/webhooks/endpoints",
                Some(json!({"url": format!("{receiver}/ok")})),
            )
            .await;
        let photo = png(96, 64);
        let mut observed = Vec::new();
        let make = async |generate: Value| {
            let from = proxy.authorizations().len();
            let clock = std::time::Instant::now();
            let presigned = client
                .ok(
                    BOB,
                    "POST",
                    "/api/v1/uploads/presign",
                    Some(json!({"files": [{"filename": "photo.png", "content_type": "image/png", "size": photo.len()}], "generate": generate})),
                )
                .await;
            let grant = &presigned["files"][0]["upload"];
            let mut put = client
                .http
                .put(grant["url"].as_str().unwrap())
                .body(photo.clone());
            for (name, value) in grant["headers"].as_object().unwrap() {
                put = put.header(name.as_str(), value.as_str().unwrap());
            }
            assert!(put.send().await.unwrap().status().is_success());
            let job = presigned["files"][0]["job_id"].as_str().unwrap().to_owned();
            ingest(d, sqs, &env["UPLOAD_EVENTS_QUEUE_URL"], 1).await;
            work_until(self.worker, sqs, &env["QUEUE_URL"], async || {
                let answer = client
                    .ok(BOB, "GET", &format!("/api/v1/jobs/{job}"), None)
                    .await;
                job_status(&answer) == "completed"
            })
            .await;
            eprintln!(
                "{generate}: made in {:?} against the emulator",
                clock.elapsed()
            );
            let mut calls = calls_since(proxy, from);
            // The test's own polls for the end (a client following the job is priced apart).
            calls.retain(|(function, _), _| function != "image2model-jobs");
            (job, calls)
        };
        let (job, made) = make(json!({"model_type": "relief"})).await;
        observed.push(("make", made));
        let delivered_by = |count: usize| {
            let delivered = &delivered;
            deliver_until(d, sqs, &env["WEBHOOK_QUEUE_URL"], move || {
                delivered.lock().unwrap().len() >= count
            })
        };
        let from = proxy.authorizations().len();
        delivered_by(1).await;
        observed.push(("webhook", calls_since(proxy, from)));

        let from = proxy.authorizations().len();
        let link = client
            .ok(
                BOB,
                "GET",
                &format!("/api/v1/download/{job}?redirect=false"),
                None,
            )
            .await;
        let got = client
            .http
            .get(link["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert!(got.status().is_success());
        observed.push(("download", calls_since(proxy, from)));

        let status = format!("/api/v1/status/tasks/{job}/status");
        let from = proxy.authorizations().len();
        let polled = client.ok(BOB, "GET", &status, None).await;
        observed.push(("poll with a key", calls_since(proxy, from)));

        let from = proxy.authorizations().len();
        let public = client
            .http
            .get(format!("{}{status}", client.base))
            .send()
            .await
            .unwrap();
        assert!(public.status().is_success());
        observed.push(("poll without a key", calls_since(proxy, from)));

        let from = proxy.authorizations().len();
        let events = polled["events_url"].as_str().unwrap();
        let text = client
            .http
            .get(events)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("event: task_completed"), "{text}");
        observed.push(("stream", calls_since(proxy, from)));

        let (_, made_at_fal) = make(json!({"model_type": "tripo3d"})).await;
        observed.push(("make at FAL", made_at_fal));
        delivered_by(2).await;
        for (step, calls) in observed {
            let held = costs::STEPS
                .iter()
                .find(|(name, _)| *name == step)
                .map(|(_, held)| held.calls())
                .unwrap();
            if step == "make at FAL" {
                // The worker's calls grow with FAL's time; the other functions' are fixed.
                let (worker, others): (costs::Calls, costs::Calls) = calls
                    .into_iter()
                    .partition(|((function, _), _)| function == "image2model-worker");
                let (held_worker, held_others): (costs::Calls, costs::Calls) = held
                    .into_iter()
                    .partition(|((function, _), _)| function == "image2model-worker");
                assert_eq!(
                    others, held_others,
                    "{step}: support/costs.rs holds other calls"
                );
                let total = |c: &costs::Calls| c.values().sum::<u32>();
                assert!(
                    total(&worker) <= 2 * total(&held_worker),
                    "{step}: the worker made {worker:?}"
                );
            } else {
                assert_eq!(calls, held, "{step}: support/costs.rs holds other calls");
            }
        }
    }

    /// Whether every job of `ids` ended.
    async fn all_done(&self, ids: &[String]) -> bool {
        for id in ids {
            let job = self
                .client
                .ok(ALICE, "GET", &format!("/api/v1/jobs/{id}"), None)
                .await;
            if !matches!(job_status(&job), "completed" | "failed" | "cancelled") {
                return false;
            }
        }
        true
    }

    /// Runs the worker until every job of `ids` ended.
    async fn work_until_done(&self, ids: &[String]) {
        let queue_url = &self.env["QUEUE_URL"];
        work_until(self.worker, self.sqs, queue_url, async || {
            self.all_done(ids).await
        })
        .await;
    }

    /// Webhook endpoints, registered first so that every job's end is announced to them.
    async fn register_webhook_endpoints(&self) -> Endpoints {
        let Drive { client, .. } = self;
        let (receiver, seen) = webhook_receiver().await;
        let flaky = client
            .ok(
                ALICE,
                "POST",
                "/api/v1/webhooks/endpoints",
                Some(json!({"url": format!("{receiver}/flaky")})),
            )
            .await;
        let gone_endpoint = client
            .ok(
                ALICE,
                "POST",
                "/api/v1/webhooks/endpoints",
                Some(json!({"url": format!("{receiver}/gone"), "events": ["job.completed"]})),
            )
            .await;
        let flaky_id = flaky["endpoint_id"].as_str().unwrap().to_owned();
        Endpoints {
            seen,
            flaky_id,
            gone_endpoint,
        }
    }

    /// Uploads: presigned PUT and POST, with and without a job; an object no record names; a file
    /// that is not an image; the synchronous uploads, one and a batch.
    async fn upload_every_way(&self) -> Uploads {
        let Drive {
            d,
            client,
            env,
            sqs,
            s3,
            ..
        } = self;
        let events_url = &env["UPLOAD_EVENTS_QUEUE_URL"];
        let plain = client.upload(&png(64, 48), "PUT", false).await;
        let posted = client.upload(&png(64, 48), "POST", true).await;
        let generated = client.upload(&png(64, 48), "PUT", true).await;
        let junk = client.upload(b"not an image at all", "PUT", true).await;
        s3.put_object()
            .bucket(&env["BUCKET_NAME"])
            .key("uploads/alice/stray.png")
            .body(png(8, 8).into())
            .send()
            .await
            .unwrap();
        ingest(d, sqs, events_url, 5).await;

        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(jpeg(64, 48))
                .file_name("one.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        );
        let sync = client
            .http
            .post(format!("{}/api/v1/upload/image", client.base))
            .header("authorization", format!("Bearer {ALICE}"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert!(sync.status().is_success(), "{}", sync.text().await.unwrap());
        let mut batch_form = reqwest::multipart::Form::new();
        for name in ["a.png", "b.png"] {
            batch_form = batch_form.part(
                "files",
                reqwest::multipart::Part::bytes(png(40, 30))
                    .file_name(name)
                    .mime_str("image/png")
                    .unwrap(),
            );
        }
        let batch: Value = client
            .http
            .post(format!("{}/api/v1/upload/", client.base))
            .header("authorization", format!("Bearer {ALICE}"))
            .multipart(batch_form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let batch_id = batch["batch_id"].as_str().expect("a batch id").to_owned();
        Uploads {
            plain,
            posted,
            generated,
            junk,
            batch_id,
        }
    }

    /// Jobs: created (once per idempotency key), listed, shown, cancelled; the models.
    async fn create_jobs_every_way(&self, file_id: &str) -> Jobs {
        let Drive { client, .. } = self;
        let idempotent = json!({"file_id": file_id});
        let mut created = Vec::new();
        for _ in 0..2 {
            let answer = client
                .http
                .post(format!("{}/api/v1/jobs", client.base))
                .header("authorization", format!("Bearer {ALICE}"))
                .header("idempotency-key", "iam-check-1")
                .json(&idempotent)
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success());
            created.push(answer.json::<Value>().await.unwrap()["job_id"].clone());
        }
        assert_eq!(created[0], created[1], "the key answered its job again");
        let built = client
            .ok(
                ALICE,
                "POST",
                "/api/v1/generate/3d-model",
                Some(json!({"file_id": file_id})),
            )
            .await;
        let old = client
            .ok(
                ALICE,
                "POST",
                "/api/v1/models/generate",
                Some(json!({"file_id": file_id})),
            )
            .await;
        let cancelled = client
            .ok(
                ALICE,
                "POST",
                "/api/v1/jobs",
                Some(json!({"file_id": file_id})),
            )
            .await;
        let cancelled_id = cancelled["job_id"].as_str().unwrap();
        client
            .ok(
                ALICE,
                "DELETE",
                &format!("/api/v1/jobs/{cancelled_id}"),
                None,
            )
            .await;
        let fal_job = client
            .ok(
                ALICE,
                "POST",
                "/api/v1/jobs",
                Some(json!({"file_id": file_id, "model_type": "tripo3d"})),
            )
            .await;
        client.ok(ALICE, "GET", "/api/v1/jobs", None).await;
        client
            .ok(ALICE, "GET", "/api/v1/models/available", None)
            .await;
        Jobs {
            created,
            built,
            old,
            fal_job,
        }
    }

    /// The worker runs everything queued: the built-in generator and FAL (announcing the
    /// completion through the webhook function); returns the jobs it ran.
    async fn run_every_job(&self, uploads: &Uploads, jobs: &Jobs) -> Vec<String> {
        let Drive { client, fake, .. } = self;
        let waited: Vec<String> = vec![
            jobs.created[0].as_str().unwrap().into(),
            jobs.built["job_id"].as_str().unwrap().into(),
            jobs.old["job_id"].as_str().unwrap().into(),
            jobs.fal_job["job_id"].as_str().unwrap().into(),
            uploads.posted["job_id"].as_str().unwrap().into(),
            uploads.generated["job_id"].as_str().unwrap().into(),
        ];
        self.work_until_done(&waited).await;
        for id in &waited {
            let job = client
                .ok(ALICE, "GET", &format!("/api/v1/jobs/{id}"), None)
                .await;
            assert_eq!(job_status(&job), "completed", "{job}");
        }
        assert!(
            fake.webhook_answers().contains(&200),
            "{:?}",
            fake.webhook_answers()
        );
        waited
    }

    /// A FAL failure, then its retry by the administrator.
    async fn fail_at_fal_then_retry(&self, file_id: &str, waited: &mut Vec<String>) {
        let Drive { client, fake, .. } = self;
        fake.script(|s| {
            s.output = Output::Error {
                status: 422,
                body: json!({"detail": "the model refused the image"}),
            }
        });
        let failing = client
            .ok(
                ALICE,
                "POST",
                "/api/v1/jobs",
                Some(json!({"file_id": file_id, "model_type": "tripo3d"})),
            )
            .await;
        let failing_id = failing["job_id"].as_str().unwrap().to_owned();
        waited.push(failing_id.clone());
        self.work_until_done(waited).await;
        fake.script(|s| s.output = Output::Mesh(image2model_tests::fake_fal::sample_glb()));
        client
            .ok(
                ADMIN,
                "POST",
                &format!("/api/v1/admin/jobs/{failing_id}/retry"),
                None,
            )
            .await;
        self.work_until_done(waited).await;
    }

    /// Status, streams and downloads of a finished job; a browser's view with no key; a format
    /// made on its first download.
    async fn follow_and_download(&self, done: &str, file_id: &str, batch_id: &str) {
        let Drive {
            client,
            env,
            sqs,
            worker,
            ..
        } = self;
        let queue_url = &env["QUEUE_URL"];
        for path in [
            format!("/api/v1/status/tasks/{done}/status"),
            format!("/api/v1/status/tasks/{done}/sse"),
            format!("/api/v1/status/tasks/{done}/stream"),
            format!("/api/v1/status/tasks/{batch_id}/status"),
            format!("/api/v1/jobs/{done}"),
            format!("/api/v1/files/{file_id}"),
            format!("/api/v1/upload/status/{file_id}"),
            format!("/api/v1/upload/batch/{batch_id}/status"),
            format!("/api/v1/download/{done}/all"),
            format!("/api/v1/models/job/{done}"),
        ] {
            client.ok(ALICE, "GET", &path, None).await;
        }
        // A browser's view with no key: by the id (the public view), and by the signed links.
        let job = client
            .ok(ALICE, "GET", &format!("/api/v1/jobs/{done}"), None)
            .await;
        let (status_url, events_url) = (
            job["status_url"].as_str().unwrap(),
            job["events_url"].as_str().unwrap(),
        );
        assert!(status_url.starts_with(&client.base), "{status_url}");
        assert!(!events_url.starts_with(&client.base), "{events_url}");
        let api_stream = status_url.replace("/status?", "/stream?");
        let streams = &events_url[..events_url.find("/api/").unwrap()];
        let api = client.base.as_str();
        // With a key on the API's address: the key does not follow the redirect across origins
        // (reqwest drops `Authorization` there, as browsers do); the fresh token in its place
        // opens the owner's whole stream.
        let keyed = client
            .http
            .get(format!("{api}/api/v1/status/tasks/{done}/stream"))
            .header("authorization", format!("Bearer {ALICE}"))
            .send()
            .await
            .unwrap();
        assert!(keyed.url().as_str().starts_with(streams), "{}", keyed.url());
        assert!(keyed.url().query().unwrap_or_default().contains("token="));
        let text = keyed.text().await.unwrap();
        assert!(
            text.contains("event: task_completed") && text.contains("\"result\""),
            "{text}"
        );
        for (url, answered_by) in [
            (format!("{api}/api/v1/status/tasks/{done}/status"), api),
            (status_url.to_owned(), api),
            (events_url.to_owned(), streams),
            // The old site's EventSource on the API's base, and the signed stream asked there:
            // API Gateway buffers, so both are redirected to the streaming URL.
            (format!("{api}/api/v1/status/tasks/{done}/stream"), streams),
            (api_stream, streams),
        ] {
            let got = client.http.get(&url).send().await.unwrap();
            assert!(got.status().is_success(), "{url}: {}", got.status());
            assert!(
                got.url().as_str().starts_with(answered_by),
                "{url} ended at {}",
                got.url()
            );
            let text = String::from_utf8(got.bytes().await.unwrap().to_vec()).unwrap();
            if url.contains("/stream") {
                assert!(text.contains("event: task_completed"), "{url}: {text}");
            }
        }
        let link = client
            .ok(
                ALICE,
                "GET",
                &format!("/api/v1/download/{done}?redirect=false"),
                None,
            )
            .await;
        for url in [&link["url"], &link["preview_url"]] {
            let got = client.http.get(url.as_str().unwrap()).send().await.unwrap();
            assert!(got.status().is_success(), "{url}: {}", got.status());
        }
        // A format made on its first download: the download function asks, the worker converts.
        let usdz = format!("/api/v1/download/{done}?format=usdz&redirect=false");
        let (status, answer) = client.call(ALICE, "GET", &usdz, None).await;
        assert_eq!(status, 202, "{answer}");
        work_until(worker, sqs, queue_url, async || {
            client.call(ALICE, "GET", &usdz, None).await.0 == 200
        })
        .await;
        for path in [
            format!("/api/v1/download/{done}/photo.glb"),
            format!("/api/v1/download/{done}/photo.usdz"),
            format!("/api/v1/models/download/{done}"),
        ] {
            let (status, answer) = client.call(ALICE, "GET", &path, None).await;
            assert!(status == 302 || status == 200, "{path}: {status} {answer}");
        }
    }

    /// Health, as anyone sees it.
    async fn health_as_anyone_sees_it(&self) {
        let Drive { client, .. } = self;
        for path in [
            "/",
            "/health",
            "/api/v1/health",
            "/api/v1/health/db",
            "/api/v1/health/detailed",
            "/api/v1/health/liveness",
            "/api/v1/health/readiness",
            "/api/v1/health/metrics",
            "/api/v1/openapi.json",
        ] {
            let (status, answer) = client.call(ALICE, "GET", path, None).await;
            assert_eq!(status, 200, "{path}: {answer}");
        }
    }

    /// Every admin route; a live job deleted by the administrator is cancelled first.
    async fn every_admin_route(&self, uploads: &Uploads) {
        let Drive { client, .. } = self;
        for path in [
            "/api/v1/admin/stats",
            "/api/v1/admin/jobs",
            "/api/v1/admin/dead-letters",
            "/api/v1/admin/disk-usage",
            "/api/v1/admin/system-health",
            "/api/v1/admin/list-files?directory=uploads",
            "/api/v1/admin/list-files?directory=results",
        ] {
            client.ok(ADMIN, "GET", path, None).await;
        }
        client.ok(ADMIN, "POST", "/api/v1/admin/sweep", None).await;
        client
            .ok(
                ADMIN,
                "POST",
                "/api/v1/admin/cleanup",
                Some(json!({"hours": 0, "dry_run": true})),
            )
            .await;
        let junk_job = uploads.junk["job_id"].as_str().unwrap();
        client
            .ok(
                ADMIN,
                "POST",
                "/api/v1/admin/cleanup-job",
                Some(json!({"job_id": junk_job})),
            )
            .await;
        // A live job (waiting for its upload) deleted by the administrator is cancelled first.
        let waiting = client
            .ok(
                ALICE,
                "POST",
                "/api/v1/uploads/presign",
                Some(json!({"files": [{"filename": "w.png", "content_type": "image/png", "size": 100}], "generate": {}})),
            )
            .await;
        let waiting_job = waiting["files"][0]["job_id"].as_str().unwrap();
        client
            .ok(
                ADMIN,
                "DELETE",
                &format!("/api/v1/admin/jobs/{waiting_job}"),
                None,
            )
            .await;
        // Deleted with their own uploads (no other job uses them).
        for (path, job) in [
            ("delete-job", &uploads.generated),
            ("jobs", &uploads.posted),
        ] {
            let id = job["job_id"].as_str().unwrap();
            client
                .ok(ADMIN, "DELETE", &format!("/api/v1/admin/{path}/{id}"), None)
                .await;
        }
    }

    /// Reads of what is gone: links to a job whose preview is gone (download), a repeated S3
    /// event for an upload that is gone (ingest), a job whose upload is gone (worker). S3 says
    /// 404 only to a role that may list the bucket.
    async fn read_what_is_gone(&self, done: &str) {
        let Drive {
            d,
            client,
            env,
            sqs,
            s3,
            ..
        } = self;
        let bucket = &env["BUCKET_NAME"];
        let events_url = &env["UPLOAD_EVENTS_QUEUE_URL"];
        s3.delete_object()
            .bucket(bucket)
            .key(format!("results/{done}/preview.png"))
            .send()
            .await
            .unwrap();
        client
            .ok(ALICE, "GET", &format!("/api/v1/jobs/{done}"), None)
            .await;
        client
            .ok(
                ALICE,
                "GET",
                &format!("/api/v1/download/{done}?redirect=false"),
                None,
            )
            .await;
        let gone = client.upload(&png(64, 48), "PUT", false).await;
        ingest(d, sqs, events_url, 1).await;
        let gone_id = gone["file_id"].as_str().unwrap();
        let orphan = client
            .ok(
                ALICE,
                "POST",
                "/api/v1/jobs",
                Some(json!({"file_id": gone_id})),
            )
            .await;
        s3.delete_object()
            .bucket(bucket)
            .key(format!("uploads/alice/{gone_id}"))
            .send()
            .await
            .unwrap();
        let mut event: Value = serde_json::from_str(
            &std::fs::read_to_string(
                template::root().join("tests/fixtures/events/s3_object_created.json"),
            )
            .unwrap(),
        )
        .unwrap();
        event["Records"][0]["s3"]["bucket"]["name"] = json!(bucket);
        event["Records"][0]["s3"]["object"]["key"] = json!(format!("uploads/alice/{gone_id}"));
        image2model_ingest::handle_s3_event(
            d.ctx("image2model-ingest"),
            serde_json::from_value(event).unwrap(),
        )
        .await
        .unwrap();
        let orphan_id = orphan["job_id"].as_str().unwrap().to_owned();
        self.work_until_done(std::slice::from_ref(&orphan_id)).await;
    }

    /// An idempotency key whose job was deleted names a new job (the stale key is removed).
    async fn reuse_a_stale_idempotency_key(&self, done: &str, file_id: &str) {
        let Drive { client, .. } = self;
        let idempotent = json!({"file_id": file_id});
        client
            .ok(ADMIN, "DELETE", &format!("/api/v1/admin/jobs/{done}"), None)
            .await;
        let again = client
            .http
            .post(format!("{}/api/v1/jobs", client.base))
            .header("authorization", format!("Bearer {ALICE}"))
            .header("idempotency-key", "iam-check-1")
            .json(&idempotent)
            .send()
            .await
            .unwrap();
        assert!(again.status().is_success(), "{}", again.status());
        assert_ne!(again.json::<Value>().await.unwrap()["job_id"], json!(done));
    }

    /// Webhooks: every announcement made into deliveries, each attempt made (a 500 retried, a 410
    /// disabling its endpoint); then the owner's routes.
    async fn deliver_every_announcement(&self, endpoints: &Endpoints) {
        let Drive {
            d,
            client,
            env,
            sqs,
            ..
        } = self;
        let webhook_queue_url = &env["WEBHOOK_QUEUE_URL"];
        let Endpoints {
            seen,
            flaky_id,
            gone_endpoint,
        } = endpoints;
        deliver_until(d, sqs, webhook_queue_url, || {
            let seen = seen.lock().unwrap();
            seen.iter().filter(|(p, _)| p == "flaky").count() >= 3
                && seen.iter().any(|(p, _)| p == "gone")
        })
        .await;
        let shown = client
            .ok(
                ALICE,
                "GET",
                &format!(
                    "/api/v1/webhooks/endpoints/{}",
                    gone_endpoint["endpoint_id"].as_str().unwrap()
                ),
                None,
            )
            .await;
        assert_eq!(shown["state"], "disabled", "{shown}");
        client
            .ok(ALICE, "GET", "/api/v1/webhooks/endpoints", None)
            .await;
        client
            .ok(ADMIN, "GET", "/api/v1/webhooks/endpoints", None)
            .await;
        let listed = client
            .ok(
                ALICE,
                "GET",
                &format!("/api/v1/webhooks/endpoints/{flaky_id}/deliveries"),
                None,
            )
            .await;
        let first = listed["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["status"] == "delivered")
            .expect("a delivered delivery")["delivery_id"]
            .as_str()
            .unwrap()
            .to_owned();
        client
            .ok(
                ALICE,
                "POST",
                &format!("/api/v1/webhooks/endpoints/{flaky_id}/rotate-secret"),
                None,
            )
            .await;
        client
            .ok(
                ALICE,
                "POST",
                &format!("/api/v1/webhooks/endpoints/{flaky_id}/test"),
                None,
            )
            .await;
        client
            .ok(
                ALICE,
                "POST",
                &format!("/api/v1/webhooks/deliveries/{first}/retry"),
                None,
            )
            .await;
        let before = seen.lock().unwrap().len();
        deliver_until(d, sqs, webhook_queue_url, || {
            seen.lock().unwrap().len() >= before + 2
        })
        .await;
        client
            .ok(
                ALICE,
                "DELETE",
                &format!("/api/v1/webhooks/endpoints/{flaky_id}"),
                None,
            )
            .await;
    }

    /// The scheduled sweeper, on its own clock: a job whose message was lost and an upload whose
    /// event never came are found once their grace has passed, the job fails at its deadline, and
    /// everything is deleted once past the retention.
    async fn sweep_on_its_own_clock(&self, file_id: &str) {
        let Drive {
            d,
            client,
            env,
            sqs,
            ..
        } = self;
        let queue_url = &env["QUEUE_URL"];
        let lost = client
            .ok(
                ALICE,
                "POST",
                "/api/v1/jobs",
                Some(json!({"file_id": file_id})),
            )
            .await;
        let lost_id = lost["job_id"].as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !receive(sqs, queue_url)
            .await
            .iter()
            .any(|m| m.body().unwrap_or_default().contains(&lost_id))
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the lost job's message never arrived"
            );
        }
        let missed = client.upload(&png(64, 48), "PUT", false).await;
        let sweeper = d.ctx("image2model-sweeper");
        image2model_sweeper::run(sweeper).await.unwrap();
        let now = chrono::Utc::now();
        let later = |d: Duration| now + chrono::Duration::from_std(d).unwrap();
        let config = &sweeper.config;
        let first = run_maintenance(
            sweeper,
            later(config.jobs.visibility_timeout + Duration::from_secs(180)),
        )
        .await
        .unwrap();
        assert!(
            first
                .sweep
                .requeued
                .iter()
                .any(|j| j.to_string() == lost_id),
            "{first:?}"
        );
        assert!(
            first
                .sweep
                .ingested
                .iter()
                .any(|f| f.to_string() == missed["file_id"].as_str().unwrap()),
            "{first:?}"
        );
        let second = run_maintenance(
            sweeper,
            later(config.jobs.job_deadline + Duration::from_secs(60)),
        )
        .await
        .unwrap();
        assert!(
            second
                .sweep
                .timed_out
                .iter()
                .any(|j| j.to_string() == lost_id),
            "{second:?}"
        );
        let last = run_maintenance(
            sweeper,
            later(config.jobs.retention + Duration::from_secs(3600)),
        )
        .await
        .unwrap();
        assert!(!last.cleanup.files.is_empty(), "{last:?}");
    }
}

/// A resource ARN with this run's names replaced by the template's, and object keys cut to
/// their folder: `s3:::${Bucket}/uploads/*`.
fn readable(resource: &str, env: &BTreeMap<String, String>) -> String {
    let queue = |var: &str| env[var].rsplit('/').next().unwrap().to_owned();
    let mut text = resource.to_owned();
    for (name, logical) in [
        (
            queue("WEBHOOK_DEAD_LETTER_QUEUE_URL"),
            "${WebhookDeadLetterQueue}",
        ),
        (queue("WEBHOOK_QUEUE_URL"), "${WebhookQueue}"),
        (queue("DEAD_LETTER_QUEUE_URL"), "${DeadLetterQueue}"),
        (queue("QUEUE_URL"), "${WorkQueue}"),
        (env["TABLE_NAME"].clone(), "${JobsTable}"),
        (env["BUCKET_NAME"].clone(), "${Bucket}"),
    ] {
        text = text.replace(&name, logical);
    }
    let text = text
        .trim_start_matches("arn:aws:")
        .replace(":us-east-1:123456789012:", ":");
    match text.split_once("${Bucket}/") {
        Some((head, key)) => format!(
            "{head}${{Bucket}}/{}/*",
            key.split('/').next().unwrap_or_default()
        ),
        None => text,
    }
}

/// A policy field that is one string or a list of them.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a statement list allows `action` on `resource`. The check reads plain Allow
/// statements only; the test refuses any role with Deny, conditions or Not* fields, which it
/// cannot evaluate.
fn allows(statements: &[Value], action: &str, resource: &str) -> bool {
    statements.iter().any(|s| {
        s["Effect"] == "Allow"
            && strings(&s["Action"])
                .iter()
                .any(|a| iam_match(a, action, true))
            && strings(&s["Resource"])
                .iter()
                .any(|r| iam_match(r, resource, false))
    })
}

/// The AWS operations the adapters' code contains (`.client.<operation>()`), as IAM actions.
fn operations_in_adapters() -> BTreeSet<String> {
    let dir = template::root().join("shared/src/adapters/aws");
    let mut found = BTreeSet::new();
    for (file, service) in [
        ("s3.rs", "s3"),
        ("dynamodb.rs", "dynamodb"),
        ("dynamodb/webhooks.rs", "dynamodb"),
        ("sqs.rs", "sqs"),
    ] {
        let code = std::fs::read_to_string(dir.join(file)).unwrap();
        let mut lines = code.lines().map(str::trim);
        while let Some(line) = lines.next() {
            let call = if line == ".client" || line == "self.client" {
                lines.next().unwrap_or_default()
            } else if let Some(rest) = line.split(".client.").nth(1) {
                rest
            } else {
                continue;
            };
            // `operation()` and the builder calls chained after it on the same line.
            let Some((name, _)) = call.trim_start_matches('.').split_once("()") else {
                continue;
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                continue;
            }
            let camel: String = name
                .split('_')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            found.insert(format!("{service}:{camel}"));
        }
    }
    found
}

/// How the SDK operations seen in the adapters show up as IAM actions.
fn as_iam_action(operation: &str) -> Vec<String> {
    match operation {
        "s3:HeadObject" => vec!["s3:GetObject".into()],
        "s3:HeadBucket" | "s3:ListObjectsV2" => vec!["s3:ListBucket".into()],
        "s3:DeleteObjects" => vec!["s3:DeleteObject".into()],
        "dynamodb:TransactWriteItems" => {
            ["PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"]
                .iter()
                .map(|a| format!("dynamodb:{a}"))
                .collect()
        }
        "sqs:SendMessageBatch" => vec!["sqs:SendMessage".into()],
        "sqs:DeleteMessageBatch" => vec!["sqs:DeleteMessage".into()],
        other => vec![other.to_owned()],
    }
}

/// Grants used only on failure paths the drive cannot provoke on demand, and where.
const FAILURE_PATH_GRANTS: [(&str, &str, &str); 2] = [
    (
        "image2model-upload",
        "dynamodb:DeleteItem",
        "app/presign_upload.rs and app/direct_upload.rs undo the file records of a presign with \
         `generate` or a synchronous upload that failed midway",
    ),
    (
        "image2model-worker",
        "s3:DeleteObject",
        "app/work/finish.rs removes a result it stored for a job cancelled or deleted meanwhile",
    ),
];

#[tokio::test]
async fn every_function_role_allows_what_its_code_calls_and_nothing_else() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("run `bash scripts/test.sh`: it starts the emulator and sets AWS_ENDPOINT_URL");
    let name = format!("iam-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut env = BTreeMap::new();
    for line in python("provision.py", &["template.yaml", &endpoint, &name], &env).lines() {
        let (key, value) = line.split_once('=').expect("KEY=VALUE");
        env.insert(key.to_owned(), value.to_owned());
    }
    let roles: Value =
        serde_json::from_str(&python("iam_policies.py", &["template.yaml"], &env)).unwrap();

    let proxy = RecordingProxy::start(&endpoint).await;
    let fake = FakeFal::start(Script {
        run_time: Duration::from_millis(300),
        webhooks: Webhooks::Deliver(1),
        depth_output: Some(depth_png(64, 48)),
        ..Script::default()
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let url_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let function_url = format!("http://{}", url_listener.local_addr().unwrap());
    let resources = AwsResources {
        table: env["TABLE_NAME"].clone(),
        bucket: env["BUCKET_NAME"].clone(),
        queue_url: env["QUEUE_URL"].clone(),
        dead_letter_queue_url: env["DEAD_LETTER_QUEUE_URL"].clone(),
        webhook_queue_url: env["WEBHOOK_QUEUE_URL"].clone(),
        webhook_dead_letter_queue_url: env["WEBHOOK_DEAD_LETTER_QUEUE_URL"].clone(),
    };
    let mut contexts = HashMap::new();
    let mut services = HashMap::new();
    for binary in FUNCTIONS {
        let mut config = test_config(std::path::Path::new("."));
        config.jobs.max_receives = env["MAX_RECEIVES"].parse().unwrap();
        config.local.public_base_url = Some(base.clone());
        // As the template sets it: events_url on the status function's URL.
        config.status.status_stream_base_url = Some(function_url.clone());
        fake.configure(&mut config);
        config.fal.webhook_url = Some(format!("{base}/api/v1/webhooks/fal"));
        config.status.status_token_secret =
            Some(image2model_shared::config::Secret("k".repeat(32)));
        // Deliveries to the test's receiver on loopback, retried within the drive.
        config.webhooks.allow_private = true;
        config.webhooks.retry_schedule = vec![Duration::from_millis(300); 7];
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&proxy.url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                binary,
                "secret",
                None,
                None,
                "iam-check",
            ))
            .load()
            .await;
        let ctx = aws_context(config, &resources, &sdk)
            .expect("STATUS_TOKEN_SECRET is provisioned by scripts/test.sh");
        if let Some(service) = http_service(binary, &ctx) {
            services.insert(binary, service);
        }
        contexts.insert(binary, ctx);
    }
    let deployment = Arc::new(Deployment {
        routes: template::http_routes(),
        contexts,
        services,
    });
    for (listener, api) in [(listener, true), (url_listener, false)] {
        let app = axum::Router::new()
            .fallback(gateway)
            .with_state((deployment.clone(), api));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
    let client = Client {
        base,
        http: reqwest::Client::new(),
    };

    drive(&deployment, &client, &fake, &env, &proxy).await;

    assert!(
        proxy.unknown().is_empty(),
        "requests the check cannot read: {:?}",
        proxy.unknown()
    );
    let seen = proxy.authorizations();
    let mut table = String::new();
    let mut missing = Vec::new();
    let mut unused = Vec::new();
    for binary in FUNCTIONS {
        let role = &roles[binary];
        let statements = role["statements"]
            .as_array()
            .expect("the role's statements");
        for statement in statements {
            let plain = statement["Effect"] == "Allow"
                && ["Condition", "NotAction", "NotResource", "NotPrincipal"]
                    .iter()
                    .all(|field| statement.get(field).is_none());
            assert!(
                plain,
                "{binary}: a statement this check cannot evaluate: {statement}"
            );
        }
        let platform = role["platform"].as_array().unwrap();
        // Lambda's own sends of a failed asynchronous event: exactly one action on exactly the
        // failed-events queue, for the two functions AWS invokes asynchronously.
        let failed_events = format!(
            "arn:aws:sqs:us-east-1:123456789012:{}",
            env["FAILED_EVENTS_QUEUE_URL"].rsplit('/').next().unwrap()
        );
        let expected = if ["image2model-ingest", "image2model-sweeper"].contains(&binary) {
            serde_json::json!([{"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": failed_events}])
        } else {
            serde_json::json!([])
        };
        assert_eq!(
            role["destinations"], expected,
            "{binary}: the on-failure destination's grant"
        );
        let used: BTreeSet<&Authorization> =
            seen.iter().filter(|a| a.access_key == binary).collect();
        for a in &used {
            if !allows(statements, &a.action, &a.resource) {
                missing.push(format!("{binary}: {} on {}", a.action, a.resource));
            }
        }
        let actions_used: BTreeSet<String> = used
            .iter()
            .map(|a| format!("{} {}", a.action, readable(&a.resource, &env)))
            .collect();
        let mut granted = BTreeSet::new();
        for statement in statements {
            let actions = match &statement["Action"] {
                Value::String(a) => vec![a.clone()],
                other => other
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect(),
            };
            for action in actions {
                if FAILURE_PATH_GRANTS
                    .iter()
                    .any(|(b, a, _)| *b == binary && *a == action)
                {
                    granted.insert(action);
                    continue;
                }
                // Each resource of the statement, for each of its actions, must have been used.
                for resource in strings(&statement["Resource"]) {
                    if !used.iter().any(|a| {
                        iam_match(&action, &a.action, true)
                            && iam_match(&resource, &a.resource, false)
                    }) {
                        unused.push(format!("{binary}: {action} on {resource}"));
                    }
                }
                granted.insert(action);
            }
        }
        table.push_str(&format!(
            "{binary} ({} granted, {} from managed policies):\n",
            granted.len(),
            platform.len()
        ));
        for line in &actions_used {
            table.push_str(&format!("    {line}\n"));
        }
    }
    for (binary, action, why) in FAILURE_PATH_GRANTS {
        let granted = roles[binary]["statements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| {
                s["Action"] == action
                    || s["Action"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|a| a == action))
            });
        assert!(granted, "{binary} should be granted {action}: {why}");
    }
    println!("{table}");
    assert!(missing.is_empty(), "denied on AWS: {missing:#?}\n{table}");
    assert!(
        unused.is_empty(),
        "granted, never used: {unused:#?}\n{table}"
    );

    // Operations of the adapters that no Lambda function makes, and why.
    let not_on_lambda = [(
        "sqs:DeleteMessage",
        "the local server's polling worker acknowledges messages; on Lambda the SQS event \
         source deletes what the worker did not report failed",
    )];
    let all_used: BTreeSet<String> = seen.iter().map(|a| a.action.clone()).collect();
    let unseen: Vec<String> = operations_in_adapters()
        .into_iter()
        .filter(|op| !as_iam_action(op).iter().any(|a| all_used.contains(a)))
        .filter(|op| !not_on_lambda.iter().any(|(name, _)| name == op))
        .collect();
    assert!(
        unseen.is_empty(),
        "operations in the adapters that no function was seen making: {unseen:?}"
    );
    for (operation, why) in not_on_lambda {
        assert!(
            !all_used.contains(operation),
            "{operation} was made on Lambda after all ({why})"
        );
    }
}
