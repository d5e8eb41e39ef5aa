//! Configuration from environment variables, with safe defaults. Every limit the API enforces
//! is here, so tests and deployments can change it without code.

use crate::jwt::JwtSettings;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A named user API key as configured (`API_KEY`, or `API_KEYS=name:key,...`).
#[derive(Clone, PartialEq, Eq)]
pub struct NamedKey {
    pub name: String,
    pub key: String,
}

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NamedKey({}, <redacted>)", self.name)
    }
}

/// The AWS resources a deployment uses (set by the SAM template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsResources {
    pub table: String,
    pub bucket: String,
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    /// The webhook deliveries' queue and its dead letters.
    pub webhook_queue_url: String,
    pub webhook_dead_letter_queue_url: String,
}

/// A user key known only by its SHA-256 hash (`API_KEY_HASHES=name:hex,...`), as deployments
/// configure keys so that no plain key sits in their environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedKeyHash {
    pub name: String,
    pub sha256: [u8; 32],
}

/// How fast a request body must arrive (the local server's `BODY_*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// How long a body may take before the minimum rate applies (a slow start).
    pub grace: Duration,
    /// Average bytes per second a body must keep up after the grace period (0: no rate).
    pub min_bytes_per_second: u64,
    /// Longest the server waits for a whole body, however fast it goes.
    pub total: Duration,
}

/// A secret value (the FAL key, the status-token key); never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How this deployment talks to FAL.AI: the key, where to submit, where webhooks come back, and
/// the timing of polls, retries, the circuit breaker and the cost guard.
#[derive(Debug, Clone)]
pub struct FalSettings {
    /// `FAL_KEY`; FAL-only models are unavailable without one.
    pub key: Option<Secret>,
    /// `FAL_ENABLED`: FAL models are offered although this function holds no key (on AWS only
    /// the worker, which calls FAL, holds it).
    pub enabled: bool,
    /// Submissions go to `{base_url}/{app}`; status, result and cancel use the URLs FAL returns.
    pub base_url: String,
    /// Our public `POST /api/v1/webhooks/fal` URL; without one, completion is found by polling.
    pub webhook_url: Option<String>,
    /// Where FAL publishes the public keys of its webhook signatures.
    pub jwks_url: String,
    /// Timeout of one FAL API call.
    pub request_timeout: Duration,
    /// Timeout of downloading a result file.
    pub download_timeout: Duration,
    /// Largest result file copied into our storage.
    pub max_download_bytes: u64,
    /// Retries of one FAL call after transport errors, 429 and 5xx.
    pub max_retries: u32,
    pub retry_base: Duration,
    /// Longest wait between retries in one invocation; a longer `Retry-After` re-queues the job.
    pub retry_max: Duration,
    /// Delay of the first status poll, doubled after each poll up to `poll_max`.
    pub poll_initial: Duration,
    pub poll_max: Duration,
    /// A job still running at FAL this long after submission is cancelled there and fails with
    /// `GENERATION_TIMEOUT`.
    pub generation_timeout: Duration,
    /// Consecutive FAL failures (across all workers) that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long the open breaker holds submissions before one probe may try.
    pub breaker_cooldown: Duration,
    /// Jobs allowed in flight at FAL at once, across all workers.
    pub max_in_flight: u32,
    /// Jobs each API key may send to FAL per UTC day.
    pub daily_quota: u64,
}

impl Default for FalSettings {
    fn default() -> Self {
        Self {
            key: None,
            enabled: false,
            base_url: "https://queue.fal.run".to_owned(),
            webhook_url: None,
            jwks_url: "https://rest.alpha.fal.ai/.well-known/jwks.json".to_owned(),
            request_timeout: Duration::from_secs(30),
            download_timeout: Duration::from_secs(120),
            max_download_bytes: 200 * 1024 * 1024,
            max_retries: 3,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(10),
            poll_initial: Duration::from_secs(5),
            poll_max: Duration::from_secs(60),
            generation_timeout: Duration::from_secs(15 * 60),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(60),
            max_in_flight: 20,
            daily_quota: 100,
        }
    }
}

