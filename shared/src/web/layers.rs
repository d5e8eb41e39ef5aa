//! The HTTP layers every function's router is wrapped in, in Lambda and in the local server
//! alike: request ids, structured request logs, metrics by route template, CORS from the
//! allow-list, security headers, JSON 404/405, and trailing-slash normalisation.

use super::error::ApiError;
use super::request_id::{self, REQUEST_ID_HEADER, incoming_request_id};
use crate::config::Config;
use crate::metrics;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, header};
use std::time::Instant;
use tower::Layer;
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

async fn not_found(req: Request) -> ApiError {
    ApiError::RouteNotFound(format!("{} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::MethodNotAllowed
}

fn cors(config: &Config) -> CorsLayer {
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static(REQUEST_ID_HEADER),
        ])
        .expose_headers([
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
            header::RETRY_AFTER,
            header::LOCATION,
        ])
        .max_age(std::time::Duration::from_secs(600))
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
        .layer(security_header(header::CACHE_CONTROL, "no-store"))
        .layer(cors(config))
        .layer(middleware::from_fn(request_context));
    NormalizePathLayer::trim_trailing_slash().layer(router)
}
