//! Embedded adapters: the ports implemented on this machine alone, for the local server, unit
//! tests and developers without an AWS account.

#[cfg(feature = "aws")]
pub mod aws;
pub mod disk_storage;
pub mod sqlite;

pub use disk_storage::{DiskStorage, SignedGrant, SignedPostGrant, SignedUrlError};
pub use sqlite::EmbeddedDb;