impl FalSettings {
    fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let url = |name: &'static str, default: String| -> Result<String, ConfigError> {
            Ok(optional_url(vars, name)?.unwrap_or(default))
        };
        Ok(Self {
            key: vars
                .get("FAL_KEY")
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
                .map(Secret),
            enabled: parse(vars, "FAL_ENABLED", false)?,
            base_url: url("FAL_BASE_URL", d.base_url)?,
            webhook_url: optional_url(vars, "FAL_WEBHOOK_URL")?,
            jwks_url: url("FAL_JWKS_URL", d.jwks_url)?,
            request_timeout: seconds(vars, "FAL_REQUEST_TIMEOUT_SECONDS", d.request_timeout)?,
            download_timeout: seconds(vars, "FAL_DOWNLOAD_TIMEOUT_SECONDS", d.download_timeout)?,
            max_download_bytes: parse(vars, "FAL_MAX_DOWNLOAD_BYTES", d.max_download_bytes)?,
            max_retries: parse(vars, "FAL_MAX_RETRIES", d.max_retries)?,
            retry_base: seconds(vars, "FAL_RETRY_BASE_SECONDS", d.retry_base)?,
            retry_max: seconds(vars, "FAL_RETRY_MAX_SECONDS", d.retry_max)?,
            poll_initial: seconds(vars, "FAL_POLL_INITIAL_SECONDS", d.poll_initial)?,
            poll_max: seconds(vars, "FAL_POLL_MAX_SECONDS", d.poll_max)?,
            generation_timeout: seconds(vars, "GENERATION_TIMEOUT_SECONDS", d.generation_timeout)?,
            breaker_threshold: parse(vars, "FAL_BREAKER_THRESHOLD", d.breaker_threshold)?.max(1),
            breaker_cooldown: seconds(vars, "FAL_BREAKER_COOLDOWN_SECONDS", d.breaker_cooldown)?,
            max_in_flight: parse(vars, "FAL_MAX_IN_FLIGHT", d.max_in_flight)?.max(1),
            daily_quota: parse(vars, "DAILY_JOB_QUOTA", d.daily_quota)?,
        })
    }
}

/// Everything a function or the local server can be told, in groups: each part of the code
/// reads the group it needs.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// What one request, one client and one owner may do.
    pub limits: Limits,
    /// How long uploads, links and records live; how jobs are leased and retried.
    pub jobs: JobSettings,
    /// Task status: the stream, the public view, status tokens.
    pub status: StatusSettings,
    /// Owners' outbound webhooks.
    pub webhooks: WebhookSettings,
    /// Who may call: API keys, the admin key, sign-in tokens, browser origins.
    pub sign_in: SignInSettings,
    /// The local server (and the embedded adapters' data directory).
    pub local: LocalSettings,
    /// S3, DynamoDB and SQS names when running on AWS (or an emulator); embedded otherwise.
    pub aws: Option<AwsResources>,
    pub fal: FalSettings,
}

/// What one request, one client and one owner may do.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_upload_bytes: u64,
    /// Largest file the upload routes that carry the bytes in the request take
    /// (`MAX_SYNC_UPLOAD_BYTES`): on Lambda the platform's payload limit (6 MB per invocation,
    /// binary bodies base64-encoded) allows 4 MiB; bigger photos go through presigned uploads.
    pub max_sync_upload_bytes: u64,
    pub max_pixels: u64,
    /// Largest decoded image in bytes (pixels x channels x bytes per channel).
    pub max_decode_bytes: u64,
    /// Images decoded (validated or generated from) at once; with `max_decode_bytes` it bounds
    /// the memory decoding takes.
    pub max_concurrent_decodes: usize,
    pub max_files: usize,
    pub rate_limit_per_minute: u64,
    /// Requests per minute and client address to the public status views.
    pub public_status_rate_limit_per_minute: u64,
    /// Webhook endpoints an owner may register (`MAX_WEBHOOK_ENDPOINTS`).
    pub max_webhook_endpoints: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 50 * 1024 * 1024,
            max_sync_upload_bytes: u64::MAX,
            max_pixels: 40_000_000,
            max_decode_bytes: 160 * 1024 * 1024,
            max_concurrent_decodes: std::thread::available_parallelism().map_or(2, usize::from),
            max_files: 25,
            rate_limit_per_minute: 60,
            public_status_rate_limit_per_minute: 120,
            max_webhook_endpoints: 10,
        }
    }
}

/// How long uploads, links and records live; how jobs are leased and retried.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub presign_expiry: Duration,
    pub download_expiry: Duration,
    /// How long uploads and results are kept before cleanup.
    pub retention: Duration,
    /// A job not finished this long after creation is failed.
    pub job_deadline: Duration,
    /// How long a received queue message stays hidden; also the lease of a running job.
    pub visibility_timeout: Duration,
    /// Receives before a message moves to the dead letters.
    pub max_receives: u32,
    /// Attempts of a job before it fails.
    pub max_attempts: u32,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            presign_expiry: Duration::from_secs(15 * 60),
            download_expiry: Duration::from_secs(5 * 60),
            retention: Duration::from_secs(24 * 3600),
            job_deadline: Duration::from_secs(30 * 60),
            visibility_timeout: Duration::from_secs(120),
            max_receives: 5,
            max_attempts: 3,
        }
    }
}

