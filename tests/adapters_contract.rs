//! The port contract run against both adapter sets: the embedded adapters (SQLite store and
//! queue, disk storage) and the AWS ones (DynamoDB, SQS, S3) on the emulator that
//! `scripts/test.sh` starts; plus what only an embedded database must show: nothing is lost on
//! restart.

use image2model_shared::adapters::embedded::{DiskStorage, EmbeddedDb};
use image2model_shared::ports::{Store, WorkQueue};
use image2model_tests::contract::{self, file, job};
use std::time::Duration;

const MAX_RECEIVES: u32 = 3;

fn db() -> (tempfile::TempDir, EmbeddedDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = EmbeddedDb::open(&dir.path().join("db.sqlite"), MAX_RECEIVES).unwrap();
    (dir, db)
}

#[tokio::test]
async fn embedded_deleted_jobs_free_their_keys() {
    contract::deleting_a_job_frees_its_idempotency_key(&db().1).await;
}

#[tokio::test]
async fn embedded_counters_restart() {
    contract::counters_restart_after_their_window(&db().1).await;
}

#[tokio::test]
async fn embedded_file_listings() {
    contract::file_listings_find_what_they_name(&db().1).await;
}

#[tokio::test]
async fn embedded_files() {
    contract::files_are_created_once_and_updated_conditionally(&db().1).await;
}

#[tokio::test]
async fn embedded_job_updates() {
    contract::job_updates_are_conditional_and_monotonic(&db().1).await;
}

#[tokio::test]
async fn embedded_webhook_store() {
    contract::webhook_endpoints_and_deliveries(&db().1).await;
}

#[tokio::test]
async fn embedded_concurrent_writers() {
    let (_dir, db) = db();
    for _ in 0..20 {
        contract::concurrent_writers_cannot_both_win(&db).await;
    }
}

#[tokio::test]
async fn embedded_listings() {
    contract::listings_paginate_filter_and_order(&db().1).await;
}

#[tokio::test]
async fn embedded_batches_and_idempotency() {
    contract::batches_and_idempotency_are_atomic(&db().1).await;
}

#[tokio::test]
async fn embedded_counters() {
    contract::counters_count_per_window(&db().1).await;
}

#[tokio::test]
async fn embedded_state_documents() {
    contract::state_documents_are_versioned(&db().1).await;
}

