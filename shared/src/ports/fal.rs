//! FAL.AI's queue, as the worker needs it: submit a job, ask where it stands, fetch its result
//! and the files the result points to, cancel it. The HTTP client
//! ([`crate::adapters::fal::FalClient`]) is the implementation that runs; FAL's answers become
//! the errors below, each with the `error_code` a job fails with.

use crate::domain::JobErrorCode;
use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// How a FAL call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FalError {
    #[error("FAL refused the key (401): {0}")]
    Unauthorized(String),
    #[error("the FAL account is locked (403): {0}")]
    Locked(String),
    #[error("FAL refused the input (422): {0}")]
    InvalidInput(String),
    #[error("FAL is rate limiting (429): {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("FAL failed ({status}): {message}")]
    Server { status: u16, message: String },
    #[error("FAL answered {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("FAL could not be reached: {0}")]
    Transport(String),
    #[error("FAL answered something unreadable: {0}")]
    Malformed(String),
    #[error("the result file is gone from FAL ({0})")]
    Expired(String),
    #[error("the result file is larger than {0} bytes")]
    TooLarge(u64),
}

impl FalError {
    /// The `error_code` a job fails with.
    pub fn code(&self) -> JobErrorCode {
        match self {
            Self::Unauthorized(_) => JobErrorCode::FalUnauthorized,
            Self::Locked(_) => JobErrorCode::FalAccountLocked,
            Self::InvalidInput(_) => JobErrorCode::FalInvalidInput,
            Self::RateLimited { .. } => JobErrorCode::FalRateLimited,
            Self::Server { .. } | Self::Transport(_) => JobErrorCode::FalUnavailable,
            Self::Rejected { .. } => JobErrorCode::FalRequestRejected,
            Self::Malformed(_) => JobErrorCode::FalBadResponse,
            Self::Expired(_) => JobErrorCode::FalResultExpired,
            Self::TooLarge(_) => JobErrorCode::FalResultTooLarge,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Server { .. } | Self::Transport(_)
        )
    }

    /// Whether the failure says FAL itself is unwell (what the circuit breaker counts).
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            Self::Server { .. } | Self::Transport(_) | Self::Malformed(_)
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What `POST {base}/{app}` answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Submission {
    pub request_id: String,
    pub status_url: String,
    pub response_url: String,
    pub cancel_url: String,
    #[serde(default)]
    pub queue_position: Option<u32>,
}

/// Where a request stands in FAL's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueStatus {
    InQueue {
        position: Option<u32>,
    },
    InProgress {
        logs: Vec<String>,
    },
    /// Finished; the result (success or the model's own error) is at the response URL.
    Completed {
        logs: Vec<String>,
    },
}

/// FAL.AI's queue API. Status, result and cancel take the URLs FAL returned at submission.
#[async_trait]
pub trait FalQueue: Send + Sync {
    /// Queues `input` on the FAL application `app`; FAL will POST the outcome to `webhook`.
    async fn submit(
        &self,
        app: &str,
        input: &Value,
        webhook: Option<&str>,
    ) -> Result<Submission, FalError>;
    /// Where the request stands, with its logs.
    async fn status(&self, status_url: &str) -> Result<QueueStatus, FalError>;
    /// The model's output (its own error status becomes the error).
    async fn result(&self, response_url: &str) -> Result<Value, FalError>;
    /// Asks FAL to stop the request; one that already finished is not an error.
    async fn cancel(&self, cancel_url: &str) -> Result<(), FalError>;
    /// Downloads a file a result points to; one that is gone is [`FalError::Expired`].
    async fn download(&self, url: &str) -> Result<Bytes, FalError>;
}
