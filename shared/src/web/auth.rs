//! Authentication of requests: the key a request presents (`Authorization: Bearer <key>` or
//! `X-API-Key`), and the [`Caller`] (any valid key) and [`Admin`] (the admin key) extractors
//! routes take. The key ring comes from the router's state through axum's `FromRef`.

use super::error::ApiError;
use crate::keys::{ADMIN_OWNER, Caller, Identity, KeyRing};
use axum::extract::{FromRef, FromRequestParts};
use http::HeaderMap;
use http::request::Parts;
use std::sync::Arc;

/// The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>` (both, if
/// they name the same key). A credential that cannot be read (another scheme, an empty or
/// non-ASCII value) or two that disagree is `None`: a request is never let in on one header
/// while the other carries something else.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = match headers.get(http::header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(())?;
            Some(non_empty(token)?)
        }
    };
    let api_key = match headers.get("x-api-key") {
        None => None,
        Some(value) => Some(non_empty(value.to_str().ok()?)?),
    };
    match (bearer, api_key) {
        (Some(a), Some(b)) if a != b => None,
        (a, b) => a.or(b),
    }
}

/// Who the request's credential is, once a layer in front of the route (the rate limit) has
/// identified it: the extractors below take it instead of checking the key again.
#[derive(Debug, Clone)]
pub(crate) struct Identified(pub(crate) Identity);

fn non_empty(value: &str) -> Option<&str> {
    Some(value.trim()).filter(|v| !v.is_empty())
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<KeyRing>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let identity = match parts.extensions.get::<Identified>() {
            Some(Identified(identity)) => identity.clone(),
            None => {
                let key = presented_key(&parts.headers).ok_or(ApiError::Unauthorized)?;
                let keys = Arc::<KeyRing>::from_ref(state);
                keys.identify_credential(key)
                    .await
                    .ok_or(ApiError::Unauthorized)?
            }
        };
        match identity {
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

/// `Option<Caller>`: `None` when the request presents no credential at all (routes that also
/// answer to a token or publicly); a credential that is there but not valid is still 401.
impl<S> axum::extract::OptionalFromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<KeyRing>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, ApiError> {
        let presented = parts.headers.contains_key(http::header::AUTHORIZATION)
            || parts.headers.contains_key("x-api-key");
        if presented {
            <Self as FromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .map(Some)
        } else {
            Ok(None)
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
    fn reads_bearer_or_x_api_key() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", " k1 ".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k1"));
        h.insert(http::header::AUTHORIZATION, "bearer k1".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k1"), "both headers naming one key");
        h.remove("x-api-key");
        assert_eq!(presented_key(&h), Some("k1"));
    }

    #[test]
    fn refuses_unreadable_or_conflicting_credentials() {
        for (authorization, api_key) in [
            (Some("Basic abc"), Some("k1")),
            (Some("Bearer"), Some("k1")),
            (Some("Bearer   "), Some("k1")),
            (Some("Bearer k2"), Some("k1")),
            (Some("k1"), None),
            (None, Some("  ")),
            (Some("Bearer k1"), Some("")),
        ] {
            let mut h = HeaderMap::new();
            if let Some(v) = authorization {
                h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
            }
            if let Some(v) = api_key {
                h.insert("x-api-key", v.parse().unwrap());
            }
            assert_eq!(presented_key(&h), None, "{authorization:?} {api_key:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            "x-api-key",
            http::HeaderValue::from_bytes(b"k\xff1").unwrap(),
        );
        assert_eq!(presented_key(&h), None);
    }

    /// `Option<Caller>` on `headers`, with alice's key and the admin key configured.
    async fn optional_caller(headers: &[(&str, &str)]) -> Result<Option<Caller>, ApiError> {
        use axum::extract::OptionalFromRequestParts;
        let ring = Arc::new(KeyRing::new(
            &[crate::config::NamedKey {
                name: "alice".into(),
                key: "alice-secret".into(),
            }],
            Some("admin-secret"),
        ));
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        <Caller as OptionalFromRequestParts<_>>::from_request_parts(&mut parts, &ring).await
    }

    #[tokio::test]
    async fn an_optional_caller_is_none_only_without_any_credential() {
        assert_eq!(optional_caller(&[]).await.unwrap(), None);
        let alice = Caller {
            owner: "alice".into(),
            is_admin: false,
        };
        for header in [
            ("x-api-key", "alice-secret"),
            ("authorization", "Bearer alice-secret"),
        ] {
            assert_eq!(
                optional_caller(&[header]).await.unwrap(),
                Some(alice.clone())
            );
        }
        let admin = optional_caller(&[("x-api-key", "admin-secret")]).await;
        assert_eq!(
            admin.unwrap().map(|c| (c.owner, c.is_admin)),
            Some((ADMIN_OWNER.into(), true))
        );
        // A credential that is there but wrong is refused, not taken for none.
        for header in [
            ("x-api-key", "wrong-secret"),
            ("authorization", "Bearer wrong-secret"),
            ("authorization", "Basic YWxpY2U6c2VjcmV0"),
        ] {
            assert!(
                matches!(
                    optional_caller(&[header]).await,
                    Err(ApiError::Unauthorized)
                ),
                "{header:?}"
            );
        }
    }
}
