//! Sign-in with provider tokens over HTTP: key pairs generated here, their public halves served
//! as a JWKS by a provider on loopback, tokens signed here by hand (not by the library under
//! test). Only a well-formed, in-date RS256 or ES256 token for our issuer and audience, signed by
//! a published key, gets in.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use axum::Json;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use image2model_shared::jwt::JwtSettings;
use image2model_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "image2model-web";

struct Provider {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    fetches: Arc<AtomicUsize>,
    jwks_url: String,
}

impl Provider {
    async fn start() -> Self {
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let parts = PublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
        let point = ec.public_key().as_ref().to_vec(); // 0x04 || x || y
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": B64.encode(&parts.n), "e": B64.encode(&parts.e)},
            {"kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])},
        ]});
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = fetches.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let jwks = jwks.clone();
                async move { Json(jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            rsa,
            ec,
            fetches,
            jwks_url,
        }
    }

    fn signing_input(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        )
    }

    fn rs256(&self, kid: &str, claims: &Value) -> String {
        let input = Self::signing_input(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), claims);
        let mut signature = vec![0; self.rsa.public_modulus_len()];
        self.rsa
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .unwrap();
        format!("{input}.{}", B64.encode(signature))
    }

    fn es256(&self, claims: &Value) -> String {
        let input = Self::signing_input(
            &json!({"alg": "ES256", "typ": "JWT", "kid": "ec-1"}),
            claims,
        );
        let signature = self
            .ec
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", B64.encode(signature.as_ref()))
    }

    fn settings(&self) -> JwtSettings {
        JwtSettings {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            jwks_url: self.jwks_url.clone(),
        }
    }
}

fn claims(sub: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "nbf": now - 5, "exp": now + 600})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

#[tokio::test]
async fn only_a_good_token_signs_in() {
    let provider = Provider::start().await;
    let server = TestServer::start_with(|c| c.sign_in.jwt = Some(provider.settings())).await;
    let jobs = |token: String| {
        let server = &server;
        async move { server.get_json("/api/v1/jobs", Some(&token)).await }
    };

    // Good tokens of both algorithms sign in.
    for token in [
        provider.rs256("rsa-1", &claims("user-1")),
        provider.es256(&claims("user-1")),
    ] {
        let (status, body) = jobs(token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let now = chrono::Utc::now().timestamp();
    let good = provider.rs256("rsa-1", &claims("user-1"));
    let (header, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let public_der = provider.rsa.public_key().as_ref().to_vec();
    let hs256 = {
        use hmac::{Hmac, Mac};
        let input = Provider::signing_input(
            &json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}),
            &claims("user-1"),
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&public_der).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    let refused = [
        (
            "expired",
            provider.rs256("rsa-1", &with(claims("u"), "exp", json!(now - 120))),
        ),
        (
            "not yet valid",
            provider.rs256("rsa-1", &with(claims("u"), "nbf", json!(now + 600))),
        ),
        (
            "wrong audience",
            provider.rs256("rsa-1", &with(claims("u"), "aud", json!("someone-else"))),
        ),
        (
            "wrong issuer",
            provider.rs256(
                "rsa-1",
                &with(claims("u"), "iss", json!("https://evil.test")),
            ),
        ),
        (
            "no subject",
            provider.rs256("rsa-1", &with(claims("u"), "sub", json!(""))),
        ),
        ("unknown kid", provider.rs256("rsa-9", &claims("u"))),
        (
            "alg none",
            format!(
                "{}.{}.",
                B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
                B64.encode(claims("u").to_string())
            ),
        ),
        ("HS256 with the public key", hs256),
        (
            "tampered payload",
            format!(
                "{header}.{}.{signature}",
                B64.encode(claims("someone-else").to_string())
            ),
        ),
    ];
    for (what, token) in refused {
        let (status, body) = jobs(token).await;
        assert_error(status, &body, 401, "UNAUTHORIZED");
        assert!(
            !body.to_string().contains("sub"),
            "{what}: no token detail leaks: {body}"
        );
    }
}

#[tokio::test]
async fn a_token_user_is_a_user_of_its_own() {
    let provider = Provider::start().await;
    let server = TestServer::start_with(|c| c.sign_in.jwt = Some(provider.settings())).await;
    let token = provider.rs256("rsa-1", &claims("admin"));
    // Its jobs are its own; a subject named like the admin owner is still a plain user.
    let (file_id, job_id) = server
        .upload_presigned(&token, &png(64, 48), "image/png", true)
        .await;
    server.wait_for_file(&token, &file_id).await;
    let job_id = job_id.unwrap();
    server.wait_for_job(&token, &job_id).await;
    let (status, body) = server
        .get_json(&format!("/api/v1/jobs/{job_id}"), Some(ALICE))
        .await;
    assert_error(status, &body, 404, "JOB_NOT_FOUND");
    let (status, body) = server.get_json("/api/v1/admin/stats", Some(&token)).await;
    assert_error(status, &body, 403, "FORBIDDEN");
    let (_, list) = server.get_json("/api/v1/jobs", Some(&token)).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    // API keys keep working beside tokens.
    let (status, _) = server.call(Method::GET, "/api/v1/jobs", Some(ALICE)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_key_ids_fetch_the_keys_at_most_once_a_minute() {
    let provider = Provider::start().await;
    let server = TestServer::start_with(|c| c.sign_in.jwt = Some(provider.settings())).await;
    let (status, _) = server
        .get_json("/api/v1/jobs", Some(&provider.rs256("rsa-1", &claims("u"))))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        1,
        "keys fetched once, then cached"
    );
    for i in 0..20 {
        let token = provider.rs256(&format!("rotated-{i}"), &claims("u"));
        let (status, _) = server.get_json("/api/v1/jobs", Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        1,
        "20 unknown key ids within a minute of the last fetch cost no fetch at all"
    );
}
