//! The contract every adapter set must meet, written against the ports only, so the same checks
//! run against the embedded adapters and the AWS ones.

use bytes::Bytes;
use chrono::{Duration as Span, Utc};
use image2model_shared::domain::{
    Batch, BatchId, Converted, FileId, FileStatus, GenerationJob, JobError, JobOptions, JobResult,
    JobStatus, ModelFormat, StoredFormat, UploadedFile,
};
use image2model_shared::ports::{
    CreateOutcome, IDEMPOTENCY_WINDOW, JobQuery, ObjectStorage, Store, StoreError, Versioned,
    WebhookStore, WorkQueue, read_state, update_state,
};
use std::collections::BTreeSet;
use std::time::Duration;

pub fn file(owner: &str) -> UploadedFile {
    let now = Utc::now();
    UploadedFile::pending(owner, "a.png", "image/png", 10, now, now + Span::hours(1))
}

pub fn job(owner: &str, file_id: FileId) -> GenerationJob {
    GenerationJob::new(
        file_id,
        owner,
        "depth_anything_v2",
        JobOptions::default(),
        None,
        Utc::now(),
    )
}

/// Stores one new job (no batch, no idempotency key).
pub async fn insert_job(store: &dyn Store, job: &GenerationJob) {
    store
        .create_jobs(std::slice::from_ref(job), None, None)
        .await
        .expect("job stored");
}

