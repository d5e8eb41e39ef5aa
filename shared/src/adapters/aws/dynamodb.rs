//! The store on one DynamoDB table. Items are typed by their key prefix (`FILE#`, `JOB#`,
//! `BATCH#`, `IDEM#`, `COUNTER#`) and carry the record as JSON next to the attributes the
//! indexes and conditions use. Every state change is a conditional write; job creation with its
//! batch and idempotency key is one transaction.
//!
//! Indexes (defined in `template.yaml`): `gsi1` jobs of an owner by creation time, `gsi2`
//! jobs by status by update time (and files by status by creation time), `gsi3` every job by
//! creation time (in 16 shards), `gsi4` jobs of a file.

use super::describe;

mod webhooks;
use crate::domain::{Batch, BatchId, FileId, GenerationJob, JobId, JobStatus, UploadedFile};
use crate::ports::store::{
    CreateOutcome, IDEMPOTENCY_WINDOW, JobCursor, JobPage, JobQuery, Store, StoreError, Versioned,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, Select, TransactWriteItem};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

type Item = HashMap<String, AttributeValue>;

/// The all-jobs index (`gsi3`) spreads its writes over this many partitions, so that no one
/// partition takes every job write (a partition takes about 1,000 writes a second); listing
/// every job reads them all and merges.
const ALL_JOBS_SHARDS: u128 = 16;

/// The `gsi3` partition of a job: a stable function of its (random) id.
fn all_jobs_shard(job_id: JobId) -> String {
    format!("JOBS#{}", job_id.as_uuid().as_u128() % ALL_JOBS_SHARDS)
}

/// Idempotency keys and rate-limit counters are kept this long after their window.
const IDEMPOTENCY_TTL_SECS: i64 = IDEMPOTENCY_WINDOW.num_seconds();
/// File records outlive their `expires_at` by this much, so cleanup sees them first.
const FILE_TTL_GRACE_SECS: i64 = 7 * 24 * 3600;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// Up to `wanted` jobs of one index partition (`gsi1`/`gsi3`) created before the sort key
    /// `before`, newest first, with their sort keys; `status` filters.
    async fn newest_jobs(
        &self,
        index: &str,
        pk: &str,
        before: &str,
        status: Option<JobStatus>,
        wanted: usize,
    ) -> Result<Vec<(String, GenerationJob)>, StoreError> {
        let (pk_name, sk_name) = (format!("{index}pk"), format!("{index}sk"));
        let mut jobs = Vec::new();
        let mut start = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#pk = :pk AND #sk < :before")
                .expression_attribute_names("#pk", &pk_name)
                .expression_attribute_names("#sk", &sk_name)
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":before", s(before))
                .scan_index_forward(false)
                .limit(wanted as i32)
                .set_exclusive_start_key(start.take());
            if let Some(status) = status {
                request = request
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status.as_str()));
            }
            let output = request.send().await.map_err(backend)?;
            for item in output.items.unwrap_or_default() {
                let sort_key = item
                    .get(&sk_name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                jobs.push((sort_key, body(&item)?));
            }
            match output.last_evaluated_key {
                Some(next) if jobs.len() < wanted => start = Some(next),
                _ => break,
            }
        }
        Ok(jobs)
    }

    pub fn new(client: Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
        }
    }
}

fn backend<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Backend(describe(&err))
}

fn is_conditional_failure<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| {
            code == "ConditionalCheckFailedException" || code == "TransactionCanceledException"
        })
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Sort keys order by time: zero-padded microseconds, then the id.
fn time_key(t: DateTime<Utc>, id: impl std::fmt::Display) -> String {
    format!("{:020}#{id}", t.timestamp_micros().max(0))
}

/// `:t0, :t1` and their values: a condition's list of the statuses `statuses` yields.
fn status_list(name: &str, statuses: impl Iterator<Item = JobStatus>) -> (String, Item) {
    let values: Item = statuses
        .enumerate()
        .map(|(i, status)| (format!(":{name}{i}"), s(status.as_str())))
        .collect();
    let mut names: Vec<&str> = values.keys().map(String::as_str).collect();
    names.sort_unstable();
    (names.join(", "), values)
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn json<T: serde::Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(v)
        .map(s)
        .map_err(|e| StoreError::Backend(e.to_string()))
}

fn body<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let raw = item
        .get("body")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Backend("item without body".to_owned()))?;
    serde_json::from_str(raw).map_err(|e| StoreError::Backend(format!("corrupt record: {e}")))
}

