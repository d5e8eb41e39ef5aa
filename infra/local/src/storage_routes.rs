//! The local stand-in for S3's presigned URLs: `PUT` and `GET` on `/local-storage/<key>` with an
//! HMAC-signed query, and browser form `POST`s to `/local-storage` with a signed policy for one
//! key. A tampered or expired URL is 403; a body of the wrong type or length is 400; an upload to
//! a file that is no longer pending (or was written already) is 409 `UPLOAD_ALREADY_RECEIVED`;
//! nothing is stored unless every check passes, and a grant writes its object once. The routes
//! are rate limited per client. A stored upload triggers ingestion, as an S3 object-created
//! notification does on AWS.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Router, middleware};
use chrono::Utc;
use image2model_shared::AppContext;
use image2model_shared::adapters::embedded::url_signer::FORM_UPLOAD_PATH;
use image2model_shared::adapters::embedded::{DiskStorage, SignedGrant};
use image2model_shared::app::AppError;
use image2model_shared::app::ingest::{check_upload_target, ingest_object};
use image2model_shared::ports::{ObjectStorage, StorageError};
use image2model_shared::validation::filename::attachment_disposition;
use image2model_shared::web::ApiError;
use image2model_shared::web::extract::{self, ApiMultipart};
use image2model_shared::web::layers::refuse_bodies_over;
use image2model_shared::web::rate_limit;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone)]
struct StorageState {
    ctx: AppContext,
    disk: Arc<DiskStorage>,
}

pub fn router(ctx: AppContext, disk: Arc<DiskStorage>) -> Router {
    // The form endpoint reads its own limit from the signed policy; this only bounds the body.
    let form_limit = ctx.config.limits.max_upload_bytes + 1024 * 1024;
    // Uploads are rate limited, as the API's upload routes are: a PUT was paid for when its URL
    // was signed, a form POST counts per client (its policy is in the body); downloads are not
    // limited.
    let state = StorageState { ctx, disk };
    Router::new()
        .route(
            "/local-storage/{*key}",
            put(upload)
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    limit_by_signer,
                ))
                .get(download),
        )
        .route(
            FORM_UPLOAD_PATH,
            post(form_upload)
                .layer(DefaultBodyLimit::max(
                    usize::try_from(form_limit).unwrap_or(usize::MAX),
                ))
                .layer(middleware::from_fn_with_state(
                    state.ctx.clone(),
                    rate_limit::limit,
                ))
                .layer(middleware::from_fn_with_state(
                    form_limit,
                    refuse_bodies_over,
                )),
        )
        .with_state(state)
}

/// A signed PUT was paid for when it was signed (its file's unit at presign, on the owner's
/// budget), so it costs nothing more, and keyless traffic from the same address (a shared NAT)
/// cannot block it. A URL that does not verify, or whose file no longer waits for its bytes (a
/// replay), is counted against the client address like any request without a key.
async fn limit_by_signer(
    State(state): State<StorageState>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    req: Request,
    next: Next,
) -> Response {
    let signed = verify(&state, "PUT", &key, query.as_deref()).is_ok();
    let waiting = signed
        && check_upload_target(&state.ctx, &key).await.is_ok()
        && matches!(state.disk.head(&key).await, Ok(None));
    if waiting {
        next.run(req).await
    } else {
        rate_limit::limit(State(state.ctx.clone()), req, next).await
    }
}

/// Stores an accepted upload once (a second write of the key is refused) and starts ingestion,
/// as S3's notification would.
async fn store_upload(
    state: &StorageState,
    key: String,
    bytes: bytes::Bytes,
    content_type: &str,
) -> Result<(), ApiError> {
    let file = check_upload_target(&state.ctx, &key).await?;
    if !state.disk.put_new(&key, bytes, content_type).await? {
        return Err(AppError::UploadAlreadyReceived {
            file_id: file.file_id,
            status: file.status.as_str(),
        }
        .into());
    }
    let ctx = state.ctx.clone();
    tokio::spawn(async move {
        if let Err(err) = ingest_object(&ctx, &key).await {
            tracing::warn!(key, error = %err, "ingestion failed; the sweeper will retry");
        }
    });
    Ok(())
}