/// Task status: the stream, the public view, status tokens.
#[derive(Debug, Clone)]
pub struct StatusSettings {
    pub sse_poll_interval: Duration,
    pub sse_heartbeat: Duration,
    pub sse_max_duration: Duration,
    /// Whether a task's status and stream answer without a credential, by id, with a reduced
    /// view (`PUBLIC_TASK_STATUS`; ids are random UUIDv4, so the id is the capability).
    pub public_task_status: bool,
    /// Lifetime of the signed `token` in `events_url` and `status_url`.
    pub status_token_ttl: Duration,
    /// The HMAC key of status tokens (`STATUS_TOKEN_SECRET`, shared by every function on AWS);
    /// the local server keeps one in its data directory, a process without one makes its own.
    pub status_token_secret: Option<Secret>,
    /// Base of `events_url` (`STATUS_STREAM_BASE_URL`: on AWS the status function's streaming
    /// URL); the request's own origin otherwise.
    pub status_stream_base_url: Option<String>,
}

impl Default for StatusSettings {
    fn default() -> Self {
        Self {
            sse_poll_interval: Duration::from_millis(250),
            sse_heartbeat: Duration::from_secs(15),
            sse_max_duration: Duration::from_secs(15 * 60),
            public_task_status: true,
            status_token_ttl: Duration::from_secs(3600),
            status_token_secret: None,
            status_stream_base_url: None,
        }
    }
}

