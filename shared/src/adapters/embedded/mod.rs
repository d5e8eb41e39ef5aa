//! Embedded adapters: the ports on this machine alone, for the local server, unit tests and
//! developers without an AWS account (feature `embedded`). They mirror the AWS side: the store
//! (`store.rs`, like `dynamodb.rs`) and the queue (`queue.rs`, like `sqs.rs`) share one SQLite
//! database (`db.rs`), with the webhook endpoints and deliveries (`webhooks.rs`); object storage is a directory (`storage.rs`, like `s3.rs`) whose presigned
//! URLs `url_signer.rs` signs and checks; `object_key.rs` says which keys both accept.

mod db;
mod object_key;
mod queue;
mod storage;
mod store;
pub mod url_signer;
mod webhooks;

pub use db::EmbeddedDb;
pub use queue::EmbeddedQueue;
pub use storage::DiskStorage;
pub use url_signer::{SignedGrant, SignedPostGrant, SignedUrlError, UrlSigner};
