//! Signatures by the Standard Webhooks specification (standardwebhooks.com): a secret is
//! `whsec_` and the base64 of its key bytes; a delivery is signed over `{id}.{timestamp}.{body}`
//! with HMAC-SHA256, and `webhook-signature` carries `v1,` and the base64 signature, once per
//! secret that signs (during a rotation, the new one and the old one, space-separated).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// A key that signs an endpoint's deliveries.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

/// Why a text is no signing secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a signing secret starts with whsec_ and carries base64 bytes (at least 24)")]
    Malformed,
}

impl SigningSecret {
    /// A new secret of 32 random bytes (from the operating system's generator, through v4 UUIDs).
    pub fn generate() -> Self {
        let mut key = Vec::with_capacity(32);
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self { key }
    }

    /// Reads a `whsec_...` secret.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let key = text
            .strip_prefix(PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|key| key.len() >= 24)
            .ok_or(SecretError::Malformed)?;
        Ok(Self { key })
    }

    /// The secret as the receiver configures it: `whsec_` and base64.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a SigningSecret>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_test_vector_signs_alike() {
        // The example of the Standard Webhooks reference libraries.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_round_trip_and_malformed_ones_are_refused() {
        let secret = SigningSecret::generate();
        assert_ne!(secret, SigningSecret::generate());
        assert_eq!(SigningSecret::parse(&secret.expose()), Ok(secret.clone()));
        assert!(secret.expose().starts_with("whsec_"));
        assert!(!format!("{secret:?}").contains(&secret.expose()[6..]));
        for bad in [
            "",
            "whsec_",
            "whsec_!!!",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_c2hvcnQ=",
        ] {
            assert_eq!(
                SigningSecret::parse(bad),
                Err(SecretError::Malformed),
                "{bad}"
            );
        }
        let old = SigningSecret::generate();
        let header = signature_header([&secret, &old], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [secret.sign("msg_1", 1, b"{}"), old.sign("msg_1", 1, b"{}")]
        );
    }
}
