//! The ports: traits every function talks to, each with an embedded implementation (in
//! [`crate::adapters`]) and, on AWS, an S3 / DynamoDB / SQS one; FAL.AI's queue has its HTTPS
//! client.

pub mod fal;
pub mod generator;
pub mod queue;
pub mod storage;
pub mod store;
pub mod webhooks;

pub use fal::{FalError, FalQueue, QueueStatus, Submission};
pub use generator::{
    GeneratedModel, GenerationRequest, Generator, GeneratorError, PreviewImage, ProgressReporter,
};
pub use queue::{DeadLetter, QueueDepth, QueueError, ReceivedMessage, WorkQueue};
pub use storage::{
    ObjectMeta, ObjectStorage, PresignedPost, PresignedRequest, StorageError, StorageLocation,
};
pub use store::{
    CreateOutcome, IDEMPOTENCY_WINDOW, JobCursor, JobPage, JobQuery, Store, StoreError, Versioned,
    read_state, update_state,
};
pub use webhooks::WebhookStore;

use std::sync::Arc;

/// The ports a context runs on: one implementation of each.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub storage: Arc<dyn ObjectStorage>,
    pub queue: Arc<dyn WorkQueue>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub deliveries: Arc<dyn WorkQueue>,
}
