//! The jobs function's routes, in-process on the embedded adapters.

use super::router;
use axum::http::{Method, StatusCode};
use image2model_shared::AppContext;
use image2model_shared::app::testing::{ALICE_KEY, BOB_KEY, context, pending_file};
use image2model_shared::domain::{FileRejection, JobErrorCode};
use image2model_shared::web::testing::{Answer, call, request};
use serde_json::{Value, json};

async fn send(
    t: &AppContext,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> Answer {
    call(router(t), t, request(method, path, Some(key), body)).await
}

#[tokio::test]
async fn job_creation_idempotency_ownership_and_listing() {
    let t = context();
    let file_id = pending_file(&t, "alice").await.file_id.to_string();
    let create = json!({"file_id": file_id});
    for path in ["/api/v1/jobs", "/api/v1/generate/3d-model"] {
        let created = send(&t, Method::POST, path, ALICE_KEY, Some(create.clone())).await;
        assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
        let body = &created.body;
        assert_eq!(
            (
                body["status"].as_str(),
                body["progress"].as_u64(),
                body["model_type"].as_str()
            ),
            (Some("queued"), Some(0), Some("relief"))
        );
    }
    let with_key = |key: &str| {
        let mut asked = request(
            Method::POST,
            "/api/v1/jobs",
            Some(ALICE_KEY),
            Some(create.clone()),
        );
        asked
            .headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        asked
    };
    let first = call(router(&t), &t, with_key("order-42")).await.body;
    let again = call(router(&t), &t, with_key("order-42")).await.body;
    assert_eq!(first["job_id"], again["job_id"]);
    call(router(&t), &t, with_key("bad key with spaces"))
        .await
        .assert_error(422, "VALIDATION_ERROR");

    let post = |key, body| send(&t, Method::POST, "/api/v1/jobs", key, Some(body));
    post(BOB_KEY, create.clone())
        .await
        .assert_error(404, "FILE_NOT_FOUND");
    post(
        ALICE_KEY,
        json!({"file_id": file_id, "model_type": "hunyuan3d"}),
    )
    .await
    .assert_error(400, "MODEL_UNAVAILABLE");
    post(ALICE_KEY, json!({"file_id": "nope"}))
        .await
        .assert_error(422, "VALIDATION_ERROR");
    post(
        ALICE_KEY,
        json!({"file_id": file_id, "options": {"texture": "ultra"}}),
    )
    .await
    .assert_error(422, "VALIDATION_ERROR");

    // Three jobs now; page through them two at a time, newest first, without repeats.
    let get = async |path: String, key| send(&t, Method::GET, &path, key, None).await;
    let page1 = get("/api/v1/jobs?limit=2".into(), ALICE_KEY).await.body;
    assert_eq!(page1["jobs"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = get(format!("/api/v1/jobs?limit=2&cursor={cursor}"), ALICE_KEY)
        .await
        .body;
    assert_eq!(page2["jobs"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    let created: Vec<&str> = page1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["jobs"].as_array().unwrap())
        .map(|j| j["created_at"].as_str().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
    let bobs = get("/api/v1/jobs".into(), BOB_KEY).await.body;
    assert_eq!(bobs["jobs"], json!([]));
    let queued = get("/api/v1/jobs?status=queued".into(), ALICE_KEY)
        .await
        .body;
    assert_eq!(queued["jobs"].as_array().unwrap().len(), 3);
    for bad in [
        "status=bogus",
        "limit=0",
        "limit=101",
        "cursor=zz",
        "unknown=1",
    ] {
        get(format!("/api/v1/jobs?{bad}"), ALICE_KEY)
            .await
            .assert_error(422, "VALIDATION_ERROR");
    }

    // Cancel, then a second cancel is a state conflict; another owner sees nothing.
    let job = format!("/api/v1/jobs/{}", first["job_id"].as_str().unwrap());
    get(job.clone(), BOB_KEY)
        .await
        .assert_error(404, "JOB_NOT_FOUND");
    let cancel = |key| send(&t, Method::DELETE, &job, key, None);
    cancel(BOB_KEY).await.assert_error(404, "JOB_NOT_FOUND");
    let cancelled = cancel(ALICE_KEY).await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    cancel(ALICE_KEY)
        .await
        .assert_error(409, "INVALID_JOB_STATE");
    get(format!("/api/v1/jobs/{}", uuid::Uuid::new_v4()), ALICE_KEY)
        .await
        .assert_error(404, "JOB_NOT_FOUND");
    // Without a key, or with one nobody has, nothing is answered.
    call(router(&t), &t, request(Method::GET, &job, None, None))
        .await
        .assert_error(401, "UNAUTHORIZED");
    send(&t, Method::GET, &job, "no-such-key-0123", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn jobs_on_a_rejected_file_are_refused() {
    let t = context();
    let file = pending_file(&t, "alice").await;
    let rejection = FileRejection {
        code: JobErrorCode::InvalidFileType,
        message: "not an image".into(),
    };
    t.store
        .update_file(&file.reject(rejection).unwrap())
        .await
        .unwrap();
    let body = json!({"file_id": file.file_id.to_string()});
    send(&t, Method::POST, "/api/v1/jobs", ALICE_KEY, Some(body))
        .await
        .assert_error(409, "FILE_NOT_READY");
}

#[tokio::test]
async fn models_available_reflects_the_deployment() {
    let t = context();
    let answer = call(
        router(&t),
        &t,
        request(Method::GET, "/api/v1/models/available", None, None),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let models = answer
        .body
        .as_array()
        .expect("a list, as the old API answered");
    let available: Vec<&str> = models
        .iter()
        .filter(|m| m["available"] == true)
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(available, ["relief"]);
    let default: Vec<&Value> = models.iter().filter(|m| m["default"] == true).collect();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["name"], "relief");
    let tripo = models.iter().find(|m| m["name"] == "tripo3d").unwrap();
    assert_eq!(tripo["available"], false);
}

/// The old API's models routes: a job created in its shape, read in its shape, and its model
/// asked for before it exists.
#[tokio::test]
async fn the_old_models_routes_create_and_show_a_job() {
    let t = context();
    let file_id = image2model_shared::app::testing::ready_file(&t, "alice")
        .await
        .file_id
        .to_string();
    let old = json!({"file_id": file_id, "quality": "standard", "texture_enabled": true});
    let created = send(
        &t,
        Method::POST,
        "/api/v1/models/generate",
        ALICE_KEY,
        Some(old),
    )
    .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    assert_eq!(created.body["status"], "queued");
    assert!(
        created
            .body
            .as_object()
            .unwrap()
            .contains_key("estimated_time")
    );
    let job_id = created.body["job_id"].as_str().unwrap();
    let shown = send(
        &t,
        Method::GET,
        &format!("/api/v1/models/job/{job_id}"),
        ALICE_KEY,
        None,
    )
    .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["job_id"], job_id);
    send(
        &t,
        Method::GET,
        &format!("/api/v1/models/job/{job_id}"),
        BOB_KEY,
        None,
    )
    .await
    .assert_error(404, "JOB_NOT_FOUND");
    send(
        &t,
        Method::GET,
        &format!("/api/v1/models/download/{job_id}"),
        ALICE_KEY,
        None,
    )
    .await
    .assert_error(409, "RESULT_NOT_READY");
    let bad = json!({"file_id": file_id, "quality": "ultra"});
    send(
        &t,
        Method::POST,
        "/api/v1/models/generate",
        ALICE_KEY,
        Some(bad),
    )
    .await
    .assert_error(422, "VALIDATION_ERROR");
}
