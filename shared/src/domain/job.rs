//! A generation job and its state machine. Every change goes through a method here that returns
//! the next version of the job or a [`TransitionError`]; stores then apply it conditionally on
//! the version so concurrent writers cannot lose updates, move progress back or leave a
//! terminal state.

use super::format::{Converted, FormatFailure, ModelFormat, RESULTS_PREFIX, StoredFormat};
use super::ids::{BatchId, FileId, JobId};
use super::job_error::JobError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        Self::Queued,
        Self::Processing,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The statuses a job never leaves by an ordinary transition; stores refuse updates of jobs
    /// in them.
    pub fn terminal() -> impl Iterator<Item = Self> {
        Self::ALL.into_iter().filter(|s| s.is_terminal())
    }

    /// Whether an administrator's retry may reopen a job in this status.
    pub fn can_reopen(self) -> bool {
        matches!(self, Self::Failed | Self::Cancelled)
    }

    /// The statuses an administrator's retry reopens.
    pub fn reopenable() -> impl Iterator<Item = Self> {
        Self::ALL.into_iter().filter(|s| s.can_reopen())
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Texture quality, as FAL's tripo3d understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Texture {
    #[serde(rename = "no")]
    No,
    #[serde(rename = "standard")]
    Standard,
    #[serde(rename = "HD")]
    Hd,
}

/// Options a client may set on a job. Unknown keys are refused rather than silently dropped;
/// each model takes only some (see `GET /api/v1/models/available`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobOptions {
    /// Most triangles of the model.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::domain::integer::optional_whole"
    )]
    #[schema(minimum = 500, maximum = 2000000)]
    pub face_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub texture: Option<Texture>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbr: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::domain::integer::optional_whole"
    )]
    pub seed: Option<u32>,
    /// The formats to convert the model to as soon as it is made (default `["glb"]`, the
    /// generated model itself); any other is made on its first download.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "distinct_formats"
    )]
    #[schema(max_items = 4)]
    pub formats: Option<Vec<ModelFormat>>,
}

/// `formats` as a set: at most the four there are (a longer list is refused), each once, in
/// the formats' order, so that the same set written otherwise is the same options.
fn distinct_formats<'de, D>(deserializer: D) -> Result<Option<Vec<ModelFormat>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(mut formats) = Option::<Vec<ModelFormat>>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if formats.len() > ModelFormat::ALL.len() {
        return Err(serde::de::Error::invalid_length(
            formats.len(),
            &"at most 4 formats",
        ));
    }
    formats.sort_unstable();
    formats.dedup();
    Ok(Some(formats))
}

/// Lowest and highest accepted `face_limit`.
pub const FACE_LIMIT_RANGE: std::ops::RangeInclusive<u32> = 500..=2_000_000;

impl JobOptions {
    /// Checks value ranges; returns the offending field and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(limit) = self.face_limit
            && !FACE_LIMIT_RANGE.contains(&limit)
        {
            return Err((
                "face_limit",
                format!(
                    "must be between {} and {}",
                    FACE_LIMIT_RANGE.start(),
                    FACE_LIMIT_RANGE.end()
                ),
            ));
        }
        Ok(())
    }
}

/// Where the generated model is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub object_key: String,
    pub filename: String,
    pub size: u64,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_key: Option<String>,
    /// The conversions made at completion (the formats the job asked for besides the GLB).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<StoredFormat>,
    /// The formats asked for that could not be made of this model, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub format_failures: Vec<FormatFailure>,
}

impl JobResult {
    /// The object key of the model of `job_id` (`results/<job_id>/model.<extension>`).
    pub fn object_key_for(job_id: JobId, extension: &str) -> String {
        format!("{RESULTS_PREFIX}{job_id}/model.{extension}")
    }

    /// Where everything kept of job `job_id`'s model lives: the model, its preview, its
    /// conversions and their failures.
    pub fn prefix_for(job_id: JobId) -> String {
        format!("{RESULTS_PREFIX}{job_id}/")
    }

