//! The embedded database: the store and the work queue in one SQLite file, so a restart loses
//! nothing. Records are stored as JSON next to the columns the queries filter on; every state
//! change is a conditional statement checked by SQLite, not by the caller.

use crate::domain::{Batch, BatchId, FileId, GenerationJob, JobId, JobStatus, UploadedFile};
use crate::ports::queue::{DeadLetter, QueueDepth, QueueError, ReceivedMessage, WorkQueue};
use crate::ports::store::{CreateOutcome, JobPage, JobQuery, Store, StoreError, Versioned};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
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
CREATE TABLE IF NOT EXISTS queue (
    message_id TEXT PRIMARY KEY, body TEXT NOT NULL, sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL, receipt TEXT);
CREATE INDEX IF NOT EXISTS queue_by_visibility ON queue(visible_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    message_id TEXT PRIMARY KEY, body TEXT NOT NULL, receive_count INTEGER NOT NULL,
    sent_at INTEGER NOT NULL, dead_at INTEGER NOT NULL);
";

const TERMINAL: &str = "('completed','failed','cancelled')";

/// The store and queue in one SQLite database file.
#[derive(Clone)]
pub struct EmbeddedDb {
    conn: Arc<Mutex<Connection>>,
    max_receives: u32,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}

fn to_json<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn from_json<T: serde::de::DeserializeOwned>(raw: &str) -> rusqlite::Result<T> {
    serde_json::from_str(raw).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl EmbeddedDb {
    /// Opens (creating if needed) the database at `path`. A queue message received more than
    /// `max_receives` times moves to the dead letters.
    pub fn open(path: &Path, max_receives: u32) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Backend(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            max_receives: max_receives.max(1),
        })
    }

    async fn call<T, F>(&self, f: F) -> rusqlite::Result<T>
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

fn backend(err: rusqlite::Error) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn queue_backend(err: rusqlite::Error) -> QueueError {
    QueueError::Backend(err.to_string())
}

/// Fails with `Conflict` unless exactly one row changed.
fn one_row(changed: usize) -> Result<(), StoreError> {
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

fn insert_job(tx: &rusqlite::Transaction<'_>, job: &GenerationJob) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO jobs (job_id, owner, file_id, batch_id, status, progress, created_at, updated_at, version, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            job.job_id.to_string(),
            job.owner,
            job.file_id.to_string(),
            job.batch_id.map(|b| b.to_string()),
            job.status.as_str(),
            job.progress,
            micros(job.created_at),
            micros(job.updated_at),
            job.version,
            to_json(job)?,
        ],
    )?;
    Ok(())
}

fn encode_cursor(job: &GenerationJob) -> String {
    hex::encode(format!("{}|{}", micros(job.created_at), job.job_id))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let raw = hex::decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    let raw = String::from_utf8(raw).map_err(|_| StoreError::InvalidCursor)?;
    let (at, id) = raw.split_once('|').ok_or(StoreError::InvalidCursor)?;
    let at = at.parse().map_err(|_| StoreError::InvalidCursor)?;
    let id: JobId = id.parse().map_err(|_| StoreError::InvalidCursor)?;
    Ok((at, id.to_string()))
}

