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
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::{HeaderName, HeaderValue, Method, header};
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tracing::Instrument;

/// The route template that matched, carried from the router to the outer layers.
#[derive(Clone)]
struct RouteTemplate(MatchedPath);

/// What [`Edge`] holds, built once per service: CORS (when answered in code) and the largest
/// body any route takes.
struct EdgeSettings {
    cors: Option<CorsLayer>,
    largest_body: u64,
}

/// The headers every answer carries unless its route set its own.
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 6] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    ),
    (
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000; includeSubDomains"),
    ),
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
];

/// The one service in front of the router: names the request (its id, in logs, the envelope
/// and `X-Request-Id`), answers browsers' CORS (see [`from_a_browser`]), refuses what no route
/// takes ([`guarded`]), answers a panic as the 500 envelope ([`unpanicked`]), adds the security
/// headers, and logs and counts the answer by route template.
///
/// A plain tower service around the whole router, not a layer added with `Router::layer` (which
/// wraps every route in a boxed service, cloned and boxed again per request) nor a `from_fn`
/// (a boxed clone of the rest per request): one boxed future per request is its whole cost.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    settings: Arc<EdgeSettings>,
}

impl<S, B> Service<http::Request<B>> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The ready service answers this request; a fresh clone waits for the next one.
        let inner = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, inner);
        let settings = Arc::clone(&self.settings);
        let req = req.map(axum::body::Body::new);
        let id = incoming_request_id(&req).unwrap_or_else(request_id::new_request_id);
        let method = req.method().clone();
        let span = tracing::info_span!(
            "request",
            request_id = %request_id::as_text(&id),
            method = %method,
            path = %req.uri().path()
        );
        let started = Instant::now();
        Box::pin(async move {
            let handling = async move {
                let limit = settings.largest_body;
                match &settings.cors {
                    Some(cors) if from_a_browser(&req) => {
                        let guard = tower::service_fn(move |req: Request| {
                            let inner = inner.clone();
                            async move { Ok::<_, Infallible>(guarded(req, inner, limit).await) }
                        });
                        // tower-http's CORS service owns its layer: a browser's request costs
                        // a clone of it (a request without `Origin` never does).
                        match cors.layer(guard).oneshot(req).await {
                            Ok(response) => response.map(axum::body::Body::new),
                            Err(never) => match never {},
                        }
                    }
                    _ => guarded(req, inner, limit).await,
                }
            };
            let mut response =
                request_id::scope(id.clone(), handling.instrument(span.clone())).await;
            if method == Method::HEAD {
                // The router empties the answers of its routes; these are the ones made here
                // (refusals, envelopes), which Lambda would send whole.
                *response.body_mut() = axum::body::Body::empty();
            }
            let headers = response.headers_mut();
            headers.reserve(SECURITY_HEADERS.len() + 1);
            for (name, value) in SECURITY_HEADERS {
                headers.entry(name).or_insert(value);
            }
            headers.insert(request_id::HEADER, id);
            let elapsed = started.elapsed();
            let route = response
                .extensions()
                .get::<RouteTemplate>()
                .map_or("unmatched", |r| r.0.as_str());
            let status = response.status();
            metrics::record_request(&method, route, status, elapsed);
            let status = status.as_u16();
            span.in_scope(|| {
                tracing::info!(
                    status,
                    route,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "request finished"
                );
            });
            Ok(response)
        })
    }
}

/// The layer on every route that carries its template to [`Edge`] in the response (a panic in
/// the route is answered here, as [`panic_response`], so that it is counted under its route): a
/// plain service (no boxed clone per request, as a `from_fn` layer makes).
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
        // A panic here is answered here, so that it is counted under its route.
        let polled =
            std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut self.answer).poll(cx)));
        let mut response = match polled {
            Ok(answer) => ready!(answer)?,
            Err(panic) => panic_response(panic),
        };
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
async fn guarded<S>(req: Request, route: S, limit: u64) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    if let Some(refused) = repeated_header(&req).or_else(|| body_over(&req, limit)) {
        return refused;
    }
    envelope(unpanicked(route, req).await).await
}

