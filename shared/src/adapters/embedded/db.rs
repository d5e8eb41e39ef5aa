//! The embedded database: one SQLite file holding the store's records and the work queue, so a
//! restart loses nothing. This file opens it and runs statements off the async runtime (point
//! reads in place when the connection is free);
//! [`super::store`] and [`super::queue`] implement the two ports on it.

use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode};
use std::path::Path;
use std::sync::{Arc, Mutex, TryLockError};
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

/// The store and queue in one SQLite database file: one connection that writes (and reads
/// inside its writes), and a few that only read, so that point reads from every worker thread
/// run at once, beside a write (WAL), instead of queueing for one connection.
#[derive(Clone)]
pub struct EmbeddedDb {
    /// The writing connection first, then the reading ones.
    connections: Arc<[Mutex<Connection>]>,
    pub(super) max_receives: u32,
}

/// Where the writing connection is in [`EmbeddedDb::connections`]; the reading ones follow.
const WRITER: usize = 0;

/// How long a statement in the blocking pool waits for a lock another connection holds.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// How long a read on an async worker thread waits for a lock: not at all (see
/// [`EmbeddedDb::read`]).
const READER_WAIT: Duration = Duration::ZERO;

/// The connections that only read: one per core, and one more.
fn reader_count() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from) + 1
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
        conn.busy_timeout(BUSY_WAIT).map_err(|e| fail(&e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| fail(&e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| fail(&e))?;
        conn.execute_batch(SCHEMA).map_err(|e| fail(&e))?;
        let readers = (0..reader_count()).map(|_| {
            let reader = Connection::open(path)?;
            reader.busy_timeout(READER_WAIT)?;
            reader.pragma_update(None, "query_only", true)?;
            Ok(Mutex::new(reader))
        });
        let connections = std::iter::once(Ok(Mutex::new(conn)))
            .chain(readers)
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| fail(&e))?;
        Ok(Self {
            connections: connections.into(),
            max_receives: max_receives.max(1),
        })
    }

    /// Runs `f` on the writing connection in the blocking pool.
    pub(super) async fn call<T, F>(&self, f: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.in_blocking_pool(WRITER, f).await
    }

    /// Runs the point read `f` here, on the first free reading connection (a point read from
    /// SQLite's cache takes microseconds, less than the hop to the blocking pool and back). Here
    /// a read does not wait for a lock another connection holds ([`READER_WAIT`] is zero; only
    /// SQLite's own brief WAL retries remain): when the database is busy, or every reading
    /// connection is, it runs in the blocking pool, where it may wait.
    pub(super) async fn read<T, F>(&self, f: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        for reader in &self.connections[WRITER + 1..] {
            let answer = match reader.try_lock() {
                Ok(mut guard) => f(&mut guard),
                Err(TryLockError::Poisoned(poisoned)) => f(&mut poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => continue,
            };
            match answer {
                Err(err) if err.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => break,
                answer => return answer,
            }
        }
        self.in_blocking_pool(WRITER + 1, move |conn| {
            conn.busy_timeout(BUSY_WAIT)?;
            // Even a read that panics leaves the connection as the async threads use it.
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
            conn.busy_timeout(READER_WAIT)?;
            answer.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
        .await
    }

    /// Runs `f` on connection `index` in the blocking pool, once it is free.
    async fn in_blocking_pool<T, F>(&self, index: usize, f: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connections = Arc::clone(&self.connections);
        tokio::task::spawn_blocking(move || {
            let mut guard = connections[index]
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::ThreadId;

    /// A read that finds the database busy (another connection holding it) is not kept waiting
    /// on the async thread: it runs again in the blocking pool, where it may wait.
    #[tokio::test(flavor = "current_thread")]
    async fn a_read_that_finds_the_database_busy_waits_in_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(&dir.path().join("db.sqlite"), 3).unwrap();
        let threads = Arc::new(Mutex::new(Vec::<ThreadId>::new()));
        let answer = db
            .read({
                let threads = Arc::clone(&threads);
                move |conn| {
                    let mut seen = threads.lock().unwrap();
                    seen.push(std::thread::current().id());
                    if seen.len() == 1 {
                        return Err(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            None,
                        ));
                    }
                    conn.query_row("SELECT 7", [], |r| r.get::<_, i64>(0))
                }
            })
            .await;
        assert_eq!(answer.unwrap(), 7);
        let seen = threads.lock().unwrap().clone();
        let here = std::thread::current().id();
        assert_eq!(seen.len(), 2, "tried once here and once in the pool");
        assert_eq!(seen[0], here);
        assert_ne!(seen[1], here, "the retry ran on the async thread");
    }

    /// Any other error is the read's answer, not retried.
    #[tokio::test(flavor = "current_thread")]
    async fn a_read_that_fails_otherwise_fails_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(&dir.path().join("db.sqlite"), 3).unwrap();
        let tries = Arc::new(Mutex::new(0));
        let answer = db
            .read({
                let tries = Arc::clone(&tries);
                move |conn| {
                    *tries.lock().unwrap() += 1;
                    conn.query_row("SELECT * FROM no_such_table", [], |r| r.get::<_, i64>(0))
                }
            })
            .await;
        assert!(answer.is_err());
        assert_eq!(*tries.lock().unwrap(), 1);
    }
}
