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

use crate::config::Config;
use crate::ports::{Ports, StorageError, StoreError};
use std::sync::Arc;

/// Why the embedded adapters of a data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the embedded database: {0}")]
    Database(#[from] StoreError),
    #[error("cannot open object storage: {0}")]
    Storage(#[from] StorageError),
}

/// The embedded adapters of one data directory.
#[derive(Clone)]
pub struct EmbeddedAdapters {
    pub db: EmbeddedDb,
    pub storage: DiskStorage,
}

impl EmbeddedAdapters {
    /// Opens `image2model.db` and `objects/` under the configured data directory; signed URLs
    /// start with `base_url`.
    pub fn open(config: &Config, base_url: &str) -> Result<Self, OpenError> {
        let db = EmbeddedDb::open(
            &config.local.data_dir.join("image2model.db"),
            config.jobs.max_receives,
        )?;
        let storage = DiskStorage::open(&config.local.data_dir.join("objects"), base_url)?;
        Ok(Self { db, storage })
    }

    /// The ports on these adapters: the database is the store, both queues and the webhooks.
    pub fn ports(&self) -> Ports {
        Ports {
            store: Arc::new(self.db.clone()),
            storage: Arc::new(self.storage.clone()),
            queue: Arc::new(self.db.work_queue()),
            webhooks: Arc::new(self.db.clone()),
            deliveries: Arc::new(self.db.delivery_queue()),
        }
    }
}
