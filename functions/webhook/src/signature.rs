//! FAL's webhook signatures: Ed25519 over `request_id \n user_id \n timestamp \n
//! hex(sha256(body))`, hex encoded in `X-Fal-Webhook-Signature`, with FAL's public keys from a
//! JWKS URL. Keys are cached ([`JwksCache`]); an unknown signature fetches them again (at most
//! once a minute) so key rotation needs no restart. Timestamps more than 5 minutes away are
//! refused (replays).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use http::HeaderMap;
use image2model_shared::config::FalSettings;
use image2model_shared::jwks::{FetchError, JwksCache};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Largest accepted distance between a delivery's timestamp and our clock.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("header {0} is missing or not text")]
    MissingHeader(&'static str),
    #[error("timestamp {0:?} is not a Unix time in seconds")]
    BadTimestamp(String),
    #[error("timestamp is {0} s away from now (at most {TIMESTAMP_TOLERANCE_SECS} s allowed)")]
    StaleTimestamp(i64),
    #[error("the signature is not 64 hex-encoded bytes")]
    MalformedSignature,
    #[error("no FAL public key verifies the signature")]
    BadSignature,
    #[error("FAL's public keys are unavailable: {0}")]
    KeysUnavailable(String),
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kty: String,
    #[serde(default)]
    crv: String,
    #[serde(default)]
    x: String,
}

pub struct SignatureVerifier {
    keys: JwksCache<Vec<VerifyingKey>>,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(VerifyError::MissingHeader(name))
}

/// What a delivery's headers say, checked as far as they can be without its body.
pub struct SignedHeaders<'a> {
    request_id: &'a str,
    user_id: &'a str,
    timestamp: &'a str,
    signature: Signature,
}

/// A delivery's headers: all four present, a timestamp within the tolerance of `now`, and a
/// signature of Ed25519's shape. Checked before the body is read, so that a caller without
/// them holds no connection with a body nobody will accept.
pub fn signed_headers(
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<SignedHeaders<'_>, VerifyError> {
    let request_id = header(headers, "x-fal-webhook-request-id")?;
    let user_id = header(headers, "x-fal-webhook-user-id")?;
    let timestamp = header(headers, "x-fal-webhook-timestamp")?;
    let signature = header(headers, "x-fal-webhook-signature")?;
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp.to_owned()))?;
    let skew = (now.timestamp().saturating_sub(seconds)).saturating_abs();
    if skew > TIMESTAMP_TOLERANCE_SECS {
        return Err(VerifyError::StaleTimestamp(skew));
    }
    let signature: [u8; 64] = hex::decode(signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(VerifyError::MalformedSignature)?;
    Ok(SignedHeaders {
        request_id,
        user_id,
        timestamp,
        signature: Signature::from_bytes(&signature),
    })
}

/// The Ed25519 keys of a JWKS document (other key types are skipped).
fn parse_jwks(body: &str) -> Result<Vec<VerifyingKey>, String> {
    let jwks: Jwks = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let keys: Vec<VerifyingKey> = jwks
        .keys
        .iter()
        .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
        .filter_map(|k| {
            let raw = URL_SAFE_NO_PAD.decode(k.x.trim_end_matches('=')).ok()?;
            VerifyingKey::from_bytes(&raw.try_into().ok()?).ok()
        })
        .collect();
    if keys.is_empty() {
        return Err("the key set holds no Ed25519 key".to_owned());
    }
    Ok(keys)
}

/// The signed message of a delivery.
pub fn signed_message(request_id: &str, user_id: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "{request_id}\n{user_id}\n{timestamp}\n{}",
        hex::encode(Sha256::digest(body))
    )
}

impl SignatureVerifier {
    pub fn new(settings: &FalSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .build()?;
        Ok(Self {
            keys: JwksCache::new(http, &settings.jwks_url, parse_jwks),
        })
    }

    /// A verifier that already holds `keys` (the route tests').
    #[cfg(test)]
    pub(crate) fn holding(keys: Vec<VerifyingKey>) -> Self {
        let verifier = Self::new(&FalSettings {
            jwks_url: "http://127.0.0.1:9/jwks.json".to_owned(),
            ..FalSettings::default()
        })
        .expect("a client");
        verifier.keys.hold(keys);
        verifier
    }

