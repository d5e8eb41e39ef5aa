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
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tracing::Instrument;

/// The route template that matched, carried from the router to the outer layers.
#[derive(Clone)]
struct RouteTemplate(MatchedPath);

/// What the outermost layer holds, built once: CORS (when answered in code) and the largest
/// body any route takes.
struct Edge {
    cors: Option<CorsLayer>,
    largest_body: u64,
}

/// The headers every answer carries unless its route set its own.
const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=63072000; includeSubDomains",
    ),
    (header::CACHE_CONTROL, "no-store"),
];

/// The one layer in front of the routes (each `from_fn` layer costs a boxed clone of the
/// service per request, each tower layer a future around the next): names the request (its id,
/// in logs, the envelope and `X-Request-Id`), answers browsers' CORS (see
/// [`cors_for_browsers`]), refuses what no route takes ([`guarded`]), adds the security headers,
/// and logs and counts the answer by route template.
async fn request_context(State(edge): State<Arc<Edge>>, req: Request, next: Next) -> Response {
    let id = incoming_request_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
    let started = Instant::now();
    let handling = async move {
        let limit = edge.largest_body;
        match &edge.cors {
            Some(cors) if from_a_browser(&req) => {
                let inner = tower::service_fn(move |req: Request| {
                    let next = next.clone();
                    async move { Ok::<_, Infallible>(guarded(req, next, limit).await) }
                });
                match cors.layer(inner).oneshot(req).await {
                    Ok(response) => response.map(axum::body::Body::new),
                    Err(never) => match never {},
                }
            }
            _ => guarded(req, next, limit).await,
        }
    };
    let mut response = request_id::scope(id.clone(), handling.instrument(span.clone())).await;
    for (name, value) in SECURITY_HEADERS {
        response
            .headers_mut()
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map_or("unmatched", |r| r.0.as_str());
    let status = response.status();
    metrics::record_request(method.as_str(), route, status, elapsed);
    let status = status.as_u16();
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

/// The layer on every route that carries its template to [`request_context`] in the response:
/// a plain service (no boxed clone per request, as a `from_fn` layer makes).
#[derive(Clone)]
struct RememberRoute<S>(S);

impl<S> Service<Request> for RememberRoute<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RouteAnswer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let matched = req.extensions().get::<MatchedPath>().cloned();
        RouteAnswer {
            answer: self.0.call(req),
            matched,
        }
    }
}

/// A route's answer, with the template the route matched.
struct RouteAnswer<F> {
    answer: F,
    matched: Option<MatchedPath>,
}

impl<F, E> Future for RouteAnswer<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = ready!(Pin::new(&mut self.answer).poll(cx))?;
        if let Some(matched) = self.matched.take() {
            response.extensions_mut().insert(RouteTemplate(matched));
        }
        Poll::Ready(Ok(response))
    }
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
fn repeated_header(req: &Request) -> Option<Response> {
    let name = SINGLE_VALUE_HEADERS
        .iter()
        .find(|name| req.headers().get_all(**name).iter().nth(1).is_some())?;
    Some(
        ApiError::Rejected {
            status: http::StatusCode::BAD_REQUEST,
            detail: format!("the {name} header may be sent once"),
        }
        .into_response(),
    )
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
    match body_over(&req, limit) {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

/// 413 `PAYLOAD_TOO_LARGE` for a request whose `Content-Length` is over `limit`.
fn body_over(req: &Request, limit: u64) -> Option<Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u128>().ok())?;
    (declared > u128::from(limit)).then(|| {
        ApiError::Rejected {
            status: http::StatusCode::PAYLOAD_TOO_LARGE,
            detail: format!(
                "the request body is {declared} bytes; this route takes at most {limit}"
            ),
        }
        .into_response()
    })
}

/// An error response that is not the envelope (axum's extractor rejections, body limits)
/// becomes the envelope, its text as `detail`.
async fn envelope(response: Response) -> Response {
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

/// What every request passes before its route: a repeated single-value header is 400, a
/// declared body over `limit` 413, and the route's answer gets the envelope when it is an error
/// without it.
async fn guarded(req: Request, next: Next, limit: u64) -> Response {
    if let Some(refused) = repeated_header(&req).or_else(|| body_over(&req, limit)) {
        return refused;
    }
    envelope(next.run(req).await).await
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

/// Whether CORS answers the request: a preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`) is answered by it, and any other request with an `Origin`
/// gets its headers. An `OPTIONS` without them is no preflight and goes to the routes, which
/// answer it as the old API did: 405 with `Allow`. (CORS wraps the rest of this request's way,
/// never a second routing.)
fn from_a_browser(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(header::ORIGIN)
        && (req.method() != Method::OPTIONS
            || headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD))
}

/// The service a function (or the local server) runs: `router` with its state applied, wrapped
/// in the common layers.
pub type HttpService = NormalizePath<Router>;

pub fn into_service(router: Router, config: &Config) -> HttpService {
    let router = router
        .route_layer(tower::layer::layer_fn(RememberRoute))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response));
    let edge = Arc::new(Edge {
        cors: config.sign_in.cors_in_code.then(|| cors(config)),
        largest_body: largest_body(config),
    });
    let router = router.layer(middleware::from_fn_with_state(edge, request_context));
    NormalizePathLayer::trim_trailing_slash().layer(router)
}
