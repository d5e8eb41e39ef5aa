//! The embedded storage's presigned URLs, which the local server serves: HMAC-SHA256 over the
//! method, key, expiry and what the request may carry (a PUT's content type and exact length, a
//! GET's download name, a form POST's key, type and largest length). Verification is in
//! constant time; a tampered or expired URL is refused.

use super::object_key::validate_key;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::BTreeMap;

/// The path prefix under which the local server serves signed URLs.
pub const SIGNED_URL_PREFIX: &str = "/local-storage/";
/// The path of the local server's form-upload endpoint (the stand-in for S3's POST).
pub const FORM_UPLOAD_PATH: &str = "/local-storage";

type HmacSha256 = Hmac<Sha256>;

/// Why a signed URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedUrlError {
    #[error("the URL is not a complete signed URL")]
    Malformed,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the URL expired")]
    Expired,
}

/// What a verified signed URL allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedGrant {
    pub method: String,
    pub key: String,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub download_name: Option<String>,
}

/// What a verified form-upload policy allows: one object, of one type, up to a length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPostGrant {
    pub key: String,
    pub content_type: String,
    pub max_length: u64,
}

#[derive(Deserialize)]
struct SignedQuery {
    method: String,
    expires: i64,
    content_type: Option<String>,
    content_length: Option<u64>,
    download_name: Option<String>,
    signature: String,
}

/// Signs and verifies URLs with one secret; URLs start with `base_url`.
#[derive(Clone)]
pub struct UrlSigner {
    base_url: String,
    secret: Vec<u8>,
}

