//! The contract: the OpenAPI document generated from the routes, a schema for every answer, and
//! every documented operation routed to its function on AWS.

use image2model_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The served description is the one the routes declare: regenerated here and compared with
/// `functions/health/openapi.json` (which the health function serves on Lambda). After changing
/// a route, `UPDATE_OPENAPI=1 cargo nextest run -p image2model-tests -E 'test(openapi)'` writes it.
#[tokio::test]
async fn the_openapi_document_is_generated_from_the_routes() {
    let server = TestServer::start().await;
    let generated = image2model_local::openapi(&server.ctx).unwrap();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/health/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap();
    assert!(
        checked_in == generated,
        "functions/health/openapi.json is not what the routes declare; regenerate it with UPDATE_OPENAPI=1"
    );
    let response = server
        .request(Method::GET, "/api/v1/openapi.json", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), generated);
}

/// Every `$ref` in `value` (the document), recursively.
fn refs_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push(target.clone());
            }
            map.values().for_each(|v| refs_in(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

/// The document is the contract: every JSON answer, success or error, names a schema (a `$ref`
/// or an object with properties, never a bare `{"type": "object"}`), every `$ref` resolves,
/// and each error status points at its own envelope, whose codes are the ones that status
/// carries.
#[tokio::test]
async fn every_json_answer_of_the_document_has_a_schema() {
    let server = TestServer::start().await;
    let (_, doc) = server.get_json("/api/v1/openapi.json", None).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let (mut answers, mut untyped) = (0, Vec::new());
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let Some(content) = response.get("content").and_then(Value::as_object) else {
                    continue;
                };
                for (media, body) in content.iter().filter(|(m, _)| m.contains("json")) {
                    answers += 1;
                    let schema = &body["schema"];
                    let named = schema.get("$ref").is_some()
                        || schema["properties"]
                            .as_object()
                            .is_some_and(|p| !p.is_empty())
                        || schema["items"].get("$ref").is_some();
                    if !named {
                        untyped.push(format!("{method} {path} {status} {media}: {schema}"));
                    }
                    if status.starts_with('4') || status.starts_with('5') {
                        // The envelope of its status, or a schema built on it (readiness' 503).
                        let envelope = format!("#/components/schemas/Error{status}");
                        let named = schema["$ref"].as_str().unwrap_or_default();
                        let base = named
                            .rsplit('/')
                            .next()
                            .and_then(|name| schemas.get(name))
                            .map(|s| &s["allOf"][0]["$ref"]);
                        assert!(
                            named == envelope || base == Some(&json!(envelope)),
                            "{method} {path} {status}: {schema}"
                        );
                    }
                }
            }
        }
    }
    assert!(
        untyped.is_empty(),
        "untyped answers:\n{}",
        untyped.join("\n")
    );
    assert!(answers > 400, "{answers} JSON answers");
    let mut targets = Vec::new();
    refs_in(&doc, &mut targets);
    for target in targets {
        let name = target.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.contains_key(name), "{target} resolves to nothing");
    }
    // Every operation answers what the layers in front of it refuse.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for status in ["400", "429"] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path}: no {status}"
                );
            }
        }
    }
    let not_found = &schemas["Error404"]["allOf"][1]["properties"]["error_code"]["enum"];
    assert!(
        not_found
            .as_array()
            .unwrap()
            .contains(&json!("JOB_NOT_FOUND"))
    );
    assert!(
        !not_found
            .as_array()
            .unwrap()
            .contains(&json!("RATE_LIMITED"))
    );
}

#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let server = TestServer::start().await;
    let (status, doc) = server.get_json("/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 28);
    let id = uuid::Uuid::new_v4().to_string();
    for (path, ops) in paths {
        let concrete = path
            .replace("{job_id}", &id)
            .replace("{task_id}", &id)
            .replace("{batch_id}", &id)
            .replace("{file_id}", &id);
        for method in ops.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server
                .request(method.clone(), &concrete, Some(ADMIN))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let (_, body) = json_of(response).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(
                body["error_code"], "NOT_FOUND",
                "{method} {path} is documented but not routed"
            );
        }
    }
}

/// On AWS a route exists only where `template.yaml` sends it: every documented operation must
/// reach the function that serves it on the HTTP API's own address (the first HTTP API event
/// that matches, with `{proxy+}` and `ANY` as API Gateway reads them), the status routes too:
/// `status_url` is built on that address. The status function's streaming URL is where
/// `events_url` and the API's redirects of streams lead.
#[test]
fn every_documented_route_reaches_its_function_on_aws() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(template::root().join("functions/health/openapi.json")).unwrap(),
    )
    .unwrap();
    let routes = template::http_routes();
    let serves = |tag: &str| match tag {
        "uploads" => "image2model-upload",
        "downloads" => "image2model-download",
        "webhooks" => "image2model-webhook",
        "webhook-endpoints" => "image2model-endpoints",
        "jobs" => "image2model-jobs",
        "status" => "image2model-status",
        "admin" => "image2model-admin",
        _ => "image2model-health",
    };
    let mut unrouted = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let function = serves(op["tags"][0].as_str().unwrap());
            let routed = routes.function_for(method, path) == Some(function);
            if !routed {
                unrouted.push(format!("{method} {path} -> {function}"));
            }
        }
    }
    assert!(routes.events.len() >= 20, "{:?}", routes.events);
    assert!(
        unrouted.is_empty(),
        "template.yaml does not route: {unrouted:#?}"
    );
}