pub async fn files_are_created_once_and_updated_conditionally(store: &dyn Store) {
    let f = file("alice");
    store.create_file(&f).await.unwrap();
    assert!(matches!(
        store.create_file(&f).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(store.get_file(f.file_id).await.unwrap(), Some(f.clone()));
    let ready = f
        .accept(image2model_shared::domain::file::AcceptedImage {
            content_type: "image/png".into(),
            extension: "png",
            size: 10,
            sha256: "0".repeat(64),
            width: 2,
            height: 3,
        })
        .unwrap();
    store.update_file(&ready).await.unwrap();
    // A second writer holding the old version loses.
    let rejected = f
        .reject(image2model_shared::domain::FileRejection {
            code: image2model_shared::domain::JobErrorCode::InvalidImage,
            message: "x".into(),
        })
        .unwrap();
    assert!(matches!(
        store.update_file(&rejected).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.get_file(f.file_id).await.unwrap().unwrap().status,
        FileStatus::Ready
    );
    store.delete_file(f.file_id).await.unwrap();
    assert_eq!(store.get_file(f.file_id).await.unwrap(), None);
}

pub async fn job_updates_are_conditional_and_monotonic(store: &dyn Store) {
    let f = file("alice");
    let j = job("alice", f.file_id);
    assert_eq!(
        store
            .create_jobs(std::slice::from_ref(&j), None, None)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    assert!(matches!(
        store
            .create_jobs(std::slice::from_ref(&j), None, None)
            .await,
        Err(StoreError::AlreadyExists)
    ));
    let now = Utc::now();
    let running = j.start(now).unwrap();
    store.update_job(&running).await.unwrap();
    // Lost update: a writer that read version 1 cannot write over version 2.
    assert!(matches!(
        store.update_job(&j.cancel(now).unwrap()).await,
        Err(StoreError::Conflict)
    ));
    let at_60 = running.report_progress(60, "x", now).unwrap();
    store.update_job(&at_60).await.unwrap();
    // Even with the right version, the store refuses progress that moves back.
    let mut backwards = at_60.report_progress(60, "y", now).unwrap();
    backwards.progress = 30;
    assert!(matches!(
        store.update_job(&backwards).await,
        Err(StoreError::Conflict)
    ));
    let failed = at_60
        .fail(
            JobError::from(image2model_shared::domain::JobErrorCode::GenerationFailed),
            now,
        )
        .unwrap();
    store.update_job(&failed).await.unwrap();
    // Nothing leaves a terminal state through an ordinary update, whatever it claims.
    let mut escape = failed.clone();
    escape.status = JobStatus::Processing;
    escape.version += 1;
    assert!(matches!(
        store.update_job(&escape).await,
        Err(StoreError::Conflict)
    ));
    // Only an administrator's reopen does, and only from failed or cancelled.
    let reopened = failed.reopen(now).unwrap();
    store.reopen_job(&reopened).await.unwrap();
    assert!(matches!(
        store
            .reopen_job(&reopened.reopen(now).unwrap_or(reopened.clone()))
            .await,
        Err(StoreError::Conflict)
    ));
    let stored = store.get_job(j.job_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.progress, stored.version),
        (JobStatus::Queued, 0, reopened.version)
    );

    // A completed job changes only to name a format made since, and only while completed.
    let mut pretending = stored.clone();
    pretending.status = JobStatus::Completed;
    pretending.version += 1;
    assert!(matches!(
        store.amend_completed_job(&pretending).await,
        Err(StoreError::Conflict)
    ));
    let running = stored.start(now).unwrap();
    store.update_job(&running).await.unwrap();
    let done = running.complete(JobResult::default(), now).unwrap();
    store.update_job(&done).await.unwrap();
    let made = Converted::Stored(StoredFormat {
        format: ModelFormat::Stl,
        object_key: "results/x/model.stl".into(),
        size: 84,
    });
    let amended = done.with_format(&made, now).unwrap();
    store.amend_completed_job(&amended).await.unwrap();
    assert!(
        matches!(
            store.amend_completed_job(&amended).await,
            Err(StoreError::Conflict)
        ),
        "the same version twice"
    );
    let stored = store.get_job(j.job_id).await.unwrap().unwrap();
    assert_eq!(
        stored.result.unwrap().formats,
        [StoredFormat {
            format: ModelFormat::Stl,
            object_key: "results/x/model.stl".into(),
            size: 84,
        }]
    );
    assert_eq!(stored.version, amended.version);
}

pub async fn concurrent_writers_cannot_both_win(store: &dyn Store) {
    let j = job("alice", FileId::new());
    store
        .create_jobs(std::slice::from_ref(&j), None, None)
        .await
        .unwrap();
    let now = Utc::now();
    let (started, cancelled) = (j.start(now).unwrap(), j.cancel(now).unwrap());
    let (a, b) = tokio::join!(store.update_job(&started), store.update_job(&cancelled));
    assert!(
        a.is_ok() ^ b.is_ok(),
        "exactly one of two writers of version 1 wins: {a:?} {b:?}"
    );
}

pub async fn listings_paginate_filter_and_order(store: &dyn Store) {
    let owner = format!("lister-{}", uuid::Uuid::new_v4().simple());
    let base = Utc::now() - Span::minutes(10);
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut j = job(&owner, FileId::new());
        j.created_at = base + Span::seconds(i);
        j.updated_at = j.created_at;
        store
            .create_jobs(std::slice::from_ref(&j), None, None)
            .await
            .unwrap();
        ids.push(j.job_id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_jobs(&JobQuery {
                owner: Some(owner.clone()),
                status: None,
                limit: 3,
                cursor: cursor.clone(),
            })
            .await
            .unwrap();
        assert!(page.jobs.len() <= 3);
        seen.extend(page.jobs.iter().map(|j| j.job_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every job once, newest first");
    // Every owner's jobs (the administrator's listing, which DynamoDB reads from 16 shards):
    // jobs created far in the future come first, newest first, each once across pages.
    let future = Utc::now()
        + Span::days(365 * 100)
        + Span::minutes((uuid::Uuid::new_v4().as_u128() % 100_000) as i64);
    let mut newest = Vec::new();
    for i in 0..20 {
        let mut j = job(&owner, FileId::new());
        j.created_at = future + Span::seconds(i);
        store
            .create_jobs(std::slice::from_ref(&j), None, None)
            .await
            .unwrap();
        newest.push(j.job_id);
    }
    newest.reverse();
    for status in [None, Some(JobStatus::Queued)] {
        let mut listed = Vec::new();
        let mut cursor = None;
        while listed.len() < newest.len() {
            let page = store
                .list_jobs(&JobQuery {
                    owner: None,
                    status,
                    limit: 3,
                    cursor: cursor.take(),
                })
                .await
                .unwrap();
            assert!(page.jobs.len() <= 3);
            listed.extend(page.jobs.iter().map(|j| j.job_id));
            cursor = Some(page.next_cursor.expect("more pages"));
        }
        assert_eq!(
            listed[..newest.len()],
            newest,
            "all owners' jobs, newest first, once ({status:?})"
        );
    }
    for id in newest {
        store.delete_job(id).await.unwrap();
    }
    let other = store
        .list_jobs(&JobQuery {
            owner: Some("nobody".into()),
            status: None,
            limit: 10,
            cursor: None,
        })
        .await
        .unwrap();
    assert!(other.jobs.is_empty());
    let processing = store
        .list_jobs(&JobQuery {
            owner: Some(owner.clone()),
            status: Some(JobStatus::Processing),
            limit: 10,
            cursor: None,
        })
        .await
        .unwrap();
    assert!(processing.jobs.is_empty());
    assert!(matches!(
        store
            .list_jobs(&JobQuery {
                owner: Some(owner.clone()),
                status: None,
                limit: 3,
                cursor: Some("not-a-cursor".into())
            })
            .await,
        Err(StoreError::InvalidCursor)
    ));
    let oldest = store
        .list_jobs_by_status(JobStatus::Queued, base + Span::seconds(3), 100)
        .await
        .unwrap();
    let mine: Vec<_> = oldest
        .iter()
        .filter(|j| j.owner == owner)
        .map(|j| j.job_id)
        .collect();
    assert_eq!(
        mine,
        ids.iter().rev().take(3).copied().collect::<Vec<_>>(),
        "oldest update first, before the bound"
    );
    let counts = store.count_jobs_by_status().await.unwrap();
    assert!(counts[&JobStatus::Queued] >= 7);
}

pub async fn batches_and_idempotency_are_atomic(store: &dyn Store) {
    let batch_id = BatchId::new();
    let jobs: Vec<_> = (0..3)
        .map(|_| {
            let mut j = job("alice", FileId::new());
            j.batch_id = Some(batch_id);
            j
        })
        .collect();
    let batch = Batch {
        batch_id,
        owner: "alice".into(),
        job_ids: jobs.iter().map(|j| j.job_id).collect(),
        created_at: Utc::now(),
    };
    store.create_jobs(&jobs, Some(&batch), None).await.unwrap();
    assert_eq!(
        store.get_batch(batch_id).await.unwrap(),
        Some(batch.clone())
    );
    // A batch whose second job collides writes nothing at all.
    let fresh = job("alice", FileId::new());
    let clash_batch = Batch {
        batch_id: BatchId::new(),
        owner: "alice".into(),
        job_ids: vec![fresh.job_id, jobs[0].job_id],
        created_at: Utc::now(),
    };
    assert!(
        store
            .create_jobs(&[fresh.clone(), jobs[0].clone()], Some(&clash_batch), None)
            .await
            .is_err()
    );
    assert_eq!(store.get_job(fresh.job_id).await.unwrap(), None);
    assert_eq!(store.get_batch(clash_batch.batch_id).await.unwrap(), None);

    let first = job("alice", FileId::new());
    assert_eq!(
        store
            .create_jobs(std::slice::from_ref(&first), None, Some("k1"))
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    let second = job("alice", FileId::new());
    assert_eq!(
        store
            .create_jobs(std::slice::from_ref(&second), None, Some("k1"))
            .await
            .unwrap(),
        CreateOutcome::Existing(first.job_id)
    );
    assert_eq!(store.get_job(second.job_id).await.unwrap(), None);
    // Keys are per owner.
    let bobs = job("bob", FileId::new());
    assert_eq!(
        store
            .create_jobs(std::slice::from_ref(&bobs), None, Some("k1"))
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    store.delete_batch(batch_id).await.unwrap();
    assert_eq!(store.get_batch(batch_id).await.unwrap(), None);
}

/// A deleted job frees its idempotency key: sending the key again creates a new job instead of
/// answering one that no longer exists.
pub async fn deleting_a_job_frees_its_idempotency_key(store: &dyn Store) {
    let owner = format!("idem-{}", uuid::Uuid::new_v4().simple());
    let first = job(&owner, FileId::new());
    let created = store
        .create_jobs(std::slice::from_ref(&first), None, Some("replayed"))
        .await
        .unwrap();
    assert_eq!(created, CreateOutcome::Created);
    store.delete_job(first.job_id).await.unwrap();
    let again = job(&owner, FileId::new());
    assert_eq!(
        store
            .create_jobs(std::slice::from_ref(&again), None, Some("replayed"))
            .await
            .unwrap(),
        CreateOutcome::Created,
        "the key of a deleted job is free again"
    );
    let third = job(&owner, FileId::new());
    assert_eq!(
        store
            .create_jobs(std::slice::from_ref(&third), None, Some("replayed"))
            .await
            .unwrap(),
        CreateOutcome::Existing(again.job_id)
    );
    // A key older than the window is free again, whether or not its store deleted it yet.
    let mut old = job(&owner, FileId::new());
    old.created_at = Utc::now() - IDEMPOTENCY_WINDOW - Span::minutes(5);
    store
        .create_jobs(std::slice::from_ref(&old), None, Some("old"))
        .await
        .unwrap();
    let fresh = job(&owner, FileId::new());
    assert_eq!(
        store
            .create_jobs(std::slice::from_ref(&fresh), None, Some("old"))
            .await
            .unwrap(),
        CreateOutcome::Created
    );
}

/// A counter whose window ended starts again, however lazily its store deletes it.
pub async fn counters_restart_after_their_window(store: &dyn Store) {
    let key = format!("restart-{}", uuid::Uuid::new_v4());
    store
        .add_to_counter(&key, 7, Utc::now() - Span::seconds(1))
        .await
        .unwrap();
    let until = Utc::now() + Span::seconds(60);
    assert_eq!(store.add_to_counter(&key, 1, until).await.unwrap(), 1);
    assert_eq!(store.add_to_counter(&key, 1, until).await.unwrap(), 2);
    assert_eq!(store.get_counter(&key).await.unwrap(), 2);
}

/// The file listings cleanup, the sweeper and deletions use: jobs of a file, pending files and
/// files created before a time, oldest first, within the limit.
pub async fn file_listings_find_what_they_name(store: &dyn Store) {
    let owner = format!("lists-{}", uuid::Uuid::new_v4().simple());
    let mut files = Vec::new();
    for i in 0..3 {
        let mut f = file(&owner);
        f.created_at = Utc::now() - Span::hours(10 - i);
        store.create_file(&f).await.unwrap();
        files.push(f);
    }
    // The newest is ready; the two older stay pending.
    let mut ready = files[2].clone();
    ready.status = FileStatus::Ready;
    ready.version += 1;
    store.update_file(&ready).await.unwrap();

    let a = job(&owner, files[0].file_id);
    let b = job(&owner, files[0].file_id);
    let other = job(&owner, files[1].file_id);
    for j in [&a, &b, &other] {
        insert_job(store, j).await;
    }
    let mut of_first: Vec<_> = store
        .list_jobs_for_file(files[0].file_id)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    of_first.sort();
    let mut expected = vec![a.job_id, b.job_id];
    expected.sort();
    assert_eq!(of_first, expected);
    assert!(
        store
            .list_jobs_for_file(FileId::new())
            .await
            .unwrap()
            .is_empty()
    );

    let cutoff = Utc::now() - Span::hours(8) - Span::minutes(30);
    let ours = |list: Vec<UploadedFile>| -> Vec<FileId> {
        list.into_iter()
            .filter(|f| f.owner == owner)
            .map(|f| f.file_id)
            .collect()
    };
    assert_eq!(
        ours(store.list_files_created_before(cutoff, 1000).await.unwrap()),
        [files[0].file_id, files[1].file_id],
        "created before the cutoff, oldest first"
    );
    let pending = ours(store.list_pending_files(Utc::now(), 1000).await.unwrap());
    assert_eq!(
        pending,
        [files[0].file_id, files[1].file_id],
        "pending only, oldest first"
    );
    assert_eq!(
        store.list_pending_files(Utc::now(), 1).await.unwrap().len(),
        1,
        "the limit holds"
    );
}

pub async fn counters_count_per_window(store: &dyn Store) {
    let key = format!("counter-{}", uuid::Uuid::new_v4());
    let until = Utc::now() + Span::seconds(60);
    assert_eq!(store.get_counter(&key).await.unwrap(), 0);
    for expected in 1..=3 {
        assert_eq!(
            store.add_to_counter(&key, 1, until).await.unwrap(),
            expected
        );
    }
    assert_eq!(store.add_to_counter(&key, 5, until).await.unwrap(), 8);
    assert_eq!(store.add_to_counter(&key, -5, until).await.unwrap(), 3);
    assert_eq!(store.get_counter(&key).await.unwrap(), 3);
    let other = format!("{key}-other");
    assert_eq!(store.add_to_counter(&other, 1, until).await.unwrap(), 1);
    let expired = format!("{key}-expired");
    store
        .add_to_counter(&expired, 4, Utc::now() - Span::seconds(1))
        .await
        .unwrap();
    assert_eq!(store.get_counter(&expired).await.unwrap(), 0);
    store.ping().await.unwrap();
}

/// State documents are written conditionally on their version: a stale writer is refused, and
/// concurrent read-modify-write loops lose no update.
pub async fn state_documents_are_versioned(store: &dyn Store) {
    let key = format!("state-{}", uuid::Uuid::new_v4());
    assert_eq!(store.get_state(&key).await.unwrap(), None);
    let first = Versioned {
        value: "one".into(),
        version: 1,
    };
    store.put_state(&key, &first).await.unwrap();
    assert!(matches!(
        store.put_state(&key, &first).await,
        Err(StoreError::Conflict)
    ));
    let second = Versioned {
        value: "two".into(),
        version: 2,
    };
    store.put_state(&key, &second).await.unwrap();
    assert!(matches!(
        store
            .put_state(
                &key,
                &Versioned {
                    value: "stale".into(),
                    version: 2
                }
            )
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_state(&key).await.unwrap(), Some(second));

    let counter = format!("{key}-sum");
    let adds = (0..8).map(|_| {
        update_state::<u64, ()>(store, &counter, |n| {
            *n += 1;
            (true, ())
        })
    });
    for result in futures_util::future::join_all(adds).await {
        result.unwrap();
    }
    assert_eq!(read_state::<u64>(store, &counter).await.unwrap(), 8);
}

/// `max_receives` must be the queue's configured limit; `unit` the shortest visibility timeout
/// and delay the backend honours (SQS counts whole seconds).
pub async fn queue_delivers_with_delays_visibility_and_dead_letters(
    queue: &dyn WorkQueue,
    max_receives: u32,
    unit: Duration,
) {
    let id = queue.send("now", Duration::ZERO).await.unwrap();
    queue.send("later", unit * 2).await.unwrap();
    let got = queue.receive(10, unit).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["now"],
        "the delayed message is not visible yet"
    );
    assert_eq!(
        (got[0].message_id.as_str(), got[0].receive_count),
        (id.as_str(), 1)
    );
    assert!(
        queue.receive(10, unit).await.unwrap().is_empty(),
        "hidden while in flight"
    );
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.in_flight, depth.delayed, depth.visible), (1, 1, 0));

    tokio::time::sleep(unit * 2 + unit / 2).await;
    // The unacknowledged message comes back (a crashed handler), with its count, and the
    // delayed one is visible now.
    let mut again = queue.receive(10, unit).await.unwrap();
    again.sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(
        again
            .iter()
            .map(|m| (m.body.as_str(), m.receive_count))
            .collect::<Vec<_>>(),
        [("later", 1), ("now", 2)]
    );
    for m in &again {
        if m.body == "later" {
            queue.delete(&m.receipt).await.unwrap();
        }
    }
    // Keep failing "now": after `max_receives` deliveries it moves to the dead letters.
    for _ in 2..max_receives {
        tokio::time::sleep(unit + unit / 5).await;
        let m = queue.receive(10, unit).await.unwrap();
        assert_eq!(m.len(), 1);
    }
    tokio::time::sleep(unit + unit / 5).await;
    assert!(queue.receive(10, unit).await.unwrap().is_empty());
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(
        dead.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(),
        ["now"]
    );
    assert!(dead[0].receive_count >= max_receives, "{dead:?}");
    let depth = queue.depth().await.unwrap();
    assert_eq!(
        (depth.visible, depth.in_flight, depth.delayed, depth.dead),
        (0, 0, 0, 1)
    );
}

pub async fn storage_round_trips_and_signs(storage: &dyn ObjectStorage) {
    let key = format!("uploads/contract/{}", uuid::Uuid::new_v4());
    assert!(storage.head(&key).await.unwrap().is_none());
    storage
        .put(&key, Bytes::from_static(b"\x89PNG data"), "image/png")
        .await
        .unwrap();
    assert_eq!(
        storage.get(&key).await.unwrap(),
        Bytes::from_static(b"\x89PNG data")
    );
    let meta = storage.head(&key).await.unwrap().unwrap();
    assert_eq!((meta.size, meta.content_type.as_str()), (9, "image/png"));
    let keys: BTreeSet<String> = storage
        .list("uploads/contract/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert!(keys.contains(&key));
    let put = storage
        .presign_put(&key, "image/png", 9, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        (put.method, put.headers["Content-Type"].as_str()),
        ("PUT", "image/png")
    );
    assert!(
        put.expires_at > Utc::now() + Span::seconds(50)
            && put.expires_at <= Utc::now() + Span::seconds(61)
    );
    let get = storage
        .presign_get(&key, "model.glb", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(get.method, "GET");
    storage.delete(&key).await.unwrap();
    storage.delete(&key).await.unwrap();
    assert!(storage.get(&key).await.is_err());
    storage.ping().await.unwrap();
}

/// The webhook store: endpoints per owner within their limit, conditional updates, deliveries
/// newest first, an endpoint deleted with its deliveries.
pub async fn webhook_endpoints_and_deliveries(store: &dyn WebhookStore) {
    use image2model_shared::domain::webhook::{
        AttemptOutcome, Delivery, EventType, WebhookEndpoint,
    };
    let owner = format!("hooks-{}", uuid::Uuid::new_v4().simple());
    let now = Utc::now();
    let endpoint = |n: i64| {
        WebhookEndpoint::new(
            &owner,
            format!("https://example.com/{n}"),
            None,
            None,
            "whsec_x".into(),
            now + Span::seconds(n),
        )
    };
    let (first, second) = (endpoint(0), endpoint(1));
    store.create_endpoint(&first, 2).await.unwrap();
    store.create_endpoint(&second, 2).await.unwrap();
    assert!(
        matches!(
            store.create_endpoint(&endpoint(2), 2).await,
            Err(StoreError::Conflict)
        ),
        "the owner's limit"
    );
    let listed: Vec<_> = store
        .list_endpoints(Some(&owner))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.endpoint_id)
        .collect();
    assert_eq!(listed, [first.endpoint_id, second.endpoint_id]);
    let everyone = store.list_endpoints(None).await.unwrap();
    assert!(everyone.iter().any(|e| e.endpoint_id == first.endpoint_id));
    assert!(
        store
            .list_endpoints(Some("nobody"))
            .await
            .unwrap()
            .is_empty()
    );

    let rotated = first.rotate("whsec_y".into(), now);
    store.update_endpoint(&rotated).await.unwrap();
    assert!(
        matches!(
            store.update_endpoint(&rotated).await,
            Err(StoreError::Conflict)
        ),
        "the same version twice"
    );
    assert_eq!(
        store.get_endpoint(first.endpoint_id).await.unwrap(),
        Some(rotated.clone())
    );

    let mut deliveries = Vec::new();
    for n in 0..3 {
        let d = Delivery::new(
            &rotated,
            format!("msg_contract_{n}"),
            EventType::JobCompleted,
            format!("{{\"n\":{n}}}"),
            now + Span::seconds(n),
        );
        store.create_delivery(&d).await.unwrap();
        deliveries.push(d);
    }
    // One event to one endpoint is one delivery, however often it is announced.
    assert!(matches!(
        store.create_delivery(&deliveries[1]).await,
        Err(StoreError::Conflict)
    ));
    let tried = deliveries[0].after_attempt(
        &AttemptOutcome::Answered(500),
        &image2model_shared::domain::webhook::RETRY_SCHEDULE,
        0.5,
        now,
    );
    store.update_delivery(&tried).await.unwrap();
    assert!(matches!(
        store.update_delivery(&tried).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.get_delivery(tried.delivery_id).await.unwrap(),
        Some(tried.clone())
    );
    let newest: Vec<_> = store
        .list_deliveries(rotated.endpoint_id, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.delivery_id)
        .collect();
    assert_eq!(
        newest,
        [deliveries[2].delivery_id, deliveries[1].delivery_id]
    );

    store.delete_endpoint(rotated.endpoint_id).await.unwrap();
    assert_eq!(store.get_endpoint(rotated.endpoint_id).await.unwrap(), None);
    assert_eq!(store.get_delivery(tried.delivery_id).await.unwrap(), None);
    assert!(
        store
            .list_deliveries(rotated.endpoint_id, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
