//! Generated input against the whole API in-process (the local server's router and layers,
//! no sockets): multipart bodies mangled every way, arbitrary JSON bodies and query strings,
//! made-up ids, forged webhook deliveries. Whatever arrives, the answer is a status the route
//! documents, an error is the JSON envelope, and nothing answers 500.
//!
//! `PROPTEST_CASES` sets the cases per property (`scripts/fuzz.sh` runs many more); failures
//! proptest finds are kept in `tests/proptest-regressions/` and replayed first.

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use image2model_shared::adapters::embedded::EmbeddedAdapters;
use image2model_shared::web::HttpService;
use image2model_tests::{ADMIN, ALICE, png, test_config};
use proptest::prelude::*;
use serde_json::Value;
use std::sync::OnceLock;
use tower::ServiceExt;

struct Api {
    runtime: tokio::runtime::Runtime,
    service: HttpService,
    _dir: tempfile::TempDir,
}

/// One API for every case of a test binary (a fresh one per case would dominate the run).
fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        config.limits.rate_limit_per_minute = u64::MAX / 4;
        config.fal.jwks_url = "http://127.0.0.1:9/jwks.json".to_owned();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let service = runtime.block_on(async {
            let adapters = EmbeddedAdapters::open(&config, "http://127.0.0.1:1").unwrap();
            let ctx = image2model_shared::wiring::embedded_context(config, &adapters).unwrap();
            let router = image2model_local::api_router(&ctx)
                .unwrap()
                .with_state(ctx.clone());
            image2model_shared::web::into_service(router, &ctx.config)
        });
        Api {
            runtime,
            service,
            _dir: dir,
        }
    })
}

/// Sends `request` and checks the answer: no 500, and an error is the envelope.
fn check(request: Request<Body>, allowed: &[u16]) -> Result<(StatusCode, Value), TestCaseError> {
    let api = api();
    let described = format!("{} {}", request.method(), request.uri());
    let response = api
        .runtime
        .block_on(api.service.clone().oneshot(request))
        .unwrap();
    let status = response.status();
    let json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let bytes = api
        .runtime
        .block_on(response.into_body().collect())
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    prop_assert!(
        allowed.contains(&status.as_u16()),
        "{described}: {status} {body}"
    );
    if status.is_client_error() || status.is_server_error() {
        prop_assert!(json, "{described}: {status} is not JSON");
        prop_assert_eq!(
            &body["error"],
            &Value::Bool(true),
            "{}: {}",
            described,
            body
        );
        prop_assert!(body["error_code"].is_string(), "{described}: {body}");
        prop_assert_eq!(
            body["status_code"].as_u64(),
            Some(u64::from(status.as_u16())),
            "{}: {}",
            described,
            body
        );
    }
    Ok((status, body))
}

/// A part of a multipart body: its name, filename, type and bytes.
fn part() -> impl Strategy<Value = (String, Option<String>, String, Vec<u8>)> {
    let name = prop::sample::select(vec![
        "file",
        "files",
        "files[]",
        "face_limit",
        "model_type",
        "other",
        "",
    ])
    .prop_map(str::to_owned);
    let filename = prop::option::of(prop::sample::select(vec![
        "photo.png",
        "a.jpg",
        "evil.php",
        "x",
        "../../etc/passwd",
        "名前.png",
        "a\"b.png",
    ]))
    .prop_map(|n| n.map(str::to_owned));
    let content_type = prop::sample::select(vec!["image/png", "text/plain", "", "image/jpeg"])
        .prop_map(str::to_owned);
    let bytes = prop_oneof![
        Just(png(12, 9)),
        prop::collection::vec(any::<u8>(), 0..64),
        (1usize..200).prop_map(|cut| {
            let mut photo = png(12, 9);
            photo.truncate(cut.min(photo.len()));
            photo
        }),
        prop::sample::select(vec![
            b"5000".to_vec(),
            b"-1".to_vec(),
            b"tripo3d".to_vec(),
            vec![0xff; 3]
        ]),
    ];
    (name, filename, content_type, bytes)
}

