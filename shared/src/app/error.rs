//! The one error of the application services. Each variant says what went wrong in the terms of
//! the use case (a job that is not there, an option a model does not take, a quota used up, a
//! port that failed); the web layer maps it to a status and an `error_code` in one place
//! (`web/error.rs`), and the event handlers let Lambda retry on it.

use crate::domain::{FileId, JobId, TransitionError};
use crate::ports::{QueueError, StorageError, StoreError};
use crate::validation::ImageRejection;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("job {0} not found")]
    JobNotFound(JobId),
    #[error("file {0} not found")]
    FileNotFound(FileId),
    #[error("{0}")]
    InvalidImage(#[from] ImageRejection),
    #[error("{count} files sent; at most {limit} per request")]
    TooManyFiles { count: usize, limit: usize },
    #[error(
        "content type {declared:?} is not accepted (allowed: image/jpeg, image/png, image/webp)"
    )]
    InvalidFileType { declared: String },
    #[error("file {file_id} is {status}: {reason}")]
    FileNotReady {
        file_id: FileId,
        status: &'static str,
        reason: String,
    },
    /// The file's bytes arrived already: an upload grant writes one object once.
    #[error("file {file_id} is {status}: its upload was already received")]
    UploadAlreadyReceived {
        file_id: FileId,
        status: &'static str,
    },
    #[error("model type {0:?} is not available in this deployment")]
    ModelUnavailable(String),
    /// An option the schema knows that the chosen model does not take.
    #[error("{field} is not an option of {model} (it takes: {accepted})")]
    UnsupportedOption {
        model: &'static str,
        field: String,
        accepted: String,
    },
    #[error("webhook endpoint {0} not found")]
    EndpointNotFound(crate::domain::EndpointId),
    #[error("webhook delivery {0} not found")]
    DeliveryNotFound(crate::domain::DeliveryId),
    /// The endpoint was disabled (410 Gone, or days of failures): register it again to resume.
    #[error("webhook endpoint {0} is disabled: register it again to receive deliveries")]
    EndpointDisabled(crate::domain::EndpointId),
    /// The delivery is being sent now; a resend waits until it has an answer.
    #[error("webhook delivery {0} is being sent now: resend it once it has an answer")]
    DeliveryInProgress(crate::domain::DeliveryId),
    /// The owner has as many webhook endpoints as one may (`MAX_WEBHOOK_ENDPOINTS`).
    #[error("at most {limit} webhook endpoints per owner: delete one first")]
    TooManyEndpoints { limit: usize },
    /// An option's value is within the schema's range but above what the chosen model makes.
    #[error("{field} must be at most {max} for {model}: it makes no finer mesh")]
    OptionAboveModelLimit {
        model: &'static str,
        field: String,
        max: u32,
    },
    /// A request's value is not acceptable; `field` names it when there is one.
    #[error("{message}")]
    Invalid {
        message: String,
        field: Option<String>,
    },
    #[error("job {job_id} is {status} and cannot be {action}")]
    JobStateConflict {
        job_id: JobId,
        status: &'static str,
        action: &'static str,
    },
    /// The job's state machine refused a change some step asked for.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("job {job_id} has no model yet (status {status})")]
    ResultNotReady { job_id: JobId, status: &'static str },
    /// The model holds what the converter to `format` cannot read; the GLB stays available.
    #[error("the model cannot be converted to {format}: {reason}")]
    FormatNotConvertible {
        format: crate::domain::ModelFormat,
        reason: String,
    },
    #[error("{0}")]
    StatusToken(#[from] super::status_token::TokenError),
    #[error(
        "the file is {size} bytes; this route takes at most {limit} bytes here: send larger photos (up to {max} bytes) through POST /api/v1/uploads/presign"
    )]
    TooLargeForRoute { size: u64, limit: u64, max: u64 },
    #[error("invalid filename: {0}")]
    InvalidFilename(&'static str),
    #[error("task {task_id} has no result file named {filename:?}")]
    ResultFileNotFound { task_id: JobId, filename: String },
    #[error(
        "daily quota of {limit} jobs used ({used} today); it resets at 00:00 UTC, in {retry_after_secs} s"
    )]
    QuotaExceeded {
        limit: u64,
        used: u64,
        retry_after_secs: u64,
    },
    /// An idempotency key used before for another request (another file, model or options).
    #[error("the Idempotency-Key was used for another request (job {job_id}); use a new key")]
    IdempotencyKeyReused { job_id: JobId },
    /// Another writer kept winning (or the record already existed); retrying may succeed.
    #[error("a concurrent update won; retry the request")]
    Conflict,
    #[error("store: {0}")]
    Store(StoreError),
    #[error("object storage: {0}")]
    Storage(#[from] StorageError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

impl AppError {
    pub fn invalid(message: impl Into<String>, field: Option<&str>) -> Self {
        Self::Invalid {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// `TooManyFiles` when a request sends more than `limit` files.
    pub fn check_file_count(count: usize, limit: usize) -> Result<(), Self> {
        if count > limit {
            Err(Self::TooManyFiles { count, limit })
        } else {
            Ok(())
        }
    }

    /// The port that failed, for errors of the backends (whose text stays in the logs).
    pub fn failed_component(&self) -> Option<&'static str> {
        match self {
            // A key the client made up is the client's error, not the storage's.
            Self::Storage(StorageError::InvalidKey(_)) => None,
            Self::Store(_) => Some("store"),
            Self::Storage(_) => Some("object storage"),
            Self::Queue(_) => Some("queue"),
            _ => None,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict | StoreError::AlreadyExists => Self::Conflict,
            StoreError::InvalidCursor => Self::invalid("invalid cursor", Some("cursor")),
            other => Self::Store(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_may_send_up_to_the_limit_of_files() {
        assert!(AppError::check_file_count(0, 2).is_ok());
        assert!(AppError::check_file_count(2, 2).is_ok());
        assert!(matches!(
            AppError::check_file_count(3, 2),
            Err(AppError::TooManyFiles { count: 3, limit: 2 })
        ));
    }

    #[test]
    fn backend_errors_name_their_port_and_client_errors_none() {
        let cases = [
            (
                AppError::Store(StoreError::Backend("x".into())),
                Some("store"),
            ),
            (
                AppError::Storage(StorageError::Backend("x".into())),
                Some("object storage"),
            ),
            (
                AppError::Storage(StorageError::NotFound("k".into())),
                Some("object storage"),
            ),
            (
                AppError::Storage(StorageError::InvalidKey("../k".into())),
                None,
            ),
            (
                AppError::Queue(QueueError::Backend("x".into())),
                Some("queue"),
            ),
            (AppError::Conflict, None),
            (AppError::invalid("bad", None), None),
        ];
        for (err, component) in cases {
            assert_eq!(err.failed_component(), component, "{err:?}");
        }
    }
}