/// Owners' outbound webhooks.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Whether webhooks may go to `http` URLs and to addresses that are not public
    /// (`WEBHOOK_ALLOW_PRIVATE`: local development and the tests only; the server says so at
    /// start).
    pub allow_private: bool,
    /// The waits before each retry of a failed delivery (`WEBHOOK_RETRY_SCHEDULE_SECONDS`, a
    /// comma-separated list; [`crate::domain::webhook::RETRY_SCHEDULE`] by default).
    pub retry_schedule: Vec<Duration>,
    /// How long a receiver has to answer a delivery (`WEBHOOK_TIMEOUT_SECONDS`).
    pub timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_schedule: crate::domain::webhook::RETRY_SCHEDULE.to_vec(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Who may call: API keys, the admin key, sign-in tokens, browser origins.
#[derive(Debug, Clone)]
pub struct SignInSettings {
    pub user_keys: Vec<NamedKey>,
    pub user_key_hashes: Vec<NamedKeyHash>,
    pub admin_key: Option<Secret>,
    pub admin_key_hash: Option<[u8; 32]>,
    /// Sign-in with an OpenID Connect provider's tokens (`JWT_ISSUER`, `JWT_AUDIENCE`,
    /// `JWT_JWKS_URL`, all three or none).
    pub jwt: Option<JwtSettings>,
    pub cors_origins: Vec<String>,
    /// Whether this process answers CORS itself (the local server) or a gateway does (on
    /// Lambda, API Gateway's and the function URL's CORS configurations, from the same origins):
    /// one owner per entry point, so a browser never sees the headers twice.
    pub cors_in_code: bool,
}

impl Default for SignInSettings {
    fn default() -> Self {
        Self {
            user_keys: Vec::new(),
            user_key_hashes: Vec::new(),
            admin_key: None,
            admin_key_hash: None,
            jwt: None,
            cors_origins: vec![
                "http://localhost:3000".to_owned(),
                "http://localhost:5173".to_owned(),
            ],
            cors_in_code: true,
        }
    }
}

/// The local server (and the embedded adapters' data directory).
#[derive(Debug, Clone)]
pub struct LocalSettings {
    pub data_dir: PathBuf,
    /// Base URL clients use to reach this deployment, when set explicitly (signed local-storage
    /// URLs start with it); the local server otherwise uses the address it listens on.
    pub public_base_url: Option<String>,
    /// Port of the local server.
    pub port: u16,
    /// How often the local server sweeps stuck jobs and missed uploads.
    pub sweep_interval: Duration,
    /// Messages the local worker runs at once.
    pub worker_concurrency: usize,
    /// A request's headers must arrive within this (it also closes idle keep-alive connections
    /// and sockets that never send).
    pub header_read_timeout: Duration,
    /// Longest pause between two chunks of a request body.
    pub body_idle_timeout: Duration,
    /// How fast a request body must arrive (after a grace period, on average), and the longest
    /// a whole body may take.
    pub body_read: ReadLimits,
    /// Connections served at once (within the open-file limit).
    pub max_connections: usize,
    /// Connections one client (an IPv4 address, an IPv6 /64) may hold open at once; 0 counts
    /// nothing (behind a proxy, where every client has the proxy's address).
    pub max_connections_per_client: usize,
    /// How long in-flight requests may finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for LocalSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./.image2model"),
            public_base_url: None,
            port: 8000,
            sweep_interval: Duration::from_secs(30),
            worker_concurrency: 2,
            header_read_timeout: Duration::from_secs(15),
            body_idle_timeout: Duration::from_secs(30),
            body_read: ReadLimits {
                grace: Duration::from_secs(10),
                min_bytes_per_second: 4096,
                total: Duration::from_secs(600),
            },
            max_connections: 4096,
            max_connections_per_client: 256,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The sign-in settings: all three variables, or none.
/// The setting `name`, trimmed, when it is set to something.
fn setting<'a>(vars: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn jwt_settings(vars: &HashMap<String, String>) -> Result<Option<JwtSettings>, ConfigError> {
    let get = |name: &str| setting(vars, name).map(str::to_owned);
    match (get("JWT_ISSUER"), get("JWT_AUDIENCE"), get("JWT_JWKS_URL")) {
        (Some(issuer), Some(audience), Some(_)) => Ok(Some(JwtSettings {
            issuer,
            audience,
            jwks_url: optional_url(vars, "JWT_JWKS_URL")?.unwrap_or_default(),
        })),
        (None, None, None) => Ok(None),
        _ => Err(ConfigError::Invalid {
            name: "JWT_ISSUER",
            reason: "JWT_ISSUER, JWT_AUDIENCE and JWT_JWKS_URL go together".to_owned(),
        }),
    }
}

/// The setting `name` when it is set: an absolute http(s) URL with a host, kept without a
/// trailing slash; an error naming the setting otherwise.
fn optional_url(
    vars: &HashMap<String, String>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    let Some(value) = setting(vars, name) else {
        return Ok(None);
    };
    http_url(name, value).map(|_| Some(value.trim_end_matches('/').to_owned()))
}

/// `value` read as an absolute http(s) URL with a host, or an error naming `name`.
fn http_url(name: &'static str, value: &str) -> Result<reqwest::Url, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name, reason };
    let url = reqwest::Url::parse(value)
        .map_err(|e| invalid(format!("an http(s) URL is expected: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("an http(s) URL with a host is expected".to_owned()));
    }
    Ok(url)
}

/// A browser origin of `CORS_ORIGINS`: a scheme, a host and a port, nothing else (no wildcard:
/// requests carry credentials, which a browser never sends to `*`).
fn cors_origin(value: &str) -> Result<String, ConfigError> {
    const NAME: &str = "CORS_ORIGINS";
    let url = http_url(NAME, value)?;
    if url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(ConfigError::Invalid {
            name: NAME,
            reason: format!("{value:?} is no origin: a scheme, a host and a port, without a path"),
        });
    }
    Ok(url.origin().ascii_serialization())
}

/// A key given alone (`API_KEY`, `ADMIN_API_KEY`): at least 8 characters, as in `API_KEYS`.
fn single_key(
    vars: &HashMap<String, String>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    let Some(key) = setting(vars, name) else {
        return Ok(None);
    };
    if key.chars().count() < 8 {
        return Err(ConfigError::Invalid {
            name,
            reason: "keys are at least 8 characters".to_owned(),
        });
    }
    Ok(Some(key.to_owned()))
}

/// What a Lambda behind API Gateway can take in one request body: 6 MB per invocation, with
/// binary bodies base64-encoded (4/3) and room for the headers and multipart framing.
pub const LAMBDA_SYNC_UPLOAD_BYTES: u64 = 4 * 1024 * 1024;

fn parse<T: std::str::FromStr>(
    vars: &HashMap<String, String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match setting(vars, name) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
    }
}

/// The shortest retention: a file uploaded through a presigned URL must outlive the few moments
/// before its job is created, and a result the moment before it is downloaded.
const MIN_RETENTION: Duration = Duration::from_secs(60);

/// `value`, or an error naming `name` when it is under `min`.
fn at_least(value: Duration, name: &'static str, min: Duration) -> Result<Duration, ConfigError> {
    if value < min {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("must be at least {} s", min.as_secs_f64()),
        });
    }
    Ok(value)
}

fn seconds(
    vars: &HashMap<String, String>,
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    parse(vars, name, default.as_secs_f64()).and_then(|s| {
        Duration::try_from_secs_f64(s).map_err(|e| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        })
    })
}