/// A multipart body of `parts`, cut short or with a mangled boundary at times.
fn multipart() -> impl Strategy<Value = (String, Vec<u8>)> {
    (
        prop::collection::vec(part(), 0..4),
        prop::option::of(any::<prop::sample::Index>()),
        prop::sample::select(vec![
            "multipart/form-data; boundary=XyZ",
            "multipart/form-data; boundary=other",
            "multipart/form-data",
            "application/json",
            "multipart/form-data; boundary=",
        ]),
    )
        .prop_map(|(parts, cut, content_type)| {
            let mut body = Vec::new();
            for (name, filename, part_type, bytes) in parts {
                body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
                body.extend_from_slice(name.as_bytes());
                body.extend_from_slice(b"\"");
                if let Some(filename) = filename {
                    body.extend_from_slice(b"; filename=\"");
                    body.extend_from_slice(filename.as_bytes());
                    body.extend_from_slice(b"\"");
                }
                body.extend_from_slice(b"\r\n");
                if !part_type.is_empty() {
                    body.extend_from_slice(format!("Content-Type: {part_type}\r\n").as_bytes());
                }
                body.extend_from_slice(b"\r\n");
                body.extend_from_slice(&bytes);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"--XyZ--\r\n");
            if let Some(cut) = cut {
                body.truncate(cut.index(body.len() + 1));
            }
            (content_type.to_owned(), body)
        })
}

/// Arbitrary JSON, shallow.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        Just(Value::from(uuid::Uuid::new_v4().to_string())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "file_id",
                    "model_type",
                    "options",
                    "face_limit",
                    "files",
                    "filename",
                    "content_type",
                    "size",
                    "generate",
                    "upload_method",
                    "hours",
                    "dry_run",
                    "texture",
                    "seed",
                    "pbr",
                    "x",
                ])
                .prop_map(str::to_owned),
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn request(method: &str, uri: &str, key: Option<&str>) -> http::request::Builder {
    let builder = Request::builder().method(method).uri(uri);
    match key {
        Some(key) => builder.header("authorization", format!("Bearer {key}")),
        None => builder,
    }
}

proptest! {
    #[test]
    fn multipart_bodies_never_break_the_upload_routes(
        route in prop::sample::select(vec!["/api/v1/upload/image", "/api/v1/upload"]),
        (content_type, body) in multipart(),
    ) {
        let request = request("POST", route, Some(ALICE))
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        let (status, body) = check(request, &[200, 201, 400, 413, 415, 422])?;
        if status.is_success() {
            prop_assert!(body["file_id"].is_string() || body["batch_id"].is_string(), "{body}");
        }
    }

    #[test]
    fn json_bodies_never_break_the_api(
        (method, route, key) in prop::sample::select(vec![
            ("POST", "/api/v1/jobs", ALICE),
            ("POST", "/api/v1/generate/3d-model", ALICE),
            ("POST", "/api/v1/uploads/presign", ALICE),
            ("POST", "/api/v1/admin/cleanup", ADMIN),
        ]),
        body in prop_oneof![
            json_value().prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..80),
        ],
        content_type in prop::sample::select(vec!["application/json", "text/plain", "application/json; charset=utf-8"]),
    ) {
        let request = request(method, route, Some(key))
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        check(request, &[200, 202, 400, 404, 409, 413, 415, 422, 429])?;
    }

    #[test]
    fn queries_and_path_ids_never_break_the_api(
        template in prop::sample::select(vec![
            "/api/v1/jobs?{q}",
            "/api/v1/admin/jobs?{q}",
            "/api/v1/admin/dead-letters?{q}",
            "/api/v1/jobs/{id}",
            "/api/v1/files/{id}",
            "/api/v1/status/tasks/{id}/status",
            "/api/v1/status/tasks/{id}/sse?{q}",
            "/api/v1/download/{id}?{q}",
            "/api/v1/download/{id}/all",
        ]),
        query in "[a-z_=&%0-9.+-]{0,40}",
        id in prop_oneof![
            "[0-9a-fA-F-]{0,40}",
            ".{0,12}".prop_map(|s| s.chars().filter(|c| !c.is_control() && *c != '/' && *c != '?' && *c != '#').collect()),
            Just(uuid::Uuid::new_v4().to_string()),
        ],
        key in prop::sample::select(vec![ALICE, ADMIN]),
    ) {
        let id: String = id
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let uri = template.replace("{q}", &query).replace("{id}", &id);
        let Ok(request) = request("GET", &uri, Some(key)).body(Body::empty()) else {
            return Ok(());
        };
        check(request, &[200, 400, 403, 404, 409, 422])?;
    }

    #[test]
    fn forged_webhook_deliveries_are_refused(
        headers in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "x-fal-webhook-request-id", "x-fal-webhook-user-id",
                    "x-fal-webhook-timestamp", "x-fal-webhook-signature",
                ]),
                "[ -~]{0,70}",
            ),
            0..5,
        ),
        body in prop::collection::vec(any::<u8>(), 0..120),
        job in prop::option::of(Just(uuid::Uuid::new_v4().to_string())),
    ) {
        let uri = match job {
            Some(job) => format!("/api/v1/webhooks/fal?job_id={job}"),
            None => "/api/v1/webhooks/fal".to_owned(),
        };
        let mut builder = request("POST", &uri, None).header("content-type", "application/json");
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let Ok(request) = builder.body(Body::from(body)) else {
            return Ok(());
        };
        // 503: the signing keys could not be fetched (none are served here).
        check(request, &[401, 422, 503])?;
    }
}

