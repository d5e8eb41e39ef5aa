//! Ingestion: what happens when bytes land under `uploads/` (an S3 event, the local storage
//! route, or the sweeper for an event that never came). The bytes are sniffed and fully
//! validated; the file becomes ready (releasing the jobs that wait for it) or rejected with a
//! reason (deleting the bytes and failing the waiting jobs). Duplicate events are harmless.

use super::enqueue::{Handover, enqueue_if_ready};
use super::error::AppError;
use super::inspect::inspect;
use super::job_update::fail_job;
use crate::context::AppContext;
use crate::domain::{
    AcceptedImage, FileId, FileRejection, FileStatus, JobError, JobErrorCode, JobStatus,
    UploadedFile,
};
use crate::ports::StoreError;
use crate::validation::ImageRejection;

/// What ingestion did with one object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IngestOutcome {
    Accepted {
        file_id: FileId,
        released_jobs: usize,
    },
    Rejected {
        file_id: FileId,
        code: JobErrorCode,
        failed_jobs: usize,
    },
    /// The file had already left `pending` (a duplicate event).
    AlreadyProcessed { file_id: FileId },
    /// A ready file's bytes were written again after validation: the file is refused after all,
    /// its bytes deleted and its live jobs failed with `UPLOAD_TAMPERED`.
    Tampered { file_id: FileId, failed_jobs: usize },
    /// An upload key no file record names: nothing granted that write, so the object is deleted.
    Unrecorded,
    /// Not an upload key.
    Ignored,
}

/// Whether bytes may be written at `key` (the local storage's uploads; on S3 the URL alone
/// decides and ingestion checks afterwards): only the upload of a recorded file that is still
/// pending. `FILE_NOT_FOUND` for a key no record names, `UPLOAD_ALREADY_RECEIVED` once the file
/// left `pending`.
pub async fn check_upload_target(ctx: &AppContext, key: &str) -> Result<UploadedFile, AppError> {
    let file_id = UploadedFile::file_id_of_key(key)
        .ok_or_else(|| AppError::invalid(format!("{key:?} is not an upload key"), Some("key")))?;
    match ctx.store.get_file(file_id).await? {
        Some(file) if file.object_key == key && file.status == FileStatus::Pending => Ok(file),
        Some(file) if file.object_key == key => Err(AppError::UploadAlreadyReceived {
            file_id,
            status: file.status.as_str(),
        }),
        _ => Err(AppError::FileNotFound(file_id)),
    }
}

/// Validates the object at `key` and settles its file record.
pub async fn ingest_object(ctx: &AppContext, key: &str) -> Result<IngestOutcome, AppError> {
    let Some(file_id) = UploadedFile::file_id_of_key(key) else {
        tracing::warn!(key, "object outside uploads/<owner>/<file_id> ignored");
        return Ok(IngestOutcome::Ignored);
    };
    let file = match ctx.store.get_file(file_id).await? {
        Some(file) if file.object_key == key => file,
        _ => {
            // Upload grants name a recorded file's exact key; nothing granted this write.
            tracing::warn!(key, "object without a file record deleted");
            ctx.storage.delete(key).await?;
            return Ok(IngestOutcome::Unrecorded);
        }
    };
    if file.status != FileStatus::Pending {
        return check_rewrite(ctx, &file).await;
    }
    let limits = ctx.config.image_limits();
    let verdict = match ctx.storage.head(key).await? {
        None => return Ok(IngestOutcome::Ignored),
        Some(meta) if meta.size > limits.max_bytes => Err(ImageRejection::TooLarge {
            size: meta.size,
            limit: limits.max_bytes,
        }),
        Some(_) => inspect(ctx, ctx.storage.get(key).await?).await,
    };
    match verdict {
        Ok(image) => accept(ctx, &file, image).await,
        Err(rejection) => reject(ctx, &file, &rejection).await,
    }
}

