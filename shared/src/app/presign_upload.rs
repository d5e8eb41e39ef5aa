//! Presigned uploads: browsers send bytes straight to object storage. Every check that can be
//! made before bytes move (how many files, the declared type and extension, the size, and the
//! model and options when a job is asked for) is made before anything is signed; then each file
//! gets a pending record, a signed PUT (or a form POST policy) and, when asked, its job, which
//! waits for ingestion.

use super::create_job::{
    CreateJobRequest, create_batch, create_job, resolve_model, validate_options,
};
use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{FileId, JobId, JobOptions, UploadedFile};
use crate::ports::{PresignedPost, PresignedRequest};
use crate::validation::filename::extension;
use crate::validation::{ImageKind, ImageRejection, sanitize_filename};
use chrono::Utc;
use serde::{Deserialize, Serialize};

/// One file a client is about to upload.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresignFile {
    /// The name to keep; its extension, if any, must be an image's.
    #[schema(
        pattern = r"^([^.]*|.*\.([Jj][Pp][Ee]?[Gg]|[Jj][Pp][Ee]|[Pp][Nn][Gg]|[Ww][Ee][Bb][Pp]))$"
    )]
    pub filename: String,
    /// The type the bytes will be (and the PUT must declare).
    #[schema(value_type = ImageType)]
    pub content_type: String,
    /// Its exact length in bytes (at most `MAX_UPLOAD_BYTES`).
    #[schema(minimum = 1, maximum = 52428800)]
    #[serde(deserialize_with = "crate::domain::integer::whole")]
    pub size: u64,
}

/// The image types uploads accept.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Names the accepted values for the document.
pub enum ImageType {
    #[schema(rename = "image/jpeg")]
    Jpeg,
    #[schema(rename = "image/png")]
    Png,
    #[schema(rename = "image/webp")]
    Webp,
}

/// The job to create for each file, when the client asks for one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    #[schema(value_type = Option<super::create_job::ModelType>)]
    pub model_type: Option<String>,
    pub options: Option<JobOptions>,
}

/// How the browser sends the bytes: a signed PUT (default) or a form POST with a policy.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
pub enum UploadMethod {
    #[default]
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "POST")]
    Post,
}

/// The body of `POST /api/v1/uploads/presign`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "files": [{"filename": "coffee.jpg", "content_type": "image/jpeg", "size": 412337}],
    "generate": {"options": {"face_limit": 20000}}
}))]
pub struct PresignRequest {
    /// The files to announce (at most `MAX_FILES`).
    #[schema(min_items = 1, max_items = 25)]
    pub files: Vec<PresignFile>,
    pub generate: Option<GenerateSpec>,
    #[serde(default)]
    pub upload_method: UploadMethod,
}

/// What the client does to send one file's bytes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SignedUpload {
    Put(PresignedRequest),
    Post(PresignedPost),
}

/// One announced file: its pending record, how to upload it, and its job if one was asked for.
#[derive(Debug, Clone)]
pub struct PresignedUpload {
    pub file: UploadedFile,
    pub upload: SignedUpload,
    pub job_id: Option<JobId>,
}

/// `INVALID_FILE_TYPE` for a filename whose extension is not an image's (`evil.php`), however
/// the file is uploaded; a name without an extension is fine.
pub(super) fn refuse_foreign_extension(content_type: &str, filename: &str) -> Result<(), AppError> {
    match extension(filename) {
        Some(ext) if ImageKind::from_extension(&ext).is_none() => Err(AppError::InvalidFileType {
            declared: format!("{content_type} (file extension .{ext})"),
        }),
        _ => Ok(()),
    }
}

/// The accepted kind of a declared content type and filename, or `INVALID_FILE_TYPE`.
fn declared_kind(content_type: &str, filename: &str) -> Result<ImageKind, AppError> {
    let kind = ImageKind::from_mime(content_type).ok_or_else(|| AppError::InvalidFileType {
        declared: content_type.to_owned(),
    })?;
    refuse_foreign_extension(content_type, filename)?;
    Ok(kind)
}