#[tokio::test]
async fn embedded_queues() {
    let (_dir, db) = db();
    // The work queue and the deliveries' queue keep the same contract, each on its own.
    for queue in [db.work_queue(), db.delivery_queue()] {
        contract::queue_delivers_with_delays_visibility_and_dead_letters(
            &queue,
            MAX_RECEIVES,
            Duration::from_millis(300),
        )
        .await;
        // A stale receipt cannot acknowledge a redelivered message.
        queue.send("x", Duration::ZERO).await.unwrap();
        let first = queue.receive(1, Duration::ZERO).await.unwrap();
        let second = queue.receive(1, Duration::from_secs(60)).await.unwrap();
        assert!(queue.delete(&first[0].receipt).await.is_err());
        queue.delete(&second[0].receipt).await.unwrap();
    }
    db.delivery_queue()
        .send("webhook", Duration::ZERO)
        .await
        .unwrap();
    assert!(
        db.work_queue()
            .receive(10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "the queues share nothing"
    );
}

#[tokio::test]
async fn disk_storage() {
    let dir = tempfile::tempdir().unwrap();
    contract::storage_round_trips_and_signs(
        &DiskStorage::open(dir.path(), "http://127.0.0.1:1").unwrap(),
    )
    .await;
}

#[tokio::test]
async fn embedded_deliveries_expire_as_dynamodb_ttl_expires_them() {
    use image2model_shared::domain::webhook::{
        DELIVERY_RETENTION, Delivery, EventType, WebhookEndpoint,
    };
    use image2model_shared::ports::WebhookStore;
    let (_dir, db) = db();
    let now = chrono::Utc::now();
    let endpoint = WebhookEndpoint::new(
        "alice",
        "https://example.com/".into(),
        None,
        None,
        "whsec_x".into(),
        now,
    );
    db.create_endpoint(&endpoint, 10).await.unwrap();
    let old = Delivery::new(
        &endpoint,
        "msg_old".into(),
        EventType::Ping,
        "{}".into(),
        now - DELIVERY_RETENTION - chrono::Duration::minutes(1),
    );
    db.create_delivery(&old).await.unwrap();
    let new = Delivery::new(
        &endpoint,
        "msg_new".into(),
        EventType::Ping,
        "{}".into(),
        now,
    );
    db.create_delivery(&new).await.unwrap();
    assert_eq!(db.get_delivery(old.delivery_id).await.unwrap(), None);
    assert_eq!(
        db.list_deliveries(endpoint.endpoint_id, 10).await.unwrap(),
        vec![new]
    );
}

#[tokio::test]
async fn a_restart_keeps_records_and_in_flight_messages() {
    let (dir, db) = db();
    let f = file("alice");
    let j = job("alice", f.file_id);
    db.create_file(&f).await.unwrap();
    db.create_jobs(std::slice::from_ref(&j), None, None)
        .await
        .unwrap();
    let queue = db.delivery_queue();
    queue.send("queued", Duration::ZERO).await.unwrap();
    queue.send("in flight", Duration::ZERO).await.unwrap();
    let taken = queue.receive(1, Duration::from_millis(200)).await.unwrap();
    assert_eq!(taken.len(), 1);
    drop((db, queue));

    let reopened = EmbeddedDb::open(&dir.path().join("db.sqlite"), MAX_RECEIVES).unwrap();
    assert_eq!(reopened.get_file(f.file_id).await.unwrap(), Some(f));
    assert_eq!(reopened.get_job(j.job_id).await.unwrap(), Some(j));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mut bodies: Vec<String> = reopened
        .delivery_queue()
        .receive(10, Duration::from_secs(5))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        ["in flight", "queued"],
        "the message whose handler died is delivered again"
    );
}

mod aws {
    use image2model_tests::aws::{AwsAdapters, adapters};
    use image2model_tests::contract;
    use std::time::Duration;

    async fn aws() -> AwsAdapters {
        adapters().await
    }

    #[tokio::test]
    async fn dynamodb_deleted_jobs_free_their_keys() {
        contract::deleting_a_job_frees_its_idempotency_key(aws().await.store.as_ref()).await;
    }

    #[tokio::test]
    async fn dynamodb_counters_restart() {
        contract::counters_restart_after_their_window(aws().await.store.as_ref()).await;
    }

    #[tokio::test]
    async fn dynamodb_file_listings() {
        contract::file_listings_find_what_they_name(aws().await.store.as_ref()).await;
    }

    #[tokio::test]
    async fn dynamodb_files() {
        contract::files_are_created_once_and_updated_conditionally(aws().await.store.as_ref())
            .await;
    }

    #[tokio::test]
    async fn dynamodb_job_updates() {
        contract::job_updates_are_conditional_and_monotonic(aws().await.store.as_ref()).await;
    }

    #[tokio::test]
    async fn dynamodb_webhook_store() {
        let a = aws().await;
        contract::webhook_endpoints_and_deliveries(a.webhooks.as_ref()).await;
    }

    #[tokio::test]
    async fn dynamodb_concurrent_writers() {
        let a = aws().await;
        for _ in 0..10 {
            contract::concurrent_writers_cannot_both_win(a.store.as_ref()).await;
        }
    }

    #[tokio::test]
    async fn dynamodb_listings() {
        contract::listings_paginate_filter_and_order(aws().await.store.as_ref()).await;
    }

    #[tokio::test]
    async fn dynamodb_batches_and_idempotency() {
        contract::batches_and_idempotency_are_atomic(aws().await.store.as_ref()).await;
    }

    #[tokio::test]
    async fn dynamodb_counters() {
        contract::counters_count_per_window(aws().await.store.as_ref()).await;
    }

    #[tokio::test]
    async fn dynamodb_state_documents() {
        contract::state_documents_are_versioned(aws().await.store.as_ref()).await;
    }

    #[tokio::test]
    async fn sqs_queue() {
        let a = aws().await;
        contract::queue_delivers_with_delays_visibility_and_dead_letters(
            a.queue.as_ref(),
            a.max_receives,
            Duration::from_secs(1),
        )
        .await;
    }

