//! What the function crates' route tests share (feature `testing`): one request through a
//! function's routes in-process, in the common layers as on Lambda (`tower::ServiceExt::oneshot`
//! over [`super::into_service`]), and its answer read.

use super::into_service;
use crate::context::AppContext;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;

/// A function's answer: its status, headers and body (JSON, or `Value::Null` when it is not).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: bytes::Bytes,
}

impl Answer {
    /// Asserts the answer is the error envelope of `code` with `status`, every field filled.
    pub fn assert_error(&self, status: u16, code: &str) {
        let body = &self.body;
        assert_eq!(self.status.as_u16(), status, "{body}");
        assert_eq!(body["error"], Value::Bool(true), "{body}");
        assert_eq!(body["error_code"], code, "{body}");
        assert_eq!(body["status_code"], status, "{body}");
        for field in ["message", "detail", "request_id"] {
            assert!(
                body[field].as_str().is_some_and(|s| !s.is_empty()),
                "missing {field}: {body}"
            );
        }
        assert!(body["details"].is_object(), "{body}");
    }
}

/// Sends `request` through `routes` on `ctx`, as the function would serve it on Lambda.
pub async fn call(
    routes: OpenApiRouter<AppContext>,
    ctx: &AppContext,
    request: Request<Body>,
) -> Answer {
    let (router, _) = routes.split_for_parts();
    let service = into_service(router.with_state(ctx.clone()), &ctx.config);
    let response = match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let headers = response.headers().clone();
    let raw = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body is read");
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        raw,
    }
}

/// A request to `uri` (on the host `localhost`) with `key` as a bearer credential (none when
/// `None`) and `body` as JSON (no body when `None`).
pub fn request(method: Method, uri: &str, key: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost");
    if let Some(key) = key {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let body = match body {
        Some(json) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    builder.body(body).expect("a valid request")
}