    /// Where a job's preview image is stored.
    pub fn preview_key_for(job_id: JobId, extension: &str) -> String {
        format!("{RESULTS_PREFIX}{job_id}/preview.{extension}")
    }

    /// The job id of a result key; `None` for any other key.
    pub fn job_id_of_key(key: &str) -> Option<JobId> {
        key.strip_prefix(RESULTS_PREFIX)?
            .split('/')
            .next()?
            .parse()
            .ok()
    }
}

/// Where a job runs at FAL.AI: the request id and the URLs FAL returned for it (they are used as
/// returned, never rebuilt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FalRequest {
    pub request_id: String,
    pub status_url: String,
    pub response_url: String,
    pub cancel_url: String,
    pub submitted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationJob {
    pub job_id: JobId,
    pub batch_id: Option<BatchId>,
    pub file_id: FileId,
    /// The photo's name as its uploader gave it (sanitised), so that a person can tell
    /// `coffee.png`'s job from `coffee.webp`'s; absent on jobs recorded before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_filename: Option<String>,
    pub owner: String,
    pub model_type: String,
    pub options: JobOptions,
    pub status: JobStatus,
    pub progress: u8,
    pub message: String,
    pub attempts: u32,
    pub result: Option<JobResult>,
    pub error: Option<JobError>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Set once the job was submitted to FAL.AI; a job is submitted at most once per attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fal: Option<FalRequest>,
    pub version: u64,
}

/// A change the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a {from} job cannot become {to}")]
    Illegal { from: JobStatus, to: JobStatus },
    #[error("progress cannot move from {from} to {to}")]
    ProgressBackwards { from: u8, to: u8 },
    #[error("the job was already submitted to FAL as {0}")]
    AlreadySubmitted(String),
}

