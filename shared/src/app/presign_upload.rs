//! Presigned uploads: browsers send bytes straight to object storage. Every check that can be
//! made before bytes move (how many files, the declared type and extension, the size, and the
//! model and options when a job is asked for) is made before anything is signed; then each file
//! gets a pending record, a signed PUT (or a form POST policy) and, when asked, its job, which
//! waits for ingestion.

use super::create_job::{CreateJobRequest, create_job, resolve_model, validate_options};
use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{JobId, JobOptions, UploadedFile};
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
pub struct PresignRequest {
    /// The files to announce (at most `MAX_FILES`).
    #[schema(min_items = 1, max_items = 25)]
    pub files: Vec<PresignFile>,
    pub generate: Option<GenerateSpec>,
    #[serde(default)]
    pub upload_method: UploadMethod,
}

/// What the client does to send one file's bytes.
#[derive(Debug, Clone, Serialize)]
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
    AppError::check_file_count(request.files.len(), ctx.config.max_files)?;
    let limit = ctx.config.max_upload_bytes;
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
    let expiry = ctx.config.presign_expiry;
    let mut out = Vec::with_capacity(request.files.len());
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
        ctx.store.create_file(&record).await?;
        let job_id = match &request.generate {
            Some(generate) => {
                let job_request = CreateJobRequest {
                    file_id: record.file_id,
                    model_type: generate.model_type.clone(),
                    options: generate.options.clone(),
                };
                Some(create_job(ctx, owner, job_request, None).await?.job_id)
            }
            None => None,
        };
        out.push(PresignedUpload {
            file: record,
            upload,
            job_id,
        });
    }
    Ok(out)
}
