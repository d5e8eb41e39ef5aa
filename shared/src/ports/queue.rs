//! The work queue between job creation and the worker: at-least-once delivery with delays,
//! visibility timeouts, receive counts and a dead-letter store (the semantics of SQS).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue backend failed: {0}")]
    Backend(String),
    #[error("receipt {0} is stale or unknown")]
    StaleReceipt(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    /// Valid for this delivery only; deleting needs the latest receipt.
    pub receipt: String,
    pub body: String,
    /// 1 on first delivery.
    pub receive_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub receive_count: u32,
    pub sent_at: DateTime<Utc>,
    /// When the message was dead-lettered, where the backend records it.
    #[schema(required = true)]
    pub dead_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub dead: u64,
}

#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Enqueues `body`, invisible for `delay`. Returns the message id.
    async fn send(&self, body: &str, delay: Duration) -> Result<String, QueueError>;
    /// Up to `max` visible messages, hidden from other receivers for `visibility`. A message
    /// received more often than the queue's limit goes to the dead letters instead.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;
    /// Acknowledges a message for good.
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError>;
    async fn depth(&self) -> Result<QueueDepth, QueueError>;
}