/// `WEBHOOK_RETRY_SCHEDULE_SECONDS`: one to twenty waits of at most a day each, in seconds.
fn retry_schedule(vars: &HashMap<String, String>) -> Result<Option<Vec<Duration>>, ConfigError> {
    const NAME: &str = "WEBHOOK_RETRY_SCHEDULE_SECONDS";
    let Some(raw) = setting(vars, NAME) else {
        return Ok(None);
    };
    let invalid = |reason: String| ConfigError::Invalid { name: NAME, reason };
    let waits = raw
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0..=86_400.0).contains(s))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    invalid(format!(
                        "{part:?} is not a number of seconds from 0 to 86400"
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if waits.len() > 20 {
        return Err(invalid("at most 20 waits".to_owned()));
    }
    Ok(Some(waits))
}

fn sha256_hex(name: &'static str, raw: &str) -> Result<[u8; 32], ConfigError> {
    let bytes = hex::decode(raw.trim()).map_err(|e| ConfigError::Invalid {
        name,
        reason: e.to_string(),
    })?;
    bytes.try_into().map_err(|_| ConfigError::Invalid {
        name,
        reason: "a SHA-256 hash is 64 hex digits".to_owned(),
    })
}

/// `API_KEY_HASHES=name:sha256hex,...`
/// A key's name becomes the owner of what it creates, inside object keys and record keys:
/// `[A-Za-z0-9_-]+`, and never the admin owner's name (sign-in owners carry a `.`).
fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name != "admin" // keys::ADMIN_OWNER (a test there holds the two together)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn key_hashes(vars: &HashMap<String, String>) -> Result<Vec<NamedKeyHash>, ConfigError> {
    let Some(list) = vars.get("API_KEY_HASHES") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (name, hash) = entry.split_once(':').ok_or(ConfigError::Invalid {
                name: "API_KEY_HASHES",
                reason: "entries are name:sha256hex".to_owned(),
            })?;
            if !valid_key_name(name) {
                return Err(ConfigError::Invalid {
                    name: "API_KEY_HASHES",
                    reason: "names are [A-Za-z0-9_-]+ (not `admin`)".to_owned(),
                });
            }
            Ok(NamedKeyHash {
                name: name.to_owned(),
                sha256: sha256_hex("API_KEY_HASHES", hash)?,
            })
        })
        .collect()
}

/// `TABLE_NAME`, `BUCKET_NAME`, `QUEUE_URL`, `DEAD_LETTER_QUEUE_URL`, `WEBHOOK_QUEUE_URL` and
/// `WEBHOOK_DEAD_LETTER_QUEUE_URL`: all or none.
fn aws_resources(vars: &HashMap<String, String>) -> Result<Option<AwsResources>, ConfigError> {
    let names = [
        "TABLE_NAME",
        "BUCKET_NAME",
        "QUEUE_URL",
        "DEAD_LETTER_QUEUE_URL",
        "WEBHOOK_QUEUE_URL",
        "WEBHOOK_DEAD_LETTER_QUEUE_URL",
    ];
    let values: Vec<Option<String>> = names
        .iter()
        .map(|n| setting(vars, n).map(str::to_owned))
        .collect();
    match values.as_slice() {
        [
            Some(table),
            Some(bucket),
            Some(queue_url),
            Some(dead_letter_queue_url),
            Some(webhook_queue_url),
            Some(webhook_dead_letter_queue_url),
        ] => Ok(Some(AwsResources {
            table: table.clone(),
            bucket: bucket.clone(),
            queue_url: queue_url.clone(),
            dead_letter_queue_url: dead_letter_queue_url.clone(),
            webhook_queue_url: webhook_queue_url.clone(),
            webhook_dead_letter_queue_url: webhook_dead_letter_queue_url.clone(),
        })),
        [None, None, None, None, None, None] => Ok(None),
        _ => Err(ConfigError::Invalid {
            name: "TABLE_NAME",
            reason: "TABLE_NAME, BUCKET_NAME, QUEUE_URL, DEAD_LETTER_QUEUE_URL, WEBHOOK_QUEUE_URL \
                     and WEBHOOK_DEAD_LETTER_QUEUE_URL go together"
                .to_owned(),
        }),
    }
}

impl Limits {
    fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let on_lambda = vars.contains_key("AWS_LAMBDA_FUNCTION_NAME");
        Ok(Self {
            max_upload_bytes: parse(vars, "MAX_UPLOAD_BYTES", d.max_upload_bytes)?,
            max_sync_upload_bytes: parse(
                vars,
                "MAX_SYNC_UPLOAD_BYTES",
                if on_lambda {
                    LAMBDA_SYNC_UPLOAD_BYTES
                } else {
                    d.max_sync_upload_bytes
                },
            )?,
            max_pixels: parse(vars, "MAX_PIXELS", d.max_pixels)?,
            max_decode_bytes: parse(vars, "MAX_DECODE_BYTES", d.max_decode_bytes)?,
            max_concurrent_decodes: parse(
                vars,
                "MAX_CONCURRENT_DECODES",
                d.max_concurrent_decodes,
            )?
            .max(1),
            max_files: parse(vars, "MAX_FILES", d.max_files)?,
            rate_limit_per_minute: parse(vars, "RATE_LIMIT_PER_MINUTE", d.rate_limit_per_minute)?,
            public_status_rate_limit_per_minute: parse(
                vars,
                "PUBLIC_STATUS_RATE_LIMIT_PER_MINUTE",
                d.public_status_rate_limit_per_minute,
            )?,
            max_webhook_endpoints: parse(vars, "MAX_WEBHOOK_ENDPOINTS", d.max_webhook_endpoints)?,
        })
    }
}

