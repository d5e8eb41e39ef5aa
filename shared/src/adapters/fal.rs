//! FAL.AI's queue over HTTPS, the [`FalQueue`] that runs: submit, status (with logs), result,
//! cancel, and downloading the files a result points to. Status, result and cancel use the URLs FAL returned at submission,
//! never rebuilt ones. Transport errors, 429 and 5xx are retried with capped exponential backoff
//! and full jitter, honouring `Retry-After`; 401, 403 and 422 are not retried.

use crate::config::FalSettings;
use crate::metrics::record_fal_call;
use crate::ports::fal::{FalError, FalQueue, QueueStatus, Submission};
use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Deserialize)]
struct StatusBody {
    status: String,
    #[serde(default)]
    queue_position: Option<u32>,
    #[serde(default)]
    logs: Option<Vec<LogLine>>,
}

#[derive(Deserialize)]
struct LogLine {
    #[serde(default)]
    message: String,
}

/// How one call is retried.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub max_retries: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry number `retry` (0-based): full jitter over a capped exponential,
    /// but never less than the server's `Retry-After`. `None` when the server asks for a longer
    /// wait than this policy's cap (the caller then re-queues instead of sleeping).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let exponential = self
            .base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max);
        let jittered = exponential.mul_f64(fastrand::f64());
        match retry_after {
            Some(asked) if asked > self.max => None,
            Some(asked) => Some(jittered.max(asked)),
            None => Some(jittered),
        }
    }
}

#[derive(Clone)]
pub struct FalClient {
    http: reqwest::Client,
    key: String,
    base_url: String,
    backoff: Backoff,
    download_timeout: Duration,
    max_download_bytes: u64,
}

