//! The links a browser follows a task by: `events_url` (the SSE stream) and `status_url` (the
//! JSON status), absolute, each with a short-lived signed `token` so they open without a key
//! (`EventSource` cannot send one). The origin is `PUBLIC_BASE_URL` when set, else the one the
//! request reached (`X-Forwarded-Proto` and `Host`, as API Gateway and the local server see
//! them); streams go to `STATUS_STREAM_BASE_URL` when set (on AWS, the streaming function URL).

use super::views::TaskLinks;
use crate::app::status_token::{self, StatusToken};
use crate::context::AppContext;
use crate::domain::JobId;
use crate::issued_tokens::Issued;
use axum::extract::FromRequestParts;
use chrono::{DateTime, Utc};
use http::request::Parts;
use std::convert::Infallible;

/// The origin (`scheme://host[:port]`) clients reach this deployment at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(pub String);

/// A `Host` as a URL may carry it: a DNS name or IPv4 address (letters, digits, dots, dashes)
/// or a bracketed IPv6 literal, then at most one `:port` of 1 to 5 digits.
fn plain_host(host: &str) -> bool {
    let valid_port = |p: &str| {
        (1..=5).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|port| port > 0)
    };
    if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = match after {
            "" => true,
            other => other.strip_prefix(':').is_some_and(valid_port),
        };
        return port_ok
            && !v6.is_empty()
            && v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(valid_port)
}

impl FromRequestParts<AppContext> for Origin {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppContext) -> Result<Self, Infallible> {
        if let Some(base) = &ctx.config.local.public_base_url {
            return Ok(Self(base.clone()));
        }
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let scheme = match header("x-forwarded-proto") {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        let host = header("host").filter(|h| plain_host(h)).map_or_else(
            || format!("127.0.0.1:{}", ctx.config.local.port),
            str::to_owned,
        );
        Ok(Self(format!("{scheme}://{host}")))
    }
}

/// A token that opens task `task_id` of `owner` without a key: the one this instance issued
/// for it within the last minute (see [`crate::issued_tokens`]), else a new one.
pub fn task_token(ctx: &AppContext, task_id: JobId, owner: &str) -> StatusToken {
    let ttl = ctx.config.status.status_token_ttl;
    let now = Utc::now();
    let issued = ctx
        .issued_tokens
        .get_or_issue(task_id, owner, ttl, now.timestamp(), || {
            let fresh = status_token::issue(ctx.status_secret(), task_id, owner, ttl, now);
            Issued {
                token: fresh.token,
                expires: fresh.expires_at.timestamp(),
            }
        });
    StatusToken {
        token: issued.token,
        expires_at: DateTime::from_timestamp(issued.expires, 0).unwrap_or(now),
    }
}

/// The links task `task_id` of `owner` is followed by.
pub fn task_links(ctx: &AppContext, origin: &Origin, task_id: JobId, owner: &str) -> TaskLinks {
    let token = task_token(ctx, task_id, owner);
    let streams = ctx
        .config
        .status
        .status_stream_base_url
        .as_deref()
        .unwrap_or(&origin.0);
    let path = format!("/api/v1/status/tasks/{task_id}");
    TaskLinks {
        events_url: format!("{streams}{path}/stream?token={}", token.token),
        status_url: format!("{}{path}/status?token={}", origin.0, token.token),
        links_expire_at: token.expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_hosts_make_urls() {
        for good in [
            "example.com",
            "127.0.0.1:8000",
            "[::1]:80",
            "api-1.example.com",
        ] {
            assert!(plain_host(good), "{good}");
        }
        for bad in [
            "",
            "evil.com/x",
            "a b",
            "x@y",
            "a\\b",
            "h?q",
            "h#f",
            ":",
            "[]",
            "[]:80",
            "a:1:2",
            "a:",
            "a:123456",
            "a:8x",
            "::1",
            "[::1]x",
        ] {
            assert!(!plain_host(bad), "{bad}");
        }
    }
}
