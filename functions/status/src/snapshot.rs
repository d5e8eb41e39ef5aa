//! The state of a task at one moment: a job as it is, or a batch aggregated over its jobs.

use chrono::Utc;
use image2model_shared::access::Task;
use image2model_shared::domain::{GenerationJob, JobError, JobId, JobStatus};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    task_id: JobId,
    status: JobStatus,
    progress: u8,
    message: String,
    /// Jobs behind the task: one for a job, every job of a batch.
    jobs: Vec<GenerationJob>,
    is_batch: bool,
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

/// A batch is completed when every job ended and at least one completed; failed when every
/// job ended and none completed; otherwise processing once any job started, else queued.
fn aggregate(jobs: &[GenerationJob]) -> (JobStatus, u8, String) {
    let total = jobs.len().max(1);
    let progress = (jobs.iter().map(|j| u32::from(j.progress)).sum::<u32>() / total as u32) as u8;
    let count = |s: JobStatus| jobs.iter().filter(|j| j.status == s).count();
    let (completed, failed, cancelled) = (
        count(JobStatus::Completed),
        count(JobStatus::Failed),
        count(JobStatus::Cancelled),
    );
    let ended = completed + failed + cancelled;
    let status = if ended == jobs.len() {
        if completed > 0 {
            JobStatus::Completed
        } else {
            JobStatus::Failed
        }
    } else if jobs.iter().any(|j| j.status != JobStatus::Queued) {
        JobStatus::Processing
    } else {
        JobStatus::Queued
    };
    let progress = if status == JobStatus::Completed {
        100
    } else {
        progress.min(99)
    };
    let message = format!(
        "{completed} of {} completed, {} failed or cancelled",
        jobs.len(),
        failed + cancelled
    );
    (status, progress, message)
}

impl Snapshot {
    pub fn of(task_id: JobId, task: &Task) -> Self {
        match task {
            Task::Job(job) => Self {
                task_id,
                status: job.status,
                progress: job.progress,
                message: job.message.clone(),
                jobs: vec![(**job).clone()],
                is_batch: false,
            },
            Task::Batch(_, jobs) => {
                let (status, progress, message) = aggregate(jobs);
                Self {
                    task_id,
                    status,
                    progress,
                    message,
                    jobs: jobs.clone(),
                    is_batch: true,
                }
            }
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// Whether a client watching `self` should hear about `next`.
    pub fn changed(&self, next: &Snapshot) -> bool {
        (self.status, self.progress, &self.message) != (next.status, next.progress, &next.message)
    }

    pub fn event_name(&self) -> &'static str {
        match self.status {
            JobStatus::Queued => "task_queued",
            JobStatus::Processing => "task_progress",
            JobStatus::Completed => "task_completed",
            JobStatus::Failed | JobStatus::Cancelled => "task_failed",
        }
    }

    fn result(&self) -> Option<Value> {
        if self.status != JobStatus::Completed {
            return None;
        }
        if self.is_batch {
            Some(json!({ "jobs": self.jobs.iter().filter_map(result_json).collect::<Vec<_>>() }))
        } else {
            self.jobs.first().and_then(result_json)
        }
    }

    fn error(&self) -> Option<JobError> {
        if self.status.is_terminal() && self.status != JobStatus::Completed {
            self.jobs.iter().find_map(|j| j.error.clone()).or_else(|| {
                (self.status == JobStatus::Failed || self.status == JobStatus::Cancelled)
                    .then(|| JobError::new("CANCELLED", "the task was cancelled"))
            })
        } else {
            None
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "task_id": self.task_id,
            "status": self.status,
            "progress": self.progress,
            "message": self.message,
            "result": self.result(),
            "error": self.error(),
        });
        if self.is_batch {
            v["jobs"] = self
                .jobs
                .iter()
                .map(|j| json!({"job_id": j.job_id, "status": j.status, "progress": j.progress}))
                .collect();
        }
        v
    }

    pub fn to_event_json(&self) -> Value {
        let mut v = self.to_json();
        v["timestamp"] = json!(Utc::now());
        if self.is_terminal() {
            let job_id = if self.is_batch {
                self.task_id
            } else {
                self.jobs.first().map_or(self.task_id, |j| j.job_id)
            };
            v["job_id"] = json!(job_id);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image2model_shared::domain::{FileId, JobOptions, JobResult};

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

    #[test]
    fn batch_aggregates_its_jobs() {
        let now = Utc::now();
        let queued = job();
        let running = job()
            .start(now)
            .unwrap()
            .report_progress(50, "x", now)
            .unwrap();
        let result = JobResult {
            object_key: "k".into(),
            filename: "a.glb".into(),
            size: 3,
            content_type: "model/gltf-binary".into(),
            preview_key: None,
        };
        let done = job().start(now).unwrap().complete(result, now).unwrap();
        let failed = job().fail(JobError::new("E", "e"), now).unwrap();

        assert_eq!(
            aggregate(&[queued.clone(), queued.clone()]).0,
            JobStatus::Queued
        );
        let (status, progress, _) = aggregate(&[queued, running]);
        assert_eq!((status, progress), (JobStatus::Processing, 25));
        let (status, progress, message) = aggregate(&[done.clone(), failed.clone()]);
        assert_eq!((status, progress), (JobStatus::Completed, 100));
        assert!(message.starts_with("1 of 2 completed"));
        assert_eq!(aggregate(&[failed]).0, JobStatus::Failed);

        let batch = Snapshot::of(
            JobId::new(),
            &Task::Batch(
                image2model_shared::domain::Batch {
                    batch_id: Default::default(),
                    owner: "o".into(),
                    job_ids: vec![],
                    created_at: now,
                },
                vec![done],
            ),
        );
        assert_eq!(batch.event_name(), "task_completed");
        assert_eq!(
            batch.to_json()["result"]["jobs"].as_array().unwrap().len(),
            1
        );
    }
}
