//! How a task's snapshot reads on the wire: the JSON of `/status`, and the SSE events of
//! `/sse` and `/stream` (`task_queued`, `task_progress`, `task_completed`, `task_failed`, and
//! the stream's own `heartbeat`, `timeout` and `shutdown`). The fields are the old API's
//! (`progress`, `current`/`total` files, `total_files`, `error` as text, `summary`, timestamps
//! in epoch milliseconds) with ours beside them. Each shape is a type here, serialized as is and
//! named in the OpenAPI document (the stream's frames as `StreamEvent`).

use chrono::{DateTime, Utc};
use image2model_shared::app::task_status::Snapshot;
use image2model_shared::domain::{GenerationJob, JobId, JobStatus};
use image2model_shared::web::views::{JobErrorView, OptionalTaskLinks};
use serde::Serialize;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// The kinds of frames: one per status change (`task_failed` also when the task was cancelled
/// or deleted), a heartbeat while nothing changes, and the stream's end by timeout or shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    TaskQueued,
    TaskProgress,
    TaskCompleted,
    TaskFailed,
    Heartbeat,
    Timeout,
    Shutdown,
}

impl EventName {
    /// The `event:` line, as the document spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskQueued => "task_queued",
            Self::TaskProgress => "task_progress",
            Self::TaskCompleted => "task_completed",
            Self::TaskFailed => "task_failed",
            Self::Heartbeat => "heartbeat",
            Self::Timeout => "timeout",
            Self::Shutdown => "shutdown",
        }
    }
}

/// A completed job's model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelResult {
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    pub filename: String,
    pub size: u64,
    pub content_type: String,
    /// The download route of the model (`GET`, with a key).
    pub download_url: String,
}

/// A completed batch's models.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchResult {
    /// The batch's id.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    pub jobs: Vec<ModelResult>,
}

/// What a completed task made: a job's model, or a batch's.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TaskResult {
    Model(ModelResult),
    Batch(BatchResult),
}

/// Where one job of a batch stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchJobState {
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    pub status: JobStatus,
    #[schema(minimum = 0, maximum = 100)]
    pub progress: u8,
}

/// A task's files by where they stand, in the old API's fields.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FileCounts {
    /// Files whose job ended.
    pub current: usize,
    pub total: usize,
    /// `total` again.
    pub total_files: usize,
    pub completed_files: usize,
    /// Failed and cancelled.
    pub failed_files: usize,
}

impl FileCounts {
    fn of(snapshot: &Snapshot) -> Self {
        let counts = snapshot.counts();
        Self {
            current: counts.ended(),
            total: counts.total,
            total_files: counts.total,
            completed_files: counts.completed,
            failed_files: counts.failed + counts.cancelled,
        }
    }
}

/// Where a job or batch stands, as its owner (by key or token) sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskStatus {
    /// The job's or batch's id.
    #[schema(value_type = uuid::Uuid)]
    pub task_id: JobId,
    pub status: JobStatus,
    #[schema(minimum = 0, maximum = 100)]
    pub progress: u8,
    pub message: String,
    #[serde(flatten)]
    pub files: FileCounts,
    /// Once completed.
    #[schema(required = true)]
    pub result: Option<TaskResult>,
    /// What went wrong, in words (the old API's `error`), once failed or cancelled.
    #[schema(required = true)]
    pub error: Option<String>,
    /// The job error code, once failed or cancelled.
    #[schema(required = true)]
    pub error_code: Option<String>,
    #[schema(required = true)]
    pub error_details: Option<JobErrorView>,
    /// Null only for a batch without jobs.
    #[schema(required = true)]
    pub created_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub updated_at: Option<DateTime<Utc>>,
    /// A batch's id again (the old API's name for the group of its tasks).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>, nullable = false)]
    pub chord_task_id: Option<JobId>,
    /// A batch's jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub jobs: Option<Vec<BatchJobState>>,
}

