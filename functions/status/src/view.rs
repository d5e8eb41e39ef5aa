//! How a task's snapshot reads on the wire: the JSON of `/status`, and the SSE events of
//! `/sse` and `/stream` (`task_queued`, `task_progress`, `task_completed`, `task_failed`, and
//! the stream's own `heartbeat`, `timeout` and `shutdown`). The fields are the old API's
//! (`progress`, `current`/`total` files, `total_files`, `error` as text, `summary`, timestamps
//! in epoch milliseconds) with ours beside them.

use chrono::Utc;
use image2model_shared::app::task_status::Snapshot;
use image2model_shared::domain::{GenerationJob, JobStatus};
use serde_json::{Value, json};

/// The kinds of frames: one per status change (`task_failed` also when the task was cancelled
/// or deleted), a heartbeat while nothing changes, and the stream's end by timeout or shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
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
    /// The `event:` line, as the document spells it (serde's name).
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

pub fn event_name(snapshot: &Snapshot) -> EventName {
    match snapshot.status {
        JobStatus::Queued => EventName::TaskQueued,
        JobStatus::Processing => EventName::TaskProgress,
        JobStatus::Completed => EventName::TaskCompleted,
        JobStatus::Failed | JobStatus::Cancelled => EventName::TaskFailed,
    }
}

fn result_json(job: &GenerationJob) -> Option<Value> {
    job.result.as_ref().map(|r| {
        json!({
            "job_id": job.job_id,
            "filename": r.filename,
            "size": r.size,
            "content_type": r.content_type,
            "download_url": format!("/api/v1/download/{}", job.job_id),
        })
    })
}

fn result(snapshot: &Snapshot) -> Option<Value> {
    if snapshot.status != JobStatus::Completed {
        return None;
    }
    if snapshot.is_batch {
        let jobs: Vec<Value> = snapshot.jobs.iter().filter_map(result_json).collect();
        Some(json!({ "job_id": snapshot.task_id, "jobs": jobs }))
    } else {
        snapshot.jobs.first().and_then(result_json)
    }
}

/// What the public view (no credential, `PUBLIC_TASK_STATUS`) shows: where the task stands and
/// its counts, the ids and times; never results, filenames, the owner, or an error beyond its
/// code.
pub fn to_public_json(snapshot: &Snapshot) -> Value {
    let counts = snapshot.counts();
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
    let mut v = json!({
        "task_id": snapshot.task_id,
        "job_id": snapshot.terminal_job_id(),
        "status": snapshot.status,
        "progress": snapshot.progress,
        "message": message,
        "current": counts.ended(),
        "total": counts.total,
        "total_files": counts.total,
        "completed_files": counts.completed,
        "failed_files": counts.failed + counts.cancelled,
        "error_code": snapshot.error().map(|e| e.code),
        "created_at": created_at,
        "updated_at": updated_at,
    });
    name_the_group(&mut v, snapshot);
    v
}

/// A batch also answers to `chord_task_id`, the old API's name for the id of the group of
/// tasks that processes a batch's files (its clients follow that id): here, the batch's own.
fn name_the_group(v: &mut Value, snapshot: &Snapshot) {
    if snapshot.is_batch {
        v["chord_task_id"] = json!(snapshot.task_id);
    }
}

/// The answer of `GET .../status` to the owner (by key or token).
pub fn to_json(snapshot: &Snapshot) -> Value {
    let counts = snapshot.counts();
    let error = snapshot.error();
    let (created_at, updated_at) = snapshot.times();
    let mut v = json!({
        "task_id": snapshot.task_id,
        "status": snapshot.status,
        "progress": snapshot.progress,
        "message": snapshot.message,
        "current": counts.ended(),
        "total": counts.total,
        "total_files": counts.total,
        "completed_files": counts.completed,
        "failed_files": counts.failed + counts.cancelled,
        "result": result(snapshot),
        "error": error.as_ref().map(|e| &e.message),
        "error_code": error.as_ref().map(|e| &e.code),
        "error_details": error,
        "created_at": created_at,
        "updated_at": updated_at,
    });
    name_the_group(&mut v, snapshot);
    if snapshot.is_batch {
        v["jobs"] = snapshot
            .jobs
            .iter()
            .map(|j| json!({"job_id": j.job_id, "status": j.status, "progress": j.progress}))
            .collect();
    }
    v
}

/// Now in epoch milliseconds, as the old API's events carry it.
pub fn timestamp_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The data of an SSE event: the status JSON (the public view when `public`), when it was seen
/// (epoch milliseconds), on the terminal event the job it names, and on completion the old
/// API's `summary`.
pub fn to_event_json(snapshot: &Snapshot, public: bool) -> Value {
    let mut v = if public {
        to_public_json(snapshot)
    } else {
        to_json(snapshot)
    };
    v["timestamp"] = json!(timestamp_ms());
    if snapshot.is_terminal() {
        v["job_id"] = json!(snapshot.terminal_job_id());
    }
    if snapshot.status == JobStatus::Completed {
        let counts = snapshot.counts();
        v["summary"] = json!({
            "total_files": counts.total,
            "successful_files": counts.completed,
            "failed_files": counts.failed + counts.cancelled,
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
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
            &Task::Batch(
                batch,
                vec![
                    done(),
                    job()
                        .fail(
                            image2model_shared::domain::JobError::new("E", "e"),
                            Utc::now(),
                        )
                        .unwrap(),
                ],
            ),
        );
        assert_eq!(event_name(&snapshot), EventName::TaskCompleted);
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
        let snapshot = Snapshot::of(job.job_id, &Task::Job(Box::new(job.clone())));
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
                event_name(&queued),
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
                image2model_shared::domain::JobError::new("FAL_INVALID_INPUT", "secret detail"),
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

    #[test]
    fn event_lines_are_the_documented_names() {
        use EventName::*;
        for name in [
            TaskQueued,
            TaskProgress,
            TaskCompleted,
            TaskFailed,
            Heartbeat,
            Timeout,
            Shutdown,
        ] {
            assert_eq!(serde_json::to_value(name).unwrap(), name.as_str());
        }
    }

    fn job_snapshot(job: GenerationJob) -> Snapshot {
        Snapshot::of(job.job_id, &Task::Job(Box::new(job)))
    }
}
