//! Reading multipart fields with a byte limit, so an oversized file is refused as soon as it
//! passes the limit, with `FILE_TOO_LARGE`, never buffered whole.

use axum::extract::multipart::{Field, MultipartError};
use bytes::{Bytes, BytesMut};
use image2model_shared::validation::ImageRejection;
use image2model_shared::web::{ApiError, extract};

/// Multipart overhead allowed on top of the file bytes themselves.
pub const MULTIPART_OVERHEAD: u64 = 1024 * 1024;

/// The largest multipart body (every part together) for files of at most `file_limit` bytes.
pub fn body_limit(file_limit: u64) -> u64 {
    file_limit.saturating_add(MULTIPART_OVERHEAD)
}

/// A failure reading a multipart body. Over the body limit it is 413 `PAYLOAD_TOO_LARGE` naming
/// that limit, not a file's size no file had.
pub fn multipart_error(err: MultipartError, file_limit: u64) -> ApiError {
    if err.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
        let body_limit = body_limit(file_limit);
        ApiError::Rejected {
            status: http::StatusCode::PAYLOAD_TOO_LARGE,
            detail: format!(
                "the request body is over {body_limit} bytes; send large photos one per request or through presigned uploads"
            ),
        }
    } else {
        extract::multipart_error(err)
    }
}

/// Reads a whole field, refusing more than `limit` bytes.
pub async fn read_limited(mut field: Field<'_>, limit: u64) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(ImageRejection::TooLarge {
                size: (buf.len() + chunk.len()) as u64,
                limit,
            }
            .into());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads a small text field.
pub async fn read_text(field: Field<'_>, name: &str) -> Result<String, ApiError> {
    let bytes = read_limited(field, 1024)
        .await
        .map_err(|_| ApiError::validation(format!("{name} is too long"), Some(name)))?;
    String::from_utf8(bytes.to_vec())
        .map(|s| s.trim().to_owned())
        .map_err(|_| ApiError::validation(format!("{name} must be UTF-8 text"), Some(name)))
}
