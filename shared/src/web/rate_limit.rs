//! Fixed-window rate limiting per API key (per client IP without a valid key), counted in the
//! store so every instance shares the window. Limited responses carry `X-RateLimit-*` headers;
//! a refusal is a 429 `RATE_LIMITED` with `Retry-After`.

use super::auth::presented_key;
use super::error::ApiError;
use crate::context::AppContext;
use crate::keys::Identity;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue};
use std::net::SocketAddr;

const WINDOW_SECS: i64 = 60;

/// Who is counted: the key's owner, or the client address.
fn subject(ctx: &AppContext, req: &Request) -> String {
    if let Some(identity) = presented_key(req.headers()).and_then(|k| ctx.keys.identify(k)) {
        return match identity {
            Identity::User(name) => format!("key:{name}"),
            Identity::Admin => "key:admin".to_owned(),
        };
    }
    // The closest proxy appends the address it saw; earlier entries are client-controlled.
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|ip| ip.trim().to_owned());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    format!(
        "ip:{}",
        peer.or(forwarded).unwrap_or_else(|| "unknown".to_owned())
    )
}

fn set_headers(headers: &mut HeaderMap, limit: u64, remaining: u64, reset: DateTime<Utc>) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset.timestamp()));
}

/// Middleware for the routes that are rate limited.
pub async fn limit(State(ctx): State<AppContext>, req: Request, next: Next) -> Response {
    let limit = ctx.config.rate_limit_per_minute;
    let now = Utc::now();
    let window_start = now.timestamp() - now.timestamp().rem_euclid(WINDOW_SECS);
    let reset = DateTime::from_timestamp(window_start + WINDOW_SECS, 0).unwrap_or(now);
    let key = format!("ratelimit:{}:{window_start}", subject(&ctx, &req));
    let count = match ctx.store.add_to_counter(&key, 1, reset).await {
        Ok(count) => count.max(0) as u64,
        Err(err) => {
            // Failing open keeps uploads working while the store hiccups; the store error
            // surfaces on the route itself if it persists.
            tracing::warn!(error = %err, "rate limit counter unavailable");
            return next.run(req).await;
        }
    };
    let remaining = limit.saturating_sub(count);
    let mut response = if count > limit {
        let retry_after_secs = (reset - now).num_seconds().max(1) as u64;
        ApiError::RateLimited { retry_after_secs }.into_response()
    } else {
        next.run(req).await
    };
    set_headers(response.headers_mut(), limit, remaining, reset);
    response
}