    #[tokio::test]
    async fn s3_storage() {
        contract::storage_round_trips_and_signs(aws().await.storage.as_ref()).await;
    }
}

/// moto does not check signatures, so what our code signs is checked by decoding the URLs.
#[tokio::test]
async fn s3_presigned_requests_sign_type_length_and_expiry() {
    let a = image2model_tests::aws::adapters().await;
    let key = format!("uploads/signing/{}", uuid::Uuid::new_v4());
    let put = a
        .storage
        .presign_put(&key, "image/png", 1234, Duration::from_secs(600))
        .await
        .unwrap();
    let query = |url: &str| -> std::collections::HashMap<String, String> {
        let raw = url.split_once('?').unwrap().1;
        raw.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            })
            .collect()
    };
    let q = query(&put.url);
    assert_eq!(q["X-Amz-Expires"], "600");
    let signed: Vec<&str> = q["X-Amz-SignedHeaders"].split(';').collect();
    for header in ["content-length", "content-type", "host"] {
        assert!(
            signed.contains(&header),
            "{header} must be signed: {signed:?}"
        );
    }
    assert_eq!(
        (
            put.headers["Content-Type"].as_str(),
            put.headers["Content-Length"].as_str()
        ),
        ("image/png", "1234")
    );
    let get = a
        .storage
        .presign_get(&key, "my model.glb", Duration::from_secs(300))
        .await
        .unwrap();
    let q = query(&get.url);
    assert_eq!(q["X-Amz-Expires"], "300");
    assert_eq!(
        q["response-content-disposition"],
        "attachment; filename=\"my model.glb\""
    );

    // The client's PUT with exactly the signed headers lands in the bucket.
    let body = vec![7u8; 1234];
    let client = reqwest::Client::new();
    let mut request = client.put(&put.url).body(body.clone());
    for (name, value) in &put.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    assert!(request.send().await.unwrap().status().is_success());
    let meta = a.storage.head(&key).await.unwrap().unwrap();
    assert_eq!((meta.size, meta.content_type.as_str()), (1234, "image/png"));

    // The POST policy: the exact key, exact type, length range, expiry, SigV4 fields.
    let form_key = format!("uploads/signing/{}", uuid::Uuid::new_v4());
    let post = a
        .storage
        .presign_post(&form_key, "image/jpeg", 5000, Duration::from_secs(120))
        .await
        .unwrap();
    use base64::Engine;
    let policy: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(&post.fields["policy"])
            .unwrap(),
    )
    .unwrap();
    let conditions = policy["conditions"].as_array().unwrap();
    assert!(
        conditions.contains(&serde_json::json!({"key": form_key})),
        "{policy}"
    );
    assert!(
        !policy.to_string().contains("starts-with"),
        "a grant names one object: {policy}"
    );
    assert!(
        conditions.contains(&serde_json::json!(["content-length-range", 1, 5000])),
        "{policy}"
    );
    assert!(
        conditions.contains(&serde_json::json!(["eq", "$Content-Type", "image/jpeg"])),
        "{policy}"
    );
    let expiration =
        chrono::DateTime::parse_from_rfc3339(policy["expiration"].as_str().unwrap()).unwrap();
    let left = expiration.timestamp() - chrono::Utc::now().timestamp();
    assert!((110..=121).contains(&left), "{left}");
    assert_eq!(post.fields["x-amz-algorithm"], "AWS4-HMAC-SHA256");
    assert_eq!(post.fields["x-amz-signature"].len(), 64);
    assert!(post.fields["x-amz-credential"].ends_with("/us-east-1/s3/aws4_request"));
    // A browser's form POST with those fields lands in the bucket.
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in &post.fields {
        form = form.text(name.clone(), value.clone());
    }
    let form = form.part(
        "file",
        reqwest::multipart::Part::bytes(vec![1u8; 4000])
            .file_name("a.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    );
    let response = client.post(&post.url).multipart(form).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    assert_eq!(a.storage.head(&form_key).await.unwrap().unwrap().size, 4000);
}
