//! Authentication of requests: the key a request presents (`Authorization: Bearer <key>` or
//! `X-API-Key`), and the [`Caller`] (any valid key) and [`Admin`] (the admin key) extractors
//! routes take. The key ring comes from the router's state through axum's `FromRef`.

use super::error::ApiError;
use crate::keys::{ADMIN_OWNER, Caller, Identity, KeyRing};
use axum::extract::{FromRef, FromRequestParts};
use http::HeaderMap;
use http::request::Parts;
use std::sync::Arc;

/// The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        });
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty())
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<KeyRing>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let key = presented_key(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let keys = Arc::<KeyRing>::from_ref(state);
        match keys.identify(key).ok_or(ApiError::Unauthorized)? {
            Identity::User(owner) => Ok(Self {
                owner,
                is_admin: false,
            }),
            Identity::Admin => Ok(Self {
                owner: ADMIN_OWNER.to_owned(),
                is_admin: true,
            }),
        }
    }
}

/// A caller holding the admin key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin;

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    Arc<KeyRing>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.is_admin {
            Ok(Self)
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_and_x_api_key() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k1"));
        h.insert(http::header::AUTHORIZATION, "bearer k2".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k2"));
        h.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k1"));
    }
}
