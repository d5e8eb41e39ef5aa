//! What the uploads and results take in object storage, as an operator reads it: bytes, files
//! and folders under a prefix, and the objects themselves (newest first). Figures come from a
//! listing of the storage, on the machine's disk and on S3 alike.

use super::error::AppError;
use crate::context::AppContext;
use crate::host::{DiskFigures, disk_figures};
use crate::ports::{ObjectMeta, StorageLocation};
use std::collections::BTreeSet;

/// The objects under one prefix.
#[derive(Debug, Clone)]
pub struct PrefixUsage {
    /// Where the prefix lives: a directory, or an `s3://` URL.
    pub path: String,
    pub bytes: u64,
    /// Folders directly under the prefix (owners of uploads, jobs of results).
    pub directory_count: usize,
    /// Newest first.
    pub objects: Vec<ObjectMeta>,
}

/// The file system holding the objects when they are files on this machine; `None` on S3
/// (there is no disk to measure) or when it cannot be read.
pub fn storage_disk(ctx: &AppContext) -> Option<DiskFigures> {
    match ctx.storage.location() {
        StorageLocation::Directory(root) => disk_figures(&root),
        StorageLocation::Bucket(_) => None,
    }
}

/// Lists `prefix` (`uploads/` or `results/`).
pub async fn prefix_usage(ctx: &AppContext, prefix: &str) -> Result<PrefixUsage, AppError> {
    let mut objects = ctx.storage.list(prefix).await?;
    objects.sort_by(|a, b| {
        b.last_modified
            .cmp(&a.last_modified)
            .then_with(|| a.key.cmp(&b.key))
    });
    let directories: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| {
            o.key
                .strip_prefix(prefix)?
                .split_once('/')
                .map(|(dir, _)| dir)
        })
        .collect();
    Ok(PrefixUsage {
        path: ctx.storage.location().describe(prefix),
        bytes: objects.iter().map(|o| o.size).sum(),
        directory_count: directories.len(),
        objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{completed, context, queued_job, ready_file};
    use crate::domain::models::RELIEF_MODEL;
    use crate::domain::{RESULTS_PREFIX, UPLOADS_PREFIX};

    #[tokio::test]
    async fn uploads_and_results_are_counted_from_the_storage() {
        let t = context();
        let empty = prefix_usage(&t, UPLOADS_PREFIX).await.unwrap();
        assert_eq!(
            (empty.bytes, empty.directory_count, empty.objects.len()),
            (0, 0, 0)
        );
        let a = ready_file(&t, "alice").await;
        let b = ready_file(&t, "bob").await;
        let c = ready_file(&t, "bob").await;
        let uploads = prefix_usage(&t, UPLOADS_PREFIX).await.unwrap();
        assert_eq!(uploads.objects.len(), 3);
        assert_eq!(uploads.directory_count, 2, "alice and bob");
        assert_eq!(uploads.bytes, a.size + b.size + c.size);
        assert!(uploads.path.ends_with("uploads/"), "{}", uploads.path);
        assert!(
            storage_disk(&t).is_some(),
            "the embedded storage is on a disk"
        );
        let done = completed(&t, &queued_job(&t, &a, RELIEF_MODEL).await).await;
        let results = prefix_usage(&t, RESULTS_PREFIX).await.unwrap();
        assert_eq!(results.objects.len(), 1);
        assert_eq!(results.bytes, done.result.unwrap().size);
        assert_eq!(results.directory_count, 1);
    }
}
