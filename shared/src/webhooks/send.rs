//! One attempt of a delivery: a signed POST to the endpoint's URL, checked again before it goes
//! (scheme and a numeric host's address) and resolved by [`PublicOnly`], with no redirect
//! followed, a deadline, and at most [`MAX_ANSWER_BYTES`] of the answer read.

use super::target::{NO_PUBLIC_ADDRESS, PublicOnly, check_url};
use crate::domain::webhook::AttemptOutcome;
use reqwest::redirect::Policy;
use std::sync::Arc;
use std::time::Duration;

/// How long a receiver has to answer an attempt.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a receiver's answer is read (the rest is dropped with the connection).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What one attempt sends: the headers of the Standard Webhooks specification and the body.
#[derive(Debug, Clone)]
pub struct SignedDelivery<'a> {
    pub url: &'a str,
    pub event_id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
    pub body: &'a str,
}

/// The HTTP client deliveries go through, built once.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
}

impl Sender {
    /// A sender whose deliveries reach public addresses only, unless `allow_private`
    /// (`WEBHOOK_ALLOW_PRIVATE`), and give up after `timeout`.
    pub fn new(allow_private: bool, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            // A proxy would connect on our behalf, past the resolver's check.
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .dns_resolver(Arc::new(PublicOnly { allow_private }))
            .user_agent(concat!("image2model-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            allow_private,
        })
    }

    /// Sends `delivery` once and says what it met.
    pub async fn send(&self, delivery: &SignedDelivery<'_>) -> AttemptOutcome {
        let url = match check_url(delivery.url, self.allow_private) {
            Ok(url) => url,
            Err(refused) => return AttemptOutcome::Unreachable(refused.to_string()),
        };
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", delivery.event_id)
            .header("webhook-timestamp", delivery.timestamp.to_string())
            .header("webhook-signature", delivery.signature)
            .body(delivery.body.to_owned())
            .send()
            .await;
        let mut answer = match sent {
            Ok(answer) => answer,
            Err(e) if e.is_timeout() => return AttemptOutcome::TimedOut,
            Err(e) => return AttemptOutcome::Unreachable(describe(&e)),
        };
        let status = answer.status().as_u16();
        let mut read = 0;
        while read < MAX_ANSWER_BYTES {
            match answer.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) => break,
                // The status is what counts; a body cut short or slow does not change it.
                Err(e) if e.is_timeout() => return AttemptOutcome::TimedOut,
                Err(_) => break,
            }
        }
        AttemptOutcome::Answered(status)
    }
}

/// Why a request got no answer, in our words (reqwest's text can carry addresses).
fn describe(error: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(cause) = source {
        if cause.to_string().contains(NO_PUBLIC_ADDRESS) {
            return "the host resolves to no public address (only public addresses receive \
                    webhooks)"
                .to_owned();
        }
        source = cause.source();
    }
    if error.is_connect() {
        "the connection was refused or could not be made".to_owned()
    } else if error.is_redirect() {
        "a redirect, which deliveries do not follow".to_owned()
    } else {
        "the request failed before an answer".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use std::sync::Mutex;

    /// A receiver on loopback answering `status` (or never, for 0), recording the headers.
    async fn receiver(status: u16, seen: Arc<Mutex<Vec<HeaderMap>>>) -> String {
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(headers);
                    if status == 0 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    StatusCode::from_u16(status.max(200)).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn delivery(url: &str) -> SignedDelivery<'_> {
        SignedDelivery {
            url,
            event_id: "msg_1",
            timestamp: 1_700_000_000,
            signature: "v1,abc=",
            body: "{}",
        }
    }

    #[tokio::test]
    async fn an_attempt_carries_the_specifications_headers_and_reports_the_answer() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sender = Sender::new(true, Duration::from_secs(5)).unwrap();
        for status in [200, 500, 410] {
            let url = receiver(status, seen.clone()).await;
            assert_eq!(
                sender.send(&delivery(&url)).await,
                AttemptOutcome::Answered(status)
            );
        }
        let headers = seen.lock().unwrap()[0].clone();
        for (name, value) in [
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1700000000"),
            ("webhook-signature", "v1,abc="),
            ("content-type", "application/json"),
        ] {
            assert_eq!(headers[name], value);
        }
    }

    #[tokio::test]
    async fn a_receiver_that_hangs_times_out() {
        let url = receiver(0, Arc::default()).await;
        let sender = Sender::new(true, Duration::from_millis(300)).unwrap();
        assert_eq!(sender.send(&delivery(&url)).await, AttemptOutcome::TimedOut);
    }

    #[tokio::test]
    async fn without_the_private_allowance_loopback_is_never_reached() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let url = receiver(200, seen.clone()).await;
        let https = url.replace("http://", "https://");
        let by_name = https.replace("127.0.0.1", "localhost");
        let sender = Sender::new(false, Duration::from_secs(5)).unwrap();
        for target in [url.as_str(), https.as_str(), by_name.as_str()] {
            assert!(
                matches!(
                    sender.send(&delivery(target)).await,
                    AttemptOutcome::Unreachable(_)
                ),
                "{target}"
            );
        }
        assert!(
            seen.lock().unwrap().is_empty(),
            "nothing reached the receiver"
        );
    }
}