/// The stand-in for S3's browser POST: policy fields first, then the `file` part.
async fn form_upload(
    State(state): State<StorageState>,
    ApiMultipart(mut form): ApiMultipart,
) -> Result<StatusCode, ApiError> {
    let malformed = extract::multipart_error;
    let mut fields = BTreeMap::new();
    while let Some(mut field) = form.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name != "file" {
            let value = field.text().await.map_err(malformed)?;
            if value.len() > 4096 {
                return Err(ApiError::validation(
                    format!("form field {name} is too long"),
                    Some(&name),
                ));
            }
            if fields.insert(name.clone(), value).is_some() {
                return Err(ApiError::validation(
                    format!("form field {name} may be sent once"),
                    Some(&name),
                ));
            }
            continue;
        }
        let grant = state
            .disk
            .signer()
            .verify_post(&fields, Utc::now())
            .map_err(|err| {
                tracing::info!(error = %err, "form upload policy refused");
                ApiError::SignatureInvalid
            })?;
        // Before the bytes: a grant for a file that is no longer pending stores nothing.
        check_upload_target(&state.ctx, &grant.key).await?;
        let mut bytes = bytes::BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if (bytes.len() + chunk.len()) as u64 > grant.max_length {
                return Err(ApiError::SignedRequestMismatch(format!(
                    "the file exceeds the policy's {} bytes",
                    grant.max_length
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.is_empty() {
            return Err(ApiError::SignedRequestMismatch(
                "the file is empty".to_owned(),
            ));
        }
        // The file is the form's last part (as S3 wants it): a field or a file after it would
        // be a second answer to what the policy signed.
        drop(field);
        if let Some(after) = form.next_field().await.map_err(malformed)? {
            let name = after.name().unwrap_or_default().to_owned();
            return Err(ApiError::validation(
                format!("the file must be the form's last part; {name} follows it"),
                Some(&name),
            ));
        }
        store_upload(&state, grant.key, bytes.freeze(), &grant.content_type).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    Err(ApiError::validation(
        "the form has no file part",
        Some("file"),
    ))
}

fn verify(
    state: &StorageState,
    method: &str,
    key: &str,
    query: Option<&str>,
) -> Result<SignedGrant, ApiError> {
    state
        .disk
        .signer()
        .verify(method, key, query.unwrap_or_default(), Utc::now())
        .map_err(|err| {
            tracing::info!(key, error = %err, "signed URL refused");
            ApiError::SignatureInvalid
        })
}

async fn upload(
    State(state): State<StorageState>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let grant = verify(&state, "PUT", &key, query.as_deref())?;
    check_upload_target(&state.ctx, &key).await?;
    let sent_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signed_type = grant.content_type.as_deref().unwrap_or_default();
    if sent_type != signed_type {
        return Err(ApiError::SignedRequestMismatch(format!(
            "Content-Type must be {signed_type}"
        )));
    }
    let signed_length = grant.content_length.unwrap_or_default();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n != signed_length) {
        return Err(ApiError::SignedRequestMismatch(format!(
            "Content-Length must be {signed_length}"
        )));
    }
    let limit = usize::try_from(signed_length).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|err| {
        if extract::caused_by::<http_body_util::LengthLimitError>(&err) {
            ApiError::SignedRequestMismatch(format!(
                "the body exceeds the signed {signed_length} bytes"
            ))
        } else {
            extract::unreadable_body(
                StatusCode::BAD_REQUEST,
                "the body could not be read".to_owned(),
                &err,
            )
        }
    })?;
    if bytes.len() as u64 != signed_length {
        return Err(ApiError::SignedRequestMismatch(format!(
            "the body is {} bytes, the URL was signed for {signed_length}",
            bytes.len()
        )));
    }
    store_upload(&state, key, bytes, signed_type).await?;
    Ok(StatusCode::OK)
}

async fn download(
    State(state): State<StorageState>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let grant = verify(&state, "GET", &key, query.as_deref())?;
    let meta = state
        .disk
        .head(&key)
        .await?
        .ok_or_else(|| ApiError::ObjectNotFound(key.clone()))?;
    let bytes = match state.disk.get(&key).await {
        Ok(bytes) => bytes,
        Err(StorageError::NotFound(_)) => return Err(ApiError::ObjectNotFound(key)),
        Err(e) => return Err(e.into()),
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(ct) = HeaderValue::from_str(&meta.content_type) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    if let Some(name) = grant.download_name
        && let Ok(value) = HeaderValue::from_str(&attachment_disposition(&name))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