/// An event for a file that was settled already: a duplicate event changes nothing, but bytes
/// that differ from the validated ones (a second write through a URL that cannot be revoked)
/// refuse the file, and bytes written to a rejected file are deleted.
async fn check_rewrite(ctx: &AppContext, file: &UploadedFile) -> Result<IngestOutcome, AppError> {
    let already = IngestOutcome::AlreadyProcessed {
        file_id: file.file_id,
    };
    let Some(meta) = ctx.storage.head(&file.object_key).await? else {
        return Ok(already);
    };
    match file.status {
        FileStatus::Ready => {
            let validated = file.sha256.as_deref();
            let unchanged = meta.size == file.size
                && validated
                    == Some(
                        sha256_hex(ctx.storage.get(&file.object_key).await?)
                            .await
                            .as_str(),
                    );
            if unchanged {
                return Ok(already);
            }
            let reason = FileRejection {
                code: JobErrorCode::UploadTampered,
                message: JobErrorCode::UploadTampered.meaning().to_owned(),
            };
            let Ok(revoked) = file.revoke(reason.clone()) else {
                return Ok(already);
            };
            match settle_refused(ctx, file, revoked, &reason).await? {
                Some(failed_jobs) => Ok(IngestOutcome::Tampered {
                    file_id: file.file_id,
                    failed_jobs,
                }),
                None => Ok(already),
            }
        }
        FileStatus::Rejected => {
            ctx.storage.delete(&file.object_key).await?;
            Ok(already)
        }
        FileStatus::Pending => Ok(already),
    }
}

/// The SHA-256 of `bytes`, hex, computed off the async runtime.
pub async fn sha256_hex(bytes: bytes::Bytes) -> String {
    use sha2::{Digest, Sha256};
    tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(&bytes)))
        .await
        .unwrap_or_default()
}

async fn accept(
    ctx: &AppContext,
    file: &UploadedFile,
    image: AcceptedImage,
) -> Result<IngestOutcome, AppError> {
    let Ok(ready) = file.accept(image) else {
        return Ok(IngestOutcome::AlreadyProcessed {
            file_id: file.file_id,
        });
    };
    match ctx.store.update_file(&ready).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Ok(IngestOutcome::AlreadyProcessed {
                file_id: file.file_id,
            });
        }
        Err(e) => return Err(e.into()),
    }
    let mut released = 0;
    for job in ctx.store.list_jobs_for_file(file.file_id).await? {
        if job.status == JobStatus::Queued
            && enqueue_if_ready(ctx, &job).await? == Handover::Enqueued
        {
            released += 1;
        }
    }
    tracing::info!(file_id = %file.file_id, released, "file accepted");
    Ok(IngestOutcome::Accepted {
        file_id: file.file_id,
        released_jobs: released,
    })
}

async fn reject(
    ctx: &AppContext,
    file: &UploadedFile,
    rejection: &ImageRejection,
) -> Result<IngestOutcome, AppError> {
    let reason = FileRejection {
        code: rejection.code(),
        message: rejection.to_string(),
    };
    let already = IngestOutcome::AlreadyProcessed {
        file_id: file.file_id,
    };
    let Ok(rejected) = file.reject(reason.clone()) else {
        return Ok(already);
    };
    Ok(match settle_refused(ctx, file, rejected, &reason).await? {
        Some(failed_jobs) => IngestOutcome::Rejected {
            file_id: file.file_id,
            code: reason.code,
            failed_jobs,
        },
        None => already,
    })
}