/// `route`'s answer to `req`, or the 500 envelope when it panics ([`panic_response`]): the
/// process and the connection's other requests go on.
async fn unpanicked<S>(mut route: S, req: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let route = match route.ready().await {
        Ok(ready) => ready,
        Err(never) => match never {},
    };
    let answer = match std::panic::catch_unwind(AssertUnwindSafe(|| route.call(req))) {
        Ok(answer) => answer,
        Err(panic) => return panic_response(panic),
    };
    match AssertUnwindSafe(answer).catch_unwind().await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(panic) => panic_response(panic),
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

/// The service a function (or the local server) runs: `router` with its state applied, behind
/// [`Edge`].
pub type HttpService = NormalizePath<Edge<Router>>;

pub fn into_service(router: Router, config: &Config) -> HttpService {
    let router = router
        .route_layer(tower::layer::layer_fn(RememberRoute))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let edge = Edge {
        inner: router,
        settings: Arc::new(EdgeSettings {
            cors: config.sign_in.cors_in_code.then(|| cors(config)),
            largest_body: largest_body(config),
        }),
    };
    NormalizePathLayer::trim_trailing_slash().layer(edge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;

    /// `service`'s answer to `request`.
    async fn send<S>(service: S, request: Request) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        match service.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    async fn panics() -> &'static str {
        panic!("in the handler")
    }

    /// A service whose `call` itself panics, before any future exists (behind the router,
    /// axum calls it inside its own future: [`RouteAnswer`] answers that one).
    #[derive(Clone)]
    struct PanicsWhenCalled;

    impl Service<Request> for PanicsWhenCalled {
        type Response = Response;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request) -> Self::Future {
            panic!("in call")
        }
    }

    /// A panic in a handler, or in a service's `call` (behind the router or straight behind
    /// [`Edge`]), is answered as the 500 envelope with the request's id and the security
    /// headers, counted by its route; the service answers the next request as before.
    #[tokio::test]
    async fn a_panic_is_a_500_envelope_and_the_service_goes_on() {
        let router = Router::new()
            .route("/future", get(panics))
            .route_service("/call", PanicsWhenCalled)
            .route("/fine", get(|| async { "fine" }));
        let service = into_service(router, &Config::default());
        for path in ["/future", "/call"] {
            let request = http::Request::get(path)
                .header(REQUEST_ID_HEADER, "panic-test-1")
                .body(Body::empty())
                .unwrap();
            let response = send(service.clone(), request).await;
            assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(response.headers()[REQUEST_ID_HEADER], "panic-test-1");
            assert_eq!(
                response.headers()[header::X_CONTENT_TYPE_OPTIONS],
                "nosniff"
            );
            let body = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error_code"], "INTERNAL_ERROR", "{path}: {body}");
            assert_eq!(body["request_id"], "panic-test-1", "{path}: {body}");
        }
        let bare = Edge {
            inner: PanicsWhenCalled,
            settings: Arc::new(EdgeSettings {
                cors: None,
                largest_body: 1024,
            }),
        };
        let request = http::Request::get("/").body(Body::empty()).unwrap();
        let response = send(bare.clone(), request).await;
        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        let fine = http::Request::get("/fine").body(Body::empty()).unwrap();
        let response = send(service.clone(), fine).await;
        assert_eq!(response.status(), http::StatusCode::OK);
        let id = response.headers()[REQUEST_ID_HEADER].to_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "a made-up id is a UUID: {id}"
        );
        let text = crate::metrics::render();
        assert!(
            text.contains(r#"endpoint="/future",method="GET",status_code="500""#),
            "{text}"
        );
    }

    /// A `HEAD` answered before or around the routes (a refusal, an envelope) has no body, as
    /// the routes' own answers to `HEAD` have none.
    #[tokio::test]
    async fn a_head_refused_in_front_of_the_routes_has_no_body() {
        let router = Router::new().route("/thing", get(|| async { "thing" }));
        let service = into_service(router, &Config::default());
        for request in [
            http::Request::head("/thing")
                .header(header::AUTHORIZATION, "Bearer a")
                .header(header::AUTHORIZATION, "Bearer b")
                .body(Body::empty())
                .unwrap(),
            http::Request::head("/nothing-here")
                .body(Body::empty())
                .unwrap(),
        ] {
            let response = send(service.clone(), request).await;
            assert!(response.status().is_client_error(), "{}", response.status());
            let body = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap();
            assert!(body.is_empty(), "{body:?}");
        }
    }
}