fn jobs_from_rows(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<GenerationJob>> {
    stmt.query_map(params, |row| row.get::<_, String>(0))?
        .map(|raw| from_json(&raw?))
        .collect()
}

#[async_trait]
impl Store for EmbeddedDb {
    async fn create_file(&self, file: &UploadedFile) -> Result<(), StoreError> {
        let file = file.clone();
        let result = self
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO files (file_id, owner, status, created_at, expires_at, version, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        file.file_id.to_string(),
                        file.owner,
                        file.status.as_str(),
                        micros(file.created_at),
                        micros(file.expires_at),
                        file.version,
                        to_json(&file)?,
                    ],
                )
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
            Err(e) => Err(backend(e)),
        }
    }

    async fn get_file(&self, id: FileId) -> Result<Option<UploadedFile>, StoreError> {
        self.call(move |conn| {
            conn.query_row(
                "SELECT body FROM files WHERE file_id = ?1",
                [id.to_string()],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map(|raw| from_json(&raw))
            .transpose()
        })
        .await
        .map_err(backend)
    }

    async fn update_file(&self, file: &UploadedFile) -> Result<(), StoreError> {
        let file = file.clone();
        let changed = self
            .call(move |conn| {
                conn.execute(
                    "UPDATE files SET status = ?1, expires_at = ?2, version = ?3, body = ?4
                     WHERE file_id = ?5 AND version = ?6",
                    params![
                        file.status.as_str(),
                        micros(file.expires_at),
                        file.version,
                        to_json(&file)?,
                        file.file_id.to_string(),
                        file.version.saturating_sub(1),
                    ],
                )
            })
            .await
            .map_err(backend)?;
        one_row(changed)
    }

    async fn delete_file(&self, id: FileId) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.execute("DELETE FROM files WHERE file_id = ?1", [id.to_string()])
        })
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn list_files_created_before(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UploadedFile>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT body FROM files WHERE created_at < ?1 ORDER BY created_at LIMIT ?2",
            )?;
            stmt.query_map(params![micros(before), limit as i64], |r| {
                r.get::<_, String>(0)
            })?
            .map(|raw| from_json(&raw?))
            .collect()
        })
        .await
        .map_err(backend)
    }

    async fn list_pending_files(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UploadedFile>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT body FROM files WHERE status = 'pending' AND created_at < ?1 ORDER BY created_at LIMIT ?2",
            )?;
            stmt.query_map(params![micros(before), limit as i64], |r| r.get::<_, String>(0))?
                .map(|raw| from_json(&raw?))
                .collect()
        })
        .await
        .map_err(backend)
    }

    async fn create_jobs(
        &self,
        jobs: &[GenerationJob],
        batch: Option<&Batch>,
        idempotency_key: Option<&str>,
    ) -> Result<CreateOutcome, StoreError> {
        let jobs = jobs.to_vec();
        let batch = batch.cloned();
        let key = idempotency_key.map(str::to_owned);
        let result = self
            .call(move |conn| {
                let tx = conn.transaction()?;
                if let (Some(key), Some(first)) = (&key, jobs.first()) {
                    let existing: Option<String> = tx
                        .query_row(
                            "SELECT job_id FROM idempotency_keys WHERE owner = ?1 AND key = ?2",
                            params![first.owner, key],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(existing) = existing {
                        return Ok(Err(existing));
                    }
                    tx.execute(
                        "INSERT INTO idempotency_keys (owner, key, job_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![first.owner, key, first.job_id.to_string(), micros(first.created_at)],
                    )?;
                }
                for job in &jobs {
                    insert_job(&tx, job)?;
                }
                if let Some(batch) = &batch {
                    tx.execute(
                        "INSERT INTO batches (batch_id, owner, body) VALUES (?1, ?2, ?3)",
                        params![batch.batch_id.to_string(), batch.owner, to_json(batch)?],
                    )?;
                }
                tx.commit()?;
                Ok(Ok(()))
            })
            .await;
        match result {
            Ok(Ok(())) => Ok(CreateOutcome::Created),
            Ok(Err(existing)) => existing
                .parse()
                .map(CreateOutcome::Existing)
                .map_err(|_| StoreError::Backend("corrupt idempotency record".to_owned())),
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
            Err(e) => Err(backend(e)),
        }
    }

    async fn get_job(&self, id: JobId) -> Result<Option<GenerationJob>, StoreError> {
        self.call(move |conn| {
            conn.query_row(
                "SELECT body FROM jobs WHERE job_id = ?1",
                [id.to_string()],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map(|raw| from_json(&raw))
            .transpose()
        })
        .await
        .map_err(backend)
    }

    async fn update_job(&self, job: &GenerationJob) -> Result<(), StoreError> {
        let job = job.clone();
        let changed = self
            .call(move |conn| {
                conn.execute(
                    &format!(
                        "UPDATE jobs SET status = ?1, progress = ?2, updated_at = ?3, version = ?4, body = ?5
                         WHERE job_id = ?6 AND version = ?7 AND status NOT IN {TERMINAL} AND progress <= ?2"
                    ),
                    params![
                        job.status.as_str(),
                        job.progress,
                        micros(job.updated_at),
                        job.version,
                        to_json(&job)?,
                        job.job_id.to_string(),
                        job.version.saturating_sub(1),
                    ],
                )
            })
            .await
            .map_err(backend)?;
        one_row(changed)
    }

    async fn reopen_job(&self, job: &GenerationJob) -> Result<(), StoreError> {
        let job = job.clone();
        let changed = self
            .call(move |conn| {
                conn.execute(
                    "UPDATE jobs SET status = ?1, progress = ?2, updated_at = ?3, version = ?4, body = ?5
                     WHERE job_id = ?6 AND version = ?7 AND status IN ('failed','cancelled') AND ?1 = 'queued'",
                    params![
                        job.status.as_str(),
                        job.progress,
                        micros(job.updated_at),
                        job.version,
                        to_json(&job)?,
                        job.job_id.to_string(),
                        job.version.saturating_sub(1),
                    ],
                )
            })
            .await
            .map_err(backend)?;
        one_row(changed)
    }

    async fn delete_job(&self, id: JobId) -> Result<(), StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM jobs WHERE job_id = ?1", [id.to_string()])?;
            tx.execute(
                "DELETE FROM idempotency_keys WHERE job_id = ?1",
                [id.to_string()],
            )?;
            tx.commit()
        })
        .await
        .map_err(backend)
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let owner = query.owner.clone();
        let status = query.status.map(|s| s.as_str());
        let limit = query.limit.clamp(1, 1000);
        let mut jobs = self
            .call(move |conn| {
                let (at, id) = after.unwrap_or((i64::MAX, String::new()));
                let mut stmt = conn.prepare(
                    "SELECT body FROM jobs
                     WHERE (?1 IS NULL OR owner = ?1) AND (?2 IS NULL OR status = ?2)
                       AND (created_at < ?3 OR (created_at = ?3 AND job_id < ?4) OR ?4 = '')
                     ORDER BY created_at DESC, job_id DESC LIMIT ?5",
                )?;
                jobs_from_rows(
                    &mut stmt,
                    params![owner, status, at, id, (limit + 1) as i64],
                )
            })
            .await
            .map_err(backend)?;
        let next_cursor = if jobs.len() > limit {
            jobs.truncate(limit);
            jobs.last().map(encode_cursor)
        } else {
            None
        };
        Ok(JobPage { jobs, next_cursor })
    }

    async fn list_jobs_by_status(
        &self,
        status: JobStatus,
        updated_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<GenerationJob>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT body FROM jobs WHERE status = ?1 AND updated_at < ?2 ORDER BY updated_at LIMIT ?3",
            )?;
            jobs_from_rows(&mut stmt, params![status.as_str(), micros(updated_before), limit as i64])
        })
        .await
        .map_err(backend)
    }

    async fn list_jobs_for_file(&self, file_id: FileId) -> Result<Vec<GenerationJob>, StoreError> {
        self.call(move |conn| {
            let mut stmt =
                conn.prepare("SELECT body FROM jobs WHERE file_id = ?1 ORDER BY created_at")?;
            jobs_from_rows(&mut stmt, [file_id.to_string()])
        })
        .await
        .map_err(backend)
    }

    async fn count_jobs_by_status(&self) -> Result<BTreeMap<JobStatus, u64>, StoreError> {
        let rows = self
            .call(|conn| {
                let mut stmt = conn.prepare("SELECT status, COUNT(*) FROM jobs GROUP BY status")?;
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(backend)?;
        let mut counts: BTreeMap<JobStatus, u64> = JobStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for (status, n) in rows {
            if let Some(status) = JobStatus::parse(&status) {
                counts.insert(status, n.max(0) as u64);
            }
        }
        Ok(counts)
    }

    async fn get_batch(&self, id: BatchId) -> Result<Option<Batch>, StoreError> {
        self.call(move |conn| {
            conn.query_row(
                "SELECT body FROM batches WHERE batch_id = ?1",
                [id.to_string()],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map(|raw| from_json(&raw))
            .transpose()
        })
        .await
        .map_err(backend)
    }

    async fn delete_batch(&self, id: BatchId) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.execute("DELETE FROM batches WHERE batch_id = ?1", [id.to_string()])
        })
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn add_to_counter(
        &self,
        key: &str,
        delta: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let key = key.to_owned();
        let now = micros(Utc::now());
        self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM counters WHERE expires_at <= ?1", [now])?;
            let value: i64 = tx.query_row(
                "INSERT INTO counters (key, value, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = value + ?2 RETURNING value",
                params![key, delta, micros(expires_at)],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(value)
        })
        .await
        .map_err(backend)
    }

    async fn get_counter(&self, key: &str) -> Result<i64, StoreError> {
        let key = key.to_owned();
        let now = micros(Utc::now());
        self.call(move |conn| {
            conn.query_row(
                "SELECT value FROM counters WHERE key = ?1 AND expires_at > ?2",
                params![key, now],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
        })
        .await
        .map_err(backend)
    }

    async fn get_state(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let key = key.to_owned();
        self.call(move |conn| {
            conn.query_row(
                "SELECT value, version FROM state WHERE key = ?1",
                [key],
                |r| {
                    Ok(Versioned {
                        value: r.get(0)?,
                        version: r.get::<_, i64>(1)?.max(0) as u64,
                    })
                },
            )
            .optional()
        })
        .await
        .map_err(backend)
    }

    async fn put_state(&self, key: &str, state: &Versioned) -> Result<(), StoreError> {
        let (key, state) = (key.to_owned(), state.clone());
        let version = i64::try_from(state.version).map_err(|_| StoreError::Conflict)?;
        let changed = self
            .call(move |conn| {
                if version == 1 {
                    conn.execute(
                        "INSERT INTO state (key, value, version) VALUES (?1, ?2, 1)
                         ON CONFLICT(key) DO NOTHING",
                        params![key, state.value],
                    )
                } else {
                    conn.execute(
                        "UPDATE state SET value = ?2, version = ?3 WHERE key = ?1 AND version = ?3 - 1",
                        params![key, state.value, version],
                    )
                }
            })
            .await
            .map_err(backend)?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.call(|conn| conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl WorkQueue for EmbeddedDb {
    async fn send(&self, body: &str, delay: Duration) -> Result<String, QueueError> {
        let id = uuid::Uuid::new_v4().to_string();
        let body = body.to_owned();
        let now = Utc::now();
        let visible = now + chrono::Duration::from_std(delay).unwrap_or_default();
        let message_id = id.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO queue (message_id, body, sent_at, visible_at, receive_count, receipt) VALUES (?1, ?2, ?3, ?4, 0, NULL)",
                params![message_id, body, micros(now), micros(visible)],
            )
        })
        .await
        .map_err(queue_backend)?;
        Ok(id)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let max_receives = self.max_receives;
        let now = Utc::now();
        let hidden_until = micros(now + chrono::Duration::from_std(visibility).unwrap_or_default());
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let candidates: Vec<(String, String, i64, u32)> = {
                let mut stmt = tx.prepare(
                    "SELECT message_id, body, sent_at, receive_count FROM queue WHERE visible_at <= ?1 ORDER BY visible_at LIMIT ?2",
                )?;
                stmt.query_map(params![micros(now), (max.max(1) * 4) as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            let mut received = Vec::new();
            for (id, body, sent_at, count) in candidates {
                if count >= max_receives {
                    tx.execute(
                        "INSERT OR REPLACE INTO dead_letters (message_id, body, receive_count, sent_at, dead_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, body, count, sent_at, micros(now)],
                    )?;
                    tx.execute("DELETE FROM queue WHERE message_id = ?1", [&id])?;
                    continue;
                }
                if received.len() == max {
                    continue;
                }
                let receipt = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    "UPDATE queue SET receive_count = receive_count + 1, visible_at = ?1, receipt = ?2 WHERE message_id = ?3",
                    params![hidden_until, receipt, id],
                )?;
                received.push(ReceivedMessage { message_id: id, receipt, body, receive_count: count + 1 });
            }
            tx.commit()?;
            Ok(received)
        })
        .await
        .map_err(queue_backend)
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        let receipt_owned = receipt.to_owned();
        let changed = self
            .call(move |conn| conn.execute("DELETE FROM queue WHERE receipt = ?1", [receipt_owned]))
            .await
            .map_err(queue_backend)?;
        if changed == 1 {
            Ok(())
        } else {
            Err(QueueError::StaleReceipt(receipt.to_owned()))
        }
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT message_id, body, receive_count, sent_at, dead_at FROM dead_letters ORDER BY dead_at DESC LIMIT ?1",
            )?;
            stmt.query_map([limit as i64], |r| {
                Ok(DeadLetter {
                    message_id: r.get(0)?,
                    body: r.get(1)?,
                    receive_count: r.get(2)?,
                    sent_at: from_micros(r.get(3)?),
                    dead_at: Some(from_micros(r.get(4)?)),
                })
            })?
            .collect()
        })
        .await
        .map_err(queue_backend)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let now = micros(Utc::now());
        self.call(move |conn| {
            conn.query_row(
                "SELECT
                   (SELECT COUNT(*) FROM queue WHERE visible_at <= ?1),
                   (SELECT COUNT(*) FROM queue WHERE visible_at > ?1 AND receipt IS NOT NULL),
                   (SELECT COUNT(*) FROM queue WHERE visible_at > ?1 AND receipt IS NULL),
                   (SELECT COUNT(*) FROM dead_letters)",
                [now],
                |r| {
                    Ok(QueueDepth {
                        visible: r.get::<_, i64>(0)?.max(0) as u64,
                        in_flight: r.get::<_, i64>(1)?.max(0) as u64,
                        delayed: r.get::<_, i64>(2)?.max(0) as u64,
                        dead: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                },
            )
        })
        .await
        .map_err(queue_backend)
    }
}