/// What the public view (no credential, `PUBLIC_TASK_STATUS`) shows: where the task stands and
/// its counts, the ids and times; never results, filenames, the owner, or an error beyond its
/// code.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicTaskStatus {
    #[schema(value_type = uuid::Uuid)]
    pub task_id: JobId,
    /// The job (or, for a batch, the batch) the task's end names.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    pub status: JobStatus,
    #[schema(minimum = 0, maximum = 100)]
    pub progress: u8,
    /// Where the task stands, in fixed words (a batch's counts).
    pub message: String,
    #[serde(flatten)]
    pub files: FileCounts,
    #[schema(required = true)]
    pub error_code: Option<String>,
    #[schema(required = true)]
    pub created_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>, nullable = false)]
    pub chord_task_id: Option<JobId>,
}

/// The owner's status with the links (to a key's holder; a token's holder already has them).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkedTaskStatus {
    #[serde(flatten)]
    pub status: TaskStatus,
    #[serde(flatten)]
    pub links: OptionalTaskLinks,
}

/// The answer of `GET .../status`: the owner's view, or without a credential the public one.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StatusAnswer {
    Owner(Box<LinkedTaskStatus>),
    Public(PublicTaskStatus),
}

/// Counts of a completed task (the old API's `summary`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    pub total_files: usize,
    pub successful_files: usize,
    pub failed_files: usize,
}

/// A status change as the owner's stream carries it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskEvent {
    #[serde(flatten)]
    pub status: TaskStatus,
    /// When it was seen, epoch milliseconds.
    pub timestamp: i64,
    /// On the terminal event: the job (or batch) it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>, nullable = false)]
    pub job_id: Option<JobId>,
    /// On completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub summary: Option<Summary>,
}

/// A status change as the public stream carries it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicTaskEvent {
    #[serde(flatten)]
    pub status: PublicTaskStatus,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub summary: Option<Summary>,
}

/// The data of a `task_*` event: the owner's view, or the public one.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum TaskEventData {
    Owner(TaskEvent),
    Public(PublicTaskEvent),
}

/// A task that was deleted while followed.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Gone {
    Deleted,
}

/// The last `task_failed` of a task deleted while followed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskGone {
    #[schema(value_type = uuid::Uuid)]
    pub task_id: JobId,
    pub status: Gone,
    /// Always 0.
    pub progress: u8,
    pub message: &'static str,
    pub error: &'static str,
    /// `JOB_NOT_FOUND`.
    pub error_code: &'static str,
    pub timestamp: i64,
}

/// The data of `task_failed`: a failed or cancelled task, or one deleted.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum FailedEventData {
    Task(Box<TaskEventData>),
    Gone(TaskGone),
}

/// The data of `heartbeat`: nothing changed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Heartbeat {
    #[schema(value_type = uuid::Uuid)]
    pub task_id: JobId,
    pub timestamp: i64,
}

/// The data of `timeout` and `shutdown`: the stream ends (reconnect to go on).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamEnd {
    #[schema(value_type = uuid::Uuid)]
    pub task_id: JobId,
    pub message: &'static str,
    pub timestamp: i64,
}

/// One Server-Sent Event of a task's stream, as OpenAPI 3.2 describes an event stream's items
/// (`itemSchema`): its `event:` name, its `data:` line (JSON text whose `contentSchema` is the
/// decoded payload's), and the `id:` of a status change or the `retry:` hint of a stream's first
/// frame. The owner's frames carry `TaskEvent`, the public view's `PublicTaskEvent`.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    TaskQueued(TaskEventData),
    TaskProgress(TaskEventData),
    TaskCompleted(TaskEventData),
    TaskFailed(FailedEventData),
    Heartbeat(Heartbeat),
    Timeout(StreamEnd),
    Shutdown(StreamEnd),
}

/// Each event name with the schema of its data.
const EVENT_DATA: [(EventName, &str); 7] = [
    (EventName::TaskQueued, "TaskEventData"),
    (EventName::TaskProgress, "TaskEventData"),
    (EventName::TaskCompleted, "TaskEventData"),
    (EventName::TaskFailed, "FailedEventData"),
    (EventName::Heartbeat, "Heartbeat"),
    (EventName::Timeout, "StreamEnd"),
    (EventName::Shutdown, "StreamEnd"),
];

