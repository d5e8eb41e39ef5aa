//! Sign-in for browser users without shared keys: `Authorization: Bearer <JWT>` from an OpenID
//! Connect provider (`JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_JWKS_URL`). RS256 and ES256 only;
//! `exp`, `nbf`, `iss` and `aud` checked with 30 s of clock skew; signatures verified by
//! `jsonwebtoken` against the provider's published keys, cached and refreshed when a token
//! names an unknown `kid`, at most once a minute (the slot is claimed before fetching, so a
//! burst of bad tokens or an unreachable provider costs one fetch a minute, not one per request).
//! The caller's owner is `jwt.` and a hash of issuer and subject: no API key's name (names are
//! `[A-Za-z0-9_-]`, never a `.`) nor the admin owner can equal it, and it is safe in object keys.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seconds of clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// Fewest seconds between two fetches of the provider's keys.
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// Keys are fetched again after this long even when every `kid` is known.
const KEYS_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where tokens come from, and for whom they must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
}

#[derive(Default)]
struct Keys {
    set: Option<JwkSet>,
    fetched_at: Option<Instant>,
    /// When a fetch was last tried (claimed before fetching).
    tried_at: Option<Instant>,
}

/// Verifies provider tokens; built once per process.
pub struct JwtVerifier {
    settings: JwtSettings,
    http: reqwest::Client,
    keys: Mutex<Keys>,
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

impl JwtVerifier {
    pub fn new(settings: JwtSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            settings,
            http,
            keys: Mutex::new(Keys::default()),
        }
    }

    fn cached(&self, kid: &str) -> Option<jsonwebtoken::jwk::Jwk> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = keys.fetched_at.is_some_and(|at| at.elapsed() < KEYS_TTL);
        keys.set
            .as_ref()
            .filter(|_| fresh)
            .and_then(|set| set.find(kid))
            .cloned()
    }

    /// Fetches the keys if no fetch was tried in the last minute; returns whether it did.
    async fn refresh(&self) -> bool {
        {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            if keys.tried_at.is_some_and(|at| at.elapsed() < REFRESH_EVERY) {
                return false;
            }
            keys.tried_at = Some(Instant::now());
        }
        let fetched = async {
            self.http
                .get(&self.settings.jwks_url)
                .send()
                .await?
                .error_for_status()?
                .json::<JwkSet>()
                .await
        }
        .await;
        match fetched {
            Ok(set) => {
                let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
                keys.set = Some(set);
                keys.fetched_at = Some(Instant::now());
                true
            }
            Err(error) => {
                tracing::warn!(%error, url = %self.settings.jwks_url, "the sign-in provider's keys could not be fetched");
                false
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