/// Every setting the README's configuration table names.
fn settings() -> &'static [String] {
    static SETTINGS: OnceLock<Vec<String>> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let readme = std::fs::read_to_string(image2model_tests::template::root().join("README.md"))
            .expect("README.md");
        let start = readme
            .find("### Configuration (environment variables)")
            .expect("the configuration table");
        let table = &readme[start..];
        let table = &table[..table[1..].find("\n## ").map_or(table.len(), |end| end + 1)];
        let mut names: Vec<String> = table
            .lines()
            .filter_map(|line| line.strip_prefix("| ")?.split(" |").next())
            .flat_map(|cell| cell.split('`').skip(1).step_by(2))
            .filter(|name| {
                name.len() > 2
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            })
            .map(str::to_owned)
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() > 40, "the table was read: {names:?}");
        names
    })
}

/// A value someone might set: any text, numbers of every spelling, URLs and origins of every
/// shape, lists of named keys, a wildcard, nothing.
fn setting_value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "-?[0-9]{1,25}(\\.[0-9]{0,5})?([eE]-?[0-9]{1,3})?",
        "(https?|ftp|)(://)?[a-z0-9.*-]{0,14}(:[0-9]{0,6})?(/[a-z*]{0,6})?/?",
        "[a-z*]{1,8}:[a-zA-Z0-9*-]{0,14}(,[a-z]{1,8}:[a-zA-Z0-9-]{0,14}){0,2}",
        prop::sample::select(vec![
            "*", "", " ", "0", "true", "false", "inf", "NaN", "1e400"
        ])
        .prop_map(str::to_owned),
    ]
}

proptest! {
    /// Whatever one setting is set to, the process either refuses to start with an error naming
    /// that setting, or its configuration builds the web layers every function serves through
    /// without a panic (a wildcard `CORS_ORIGINS` once passed the configuration and panicked
    /// while CORS was built).
    #[test]
    fn any_value_of_any_setting_is_refused_by_name_or_serves(value in setting_value()) {
        for name in settings() {
            let vars = std::collections::HashMap::from([(name.clone(), value.clone())]);
            match image2model_shared::config::Config::from_vars(&vars) {
                Err(err) => {
                    prop_assert!(err.to_string().contains(name.as_str()), "{name}={value:?}: {err}")
                }
                Ok(config) => {
                    let built = std::panic::catch_unwind(|| {
                        let routes =
                            axum::Router::new().route("/", axum::routing::get(|| async {}));
                        image2model_shared::web::into_service(routes, &config)
                    });
                    prop_assert!(built.is_ok(), "{name}={value:?} panicked the web layers");
                }
            }
        }
    }
}