/// The readable part of an error body: `detail` (a string or `[{loc, msg, type}]`), with the
/// `error_type` (body or `X-Fal-Error-Type` header) in front when there is one.
fn error_message(headers: &HeaderMap, body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let detail = parsed.as_ref().and_then(|v| v.get("detail"));
    let mut message = match detail {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let msg = item.get("msg").and_then(Value::as_str).unwrap_or("invalid");
                let loc: Vec<String> = item
                    .get("loc")
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                if loc.is_empty() {
                    msg.to_owned()
                } else {
                    format!("{}: {msg}", loc.join("."))
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.chars().take(300).collect(),
    };
    let error_type = parsed
        .as_ref()
        .and_then(|v| v.get("error_type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("x-fal-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    if let Some(kind) = error_type {
        message = format!("{kind}: {message}");
    }
    if message.trim().is_empty() {
        "no detail given".to_owned()
    } else {
        message
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    raw.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// Maps a non-success answer to an error.
fn status_error(status: StatusCode, headers: &HeaderMap, body: &str) -> FalError {
    let message = error_message(headers, body);
    match status.as_u16() {
        401 => FalError::Unauthorized(message),
        403 => FalError::Locked(message),
        422 => FalError::InvalidInput(message),
        429 => FalError::RateLimited {
            message,
            retry_after: retry_after(headers),
        },
        code @ 500..=599 => FalError::Server {
            status: code,
            message,
        },
        code => FalError::Rejected {
            status: code,
            message,
        },
    }
}

fn transport(err: &reqwest::Error) -> FalError {
    FalError::Transport(if err.is_timeout() {
        "timed out".to_owned()
    } else {
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(inner) = source {
            message = format!("{message}: {inner}");
            source = inner.source();
        }
        message
    })
}

// The readers of FAL's answers, shared by this client and the unit tests' scripted FAL (so a
// scripted answer means to the worker what the same answer from FAL would).

/// The body of an answer with `status`: itself when it is a success, the error it says otherwise.
pub fn answer_body(
    status: StatusCode,
    headers: &HeaderMap,
    body: String,
) -> Result<String, FalError> {
    if status.is_success() {
        Ok(body)
    } else {
        Err(status_error(status, headers, &body))
    }
}

/// The error of a result file's download that answered `status` (no success): a file that is
/// gone (404, 403, 410) has expired; any other answer is FAL's error.
pub fn download_error(status: StatusCode, headers: &HeaderMap, body: &str) -> FalError {
    if matches!(status.as_u16(), 403 | 404 | 410) {
        FalError::Expired(format!("HTTP {status}"))
    } else {
        status_error(status, headers, body)
    }
}

/// A JSON document of FAL's (the result), or `Malformed`.
pub fn read_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, FalError> {
    serde_json::from_str(body).map_err(|e| FalError::Malformed(e.to_string()))
}

/// What a submission answered.
pub fn read_submission(body: &str) -> Result<Submission, FalError> {
    read_json(body)
}

/// Where a request stands, from `GET status_url?logs=1` (its blank log lines left out).
pub fn read_queue_status(body: &str) -> Result<QueueStatus, FalError> {
    let parsed: StatusBody = read_json(body)?;
    let logs = parsed
        .logs
        .unwrap_or_default()
        .into_iter()
        .map(|l| l.message)
        .filter(|m| !m.trim().is_empty())
        .collect();
    match parsed.status.as_str() {
        "IN_QUEUE" => Ok(QueueStatus::InQueue {
            position: parsed.queue_position,
        }),
        "IN_PROGRESS" => Ok(QueueStatus::InProgress { logs }),
        "COMPLETED" => Ok(QueueStatus::Completed { logs }),
        other => Err(FalError::Malformed(format!("unknown status {other:?}"))),
    }
}

/// A cancel's outcome: a request that already finished cannot be cancelled (400), which is no
/// error.
pub fn read_cancel(answer: Result<String, FalError>) -> Result<(), FalError> {
    match answer {
        Ok(_) | Err(FalError::Rejected { status: 400, .. }) => Ok(()),
        Err(err) => Err(err),
    }
}

impl FalClient {
    /// A client for `settings`; `None` when no key is configured.
    pub fn new(settings: &FalSettings) -> Option<Result<Self, FalError>> {
        let key = settings.key.as_ref()?.0.clone();
        Some(
            reqwest::Client::builder()
                .timeout(settings.request_timeout)
                .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
                .user_agent(concat!("image2model/", env!("CARGO_PKG_VERSION")))
                .build()
                .map(|http| Self {
                    http,
                    key,
                    base_url: settings.base_url.clone(),
                    backoff: Backoff {
                        max_retries: settings.max_retries,
                        base: settings.retry_base,
                        max: settings.retry_max,
                    },
                    download_timeout: settings.download_timeout,
                    max_download_bytes: settings.max_download_bytes,
                })
                .map_err(|e| FalError::Transport(e.to_string())),
        )
    }

    /// Runs `attempt` until it succeeds, fails for good, or `max_retries` retries are spent;
    /// counts every outcome under `operation` and waits as the policy says between tries.
    async fn retrying<T, F, Fut>(
        &self,
        operation: &str,
        max_retries: u32,
        attempt: F,
    ) -> Result<T, FalError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, FalError>>,
    {
        let mut retry = 0;
        loop {
            let started = std::time::Instant::now();
            let err = match attempt().await {
                Ok(value) => {
                    record_fal_call(operation, "ok", started.elapsed());
                    return Ok(value);
                }
                Err(err) => err,
            };
            record_fal_call(operation, err.code().as_str(), started.elapsed());
            if !err.is_retryable() || retry >= max_retries {
                return Err(err);
            }
            let Some(delay) = self.backoff.delay(retry, err.retry_after()) else {
                return Err(err);
            };
            tracing::info!(operation, error = %err, retry = retry + 1, delay_ms = delay.as_millis() as u64, "FAL call failed; retrying");
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }

    /// Sends the request `build` makes (with our key), retrying what may succeed later; returns
    /// the body of a successful answer.
    async fn call(
        &self,
        operation: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<String, FalError> {
        self.retrying(operation, self.backoff.max_retries, || async {
            let response = build()
                .header(AUTHORIZATION, format!("Key {}", self.key))
                .send()
                .await
                .map_err(|e| transport(&e))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.text().await.map_err(|e| transport(&e))?;
            answer_body(status, &headers, body)
        })
        .await
    }

    async fn download_once(&self, url: &str) -> Result<Bytes, FalError> {
        let mut response = self
            .http
            .get(url)
            .timeout(self.download_timeout)
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = response.text().await.unwrap_or_default();
            return Err(download_error(status, &headers, &body));
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_download_bytes)
        {
            return Err(FalError::TooLarge(self.max_download_bytes));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
            if (bytes.len() + chunk.len()) as u64 > self.max_download_bytes {
                return Err(FalError::TooLarge(self.max_download_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(bytes))
    }
}

#[async_trait]
impl FalQueue for FalClient {
    /// Queues `input` on the FAL application `app`; FAL will POST the outcome to `webhook`.
    async fn submit(
        &self,
        app: &str,
        input: &Value,
        webhook: Option<&str>,
    ) -> Result<Submission, FalError> {
        let url = format!("{}/{app}", self.base_url);
        let body = self
            .call("submit", || {
                let request = self.http.post(&url).json(input);
                match webhook {
                    Some(hook) => request.query(&[("fal_webhook", hook)]),
                    None => request,
                }
            })
            .await?;
        read_submission(&body)
    }

    /// Where the request stands, with its logs.
    async fn status(&self, status_url: &str) -> Result<QueueStatus, FalError> {
        let body = self
            .call("status", || {
                self.http.get(status_url).query(&[("logs", "1")])
            })
            .await?;
        read_queue_status(&body)
    }

    /// The model's output (its own error status becomes the error, e.g. 422 with details).
    async fn result(&self, response_url: &str) -> Result<Value, FalError> {
        let body = self.call("result", || self.http.get(response_url)).await?;
        read_json(&body)
    }

    /// Asks FAL to stop the request. A request that already finished cannot be cancelled; that
    /// is not an error here.
    async fn cancel(&self, cancel_url: &str) -> Result<(), FalError> {
        read_cancel(self.call("cancel", || self.http.put(cancel_url)).await)
    }

    /// Downloads a file a result points to, without our key (it is not FAL's API), up to the
    /// size limit. A file that is gone (404, 403, 410) is [`FalError::Expired`]. Retried once
    /// at most: a download may take its whole timeout, and the next poll tries again anyway.
    async fn download(&self, url: &str) -> Result<Bytes, FalError> {
        self.retrying("download", self.backoff.max_retries.min(1), || {
            self.download_once(url)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_jittered_and_honours_retry_after() {
        let policy = Backoff {
            max_retries: 5,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for retry in 0..10 {
            let cap = Duration::from_millis(100)
                .saturating_mul(2u32.pow(retry))
                .min(Duration::from_secs(2));
            let delay = policy.delay(retry, None).unwrap();
            assert!(delay <= cap, "{delay:?} above {cap:?}");
        }
        let asked = Duration::from_millis(1500);
        assert!(policy.delay(0, Some(asked)).unwrap() >= asked);
        assert_eq!(policy.delay(0, Some(Duration::from_secs(30))), None);
    }

    #[test]
    fn error_bodies_become_readable_messages() {
        let mut headers = HeaderMap::new();
        let body = r#"{"detail":[{"loc":["body","image_url"],"msg":"field required","type":"value_error.missing"}]}"#;
        assert_eq!(
            error_message(&headers, body),
            "body.image_url: field required"
        );
        headers.insert("x-fal-error-type", "image_too_small".parse().unwrap());
        assert_eq!(
            error_message(&headers, r#"{"detail":"too small"}"#),
            "image_too_small: too small"
        );
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        let err = status_error(StatusCode::TOO_MANY_REQUESTS, &headers, "{}");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(err.is_retryable() && !err.is_outage());
        for (status, code) in [
            (401, "FAL_UNAUTHORIZED"),
            (403, "FAL_ACCOUNT_LOCKED"),
            (422, "FAL_INVALID_INPUT"),
            (503, "FAL_UNAVAILABLE"),
        ] {
            let err = status_error(StatusCode::from_u16(status).unwrap(), &HeaderMap::new(), "");
            assert_eq!(err.code(), code);
            assert_eq!(err.is_retryable(), status == 503);
        }
    }
}
