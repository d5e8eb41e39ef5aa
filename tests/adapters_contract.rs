//! The port contract run against the embedded adapters (SQLite store and queue, disk storage),
//! plus what only an embedded database must show: nothing is lost on restart.

use image2model_shared::adapters::{DiskStorage, EmbeddedDb};
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
async fn embedded_files() {
    contract::files_are_created_once_and_updated_conditionally(&db().1).await;
}

#[tokio::test]
async fn embedded_job_updates() {
    contract::job_updates_are_conditional_and_monotonic(&db().1).await;
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
async fn embedded_queue() {
    contract::queue_delivers_with_delays_visibility_and_dead_letters(&db().1, MAX_RECEIVES).await;
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
async fn a_restart_keeps_records_and_in_flight_messages() {
    let (dir, db) = db();
    let f = file("alice");
    let j = job("alice", f.file_id);
    db.create_file(&f).await.unwrap();
    db.create_jobs(std::slice::from_ref(&j), None, None)
        .await
        .unwrap();
    db.send("queued", Duration::ZERO).await.unwrap();
    db.send("in flight", Duration::ZERO).await.unwrap();
    let taken = db.receive(1, Duration::from_millis(200)).await.unwrap();
    assert_eq!(taken.len(), 1);
    drop(db);

    let reopened = EmbeddedDb::open(&dir.path().join("db.sqlite"), MAX_RECEIVES).unwrap();
    assert_eq!(reopened.get_file(f.file_id).await.unwrap(), Some(f));
    assert_eq!(reopened.get_job(j.job_id).await.unwrap(), Some(j));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mut bodies: Vec<String> = reopened
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