/// Writes the refused file (`None` when another writer settled it first), deletes its bytes and
/// fails its live jobs with the reason's code; returns how many jobs failed.
async fn settle_refused(
    ctx: &AppContext,
    file: &UploadedFile,
    refused: UploadedFile,
    reason: &FileRejection,
) -> Result<Option<usize>, AppError> {
    match ctx.store.update_file(&refused).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    ctx.storage.delete(&file.object_key).await?;
    let error = JobError::new(reason.code, format!("upload rejected: {}", reason.message));
    let mut failed = 0;
    for job in ctx.store.list_jobs_for_file(file.file_id).await? {
        if job.status.is_terminal() {
            continue;
        }
        match fail_job(ctx, job.job_id, &error).await {
            Ok(_) => failed += 1,
            Err(AppError::JobNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    tracing::info!(file_id = %file.file_id, code = %reason.code, failed, "file refused");
    Ok(Some(failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::enqueue::WorkMessage;
    use crate::app::testing::{
        context, context_with, drain, pending_file, queued_job, stored, upload_bytes,
    };
    use crate::domain::models::RELIEF_MODEL;
    use bytes::Bytes;

    #[tokio::test]
    async fn only_a_pending_files_own_key_may_be_written() {
        let t = context();
        let file = pending_file(&t, "alice").await;
        assert_eq!(
            check_upload_target(&t, &file.object_key).await.unwrap(),
            file
        );
        // The same file id under another owner's prefix is no grant.
        let elsewhere = format!("uploads/bob/{}", file.file_id);
        assert!(matches!(
            check_upload_target(&t, &elsewhere).await,
            Err(AppError::FileNotFound(id)) if id == file.file_id
        ));
        let unknown = format!("uploads/alice/{}", FileId::new());
        assert!(matches!(
            check_upload_target(&t, &unknown).await,
            Err(AppError::FileNotFound(_))
        ));
        assert!(matches!(
            check_upload_target(&t, "results/x.glb").await,
            Err(AppError::Invalid { .. })
        ));
        // Once the file left pending, its key is refused as received, and the other owner's
        // still as not found.
        upload_bytes(&t, &file).await;
        ingest_object(&t, &file.object_key).await.unwrap();
        assert!(matches!(
            check_upload_target(&t, &file.object_key).await,
            Err(AppError::UploadAlreadyReceived { file_id, status: "ready" }) if file_id == file.file_id
        ));
        assert!(matches!(
            check_upload_target(&t, &elsewhere).await,
            Err(AppError::FileNotFound(_))
        ));
    }

    #[tokio::test]
    async fn valid_bytes_make_the_file_ready_and_release_its_waiting_jobs_once() {
        let t = context();
        let file = pending_file(&t, "alice").await;
        let job = queued_job(&t, &file, RELIEF_MODEL).await;
        upload_bytes(&t, &file).await;
        let outcome = ingest_object(&t, &file.object_key).await.unwrap();
        assert_eq!(
            outcome,
            IngestOutcome::Accepted {
                file_id: file.file_id,
                released_jobs: 1
            }
        );
        let ready = t.store.get_file(file.file_id).await.unwrap().unwrap();
        assert_eq!(
            (ready.status, ready.width, ready.height),
            (FileStatus::Ready, Some(48), Some(32))
        );
        assert_eq!(ready.sha256.as_deref().map(str::len), Some(64));
        assert_eq!(drain(&t).await, [WorkMessage::generate(job.job_id)]);
        // A duplicate event changes nothing and releases nothing twice.
        assert_eq!(
            ingest_object(&t, &file.object_key).await.unwrap(),
            IngestOutcome::AlreadyProcessed {
                file_id: file.file_id
            }
        );
        assert!(drain(&t).await.is_empty());
    }

    #[tokio::test]
    async fn invalid_bytes_reject_the_file_delete_them_and_fail_its_live_jobs() {
        let t = context();
        let file = pending_file(&t, "alice").await;
        let waiting = queued_job(&t, &file, RELIEF_MODEL).await;
        let cancelled = queued_job(&t, &file, RELIEF_MODEL).await;
        let cancelled = cancelled.cancel(chrono::Utc::now()).unwrap();
        t.store.update_job(&cancelled).await.unwrap();
        t.storage
            .put(
                &file.object_key,
                Bytes::from_static(b"<html>not an image</html>"),
                "image/png",
            )
            .await
            .unwrap();
        let outcome = ingest_object(&t, &file.object_key).await.unwrap();
        assert_eq!(
            outcome,
            IngestOutcome::Rejected {
                file_id: file.file_id,
                code: JobErrorCode::InvalidFileType,
                failed_jobs: 1
            }
        );
        let rejected = t.store.get_file(file.file_id).await.unwrap().unwrap();
        assert_eq!(rejected.status, FileStatus::Rejected);
        assert!(
            t.storage.head(&file.object_key).await.unwrap().is_none(),
            "bytes deleted"
        );
        let failed = stored(&t, &waiting).await;
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.unwrap().code, "INVALID_FILE_TYPE");
        assert_eq!(stored(&t, &cancelled).await.status, JobStatus::Cancelled);
        assert!(drain(&t).await.is_empty());
    }

    #[tokio::test]
    async fn an_object_over_the_limit_is_rejected_by_its_size_alone() {
        let t = context_with(|c| c.limits.max_upload_bytes = 100);
        let file = pending_file(&t, "alice").await;
        upload_bytes(&t, &file).await;
        let outcome = ingest_object(&t, &file.object_key).await.unwrap();
        assert!(
            matches!(outcome, IngestOutcome::Rejected { ref code, .. } if *code == JobErrorCode::FileTooLarge),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn an_object_of_exactly_the_limit_is_accepted() {
        let size = crate::app::testing::png(48, 32).len() as u64;
        let t = context_with(|c| c.limits.max_upload_bytes = size);
        let file = pending_file(&t, "alice").await;
        upload_bytes(&t, &file).await;
        let outcome = ingest_object(&t, &file.object_key).await.unwrap();
        assert!(
            matches!(outcome, IngestOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_rewrite_of_the_same_size_is_caught_by_its_digest() {
        let t = context();
        let file = pending_file(&t, "alice").await;
        upload_bytes(&t, &file).await;
        ingest_object(&t, &file.object_key).await.unwrap();
        let mut bytes = t.storage.get(&file.object_key).await.unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        t.storage
            .put(&file.object_key, Bytes::from(bytes), "image/png")
            .await
            .unwrap();
        assert_eq!(
            ingest_object(&t, &file.object_key).await.unwrap(),
            IngestOutcome::Tampered {
                file_id: file.file_id,
                failed_jobs: 0
            }
        );
    }

    #[tokio::test]
    async fn objects_no_record_granted_are_deleted_and_other_keys_ignored() {
        let t = context();
        let file = pending_file(&t, "alice").await;
        for key in [
            format!("uploads/alice/{}", FileId::new()),
            format!("uploads/mallory/{}", file.file_id),
        ] {
            t.storage
                .put(&key, Bytes::from_static(b"junk"), "image/png")
                .await
                .unwrap();
            assert_eq!(
                ingest_object(&t, &key).await.unwrap(),
                IngestOutcome::Unrecorded,
                "{key}"
            );
            assert!(
                t.storage.head(&key).await.unwrap().is_none(),
                "{key} deleted"
            );
        }
        assert_eq!(
            ingest_object(&t, "results/x/model.glb").await.unwrap(),
            IngestOutcome::Ignored
        );
        // Recorded, but its bytes never arrived.
        assert_eq!(
            ingest_object(&t, &file.object_key).await.unwrap(),
            IngestOutcome::Ignored
        );
        let stored_file = t.store.get_file(file.file_id).await.unwrap().unwrap();
        assert_eq!(stored_file.status, FileStatus::Pending);
    }

    #[tokio::test]
    async fn bytes_written_again_after_validation_refuse_the_file() {
        let t = context();
        let file = pending_file(&t, "alice").await;
        let waiting = queued_job(&t, &file, RELIEF_MODEL).await;
        upload_bytes(&t, &file).await;
        ingest_object(&t, &file.object_key).await.unwrap();
        drain(&t).await;
        // The same write's event again changes nothing.
        assert_eq!(
            ingest_object(&t, &file.object_key).await.unwrap(),
            IngestOutcome::AlreadyProcessed {
                file_id: file.file_id
            }
        );
        // A second write through the (unrevocable) URL: HTML where a PNG was validated.
        t.storage
            .put(
                &file.object_key,
                Bytes::from_static(b"<html>owned</html>"),
                "image/png",
            )
            .await
            .unwrap();
        assert_eq!(
            ingest_object(&t, &file.object_key).await.unwrap(),
            IngestOutcome::Tampered {
                file_id: file.file_id,
                failed_jobs: 1
            }
        );
        let refused = t.store.get_file(file.file_id).await.unwrap().unwrap();
        assert_eq!(refused.status, FileStatus::Rejected);
        assert_eq!(refused.rejection.unwrap().code, "UPLOAD_TAMPERED");
        assert!(t.storage.head(&file.object_key).await.unwrap().is_none());
        assert_eq!(
            stored(&t, &waiting).await.error.unwrap().code,
            "UPLOAD_TAMPERED"
        );
        // Bytes written to a refused file are deleted at once.
        upload_bytes(&t, &file).await;
        ingest_object(&t, &file.object_key).await.unwrap();
        assert!(t.storage.head(&file.object_key).await.unwrap().is_none());
    }
}