impl GenerationJob {
    /// A new queued job at version 1.
    pub fn new(
        file_id: FileId,
        owner: &str,
        model_type: &str,
        options: JobOptions,
        batch_id: Option<BatchId>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            job_id: JobId::new(),
            batch_id,
            file_id,
            source_filename: None,
            owner: owner.to_owned(),
            model_type: model_type.to_owned(),
            options,
            status: JobStatus::Queued,
            progress: 0,
            message: "Queued".to_owned(),
            attempts: 0,
            result: None,
            error: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            completed_at: None,
            fal: None,
            version: 1,
        }
    }

    /// The job, naming the photo it was made from.
    pub fn from_photo(self, filename: &str) -> Self {
        Self {
            source_filename: Some(filename.to_owned()),
            ..self
        }
    }

    /// Whether `from -> to` is an allowed transition of the ordinary lifecycle.
    pub fn can_transition(from: JobStatus, to: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (from, to),
            (Queued, Processing)
                | (Queued, Failed)
                | (Queued, Cancelled)
                | (Processing, Processing)
                | (Processing, Queued)
                | (Processing, Completed)
                | (Processing, Failed)
                | (Processing, Cancelled)
        )
    }

    fn next(&self, to: JobStatus, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        if !Self::can_transition(self.status, to) {
            return Err(TransitionError::Illegal {
                from: self.status,
                to,
            });
        }
        let mut next = self.clone();
        next.status = to;
        next.updated_at = now.max(self.updated_at);
        next.version = self.version + 1;
        Ok(next)
    }

    /// A worker takes the job (first run, or a takeover after a worker died).
    pub fn start(&self, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        let mut next = self.next(JobStatus::Processing, now)?;
        next.attempts += 1;
        next.started_at.get_or_insert(now);
        next.progress = next.progress.max(1);
        next.message = "Processing started".to_owned();
        Ok(next)
    }

    /// Progress of a running job; never backwards, never 100 before completion.
    pub fn report_progress(
        &self,
        progress: u8,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, TransitionError> {
        let progress = progress.min(99);
        if self.status != JobStatus::Processing {
            return Err(TransitionError::Illegal {
                from: self.status,
                to: JobStatus::Processing,
            });
        }
        if progress < self.progress {
            return Err(TransitionError::ProgressBackwards {
                from: self.progress,
                to: progress,
            });
        }
        let mut next = self.next(JobStatus::Processing, now)?;
        next.progress = progress;
        message.clone_into(&mut next.message);
        Ok(next)
    }

    /// Records the FAL request a running job was submitted as. Refused when one is already
    /// recorded, so two workers can never both believe they submitted the job.
    pub fn record_submission(
        &self,
        request: FalRequest,
        now: DateTime<Utc>,
    ) -> Result<Self, TransitionError> {
        if let Some(existing) = &self.fal {
            return Err(TransitionError::AlreadySubmitted(
                existing.request_id.clone(),
            ));
        }
        let mut next = self.next(JobStatus::Processing, now)?;
        next.message = "Submitted to FAL.AI".to_owned();
        next.fal = Some(request);
        Ok(next)
    }

    /// A failed attempt that may be retried goes back to the queue, keeping its progress; the
    /// next attempt submits afresh.
    pub fn requeue(&self, message: &str, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        let mut next = self.next(JobStatus::Queued, now)?;
        message.clone_into(&mut next.message);
        next.fal = None;
        Ok(next)
    }

    pub fn complete(&self, result: JobResult, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        let mut next = self.next(JobStatus::Completed, now)?;
        next.progress = 100;
        next.result = Some(result);
        next.error = None;
        next.completed_at = Some(now);
        next.message = "Model generated".to_owned();
        Ok(next)
    }

    pub fn fail(&self, error: JobError, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        let mut next = self.next(JobStatus::Failed, now)?;
        next.message.clone_from(&error.message);
        next.error = Some(error);
        next.completed_at = Some(now);
        Ok(next)
    }

    pub fn cancel(&self, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        let mut next = self.next(JobStatus::Cancelled, now)?;
        next.completed_at = Some(now);
        next.message = "Cancelled".to_owned();
        Ok(next)
    }

    /// An administrator's retry: a failed or cancelled job starts over from the queue. This is
    /// the one way out of a terminal state, and stores apply it with a dedicated operation.
    /// The completed job with `converted` (a format made, or found unmakeable, after completion)
    /// named in its result; `None` when it is not completed or already names that format.
    pub fn with_format(&self, converted: &Converted, now: DateTime<Utc>) -> Option<Self> {
        let result = self
            .result
            .as_ref()
            .filter(|_| self.status == JobStatus::Completed)?;
        let format = converted.format();
        let known = result.formats.iter().any(|f| f.format == format)
            || result.format_failures.iter().any(|f| f.format == format);
        if known || format == ModelFormat::Glb {
            return None;
        }
        let mut result = result.clone();
        match converted {
            Converted::Stored(stored) => result.formats.push(stored.clone()),
            Converted::Failed(failure) => result.format_failures.push(failure.clone()),
        }
        Some(Self {
            result: Some(result),
            updated_at: now.max(self.updated_at),
            version: self.version + 1,
            ..self.clone()
        })
    }

    pub fn reopen(&self, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        if !self.status.can_reopen() {
            return Err(TransitionError::Illegal {
                from: self.status,
                to: JobStatus::Queued,
            });
        }
        Ok(Self {
            status: JobStatus::Queued,
            progress: 0,
            message: "Queued again by an administrator".to_owned(),
            attempts: 0,
            result: None,
            error: None,
            started_at: None,
            completed_at: None,
            fal: None,
            updated_at: now.max(self.updated_at),
            version: self.version + 1,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn formats_are_read_as_a_set_of_at_most_four() {
        let read = |json: &str| serde_json::from_str::<JobOptions>(json).map(|o| o.formats);
        assert_eq!(
            read(r#"{"formats": ["stl", "glb", "stl"]}"#).unwrap(),
            Some(vec![ModelFormat::Glb, ModelFormat::Stl])
        );
        assert_eq!(read(r#"{"formats": null}"#).unwrap(), None);
        assert_eq!(read(r#"{"formats": []}"#).unwrap(), Some(vec![]));
        let five = read(r#"{"formats": ["glb", "glb", "glb", "glb", "glb"]}"#).unwrap_err();
        assert!(five.to_string().contains("at most 4 formats"), "{five}");
        assert!(read(r#"{"formats": ["fbx"]}"#).is_err());
    }
    use super::*;
    use proptest::prelude::*;

    fn job() -> GenerationJob {
        GenerationJob::new(
            FileId::new(),
            "alice",
            crate::domain::models::RELIEF_MODEL,
            JobOptions::default(),
            None,
            Utc::now(),
        )
    }

    #[test]
    fn statuses_and_result_keys_read_as_written() {
        assert_eq!(JobStatus::Completed.to_string(), "completed");
        let id = JobId::new();
        let preview = JobResult::preview_key_for(id, "png");
        assert_eq!(preview, format!("results/{id}/preview.png"));
        assert_eq!(JobResult::job_id_of_key(&preview), Some(id));
    }

    #[test]
    fn progress_may_repeat_with_news_but_never_go_back() {
        let now = Utc::now();
        let running = job().start(now).unwrap();
        let at_40 = running.report_progress(40, "meshing", now).unwrap();
        let again = at_40.report_progress(40, "texturing", now).unwrap();
        assert_eq!((again.progress, again.message.as_str()), (40, "texturing"));
        assert!(matches!(
            again.report_progress(39, "late", now),
            Err(TransitionError::ProgressBackwards { from: 40, to: 39 })
        ));
    }

    #[test]
    fn a_reopened_job_starts_over_from_nothing() {
        let now = Utc::now();
        let failed = job()
            .start(now)
            .unwrap()
            .report_progress(60, "meshing", now)
            .unwrap()
            .fail(
                JobError::from(crate::domain::JobErrorCode::GenerationFailed),
                now,
            )
            .unwrap();
        let mut failed = failed;
        failed.fal = Some(FalRequest {
            request_id: "req-1".into(),
            status_url: String::new(),
            response_url: String::new(),
            cancel_url: String::new(),
            submitted_at: now,
        });
        // Whatever a result it held goes too.
        failed.result = Some(JobResult {
            object_key: "k".into(),
            filename: "a.glb".into(),
            size: 1,
            content_type: "model/gltf-binary".into(),
            preview_key: None,
            ..JobResult::default()
        });
        assert_eq!(failed.attempts, 1);
        assert!(failed.started_at.is_some() && failed.completed_at.is_some());
        let later = now + chrono::Duration::seconds(5);
        let reopened = failed.reopen(later).unwrap();
        assert_eq!(
            (
                reopened.result.is_none(),
                reopened.started_at,
                reopened.completed_at,
                reopened.fal.is_none(),
                reopened.updated_at,
                reopened.version
            ),
            (true, None, None, true, later, failed.version + 1)
        );
        // A clock behind the record's never moves it back.
        assert_eq!(
            failed
                .reopen(now - chrono::Duration::seconds(5))
                .unwrap()
                .updated_at,
            failed.updated_at
        );
        assert_eq!(
            (
                reopened.status,
                reopened.progress,
                reopened.message.as_str(),
                reopened.attempts,
                reopened.error
            ),
            (
                JobStatus::Queued,
                0,
                "Queued again by an administrator",
                0,
                None
            )
        );
    }

    #[test]
    fn happy_path_bumps_versions_and_ends_at_100() {
        let now = Utc::now();
        let queued = job();
        let running = queued.start(now).unwrap();
        assert_eq!(
            (running.status, running.attempts, running.version),
            (JobStatus::Processing, 1, 2)
        );
        let halfway = running.report_progress(50, "meshing", now).unwrap();
        let result = JobResult {
            object_key: "results/x/model.glb".into(),
            filename: "model.glb".into(),
            size: 10,
            content_type: "model/gltf-binary".into(),
            preview_key: None,
            ..JobResult::default()
        };
        let done = halfway.complete(result, now).unwrap();
        assert_eq!(
            (done.status, done.progress, done.version),
            (JobStatus::Completed, 100, 4)
        );
        assert!(done.completed_at.is_some());
    }

    #[test]
    fn result_keys_name_their_job() {
        let id = JobId::new();
        let key = JobResult::object_key_for(id, "glb");
        assert_eq!(key, format!("results/{id}/model.glb"));
        assert_eq!(JobResult::job_id_of_key(&key), Some(id));
        assert_eq!(
            JobResult::job_id_of_key(&format!("uploads/{id}/model.glb")),
            None
        );
        assert_eq!(JobResult::job_id_of_key("results/x/model.glb"), None);
    }

    #[test]
    fn terminal_and_reopenable_statuses_agree_with_the_state_machine() {
        let terminal: Vec<_> = JobStatus::terminal().collect();
        assert_eq!(
            terminal,
            [
                JobStatus::Completed,
                JobStatus::Failed,
                JobStatus::Cancelled
            ]
        );
        for from in JobStatus::ALL {
            let leaves = JobStatus::ALL
                .into_iter()
                .any(|to| GenerationJob::can_transition(from, to));
            assert_eq!(leaves, !from.is_terminal(), "{from}");
        }
        assert!(JobStatus::reopenable().all(JobStatus::is_terminal));
        assert!(!JobStatus::Completed.can_reopen());
    }

    #[test]
    fn terminal_states_refuse_everything_but_reopen() {
        let now = Utc::now();
        let failed = job()
            .fail(
                JobError::new(crate::domain::JobErrorCode::GenerationFailed, "boom"),
                now,
            )
            .unwrap();
        assert!(failed.start(now).is_err());
        assert!(failed.cancel(now).is_err());
        assert!(failed.report_progress(10, "", now).is_err());
        let reopened = failed.reopen(now).unwrap();
        assert_eq!(
            (reopened.status, reopened.progress, reopened.error.clone()),
            (JobStatus::Queued, 0, None)
        );
        assert!(
            job().reopen(now).is_err(),
            "a queued job cannot be reopened"
        );
    }

    #[test]
    fn progress_never_moves_back_and_caps_below_completion() {
        let now = Utc::now();
        let running = job()
            .start(now)
            .unwrap()
            .report_progress(40, "a", now)
            .unwrap();
        assert_eq!(
            running.report_progress(39, "b", now),
            Err(TransitionError::ProgressBackwards { from: 40, to: 39 })
        );
        assert_eq!(running.report_progress(100, "c", now).unwrap().progress, 99);
        assert!(
            job()
                .report_progress(10, "queued jobs do not progress", now)
                .is_err()
        );
    }

    #[test]
    fn options_refuse_unknown_keys_and_out_of_range_values() {
        assert!(serde_json::from_value::<JobOptions>(serde_json::json!({"quad": true})).is_err());
        let opts: JobOptions =
            serde_json::from_value(serde_json::json!({"face_limit": 10, "texture": "HD"})).unwrap();
        assert_eq!(opts.texture, Some(Texture::Hd));
        assert_eq!(opts.validate().unwrap_err().0, "face_limit");
    }

    fn any_step() -> impl Strategy<Value = u8> {
        0u8..7
    }

    proptest! {
        /// Whatever sequence of operations is attempted, accepted steps respect the state machine:
        /// progress never decreases, versions grow by one, and terminal states stay terminal.
        #[test]
        fn random_walks_respect_the_state_machine(steps in proptest::collection::vec((any_step(), 0u8..=120), 1..40)) {
            let now = Utc::now();
            let mut current = job();
            for (op, value) in steps {
                let attempt = match op {
                    0 => current.start(now),
                    1 => current.report_progress(value, "p", now),
                    2 => current.requeue("r", now),
                    3 => current.complete(JobResult { object_key: "k".into(), filename: "f".into(), size: 1, content_type: "c".into(), preview_key: None, ..JobResult::default() }, now),
                    4 => current.fail(JobError::from(crate::domain::JobErrorCode::GenerationFailed), now),
                    5 => current.cancel(now),
                    _ => current.report_progress(current.progress, "same", now),
                };
                if let Ok(next) = attempt {
                    prop_assert!(next.progress >= current.progress);
                    prop_assert_eq!(next.version, current.version + 1);
                    prop_assert!(!current.status.is_terminal());
                    prop_assert!(GenerationJob::can_transition(current.status, next.status));
                    current = next;
                }
            }
        }
    }
}
