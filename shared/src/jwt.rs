//! Sign-in for browser users without shared keys: `Authorization: Bearer <JWT>` from an OpenID
//! Connect provider (`JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_JWKS_URL`). RS256 and ES256 only;
//! `exp`, `nbf`, `iss` and `aud` checked with 30 s of clock skew; signatures verified by
//! `jsonwebtoken` against the provider's published keys, cached ([`JwksCache`]) and fetched
//! again when a token names an unknown `kid`, at most once a minute.
//! The caller's owner is `jwt.` and a hash of issuer and subject: no API key's name (names are
//! `[A-Za-z0-9_-]`, never a `.`) nor the admin owner can equal it, and it is safe in object keys.

use crate::jwks::{FetchError, JwksCache};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Seconds of clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// Where tokens come from, and for whom they must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
}

/// Verifies provider tokens; built once per process.
pub struct JwtVerifier {
    settings: JwtSettings,
    keys: JwksCache<JwkSet>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

/// The owner a token's subject signs in as.
pub fn owner_of(issuer: &str, subject: &str) -> String {
    let digest = Sha256::digest(format!("{issuer}\n{subject}").as_bytes());
    format!("jwt.{}", &hex::encode(digest)[..32])
}

/// Whether a bearer credential has a JWT's shape (three base64url parts, a JSON header).
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.split('.').count() == 3
}

/// The key set of a JWKS document.
fn parse_key_set(body: &str) -> Result<JwkSet, String> {
    serde_json::from_str(body).map_err(|e| e.to_string())
}

impl JwtVerifier {
    pub fn new(settings: JwtSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let keys = JwksCache::new(http, &settings.jwks_url, parse_key_set);
        Self { settings, keys }
    }

    /// The fresh key named `kid`.
    fn cached(&self, kid: &str) -> Option<jsonwebtoken::jwk::Jwk> {
        let (set, fresh) = self.keys.cached()?;
        set.find(kid).filter(|_| fresh).cloned()
    }

    /// Fetches the keys again, unless that was tried within the minute.
    async fn refresh(&self) {
        match self.keys.refresh().await {
            Ok(_) | Err(FetchError::TooSoon) => {}
            Err(error) => {
                tracing::warn!(%error, url = %self.settings.jwks_url, "the sign-in provider's keys could not be fetched");
            }
        }
    }

    /// The owner `token` signs in as, or `None` when it does not verify.
    pub async fn verify(&self, token: &str) -> Option<String> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return None;
        }
        let kid = header.kid?;
        let jwk = match self.cached(&kid) {
            Some(jwk) => jwk,
            None => {
                self.refresh().await;
                self.cached(&kid)?
            }
        };
        let key = DecodingKey::from_jwk(&jwk).ok()?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).ok()?;
        (!data.claims.sub.is_empty()).then(|| owner_of(&self.settings.issuer, &data.claims.sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_namespaced_and_safe_in_keys() {
        let owner = owner_of("https://issuer.example", "user/with#odd:chars");
        assert!(owner.starts_with("jwt.") && owner.len() == 36, "{owner}");
        assert!(owner[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(
            owner,
            owner_of("https://other.example", "user/with#odd:chars")
        );
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("alice-key-0123456789"));
    }
}
