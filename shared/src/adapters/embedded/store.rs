//! The store port on the embedded database: files, jobs, batches, idempotency keys, counters
//! and state documents as JSON next to the columns the queries filter on. Every state change is
//! a conditional statement checked by SQLite, not by the caller.

use super::db::{EmbeddedDb, micros};
use crate::domain::{Batch, BatchId, FileId, GenerationJob, JobId, JobStatus, UploadedFile};
use crate::ports::store::{
    CreateOutcome, IDEMPOTENCY_WINDOW, JobCursor, JobPage, JobQuery, Store, StoreError, Versioned,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

/// `('a','b')`: an SQL list of the statuses `statuses` yields.
fn sql_list(statuses: impl Iterator<Item = JobStatus>) -> String {
    let quoted: Vec<String> = statuses.map(|s| format!("'{}'", s.as_str())).collect();
    format!("({})", quoted.join(","))
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(raw: &str) -> rusqlite::Result<T> {
    serde_json::from_str(raw).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation)
}

pub(super) fn backend(err: rusqlite::Error) -> StoreError {
    StoreError::Backend(err.to_string())
}

/// Fails with `Conflict` unless exactly one row changed.
pub(super) fn one_row(changed: usize) -> Result<(), StoreError> {
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

fn jobs_from_rows(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<GenerationJob>> {
    stmt.query_map(params, |row| row.get::<_, String>(0))?
        .map(|raw| from_json(&raw?))
        .collect()
}

impl EmbeddedDb {
    /// The record `sql` selects by its one parameter `id`, if there is one.
    async fn get_record<T>(&self, sql: &'static str, id: String) -> Result<Option<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        self.read(move |conn| {
            conn.prepare_cached(sql)?
                .query_row([&id], |r| r.get::<_, String>(0))
                .optional()?
                .map(|raw| from_json(&raw))
                .transpose()
        })
        .await
        .map_err(backend)
    }

    /// Replaces the stored job with `job` if the stored version is the one before and
    /// `condition` holds (`?1` is the new status, `?2` the new progress).
    async fn replace_job(&self, job: &GenerationJob, condition: String) -> Result<(), StoreError> {
        let job = job.clone();
        let changed = self
            .call(move |conn| {
                conn.execute(
                    &format!(
                        "UPDATE jobs SET status = ?1, progress = ?2, updated_at = ?3, version = ?4, body = ?5
                         WHERE job_id = ?6 AND version = ?7 AND {condition}"
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
        self.get_record("SELECT body FROM files WHERE file_id = ?1", id.to_string())
            .await
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
                    // A key older than the window names nothing any more.
                    tx.execute(
                        "DELETE FROM idempotency_keys WHERE owner = ?1 AND key = ?2 AND created_at <= ?3",
                        params![first.owner, key, micros(Utc::now() - IDEMPOTENCY_WINDOW)],
                    )?;
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
        self.get_record("SELECT body FROM jobs WHERE job_id = ?1", id.to_string())
            .await
    }

    async fn update_job(&self, job: &GenerationJob) -> Result<(), StoreError> {
        let condition = format!(
            "status NOT IN {} AND progress <= ?2",
            sql_list(JobStatus::terminal())
        );
        self.replace_job(job, condition).await
    }

    async fn reopen_job(&self, job: &GenerationJob) -> Result<(), StoreError> {
        let condition = format!(
            "status IN {} AND ?1 = 'queued'",
            sql_list(JobStatus::reopenable())
        );
        self.replace_job(job, condition).await
    }

    async fn amend_completed_job(&self, job: &GenerationJob) -> Result<(), StoreError> {
        self.replace_job(job, "status = 'completed' AND ?1 = 'completed'".to_owned())
            .await
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
        let after = query
            .cursor
            .as_deref()
            .map(JobCursor::decode)
            .transpose()?
            .map(|c| (micros(c.created_at), c.job_id.to_string()));
        let owner = query.owner.clone();
        let status = query.status.map(|s| s.as_str());
        let limit = query.limit.clamp(1, 1000);
        let jobs = self
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
        Ok(JobPage::from_overfetched(jobs, limit))
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
        self.get_record(
            "SELECT body FROM batches WHERE batch_id = ?1",
            id.to_string(),
        )
        .await
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
        self.read(move |conn| {
            conn.prepare_cached("SELECT value FROM counters WHERE key = ?1 AND expires_at > ?2")?
                .query_row(params![key, now], |r| r.get(0))
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