    /// The cached keys, fetched again when absent or a day old if a fetch may be tried now (a
    /// day-old set is used while one may not). No keys, or a fetch that fails, is
    /// `KeysUnavailable` (503: FAL delivers again, rather than a rotated key being refused).
    async fn keys(&self) -> Result<Arc<Vec<VerifyingKey>>, VerifyError> {
        let unavailable = |err: FetchError| VerifyError::KeysUnavailable(err.to_string());
        match self.keys.cached() {
            Some((keys, true)) => Ok(keys),
            Some((stale, false)) => match self.keys.refresh().await {
                Err(FetchError::TooSoon) => Ok(stale),
                fetched => fetched.map_err(unavailable),
            },
            None => self.keys.refresh().await.map_err(unavailable),
        }
    }

    /// Keys fetched again (for a signature the cached ones do not verify: a rotation), if a
    /// fetch may be tried now; a failed fetch is logged and changes nothing.
    async fn refreshed_keys(&self) -> Option<Arc<Vec<VerifyingKey>>> {
        match self.keys.refresh().await {
            Ok(keys) => Some(keys),
            Err(FetchError::TooSoon) => None,
            Err(err) => {
                tracing::warn!(error = %err, "FAL's webhook keys could not be refreshed");
                None
            }
        }
    }