impl JobSettings {
    fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            presign_expiry: seconds(vars, "PRESIGN_EXPIRY_SECONDS", d.presign_expiry)?,
            download_expiry: seconds(vars, "DOWNLOAD_EXPIRY_SECONDS", d.download_expiry)?,
            retention: at_least(
                seconds(vars, "RETENTION_SECONDS", d.retention)?,
                "RETENTION_SECONDS",
                MIN_RETENTION,
            )?,
            job_deadline: seconds(vars, "JOB_DEADLINE_SECONDS", d.job_deadline)?,
            visibility_timeout: seconds(vars, "VISIBILITY_TIMEOUT_SECONDS", d.visibility_timeout)?,
            max_receives: parse(vars, "MAX_RECEIVES", d.max_receives)?,
            max_attempts: parse(vars, "MAX_ATTEMPTS", d.max_attempts)?,
        })
    }
}

impl StatusSettings {
    fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            sse_poll_interval: seconds(vars, "SSE_POLL_SECONDS", d.sse_poll_interval)?,
            sse_heartbeat: seconds(vars, "SSE_HEARTBEAT_SECONDS", d.sse_heartbeat)?,
            sse_max_duration: seconds(vars, "SSE_MAX_SECONDS", d.sse_max_duration)?,
            public_task_status: parse(vars, "PUBLIC_TASK_STATUS", d.public_task_status)?,
            status_token_ttl: seconds(vars, "STATUS_TOKEN_TTL_SECONDS", d.status_token_ttl)?,
            status_token_secret: vars
                .get("STATUS_TOKEN_SECRET")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .map(Secret),
            status_stream_base_url: optional_url(vars, "STATUS_STREAM_BASE_URL")?,
        })
    }
}

impl WebhookSettings {
    fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            allow_private: parse(vars, "WEBHOOK_ALLOW_PRIVATE", d.allow_private)?,
            retry_schedule: retry_schedule(vars)?.unwrap_or(d.retry_schedule),
            timeout: at_least(
                seconds(vars, "WEBHOOK_TIMEOUT_SECONDS", d.timeout)?,
                "WEBHOOK_TIMEOUT_SECONDS",
                Duration::from_millis(100),
            )?,
        })
    }
}

impl SignInSettings {
    fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let mut user_keys = Vec::new();
        if let Some(key) = single_key(vars, "API_KEY")? {
            user_keys.push(NamedKey {
                name: "default".to_owned(),
                key,
            });
        }
        if let Some(list) = vars.get("API_KEYS") {
            for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (name, key) = entry.split_once(':').ok_or(ConfigError::Invalid {
                    name: "API_KEYS",
                    reason: "entries are name:key".to_owned(),
                })?;
                if !valid_key_name(name) || key.len() < 8 {
                    return Err(ConfigError::Invalid {
                        name: "API_KEYS",
                        reason:
                            "names are [A-Za-z0-9_-]+ (not `admin`) and keys at least 8 characters"
                                .to_owned(),
                    });
                }
                user_keys.push(NamedKey {
                    name: name.to_owned(),
                    key: key.to_owned(),
                });
            }
        }
        let cors_origins = match vars.get("CORS_ORIGINS") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(cors_origin)
                .collect::<Result<_, _>>()?,
            None => d.cors_origins,
        };
        Ok(Self {
            user_keys,
            user_key_hashes: key_hashes(vars)?,
            admin_key_hash: vars
                .get("ADMIN_API_KEY_HASH")
                .map(|h| sha256_hex("ADMIN_API_KEY_HASH", h))
                .transpose()?,
            admin_key: single_key(vars, "ADMIN_API_KEY")?.map(Secret),
            jwt: jwt_settings(vars)?,
            cors_origins,
            cors_in_code: !vars.contains_key("AWS_LAMBDA_FUNCTION_NAME"),
        })
    }
}