/// Checks every file and the job request, then records, signs and (when asked) creates jobs.
pub async fn presign_uploads(
    ctx: &AppContext,
    owner: &str,
    request: PresignRequest,
) -> Result<Vec<PresignedUpload>, AppError> {
    if request.files.is_empty() {
        return Err(AppError::invalid(
            "files must list at least one file",
            Some("files"),
        ));
    }
    AppError::check_file_count(request.files.len(), ctx.config.limits.max_files)?;
    let limit = ctx.config.limits.max_upload_bytes;
    let mut kinds = Vec::with_capacity(request.files.len());
    for file in &request.files {
        let kind = declared_kind(&file.content_type, &file.filename)?;
        if file.size == 0 {
            return Err(ImageRejection::Empty.into());
        }
        if file.size > limit {
            return Err(ImageRejection::TooLarge {
                size: file.size,
                limit,
            }
            .into());
        }
        kinds.push(kind);
    }
    if let Some(generate) = &request.generate {
        let model = resolve_model(ctx, generate.model_type.as_deref())?;
        if let Some(options) = &generate.options {
            validate_options(model, options, "generate.options")?;
        }
    }

    let now = Utc::now();
    let expiry = ctx.config.jobs.presign_expiry;
    // Everything is signed before anything is written (signing writes nothing).
    let mut signed = Vec::with_capacity(request.files.len());
    for (file, kind) in request.files.iter().zip(kinds) {
        let record = UploadedFile::pending(
            owner,
            &sanitize_filename(&file.filename),
            kind.mime(),
            file.size,
            now,
            ctx.config.expires_at(now),
        );
        let key = &record.object_key;
        let upload = match request.upload_method {
            UploadMethod::Put => SignedUpload::Put(
                ctx.storage
                    .presign_put(key, kind.mime(), file.size, expiry)
                    .await?,
            ),
            UploadMethod::Post => SignedUpload::Post(
                ctx.storage
                    .presign_post(key, kind.mime(), file.size, expiry)
                    .await?,
            ),
        };
        signed.push((record, upload));
    }
    // Then the records, and the jobs in one atomic write with the quota taken for all of them
    // at once: a failure anywhere removes the records written, so the client hears of every
    // job or of none, and no quota is spent on jobs it never heard of.
    let mut written = Vec::with_capacity(signed.len());
    for (record, _) in &signed {
        if let Err(err) = ctx.store.create_file(record).await {
            forget_files(ctx, &written).await;
            return Err(err.into());
        }
        written.push(record.file_id);
    }
    let job_ids = match &request.generate {
        None => vec![None; signed.len()],
        Some(generate) => match create_jobs_for(ctx, owner, &signed, generate).await {
            Ok(ids) => ids.into_iter().map(Some).collect(),
            Err(err) => {
                forget_files(ctx, &written).await;
                return Err(err);
            }
        },
    };
    Ok(signed
        .into_iter()
        .zip(job_ids)
        .map(|((file, upload), job_id)| PresignedUpload {
            file,
            upload,
            job_id,
        })
        .collect())
}

/// One job for one file; a batch, written atomically, for several.
async fn create_jobs_for(
    ctx: &AppContext,
    owner: &str,
    signed: &[(UploadedFile, SignedUpload)],
    generate: &GenerateSpec,
) -> Result<Vec<JobId>, AppError> {
    if let [(file, _)] = signed {
        let request = CreateJobRequest {
            file_id: file.file_id,
            model_type: generate.model_type.clone(),
            options: generate.options.clone(),
        };
        return Ok(vec![create_job(ctx, owner, request, None).await?.job_id]);
    }
    let model = resolve_model(ctx, generate.model_type.as_deref())?;
    let files: Vec<UploadedFile> = signed.iter().map(|(f, _)| f.clone()).collect();
    let options = generate.options.clone().unwrap_or_default();
    let (_, jobs) = create_batch(ctx, owner, &files, model, &options).await?;
    Ok(jobs.iter().map(|j| j.job_id).collect())
}