impl PartialSchema for StreamEvent {
    fn schema() -> RefOr<Schema> {
        let mut events = OneOfBuilder::new().description(Some(
            "One Server-Sent Event of a task's stream: `event` is its `event:` line, `data` its \
             `data:` line (JSON of the `contentSchema`), `id` the version of a status change (send \
             it back as `Last-Event-ID`), `retry` the reconnection delay of a stream's first frame.",
        ));
        for (name, data) in EVENT_DATA {
            let data = ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .content_schema(Some(Ref::from_schema_name(data)));
            let event = ObjectBuilder::new()
                .property(
                    "event",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([name.as_str()])),
                )
                .required("event")
                .property("data", data)
                .required("data")
                .property("id", ObjectBuilder::new().schema_type(Type::String))
                .property(
                    "retry",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                );
            events = events.item(event);
        }
        Schema::from(events).into()
    }
}

impl ToSchema for StreamEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("TaskEventData".to_owned(), TaskEventData::schema()));
        schemas.push(("FailedEventData".to_owned(), FailedEventData::schema()));
        schemas.push(("Heartbeat".to_owned(), Heartbeat::schema()));
        schemas.push(("StreamEnd".to_owned(), StreamEnd::schema()));
        <FailedEventData as ToSchema>::schemas(schemas);
    }
}

fn any_of(names: &[&str]) -> RefOr<Schema> {
    let mut any = AnyOfBuilder::new();
    for name in names {
        any = any.item(Ref::from_schema_name(*name));
    }
    Schema::from(any).into()
}

impl PartialSchema for TaskEventData {
    fn schema() -> RefOr<Schema> {
        any_of(&["TaskEvent", "PublicTaskEvent"])
    }
}

impl ToSchema for TaskEventData {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("TaskEvent".to_owned(), TaskEvent::schema()));
        schemas.push(("PublicTaskEvent".to_owned(), PublicTaskEvent::schema()));
        <TaskEvent as ToSchema>::schemas(schemas);
        <PublicTaskEvent as ToSchema>::schemas(schemas);
    }
}

impl PartialSchema for FailedEventData {
    fn schema() -> RefOr<Schema> {
        any_of(&["TaskEvent", "PublicTaskEvent", "TaskGone"])
    }
}

impl ToSchema for FailedEventData {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("TaskGone".to_owned(), TaskGone::schema()));
        <TaskGone as ToSchema>::schemas(schemas);
        <TaskEventData as ToSchema>::schemas(schemas);
    }
}

impl StreamEvent {
    pub fn name(&self) -> EventName {
        match self {
            Self::TaskQueued(_) => EventName::TaskQueued,
            Self::TaskProgress(_) => EventName::TaskProgress,
            Self::TaskCompleted(_) => EventName::TaskCompleted,
            Self::TaskFailed(_) => EventName::TaskFailed,
            Self::Heartbeat(_) => EventName::Heartbeat,
            Self::Timeout(_) => EventName::Timeout,
            Self::Shutdown(_) => EventName::Shutdown,
        }
    }

    /// The frame's `data:` line.
    pub fn data(&self) -> String {
        let data = match self {
            Self::TaskQueued(d) | Self::TaskProgress(d) | Self::TaskCompleted(d) => {
                serde_json::to_string(d)
            }
            Self::TaskFailed(d) => serde_json::to_string(d),
            Self::Heartbeat(d) => serde_json::to_string(d),
            Self::Timeout(d) | Self::Shutdown(d) => serde_json::to_string(d),
        };
        data.unwrap_or_default()
    }

    /// The event of a status change.
    pub fn of(snapshot: &Snapshot, public: bool) -> Self {
        let data = task_event_data_of(snapshot, public);
        match snapshot.status {
            JobStatus::Queued => Self::TaskQueued(data),
            JobStatus::Processing => Self::TaskProgress(data),
            JobStatus::Completed => Self::TaskCompleted(data),
            JobStatus::Failed | JobStatus::Cancelled => {
                Self::TaskFailed(FailedEventData::Task(Box::new(data)))
            }
        }
    }
}

fn model_result(job: &GenerationJob) -> Option<ModelResult> {
    job.result.as_ref().map(|r| ModelResult {
        job_id: job.job_id,
        filename: r.filename.clone(),
        size: r.size,
        content_type: r.content_type.clone(),
        download_url: format!("/api/v1/download/{}", job.job_id),
    })
}