impl LocalSettings {
    fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            data_dir: vars
                .get("DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or(d.data_dir),
            public_base_url: optional_url(vars, "PUBLIC_BASE_URL")?,
            port: parse(vars, "PORT", d.port)?,
            sweep_interval: seconds(vars, "SWEEP_INTERVAL_SECONDS", d.sweep_interval)?,
            worker_concurrency: parse(vars, "WORKER_CONCURRENCY", d.worker_concurrency)?.max(1),
            header_read_timeout: seconds(
                vars,
                "HEADER_READ_TIMEOUT_SECONDS",
                d.header_read_timeout,
            )?,
            body_idle_timeout: seconds(vars, "BODY_IDLE_TIMEOUT_SECONDS", d.body_idle_timeout)?,
            body_read: ReadLimits {
                grace: seconds(vars, "BODY_RATE_GRACE_SECONDS", d.body_read.grace)?,
                min_bytes_per_second: parse(
                    vars,
                    "BODY_MIN_BYTES_PER_SECOND",
                    d.body_read.min_bytes_per_second,
                )?,
                total: seconds(vars, "BODY_READ_TIMEOUT_SECONDS", d.body_read.total)?,
            },
            max_connections: parse(vars, "MAX_CONNECTIONS", d.max_connections)?.max(1),
            max_connections_per_client: parse(
                vars,
                "MAX_CONNECTIONS_PER_CLIENT",
                d.max_connections_per_client,
            )?,
            shutdown_grace: seconds(vars, "SHUTDOWN_GRACE_SECONDS", d.shutdown_grace)?,
        })
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads configuration from a map of variables (the environment, or a test's own map).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Ok(Self {
            limits: Limits::from_vars(vars)?,
            jobs: JobSettings::from_vars(vars)?,
            status: StatusSettings::from_vars(vars)?,
            webhooks: WebhookSettings::from_vars(vars)?,
            sign_in: SignInSettings::from_vars(vars)?,
            local: LocalSettings::from_vars(vars)?,
            aws: aws_resources(vars)?,
            fal: FalSettings::from_vars(vars)?,
        })
    }

    /// Whether FAL serves this deployment's models (a key is configured here or, with
    /// `FAL_ENABLED`, in the worker).
    pub fn fal_configured(&self) -> bool {
        self.fal.key.is_some() || self.fal.enabled
    }

    /// When what is created at `now` (uploads, their records) is due for cleanup.
    pub fn expires_at(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now + chrono::Duration::from_std(self.jobs.retention)
            .unwrap_or_else(|_| chrono::Duration::days(1))
    }

    /// The largest file an upload route that carries the bytes in the request takes.
    pub fn sync_upload_limit(&self) -> u64 {
        self.limits
            .max_sync_upload_bytes
            .min(self.limits.max_upload_bytes)
    }

    pub fn image_limits(&self) -> crate::validation::ImageLimits {
        crate::validation::ImageLimits {
            max_bytes: self.limits.max_upload_bytes,
            max_pixels: self.limits.max_pixels,
            max_decode_bytes: self.limits.max_decode_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_safe() {
        let c = Config::from_vars(&HashMap::new()).unwrap();
        assert_eq!(c.limits.max_upload_bytes, 50 * 1024 * 1024);
        assert_eq!(c.limits.max_files, 25);
        assert_eq!(c.limits.rate_limit_per_minute, 60);
        assert!(c.sign_in.user_keys.is_empty() && c.sign_in.admin_key.is_none());
        // No secret is ever printed, whatever the configuration holds.
        let secrets = vars(&[
            ("API_KEYS", "alice:alice-secret-key-1"),
            ("ADMIN_API_KEY", "admin-secret-key-2"),
            ("STATUS_TOKEN_SECRET", "status-secret-3"),
            ("FAL_KEY", "fal-secret-4"),
        ]);
        let printed = format!("{:?}", Config::from_vars(&secrets).unwrap());
        for secret in [
            "alice-secret-key-1",
            "admin-secret-key-2",
            "status-secret-3",
            "fal-secret-4",
        ] {
            assert!(!printed.contains(secret), "{secret} printed");
        }
        assert_eq!((c.local.public_base_url, c.local.port), (None, 8000));
    }

    #[test]
    fn reads_keys_origins_and_limits() {
        let c = Config::from_vars(&vars(&[
            ("API_KEY", "single-key-123"),
            ("API_KEYS", "alice:alice-key-1, bob:bob-key-22"),
            ("ADMIN_API_KEY", "admin-key-123"),
            ("CORS_ORIGINS", "https://a.example/, https://b.example"),
            ("MAX_UPLOAD_BYTES", "1000"),
            ("PORT", "9001"),
        ]))
        .unwrap();
        let names: Vec<_> = c
            .sign_in
            .user_keys
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(names, ["default", "alice", "bob"]);
        assert_eq!(
            c.sign_in.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(c.limits.max_upload_bytes, 1000);
        assert_eq!(c.local.port, 9001);
        assert!(!format!("{:?}", c.sign_in.user_keys).contains("alice-key-1"));
    }

    #[test]
    fn refuses_malformed_values() {
        assert!(Config::from_vars(&vars(&[("MAX_UPLOAD_BYTES", "lots")])).is_err());
        assert!(Config::from_vars(&vars(&[("API_KEYS", "nokey")])).is_err());
        assert!(Config::from_vars(&vars(&[("API_KEYS", "a:short")])).is_err());
        assert!(Config::from_vars(&vars(&[("API_KEYS", "admin:long-enough-key")])).is_err());
        let hash = "0".repeat(64);
        for name in ["a/b", "a#b", "a.b", "admin", ""] {
            let entry = format!("{name}:{hash}");
            assert!(
                Config::from_vars(&vars(&[("API_KEY_HASHES", &entry)])).is_err(),
                "{name:?}"
            );
        }
        assert!(Config::from_vars(&vars(&[("JOB_DEADLINE_SECONDS", "-1")])).is_err());
        for short in ["0", "59.9"] {
            let err = Config::from_vars(&vars(&[("RETENTION_SECONDS", short)])).unwrap_err();
            assert!(err.to_string().contains("RETENTION_SECONDS"), "{err}");
        }
        let minute = Config::from_vars(&vars(&[("RETENTION_SECONDS", "60")])).unwrap();
        assert_eq!(minute.jobs.retention, Duration::from_secs(60));
        assert!(Config::from_vars(&vars(&[("TABLE_NAME", "t")])).is_err());
        assert!(Config::from_vars(&vars(&[("API_KEY_HASHES", "a:zz")])).is_err());
        assert!(Config::from_vars(&vars(&[("ADMIN_API_KEY_HASH", "abcd")])).is_err());
        assert!(Config::from_vars(&vars(&[("FAL_BASE_URL", "queue.fal.run")])).is_err());
        assert!(Config::from_vars(&vars(&[("FAL_POLL_MAX_SECONDS", "soon")])).is_err());
    }

    /// Every setting that is a URL is an absolute http(s) URL with a host, every origin of
    /// `CORS_ORIGINS` an origin, every key at least 8 characters; anything else refuses to start,
    /// naming the setting (a wildcard origin once panicked the server at start).
    #[test]
    fn urls_origins_and_keys_are_checked_and_named_when_refused() {
        let jwt = [
            ("JWT_ISSUER", "https://id.example"),
            ("JWT_AUDIENCE", "image2model"),
        ];
        let urls = [
            "PUBLIC_BASE_URL",
            "STATUS_STREAM_BASE_URL",
            "FAL_BASE_URL",
            "FAL_WEBHOOK_URL",
            "FAL_JWKS_URL",
            "JWT_JWKS_URL",
            "CORS_ORIGINS",
        ];
        // The JWKS URL goes with the issuer and the audience.
        let with = |name: &str, value: &str| {
            let mut set = if name == "JWT_JWKS_URL" {
                vars(&jwt)
            } else {
                HashMap::new()
            };
            set.insert(name.to_owned(), value.to_owned());
            set
        };
        for name in urls {
            for junk in [
                "nohost",
                "ftp://files.example",
                "http://",
                "*",
                "https://a b",
                "/api",
            ] {
                let err =
                    Config::from_vars(&with(name, junk)).expect_err(&format!("{name}={junk}"));
                assert!(err.to_string().contains(name), "{name}={junk}: {err}");
            }
            let set = with(name, "https://api.example:8443/");
            assert!(Config::from_vars(&set).is_ok(), "{name}");
        }
        for origin in [
            "https://a.example/app",
            "https://a.example?x=1",
            "https://u@a.example",
            "*",
        ] {
            let err = Config::from_vars(&vars(&[("CORS_ORIGINS", origin)])).unwrap_err();
            assert!(err.to_string().contains("CORS_ORIGINS"), "{origin}: {err}");
        }
        let c = Config::from_vars(&vars(&[(
            "CORS_ORIGINS",
            "HTTPS://App.Example/, http://localhost:5173",
        )]))
        .unwrap();
        assert_eq!(
            c.sign_in.cors_origins,
            ["https://app.example", "http://localhost:5173"]
        );
        for name in ["API_KEY", "ADMIN_API_KEY"] {
            let err = Config::from_vars(&vars(&[(name, "x")])).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
            assert!(Config::from_vars(&vars(&[(name, "eight-ch")])).is_ok());
        }
    }

    #[test]
    fn fal_settings_default_to_fal_and_hide_the_key() {
        let c = Config::from_vars(&HashMap::new()).unwrap();
        assert!(!c.fal_configured());
        assert_eq!(c.fal.base_url, "https://queue.fal.run");
        let c = Config::from_vars(&vars(&[
            ("FAL_KEY", "secret-fal-key"),
            ("FAL_BASE_URL", "http://127.0.0.1:9/"),
            ("FAL_WEBHOOK_URL", "https://api.example/api/v1/webhooks/fal"),
            ("FAL_POLL_INITIAL_SECONDS", "0.1"),
        ]))
        .unwrap();
        assert!(c.fal_configured());
        assert_eq!(c.fal.base_url, "http://127.0.0.1:9");
        assert_eq!(c.fal.poll_initial, Duration::from_millis(100));
        assert!(!format!("{c:?}").contains("secret-fal-key"));
        let c = Config::from_vars(&vars(&[("FAL_ENABLED", "true")])).unwrap();
        assert!(c.fal_configured() && c.fal.key.is_none());
    }
}