/// Removes the records of files announced by a request that failed.
async fn forget_files(ctx: &AppContext, files: &[FileId]) {
    for id in files {
        if let Err(err) = ctx.store.delete_file(*id).await {
            tracing::warn!(file_id = %id, error = %err, "could not remove the record of a refused presign");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::context_with;
    use crate::domain::JobStatus;
    use crate::fal::guard;

    fn request(files: usize) -> PresignRequest {
        PresignRequest {
            files: (0..files)
                .map(|i| PresignFile {
                    filename: format!("photo-{i}.png"),
                    content_type: "image/png".into(),
                    size: 1000,
                })
                .collect(),
            generate: Some(GenerateSpec {
                model_type: Some("tripo3d".into()),
                options: None,
            }),
            upload_method: UploadMethod::Put,
        }
    }

    /// A presign with `generate` whose quota runs out on its third file: before, the first two
    /// files and their jobs were written (and their quota spent) while the client heard 429.
    #[tokio::test]
    async fn jobs_for_announced_files_are_all_created_or_none_is() {
        let t = context_with(|c| {
            c.fal.enabled = true;
            c.fal.daily_quota = 2;
        });
        let err = presign_uploads(&t, "alice", request(3)).await.unwrap_err();
        assert!(matches!(err, AppError::QuotaExceeded { .. }), "{err:?}");
        let later = Utc::now() + chrono::Duration::hours(1);
        assert!(
            t.store
                .list_files_created_before(later, 100)
                .await
                .unwrap()
                .is_empty(),
            "no record of a file the client was refused"
        );
        for status in JobStatus::ALL {
            assert!(
                t.store
                    .list_jobs_by_status(status, later, 100)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        let used = match guard::take_quota(t.store.as_ref(), "alice", 0, u64::MAX, Utc::now())
            .await
            .unwrap()
        {
            Ok(used) | Err(used) => used,
        };
        assert_eq!(used, 0, "no quota spent on jobs that do not exist");

        // Within the quota every file gets its job, all in one batch.
        let uploads = presign_uploads(&t, "alice", request(2)).await.unwrap();
        let mut batches = std::collections::BTreeSet::new();
        for upload in &uploads {
            let job = t
                .store
                .get_job(upload.job_id.unwrap())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(job.file_id, upload.file.file_id);
            batches.insert(job.batch_id.expect("a batch"));
        }
        assert_eq!(batches.len(), 1);
    }

    #[tokio::test]
    async fn each_file_is_checked_by_type_extension_and_size_before_anything_is_written() {
        let t = context_with(|c| c.limits.max_upload_bytes = 1000);
        let with = |filename: &str, content_type: &str, size: u64| PresignRequest {
            files: vec![PresignFile {
                filename: filename.into(),
                content_type: content_type.into(),
                size,
            }],
            generate: None,
            upload_method: UploadMethod::Put,
        };
        // Exactly the limit, and a name without an extension, are fine.
        for (name, size) in [("photo.png", 1000), ("photo", 1)] {
            let uploads = presign_uploads(&t, "alice", with(name, "image/png", size))
                .await
                .unwrap();
            assert_eq!(uploads.len(), 1);
        }
        for (request, code) in [
            (with("evil.php", "image/png", 10), "INVALID_FILE_TYPE"),
            (with("photo.png", "text/html", 10), "INVALID_FILE_TYPE"),
            (with("photo.png", "image/png", 0), "EMPTY_FILE"),
            (with("photo.png", "image/png", 1001), "FILE_TOO_LARGE"),
        ] {
            let err = presign_uploads(&t, "alice", request).await.unwrap_err();
            assert_eq!(crate::web::ApiError::from(err).code(), code);
        }
        let mut empty = with("photo.png", "image/png", 1);
        empty.files.clear();
        assert!(matches!(
            presign_uploads(&t, "alice", empty).await,
            Err(AppError::Invalid { .. })
        ));
    }
}