fn job_item(job: &GenerationJob) -> Result<Item, StoreError> {
    let mut item = key(format!("JOB#{}", job.job_id), "JOB");
    item.extend([
        ("kind".to_owned(), s("job")),
        ("owner".to_owned(), s(&job.owner)),
        ("status".to_owned(), s(job.status.as_str())),
        ("progress".to_owned(), n(job.progress)),
        ("version".to_owned(), n(job.version)),
        ("body".to_owned(), json(job)?),
        ("gsi1pk".to_owned(), s(format!("OWNER#{}", job.owner))),
        ("gsi1sk".to_owned(), s(time_key(job.created_at, job.job_id))),
        (
            "gsi2pk".to_owned(),
            s(format!("JOBSTATUS#{}", job.status.as_str())),
        ),
        ("gsi2sk".to_owned(), s(time_key(job.updated_at, job.job_id))),
        ("gsi3pk".to_owned(), s(all_jobs_shard(job.job_id))),
        ("gsi3sk".to_owned(), s(time_key(job.created_at, job.job_id))),
        ("gsi4pk".to_owned(), s(format!("JOBFILE#{}", job.file_id))),
        ("gsi4sk".to_owned(), s(time_key(job.created_at, job.job_id))),
    ]);
    Ok(item)
}

fn file_item(file: &UploadedFile) -> Result<Item, StoreError> {
    let mut item = key(format!("FILE#{}", file.file_id), "FILE");
    item.extend([
        ("kind".to_owned(), s("file")),
        ("owner".to_owned(), s(&file.owner)),
        ("status".to_owned(), s(file.status.as_str())),
        ("version".to_owned(), n(file.version)),
        ("body".to_owned(), json(file)?),
        (
            "gsi2pk".to_owned(),
            s(format!("FILESTATUS#{}", file.status.as_str())),
        ),
        (
            "gsi2sk".to_owned(),
            s(time_key(file.created_at, file.file_id)),
        ),
        (
            "ttl".to_owned(),
            n(file.expires_at.timestamp() + FILE_TTL_GRACE_SECS),
        ),
    ]);
    Ok(item)
}