fn result(snapshot: &Snapshot) -> Option<TaskResult> {
    if snapshot.status != JobStatus::Completed {
        return None;
    }
    if snapshot.is_batch {
        Some(TaskResult::Batch(BatchResult {
            job_id: snapshot.task_id,
            jobs: snapshot.jobs.iter().filter_map(model_result).collect(),
        }))
    } else {
        snapshot
            .jobs
            .first()
            .and_then(model_result)
            .map(TaskResult::Model)
    }
}

/// A batch also answers to `chord_task_id`, the old API's name for the id of the group of
/// tasks that processes a batch's files (its clients follow that id): here, the batch's own.
fn group_id(snapshot: &Snapshot) -> Option<JobId> {
    snapshot.is_batch.then_some(snapshot.task_id)
}

/// The public view of `snapshot`.
pub fn public_status(snapshot: &Snapshot) -> PublicTaskStatus {
    let (created_at, updated_at) = snapshot.times();
    // A batch's message is its counts; a job's may carry what went wrong, so it is replaced.
    let message = match snapshot.status {
        _ if snapshot.is_batch => snapshot.message.clone(),
        JobStatus::Queued => "Task is queued".to_owned(),
        JobStatus::Processing => "Task is processing".to_owned(),
        JobStatus::Completed => "Task completed".to_owned(),
        JobStatus::Failed => "Task failed".to_owned(),
        JobStatus::Cancelled => "Task was cancelled".to_owned(),
    };
    PublicTaskStatus {
        task_id: snapshot.task_id,
        job_id: snapshot.terminal_job_id(),
        status: snapshot.status,
        progress: snapshot.progress,
        message,
        files: FileCounts::of(snapshot),
        error_code: snapshot.error().map(|e| e.code.to_string()),
        created_at,
        updated_at,
        chord_task_id: group_id(snapshot),
    }
}

/// The owner's view of `snapshot`.
pub fn owner_status(snapshot: &Snapshot) -> TaskStatus {
    let error = snapshot.error();
    let (created_at, updated_at) = snapshot.times();
    TaskStatus {
        task_id: snapshot.task_id,
        status: snapshot.status,
        progress: snapshot.progress,
        message: snapshot.message.clone(),
        files: FileCounts::of(snapshot),
        result: result(snapshot),
        error: error.as_ref().map(|e| e.message.clone()),
        error_code: error.as_ref().map(|e| e.code.to_string()),
        error_details: error.as_ref().map(JobErrorView::from),
        created_at,
        updated_at,
        chord_task_id: group_id(snapshot),
        jobs: snapshot.is_batch.then(|| {
            snapshot
                .jobs
                .iter()
                .map(|j| BatchJobState {
                    job_id: j.job_id,
                    status: j.status,
                    progress: j.progress,
                })
                .collect()
        }),
    }
}

