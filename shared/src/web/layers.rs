//! The HTTP layers every function's router is wrapped in, in Lambda and in the local server
//! alike: request ids, structured request logs, metrics by route template, CORS from the
//! allow-list, security headers, JSON 404/405, every error as the JSON envelope (axum's own
//! rejections included), one value per single-value header, a panic answered as a 500 envelope instead of taking the process down,
//! and trailing-slash normalisation.

use super::error::ApiError;
use super::request_id::{self, REQUEST_ID_HEADER, incoming_request_id};
use crate::config::Config;
use crate::metrics;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, header};
use std::time::Instant;
use tower::{Layer, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

/// The route template that matched, carried from the router to the outer layers.
#[derive(Clone)]
struct RouteTemplate(String);

async fn request_context(req: Request, next: Next) -> Response {
    let id = incoming_request_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
    let started = Instant::now();
    let mut response = request_id::scope(id.clone(), next.run(req).instrument(span.clone())).await;
    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map_or("unmatched", |r| r.0.as_str());
    let status = response.status().as_u16();
    metrics::record_request(method.as_str(), route, status, elapsed);
    span.in_scope(|| {
        tracing::info!(
            status,
            route,
            elapsed_ms = elapsed.as_millis() as u64,
            "request finished"
        );
    });
    response
}

async fn remember_route(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if let Some(matched) = matched {
        response
            .extensions_mut()
            .insert(RouteTemplate(matched.as_str().to_owned()));
    }
    response
}

/// Responses that are errors but not the envelope (axum's extractor rejections, body limits)
/// become the envelope, their text as `detail`.
async fn envelope_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let detail = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .ok()
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("the request was refused")
                .to_lowercase()
        });
    ApiError::Rejected { status, detail }.into_response()
}

/// Headers a request may carry once: none is a list (RFC 9110), and with two, one layer could
/// act on the first value while another acts on the second (two keys, two content types).
/// `Content-Length` is hyper's: differing values never reach a route, equal ones count as one.
const SINGLE_VALUE_HEADERS: [&str; 5] = [
    "authorization",
    "x-api-key",
    "content-type",
    "host",
    "idempotency-key",
];

/// A request repeating one of [`SINGLE_VALUE_HEADERS`] is 400 `BAD_REQUEST`.
async fn refuse_repeated_headers(req: Request, next: Next) -> Response {
    let repeated = SINGLE_VALUE_HEADERS
        .iter()
        .find(|name| req.headers().get_all(**name).iter().nth(1).is_some());
    match repeated {
        Some(name) => ApiError::Rejected {
            status: http::StatusCode::BAD_REQUEST,
            detail: format!("the {name} header may be sent once"),
        }
        .into_response(),
        None => next.run(req).await,
    }
}

/// The largest JSON body a route reads (axum's own default for its body extractors).
pub const JSON_BODY_LIMIT: u64 = 2 * 1024 * 1024;

/// The largest request body any route takes: a form upload of the largest file.
pub fn largest_body(config: &Config) -> u64 {
    config.limits.max_upload_bytes.saturating_add(1024 * 1024)
}

/// Middleware that refuses, from its `Content-Length` alone, a body over `limit` bytes: 413
/// `PAYLOAD_TOO_LARGE` before a byte of it is read, so a client that sent
/// `Expect: 100-continue` is told no instead of being asked to send it. (A body without a length
/// is cut at the limit by the extractors as it arrives.)
pub async fn refuse_bodies_over(State(limit): State<u64>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u128>().ok());
    match declared {
        Some(length) if length > u128::from(limit) => ApiError::Rejected {
            status: http::StatusCode::PAYLOAD_TOO_LARGE,
            detail: format!("the request body is {length} bytes; this route takes at most {limit}"),
        }
        .into_response(),
        _ => next.run(req).await,
    }
}

/// What a panic in a handler answers: the 500 envelope (the panic itself goes to the log).
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    tracing::error!(panic = %message, "a request handler panicked");
    ApiError::Internal.into_response()
}

async fn not_found(req: Request) -> ApiError {
    ApiError::RouteNotFound(format!("{} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::MethodNotAllowed
}

/// The methods browsers may use across origins. `template.yaml`'s HTTP API CORS configuration
/// lists the same (a test holds them together): on Lambda the gateway answers for CORS.
pub const CORS_METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "OPTIONS"];
/// The request headers browsers may send across origins.
pub const CORS_ALLOW_HEADERS: [&str; 7] = [
    "authorization",
    "content-type",
    "x-api-key",
    "idempotency-key",
    "last-event-id",
    REQUEST_ID_HEADER,
    "cache-control",
];
/// The response headers browsers may read across origins.
pub const CORS_EXPOSE_HEADERS: [&str; 6] = [
    REQUEST_ID_HEADER,
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
    "location",
];

/// CORS answered in code, where no gateway does it (the local server).
fn cors(config: &Config) -> CorsLayer {
    let origins: Vec<HeaderValue> = config
        .sign_in
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods(
            CORS_METHODS.map(|m| Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET)),
        )
        .allow_headers(CORS_ALLOW_HEADERS.map(HeaderName::from_static))
        .expose_headers(CORS_EXPOSE_HEADERS.map(HeaderName::from_static))
        .max_age(std::time::Duration::from_secs(600))
}

/// CORS for requests that are a browser's: a preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`) is answered by `cors`, and any other request with an
/// `Origin` gets its headers. An `OPTIONS` without them is no preflight and goes to the routes,
/// which answer it as the old API did: 405 with `Allow`. (The route was matched already: `cors`
/// wraps the rest of this request's way, never a second routing.)
async fn cors_for_browsers(State(cors): State<CorsLayer>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let browser = headers.contains_key(header::ORIGIN)
        && (req.method() != Method::OPTIONS
            || headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD));
    if browser {
        match cors.layer(next).oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    } else {
        next.run(req).await
    }
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// The service a function (or the local server) runs: `router` with its state applied, wrapped
/// in the common layers.
pub type HttpService = NormalizePath<Router>;

pub fn into_service(router: Router, config: &Config) -> HttpService {
    let router = router
        .route_layer(middleware::from_fn(remember_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(envelope_errors))
        .layer(middleware::from_fn_with_state(
            largest_body(config),
            refuse_bodies_over,
        ))
        .layer(middleware::from_fn(refuse_repeated_headers))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(security_header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .layer(security_header(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ))
        .layer(security_header(header::CACHE_CONTROL, "no-store"));
    let router = if config.sign_in.cors_in_code {
        router.layer(middleware::from_fn_with_state(
            cors(config),
            cors_for_browsers,
        ))
    } else {
        router
    };
    let router = router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(request_context));
    NormalizePathLayer::trim_trailing_slash().layer(router)
}