impl DynamoStore {
    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(output.item)
    }

    /// The record stored in the item `pk`/`sk`, if any.
    async fn get_record<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get_item(pk, sk)
            .await?
            .map(|item| body(&item))
            .transpose()
    }

    /// The job an idempotency key names, if the key is live: a key past its `ttl` (which
    /// DynamoDB deletes only eventually) or naming a job that was deleted is removed here (on
    /// the condition that it still names that job) and reads as unused, as on the embedded store.
    async fn live_idempotency_key(&self, pk: &str) -> Result<Option<JobId>, StoreError> {
        let Some(item) = self.get_item(pk.to_owned(), "IDEM").await? else {
            return Ok(None);
        };
        let job_id: JobId = item
            .get("job_id")
            .and_then(|v| v.as_s().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Backend("corrupt idempotency record".to_owned()))?;
        let expired = item
            .get("ttl")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|ttl| ttl <= Utc::now().timestamp());
        if !expired
            && self
                .get_item(format!("JOB#{job_id}"), "JOB")
                .await?
                .is_some()
        {
            return Ok(Some(job_id));
        }
        let removed = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), "IDEM")))
            .condition_expression("job_id = :job")
            .expression_attribute_values(":job", s(job_id.to_string()))
            .send()
            .await;
        match removed {
            Ok(_) => Ok(None),
            // Another request replaced it meanwhile: that one is the live key.
            Err(err) if is_conditional_failure(&err) => {
                Box::pin(self.live_idempotency_key(pk)).await
            }
            Err(err) => Err(backend(err)),
        }
    }

    async fn delete(&self, pk: String, sk: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Every item of a query (following pages), up to `limit`.
    async fn query_all(
        &self,
        index: &str,
        pk_name: &str,
        pk: String,
        sk_below: Option<String>,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let sk_name = pk_name.replace("pk", "sk");
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_values(":pk", s(&pk))
                .scan_index_forward(forward)
                .set_exclusive_start_key(start.take());
            query = match &sk_below {
                Some(bound) => query
                    .key_condition_expression("#pk = :pk AND #sk < :sk")
                    .expression_attribute_names("#sk", &sk_name)
                    .expression_attribute_values(":sk", s(bound)),
                None => query.key_condition_expression("#pk = :pk"),
            };
            let output = query.send().await.map_err(backend)?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(next) if items.len() < limit => start = Some(next),
                _ => break,
            }
        }
        items.truncate(limit);
        Ok(items)
    }

    async fn conditional_put(
        &self,
        item: Item,
        condition: &str,
        values: Item,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        if condition.contains("#status") {
            request = request.expression_attribute_names("#status", "status");
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) if is_conditional_failure(&err) => Err(StoreError::Conflict),
            Err(err) => Err(backend(err)),
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn create_file(&self, file: &UploadedFile) -> Result<(), StoreError> {
        self.conditional_put(file_item(file)?, "attribute_not_exists(pk)", Item::new())
            .await
            .map_err(|e| match e {
                StoreError::Conflict => StoreError::AlreadyExists,
                other => other,
            })
    }

    async fn get_file(&self, id: FileId) -> Result<Option<UploadedFile>, StoreError> {
        self.get_record(format!("FILE#{id}"), "FILE").await
    }

    async fn update_file(&self, file: &UploadedFile) -> Result<(), StoreError> {
        let values = Item::from([(":prev".to_owned(), n(file.version.saturating_sub(1)))]);
        self.conditional_put(file_item(file)?, "version = :prev", values)
            .await
    }

    async fn delete_file(&self, id: FileId) -> Result<(), StoreError> {
        self.delete(format!("FILE#{id}"), "FILE").await
    }

    async fn list_files_created_before(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UploadedFile>, StoreError> {
        let mut files = Vec::new();
        for status in ["pending", "ready", "rejected"] {
            let bound = time_key(before, "");
            for item in self
                .query_all(
                    "gsi2",
                    "gsi2pk",
                    format!("FILESTATUS#{status}"),
                    Some(bound),
                    true,
                    limit,
                )
                .await?
            {
                files.push(body::<UploadedFile>(&item)?);
            }
        }
        files.sort_by_key(|f| f.created_at);
        files.truncate(limit);
        Ok(files)
    }

    async fn list_pending_files(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UploadedFile>, StoreError> {
        self.query_all(
            "gsi2",
            "gsi2pk",
            "FILESTATUS#pending".to_owned(),
            Some(time_key(before, "")),
            true,
            limit,
        )
        .await?
        .iter()
        .map(body)
        .collect()
    }

    async fn create_jobs(
        &self,
        jobs: &[GenerationJob],
        batch: Option<&Batch>,
        idempotency_key: Option<&str>,
    ) -> Result<CreateOutcome, StoreError> {
        let idem_pk = match (idempotency_key, jobs.first()) {
            (Some(k), Some(first)) => Some(format!("IDEM#{}#{k}", first.owner)),
            _ => None,
        };
        if let Some(pk) = &idem_pk
            && let Some(job_id) = self.live_idempotency_key(pk).await?
        {
            return Ok(CreateOutcome::Existing(job_id));
        }
        let put = |item: Item| -> Result<TransactWriteItem, StoreError> {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let mut writes = Vec::with_capacity(jobs.len() + 2);
        for job in jobs {
            writes.push(put(job_item(job)?)?);
        }
        if let Some(batch) = batch {
            let mut item = key(format!("BATCH#{}", batch.batch_id), "BATCH");
            item.extend([
                ("kind".to_owned(), s("batch")),
                ("owner".to_owned(), s(&batch.owner)),
                ("body".to_owned(), json(batch)?),
            ]);
            writes.push(put(item)?);
        }
        if let (Some(pk), Some(first)) = (&idem_pk, jobs.first()) {
            let mut item = key(pk.clone(), "IDEM");
            item.extend([
                ("kind".to_owned(), s("idempotency")),
                ("job_id".to_owned(), s(first.job_id.to_string())),
                (
                    "ttl".to_owned(),
                    n(first.created_at.timestamp() + IDEMPOTENCY_TTL_SECS),
                ),
            ]);
            writes.push(put(item)?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            Ok(_) => Ok(CreateOutcome::Created),
            Err(err) if is_conditional_failure(&err) => match &idem_pk {
                Some(pk) => match self.live_idempotency_key(pk).await? {
                    Some(job_id) => Ok(CreateOutcome::Existing(job_id)),
                    None => Err(StoreError::AlreadyExists),
                },
                None => Err(StoreError::AlreadyExists),
            },
            Err(err) => Err(backend(err)),
        }
    }

    async fn get_job(&self, id: JobId) -> Result<Option<GenerationJob>, StoreError> {
        self.get_record(format!("JOB#{id}"), "JOB").await
    }

    async fn update_job(&self, job: &GenerationJob) -> Result<(), StoreError> {
        let (terminal, mut values) = status_list("t", JobStatus::terminal());
        values.extend([
            (":prev".to_owned(), n(job.version.saturating_sub(1))),
            (":progress".to_owned(), n(job.progress)),
        ]);
        self.conditional_put(
            job_item(job)?,
            &format!("version = :prev AND progress <= :progress AND NOT (#status IN ({terminal}))"),
            values,
        )
        .await
    }

    async fn amend_completed_job(&self, job: &GenerationJob) -> Result<(), StoreError> {
        if job.status != JobStatus::Completed {
            return Err(StoreError::Conflict);
        }
        let values = HashMap::from([
            (":prev".to_owned(), n(job.version.saturating_sub(1))),
            (":completed".to_owned(), s(JobStatus::Completed.as_str())),
        ]);
        self.conditional_put(
            job_item(job)?,
            "version = :prev AND #status = :completed",
            values,
        )
        .await
    }

    async fn reopen_job(&self, job: &GenerationJob) -> Result<(), StoreError> {
        if job.status != JobStatus::Queued {
            return Err(StoreError::Conflict);
        }
        let (reopenable, mut values) = status_list("r", JobStatus::reopenable());
        values.insert(":prev".to_owned(), n(job.version.saturating_sub(1)));
        self.conditional_put(
            job_item(job)?,
            &format!("version = :prev AND #status IN ({reopenable})"),
            values,
        )
        .await
    }

    async fn delete_job(&self, id: JobId) -> Result<(), StoreError> {
        self.delete(format!("JOB#{id}"), "JOB").await
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        let limit = query.limit.clamp(1, 1000);
        let before = match query.cursor.as_deref() {
            Some(cursor) => {
                let cursor = JobCursor::decode(cursor)?;
                time_key(cursor.created_at, cursor.job_id)
            }
            // Above every time key: digits sort below `~`.
            None => "~".to_owned(),
        };
        let partitions: Vec<(&str, String)> = match &query.owner {
            Some(owner) => vec![("gsi1", format!("OWNER#{owner}"))],
            None => (0..ALL_JOBS_SHARDS)
                .map(|shard| ("gsi3", format!("JOBS#{shard}")))
                .collect(),
        };
        // Each partition's newest `limit + 1` below the cursor, merged newest first.
        let pages = futures_util::future::try_join_all(
            partitions
                .iter()
                .map(|(index, pk)| self.newest_jobs(index, pk, &before, query.status, limit + 1)),
        )
        .await?;
        let mut jobs: Vec<(String, GenerationJob)> = pages.into_iter().flatten().collect();
        jobs.sort_by(|a, b| b.0.cmp(&a.0));
        jobs.truncate(limit + 1);
        Ok(JobPage::from_overfetched(
            jobs.into_iter().map(|(_, job)| job).collect(),
            limit,
        ))
    }

    async fn list_jobs_by_status(
        &self,
        status: JobStatus,
        updated_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<GenerationJob>, StoreError> {
        self.query_all(
            "gsi2",
            "gsi2pk",
            format!("JOBSTATUS#{}", status.as_str()),
            Some(time_key(updated_before, "")),
            true,
            limit,
        )
        .await?
        .iter()
        .map(body)
        .collect()
    }

    async fn list_jobs_for_file(&self, file_id: FileId) -> Result<Vec<GenerationJob>, StoreError> {
        self.query_all(
            "gsi4",
            "gsi4pk",
            format!("JOBFILE#{file_id}"),
            None,
            true,
            1000,
        )
        .await?
        .iter()
        .map(body)
        .collect()
    }

    async fn count_jobs_by_status(&self) -> Result<BTreeMap<JobStatus, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for status in JobStatus::ALL {
            let mut total = 0u64;
            let mut start = None;
            loop {
                let output = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("gsi2")
                    .key_condition_expression("gsi2pk = :pk")
                    .expression_attribute_values(":pk", s(format!("JOBSTATUS#{}", status.as_str())))
                    .select(Select::Count)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(backend)?;
                total += output.count.max(0) as u64;
                match output.last_evaluated_key {
                    Some(next) => start = Some(next),
                    None => break,
                }
            }
            counts.insert(status, total);
        }
        Ok(counts)
    }

    async fn get_batch(&self, id: BatchId) -> Result<Option<Batch>, StoreError> {
        self.get_record(format!("BATCH#{id}"), "BATCH").await
    }

    async fn delete_batch(&self, id: BatchId) -> Result<(), StoreError> {
        self.delete(format!("BATCH#{id}"), "BATCH").await
    }

    async fn add_to_counter(
        &self,
        counter: &str,
        delta: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        // A counter whose window ended (DynamoDB deletes it only eventually) starts again from
        // `delta` rather than adding to its old value: the add is conditional on a live window,
        // the restart on an ended one; a racer that restarted it first makes us add again.
        let pk = format!("COUNTER#{counter}");
        let now = Utc::now().timestamp();
        for _ in 0..4 {
            let added = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone(), "COUNTER")))
                .update_expression("ADD #value :delta SET #ttl = :ttl, #expires = :expires")
                .condition_expression("attribute_not_exists(pk) OR #expires > :now")
                .expression_attribute_names("#value", "value")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_names("#expires", "expires_at")
                .expression_attribute_values(":delta", n(delta))
                .expression_attribute_values(
                    ":ttl",
                    n(expires_at.timestamp() + IDEMPOTENCY_TTL_SECS),
                )
                .expression_attribute_values(":expires", n(expires_at.timestamp()))
                .expression_attribute_values(":now", n(now))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match added {
                Ok(output) => {
                    return output
                        .attributes
                        .as_ref()
                        .and_then(|a| a.get("value"))
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| StoreError::Backend("counter without value".to_owned()));
                }
                Err(err) if is_conditional_failure(&err) => {}
                Err(err) => return Err(backend(err)),
            }
            let mut item = key(pk.clone(), "COUNTER");
            item.extend([
                ("value".to_owned(), n(delta)),
                ("expires_at".to_owned(), n(expires_at.timestamp())),
                (
                    "ttl".to_owned(),
                    n(expires_at.timestamp() + IDEMPOTENCY_TTL_SECS),
                ),
            ]);
            let restarted = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("#expires <= :now")
                .expression_attribute_names("#expires", "expires_at")
                .expression_attribute_values(":now", n(now))
                .send()
                .await;
            match restarted {
                Ok(_) => return Ok(delta),
                Err(err) if is_conditional_failure(&err) => {}
                Err(err) => return Err(backend(err)),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn get_counter(&self, counter: &str) -> Result<i64, StoreError> {
        let Some(item) = self
            .get_item(format!("COUNTER#{counter}"), "COUNTER")
            .await?
        else {
            return Ok(0);
        };
        let number = |name: &str| -> Option<i64> { item.get(name)?.as_n().ok()?.parse().ok() };
        // DynamoDB removes expired items lazily; an expired counter counts as zero.
        match number("expires_at") {
            Some(expires) if expires <= Utc::now().timestamp() => Ok(0),
            _ => Ok(number("value").unwrap_or_default()),
        }
    }

    async fn get_state(&self, state: &str) -> Result<Option<Versioned>, StoreError> {
        let Some(item) = self.get_item(format!("STATE#{state}"), "STATE").await? else {
            return Ok(None);
        };
        let value = item
            .get("value")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError::Backend(format!("state {state} without value")))?;
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Backend(format!("state {state} without version")))?;
        Ok(Some(Versioned { value, version }))
    }

    async fn put_state(&self, state: &str, next: &Versioned) -> Result<(), StoreError> {
        let mut item = key(format!("STATE#{state}"), "STATE");
        item.insert("value".to_owned(), s(&next.value));
        item.insert("version".to_owned(), n(next.version));
        if next.version <= 1 {
            self.conditional_put(item, "attribute_not_exists(pk)", Item::new())
                .await
        } else {
            self.conditional_put(
                item,
                "version = :previous",
                Item::from([(":previous".to_owned(), n(next.version - 1))]),
            )
            .await
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::JobOptions;

    /// No index partition takes every job write: the all-jobs index spreads 1,600 jobs over
    /// its 16 shards, none with more than twice its share.
    #[test]
    fn job_writes_spread_over_the_all_jobs_shards() {
        let mut per_partition: HashMap<String, usize> = HashMap::new();
        for _ in 0..1600 {
            let job = GenerationJob::new(
                FileId::new(),
                "alice",
                "depth_anything_v2",
                JobOptions::default(),
                None,
                Utc::now(),
            );
            let item = job_item(&job).unwrap();
            let pk = item["gsi3pk"].as_s().unwrap().clone();
            *per_partition.entry(pk).or_default() += 1;
        }
        assert_eq!(per_partition.len(), ALL_JOBS_SHARDS as usize);
        assert!(
            per_partition.values().all(|&n| n < 200),
            "{per_partition:?}"
        );
    }
}