    /// Verifies a delivery: its headers, its timestamp against `now`, and its signature over
    /// the raw `body`. Returns the request id the signature covers.
    pub async fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<String, VerifyError> {
        let SignedHeaders {
            request_id,
            user_id,
            timestamp,
            signature,
        } = signed_headers(headers, now)?;
        let message = signed_message(request_id, user_id, timestamp, body);
        let verifies = |keys: &[VerifyingKey]| {
            keys.iter()
                .any(|k| k.verify_strict(message.as_bytes(), &signature).is_ok())
        };
        let keys = self.keys().await?;
        if verifies(&keys) || self.refreshed_keys().await.is_some_and(|k| verifies(&k)) {
            Ok(request_id.to_owned())
        } else {
            Err(VerifyError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;

    const NOW: i64 = 1_795_608_000;

    /// A verifier whose key cache already holds `key` (nothing is fetched).
    fn verifier_with(key: &SigningKey) -> SignatureVerifier {
        SignatureVerifier::holding(vec![key.verifying_key()])
    }

    fn headers(key: &SigningKey, request_id: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
        let message = signed_message(request_id, "user-1", &timestamp.to_string(), body);
        let mut headers = HeaderMap::new();
        headers.insert("x-fal-webhook-request-id", request_id.parse().unwrap());
        headers.insert("x-fal-webhook-user-id", "user-1".parse().unwrap());
        headers.insert(
            "x-fal-webhook-timestamp",
            timestamp.to_string().parse().unwrap(),
        );
        headers.insert(
            "x-fal-webhook-signature",
            hex::encode(key.sign(message.as_bytes()).to_bytes())
                .parse()
                .unwrap(),
        );
        headers
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[tokio::test]
    async fn genuine_deliveries_verify_within_five_minutes_only() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let verifier = verifier_with(&key);
        let body = br#"{"request_id":"r-1","status":"OK"}"#;
        for skew in [-300, -299, 0, 299, 300] {
            let signed = headers(&key, "r-1", NOW + skew, body);
            assert_eq!(
                verifier.verify(&signed, body, at(NOW)).await.unwrap(),
                "r-1"
            );
        }
        for skew in [-301, 301, -86_400] {
            let signed = headers(&key, "r-1", NOW + skew, body);
            assert!(matches!(
                verifier.verify(&signed, body, at(NOW)).await,
                Err(VerifyError::StaleTimestamp(_))
            ));
        }
        let mut missing = headers(&key, "r-1", NOW, body);
        missing.remove("x-fal-webhook-user-id");
        assert!(matches!(
            verifier.verify(&missing, body, at(NOW)).await,
            Err(VerifyError::MissingHeader("x-fal-webhook-user-id"))
        ));
        let mut garbled = headers(&key, "r-1", NOW, body);
        garbled.insert("x-fal-webhook-signature", "zz".parse().unwrap());
        assert!(matches!(
            verifier.verify(&garbled, body, at(NOW)).await,
            Err(VerifyError::MalformedSignature)
        ));
    }

    /// A key rotation is looked up at most once a minute, and a refresh that fails (FAL's key
    /// URL unreachable here) leaves a bad signature a bad signature: 401, not 503.
    #[tokio::test]
    async fn a_bad_signature_is_refused_whatever_the_refresh_did() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let verifier = verifier_with(&key);
        let impostor = SigningKey::from_bytes(&[9; 32]);
        let body = b"{}";
        for _ in 0..3 {
            let forged = headers(&impostor, "r-1", NOW, body);
            assert!(matches!(
                verifier.verify(&forged, body, at(NOW)).await,
                Err(VerifyError::BadSignature)
            ));
        }
        assert_eq!(
            verifier.keys.refresh().await,
            Err(FetchError::TooSoon),
            "one refresh was tried, and it took the minute's only fetch"
        );
        // Genuine deliveries still verify from the cache meanwhile.
        let genuine = headers(&key, "r-2", NOW, body);
        assert_eq!(
            verifier.verify(&genuine, body, at(NOW)).await.unwrap(),
            "r-2"
        );
    }

    /// Keys a day old are fetched again before use; a fetch that fails then is a 503 (FAL
    /// delivers again), never a refusal of a key that may have rotated. Within the minute after
    /// that try, no fetch may be tried and the day-old keys are used.
    #[tokio::test(start_paused = true)]
    async fn day_old_keys_are_fetched_again_and_a_failed_fetch_is_unavailable_not_a_refusal() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let verifier = verifier_with(&key);
        tokio::time::advance(std::time::Duration::from_secs(24 * 3600 + 1)).await;
        let body = b"{}";
        let signed = headers(&key, "r-1", NOW, body);
        assert!(matches!(
            verifier.verify(&signed, body, at(NOW)).await,
            Err(VerifyError::KeysUnavailable(_))
        ));
        assert_eq!(
            verifier.verify(&signed, body, at(NOW)).await.unwrap(),
            "r-1"
        );
    }

    proptest! {
        /// Any change to the body, the request id or the signer makes a delivery fail.
        #[test]
        fn tampering_never_verifies(
            body in proptest::collection::vec(any::<u8>(), 1..300),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
            seed in any::<[u8; 32]>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let key = SigningKey::from_bytes(&[3; 32]);
            let verifier = verifier_with(&key);
            let signed = headers(&key, "r-1", NOW, &body);
            prop_assert!(runtime.block_on(verifier.verify(&signed, &body, at(NOW))).is_ok());

            let mut tampered = body.clone();
            tampered[flip.index(body.len())] ^= 1 << bit;
            prop_assert!(matches!(
                runtime.block_on(verifier.verify(&signed, &tampered, at(NOW))),
                Err(VerifyError::BadSignature)
            ));
            let mut other_request = signed.clone();
            other_request.insert("x-fal-webhook-request-id", "r-2".parse().unwrap());
            prop_assert!(runtime.block_on(verifier.verify(&other_request, &body, at(NOW))).is_err());
            let impostor = SigningKey::from_bytes(&seed);
            prop_assume!(impostor.verifying_key() != key.verifying_key());
            let forged = headers(&impostor, "r-1", NOW, &body);
            prop_assert!(runtime.block_on(verifier.verify(&forged, &body, at(NOW))).is_err());
        }
    }

    #[test]
    fn jwks_yields_the_ed25519_keys_only() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let body = format!(
            r#"{{"keys":[{{"kty":"RSA","n":"abc","e":"AQAB"}},{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"k1"}}]}}"#
        );
        assert_eq!(parse_jwks(&body).unwrap(), vec![key.verifying_key()]);
        assert!(parse_jwks(r#"{"keys":[]}"#).is_err());
        assert!(parse_jwks("not json").is_err());
    }

    #[test]
    fn the_message_binds_ids_time_and_body() {
        let message = signed_message("req", "user", "1700000000", b"{}");
        assert_eq!(
            message,
            "req\nuser\n1700000000\n44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