impl UrlSigner {
    pub fn new(secret: Vec<u8>, base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret,
        }
    }

    fn sign(&self, parts: &[&str]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts any key size");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        hex::encode(mac.finalize().into_bytes())
    }

    pub(super) fn signed_url(
        &self,
        method: &'static str,
        key: &str,
        expires_at: DateTime<Utc>,
        content_type: Option<&str>,
        content_length: Option<u64>,
        download_name: Option<&str>,
    ) -> String {
        let expires = expires_at.timestamp().to_string();
        let length = content_length.map(|n| n.to_string());
        let signature = self.sign(&[
            method,
            key,
            &expires,
            content_type.unwrap_or_default(),
            length.as_deref().unwrap_or_default(),
            download_name.unwrap_or_default(),
        ]);
        let mut query = vec![("method", method.to_owned()), ("expires", expires)];
        if let Some(ct) = content_type {
            query.push(("content_type", ct.to_owned()));
        }
        if let Some(len) = length {
            query.push(("content_length", len));
        }
        if let Some(name) = download_name {
            query.push(("download_name", name.to_owned()));
        }
        query.push(("signature", signature));
        let query = serde_urlencoded::to_string(query).unwrap_or_default();
        let path: Vec<String> = key
            .split('/')
            .map(|s| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string())
            .collect();
        format!(
            "{}{}{}?{}",
            self.base_url,
            SIGNED_URL_PREFIX,
            path.join("/"),
            query
        )
    }

    /// The fields of a form upload of `key`: the policy (exactly that key, `content_type`, up to
    /// `max_length` bytes, until `expires_at`) and its signature.
    pub(super) fn post_fields(
        &self,
        key: &str,
        content_type: &str,
        max_length: u64,
        expires_at: DateTime<Utc>,
    ) -> BTreeMap<String, String> {
        let (expires, max) = (expires_at.timestamp().to_string(), max_length.to_string());
        let signature = self.sign(&["POST", key, &expires, content_type, &max, ""]);
        BTreeMap::from([
            ("key".to_owned(), key.to_owned()),
            ("Content-Type".to_owned(), content_type.to_owned()),
            ("expires".to_owned(), expires),
            ("max_length".to_owned(), max),
            ("signature".to_owned(), signature),
        ])
    }

    /// Where form uploads go.
    pub(super) fn post_url(&self) -> String {
        format!("{}{FORM_UPLOAD_PATH}", self.base_url)
    }

    /// Checks the signed fields of a form upload (every field but the file).
    pub fn verify_post(
        &self,
        fields: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<SignedPostGrant, SignedUrlError> {
        let field = |name: &str| fields.get(name).ok_or(SignedUrlError::Malformed);
        let (key, content_type) = (field("key")?, field("Content-Type")?);
        let (expires, max_length) = (field("expires")?, field("max_length")?);
        if validate_key(key).is_err() {
            return Err(SignedUrlError::Malformed);
        }
        let expected =
            hex::decode(self.sign(&["POST", key, expires, content_type, max_length, ""]))
                .map_err(|_| SignedUrlError::BadSignature)?;
        let given = hex::decode(field("signature")?).map_err(|_| SignedUrlError::BadSignature)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_slice(),
            expected.as_slice(),
        )) {
            return Err(SignedUrlError::BadSignature);
        }
        let expires: i64 = expires.parse().map_err(|_| SignedUrlError::Malformed)?;
        if now.timestamp() > expires {
            return Err(SignedUrlError::Expired);
        }
        Ok(SignedPostGrant {
            key: key.clone(),
            content_type: content_type.clone(),
            max_length: max_length.parse().map_err(|_| SignedUrlError::Malformed)?,
        })
    }

    /// Checks a signed request for `method` on `key` with the raw query string.
    pub fn verify(
        &self,
        method: &str,
        key: &str,
        raw_query: &str,
        now: DateTime<Utc>,
    ) -> Result<SignedGrant, SignedUrlError> {
        let query: SignedQuery =
            serde_urlencoded::from_str(raw_query).map_err(|_| SignedUrlError::Malformed)?;
        if validate_key(key).is_err() {
            return Err(SignedUrlError::Malformed);
        }
        let length = query.content_length.map(|n| n.to_string());
        let expected = self.sign(&[
            &query.method,
            key,
            &query.expires.to_string(),
            query.content_type.as_deref().unwrap_or_default(),
            length.as_deref().unwrap_or_default(),
            query.download_name.as_deref().unwrap_or_default(),
        ]);
        let given = hex::decode(&query.signature).map_err(|_| SignedUrlError::BadSignature)?;
        let expected = hex::decode(expected).map_err(|_| SignedUrlError::BadSignature)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_slice(),
            expected.as_slice(),
        )) || query.method != method
        {
            return Err(SignedUrlError::BadSignature);
        }
        if now.timestamp() > query.expires {
            return Err(SignedUrlError::Expired);
        }
        Ok(SignedGrant {
            method: query.method,
            key: key.to_owned(),
            content_type: query.content_type,
            content_length: query.content_length,
            download_name: query.download_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    fn signer() -> UrlSigner {
        UrlSigner::new(
            b"0123456789abcdef0123456789abcdef".to_vec(),
            "http://127.0.0.1:1/",
        )
    }

    fn split(url: &str) -> (String, String) {
        let rest = url.split_once(SIGNED_URL_PREFIX).unwrap().1;
        let (key, query) = rest.split_once('?').unwrap();
        let key = percent_encoding::percent_decode_str(key)
            .decode_utf8()
            .unwrap();
        (key.into_owned(), query.to_owned())
    }

    fn in_a_minute() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(60)
    }

    #[test]
    fn signed_urls_verify_and_refuse_tampering_and_expiry() {
        let s = signer();
        let url = s.signed_url(
            "PUT",
            "uploads/u/f",
            in_a_minute(),
            Some("image/png"),
            Some(42),
            None,
        );
        assert!(url.starts_with("http://127.0.0.1:1/local-storage/uploads/u/f?"));
        let (key, query) = split(&url);
        let grant = s.verify("PUT", &key, &query, Utc::now()).unwrap();
        assert_eq!(grant.content_type.as_deref(), Some("image/png"));
        assert_eq!(grant.content_length, Some(42));

        assert_eq!(
            s.verify("GET", &key, &query, Utc::now()),
            Err(SignedUrlError::BadSignature)
        );
        assert_eq!(
            s.verify("PUT", "uploads/u/g", &query, Utc::now()),
            Err(SignedUrlError::BadSignature)
        );
        let longer = query.replace("content_length=42", "content_length=43");
        assert_eq!(
            s.verify("PUT", &key, &longer, Utc::now()),
            Err(SignedUrlError::BadSignature)
        );
        let later = Utc::now() + chrono::Duration::seconds(61);
        assert_eq!(
            s.verify("PUT", &key, &query, later),
            Err(SignedUrlError::Expired)
        );
        assert_eq!(
            s.verify("PUT", &key, "method=PUT", Utc::now()),
            Err(SignedUrlError::Malformed)
        );
        assert_eq!(
            s.verify("PUT", "../etc/passwd", &query, Utc::now()),
            Err(SignedUrlError::Malformed)
        );
        let other = UrlSigner::new(b"another secret of 32 bytes or so!".to_vec(), "http://x");
        assert_eq!(
            other.verify("PUT", &key, &query, Utc::now()),
            Err(SignedUrlError::BadSignature)
        );

        let url = s.signed_url(
            "GET",
            "results/j/model.glb",
            in_a_minute(),
            None,
            None,
            Some("model.glb"),
        );
        let (key, query) = split(&url);
        let grant = s.verify("GET", &key, &query, Utc::now()).unwrap();
        assert_eq!(grant.download_name.as_deref(), Some("model.glb"));
    }

    proptest::proptest! {
        /// Whatever a client makes up (queries, keys, form fields) never verifies.
        #[test]
        fn made_up_urls_and_forms_never_verify(
            query in ".{0,200}",
            key in "[a-zA-Z0-9./_ %-]{0,40}",
            fields in proptest::collection::btree_map(
                proptest::sample::select(vec!["key", "Content-Type", "expires", "max_length", "signature", "x"]).prop_map(str::to_owned),
                ".{0,60}",
                0..6,
            ),
        ) {
            let s = signer();
            proptest::prop_assert!(s.verify("PUT", &key, &query, Utc::now()).is_err());
            proptest::prop_assert!(s.verify_post(&fields, Utc::now()).is_err());
        }

        /// One character changed anywhere in a signed URL's query, or in a form field, and it
        /// no longer verifies (or verifies the very same grant).
        #[test]
        fn signed_urls_and_forms_verify_only_as_signed(at in proptest::num::usize::ANY, replacement in proptest::char::any()) {
            let s = signer();
            let url = s.signed_url("PUT", "uploads/u/f", in_a_minute(), Some("image/png"), Some(42), None);
            let (key, query) = split(&url);
            let genuine = s.verify("PUT", &key, &query, Utc::now()).unwrap();
            let mut chars: Vec<char> = query.chars().collect();
            let at = at % chars.len();
            chars[at] = replacement;
            let tampered: String = chars.into_iter().collect();
            if let Ok(grant) = s.verify("PUT", &key, &tampered, Utc::now()) {
                proptest::prop_assert_eq!(grant, genuine);
            }
            let fields = s.post_fields("uploads/u/f", "image/png", 100, in_a_minute());
            let names: Vec<&String> = fields.keys().collect();
            let name = names[at % names.len()].clone();
            let mut forged = fields.clone();
            forged.get_mut(&name).unwrap().push(replacement);
            proptest::prop_assert!(s.verify_post(&forged, Utc::now()).is_err(), "{name}");
        }
    }

    #[test]
    fn form_policies_verify_and_refuse_tampering_and_expiry() {
        let s = signer();
        let fields = s.post_fields("uploads/u/f", "image/png", 100, in_a_minute());
        assert_eq!(fields["key"], "uploads/u/f");
        assert_eq!(s.post_url(), "http://127.0.0.1:1/local-storage");
        let grant = s.verify_post(&fields, Utc::now()).unwrap();
        assert_eq!(
            (grant.content_type.as_str(), grant.max_length),
            ("image/png", 100)
        );
        for (field, value) in [
            ("max_length", "1000"),
            ("Content-Type", "text/html"),
            ("key", "uploads/u/g"),
        ] {
            let mut tampered = fields.clone();
            tampered.insert(field.to_owned(), value.to_owned());
            assert_eq!(
                s.verify_post(&tampered, Utc::now()),
                Err(SignedUrlError::BadSignature),
                "{field}"
            );
        }
        let later = Utc::now() + chrono::Duration::seconds(61);
        assert_eq!(s.verify_post(&fields, later), Err(SignedUrlError::Expired));
        let mut missing = fields.clone();
        missing.remove("signature");
        assert_eq!(
            s.verify_post(&missing, Utc::now()),
            Err(SignedUrlError::Malformed)
        );
    }
}
