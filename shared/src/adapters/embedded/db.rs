//! The embedded database: one SQLite file holding the store's records and the work queue, so a
//! restart loses nothing. This file opens it and runs statements off the async runtime;
//! [`super::store`] and [`super::queue`] implement the two ports on it.

use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS files (
    file_id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL,
    created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, version INTEGER NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS files_by_created ON files(created_at);
CREATE INDEX IF NOT EXISTS files_by_status ON files(status, created_at);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, owner TEXT NOT NULL, file_id TEXT NOT NULL, batch_id TEXT,
    status TEXT NOT NULL, progress INTEGER NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs(owner, created_at DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs(created_at DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, updated_at);
CREATE INDEX IF NOT EXISTS jobs_by_file ON jobs(file_id);
CREATE TABLE IF NOT EXISTS batches (batch_id TEXT PRIMARY KEY, owner TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    owner TEXT NOT NULL, key TEXT NOT NULL, job_id TEXT NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY (owner, key));
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS counters_by_expiry ON counters(expires_at);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    endpoint_id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at INTEGER NOT NULL,
    version INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS webhook_endpoints_by_owner ON webhook_endpoints(owner, created_at);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, created_at INTEGER NOT NULL,
    version INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_endpoint ON webhook_deliveries(endpoint_id, created_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_age ON webhook_deliveries(created_at);
CREATE TABLE IF NOT EXISTS queue (
    message_id TEXT PRIMARY KEY, body TEXT NOT NULL, sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL, receipt TEXT);
CREATE INDEX IF NOT EXISTS queue_by_visibility ON queue(visible_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    message_id TEXT PRIMARY KEY, body TEXT NOT NULL, receive_count INTEGER NOT NULL,
    sent_at INTEGER NOT NULL, dead_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS delivery_queue (
    message_id TEXT PRIMARY KEY, body TEXT NOT NULL, sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL, receipt TEXT);
CREATE INDEX IF NOT EXISTS delivery_queue_by_visibility ON delivery_queue(visible_at);
CREATE TABLE IF NOT EXISTS delivery_dead_letters (
    message_id TEXT PRIMARY KEY, body TEXT NOT NULL, receive_count INTEGER NOT NULL,
    sent_at INTEGER NOT NULL, dead_at INTEGER NOT NULL);
";

/// The store and queue in one SQLite database file.
#[derive(Clone)]
pub struct EmbeddedDb {
    conn: Arc<Mutex<Connection>>,
    pub(super) max_receives: u32,
}

impl EmbeddedDb {
    /// Opens (creating if needed) the database at `path`. A queue message received more than
    /// `max_receives` times moves to the dead letters.
    pub fn open(path: &Path, max_receives: u32) -> Result<Self, StoreError> {
        let fail = |e: &dyn std::fmt::Display| StoreError::Backend(e.to_string());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| fail(&e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| fail(&e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| fail(&e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| fail(&e))?;
        conn.execute_batch(SCHEMA).map_err(|e| fail(&e))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            max_receives: max_receives.max(1),
        })
    }

    /// Runs `f` on the connection in the blocking pool.
    pub(super) async fn call<T, F>(&self, f: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
    }
}

pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(super) fn from_micros(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}