/// Now in epoch milliseconds, as the old API's events carry it.
pub fn timestamp_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The data of a status change's event: the status (the public view when `public`), when it
/// was seen, on the terminal event the job it names, and on completion the old API's
/// `summary`.
fn task_event_data_of(snapshot: &Snapshot, public: bool) -> TaskEventData {
    let summary = (snapshot.status == JobStatus::Completed).then(|| {
        let counts = snapshot.counts();
        Summary {
            total_files: counts.total,
            successful_files: counts.completed,
            failed_files: counts.failed + counts.cancelled,
        }
    });
    let timestamp = timestamp_ms();
    if public {
        TaskEventData::Public(PublicTaskEvent {
            status: public_status(snapshot),
            timestamp,
            summary,
        })
    } else {
        TaskEventData::Owner(TaskEvent {
            status: owner_status(snapshot),
            timestamp,
            job_id: snapshot.is_terminal().then(|| snapshot.terminal_job_id()),
            summary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn to_event_json(snapshot: &Snapshot, public: bool) -> Value {
        serde_json::from_str(&StreamEvent::of(snapshot, public).data()).unwrap()
    }

    fn to_json(snapshot: &Snapshot) -> Value {
        serde_json::to_value(owner_status(snapshot)).unwrap()
    }

    fn to_public_json(snapshot: &Snapshot) -> Value {
        serde_json::to_value(public_status(snapshot)).unwrap()
    }
    use image2model_shared::app::access::Task;
    use image2model_shared::domain::{Batch, FileId, JobOptions, JobResult};

    fn job() -> GenerationJob {
        GenerationJob::new(
            FileId::new(),
            "o",
            "depth_anything_v2",
            JobOptions::default(),
            None,
            Utc::now(),
        )
    }

    fn done() -> GenerationJob {
        let now = Utc::now();
        let result = JobResult {
            object_key: "k".into(),
            filename: "a.glb".into(),
            size: 3,
            content_type: "model/gltf-binary".into(),
            preview_key: None,
            ..JobResult::default()
        };
        job().start(now).unwrap().complete(result, now).unwrap()
    }

    #[test]
    fn a_completed_batch_lists_its_models_and_names_itself_in_the_last_event() {
        let batch = Batch {
            batch_id: Default::default(),
            owner: "o".into(),
            job_ids: vec![],
            created_at: Utc::now(),
        };
        let task_id = batch.batch_id.as_uuid();
        let snapshot = Snapshot::of(
            image2model_shared::domain::JobId::from_uuid(task_id),
            Task::Batch(
                batch,
                vec![
                    done(),
                    job()
                        .fail(
                            image2model_shared::domain::JobError::from(
                                image2model_shared::domain::JobErrorCode::GenerationFailed,
                            ),
                            Utc::now(),
                        )
                        .unwrap(),
                ],
            ),
        );
        assert_eq!(
            StreamEvent::of(&snapshot, false).name(),
            EventName::TaskCompleted
        );
        let json = to_event_json(&snapshot, false);
        assert_eq!(json["result"]["jobs"].as_array().unwrap().len(), 1);
        assert_eq!(json["jobs"].as_array().unwrap().len(), 2);
        assert_eq!(json["job_id"], json!(snapshot.task_id));
        assert_eq!(json["result"]["job_id"], json!(snapshot.task_id));
        assert_eq!(
            json["summary"],
            json!({"total_files": 2, "successful_files": 1, "failed_files": 1})
        );
        assert_eq!(
            (json["current"].as_u64(), json["total"].as_u64()),
            (Some(2), Some(2))
        );
        assert!(json["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
        // The old API's clients follow a batch by `chord_task_id`, in every view of it.
        for view in [json, to_json(&snapshot), to_public_json(&snapshot)] {
            assert_eq!(view["chord_task_id"], json!(snapshot.task_id), "{view}");
        }
    }

    #[test]
    fn a_single_job_reads_as_itself() {
        let job = done();
        let snapshot = Snapshot::of(job.job_id, Task::Job(Box::new(job.clone())));
        let json = to_json(&snapshot);
        assert_eq!(
            json["result"]["download_url"],
            format!("/api/v1/download/{}", job.job_id)
        );
        assert!(json.get("jobs").is_none());
        assert!(json.get("chord_task_id").is_none(), "a job is no group");
        let queued = job_snapshot(self::job());
        assert_eq!(
            (
                StreamEvent::of(&queued, false).name(),
                to_event_json(&queued, false).get("job_id")
            ),
            (EventName::TaskQueued, None)
        );
    }

    #[test]
    fn the_public_view_never_carries_a_job_message() {
        let mut retrying = job();
        retrying.message = "Attempt 1 failed; retrying: FAL said the secret prompt is bad".into();
        let snapshot = job_snapshot(retrying.clone());
        let public = to_public_json(&snapshot);
        assert_eq!(public["message"], "Task is queued");
        assert!(!public.to_string().contains("secret"), "{public}");
        let failed = retrying
            .fail(
                image2model_shared::domain::JobError::new(
                    image2model_shared::domain::JobErrorCode::FalInvalidInput,
                    "secret detail",
                ),
                Utc::now(),
            )
            .unwrap();
        let public = to_event_json(&job_snapshot(failed), true);
        assert_eq!(
            (public["message"].as_str(), public["error_code"].as_str()),
            (Some("Task failed"), Some("FAL_INVALID_INPUT"))
        );
        assert!(!public.to_string().contains("secret"), "{public}");
    }

    fn job_snapshot(job: GenerationJob) -> Snapshot {
        Snapshot::of(job.job_id, Task::Job(Box::new(job)))
    }
}
