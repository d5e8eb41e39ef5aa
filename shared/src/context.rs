//! The dependencies every handler gets: configuration, keys and the ports. Built once per
//! process (in `main`, or by the local server) and cloned cheaply into each request or event.
//! `from_env` picks the AWS adapters when `TABLE_NAME` and friends are set, the embedded ones
//! otherwise (each behind its feature, so a Lambda build links only the AWS side).

use crate::config::{Config, Secret};
use crate::keys::KeyRing;
use crate::ports::{ObjectStorage, Store, WebhookStore, WorkQueue};
use crate::shutdown::Shutdown;
use std::sync::Arc;
use tokio::sync::Semaphore;

#[cfg(feature = "embedded")]
pub use embedded::{ContextError, EmbeddedAdapters};

#[derive(Clone)]
pub struct AppContext {
    pub config: Arc<Config>,
    pub keys: Arc<KeyRing>,
    status_secret: Arc<Secret>,
    pub store: Arc<dyn Store>,
    pub storage: Arc<dyn ObjectStorage>,
    pub queue: Arc<dyn WorkQueue>,
    /// The owners' webhook endpoints and their deliveries.
    pub webhooks: Arc<dyn WebhookStore>,
    /// The webhook deliveries' own queue (events to announce, attempts to make), so that no
    /// delivery holds the worker.
    pub deliveries: Arc<dyn WorkQueue>,
    /// Permits to decode an image (`MAX_CONCURRENT_DECODES`): validation and generation each
    /// hold one, so decoding's memory stays within the permits times `MAX_DECODE_BYTES`.
    pub decodes: Arc<Semaphore>,
    /// Triggered when the process stops (the local server); open streams end on it.
    pub shutdown: Shutdown,
}

impl AppContext {
    /// A context on these ports; status tokens are signed with `status_secret` (required: a
    /// key every instance shares, or tokens one instance signs fail on the next).
    pub fn new(
        config: Config,
        status_secret: Secret,
        store: Arc<dyn Store>,
        storage: Arc<dyn ObjectStorage>,
        queue: Arc<dyn WorkQueue>,
        webhooks: Arc<dyn WebhookStore>,
        deliveries: Arc<dyn WorkQueue>,
    ) -> Self {
        let keys = KeyRing::from_config(&config);
        crate::host::uptime(); // Uptime counts from here.
        let decodes = Arc::new(Semaphore::new(config.max_concurrent_decodes));
        Self {
            config: Arc::new(config),
            keys: Arc::new(keys),
            status_secret: Arc::new(status_secret),
            store,
            storage,
            queue,
            webhooks,
            deliveries,
            decodes,
            shutdown: Shutdown::default(),
        }
    }

    /// The key status tokens are signed with.
    pub fn status_secret(&self) -> &[u8] {
        self.status_secret.0.as_bytes()
    }
}

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[cfg(feature = "embedded")]
    #[error(transparent)]
    Embedded(#[from] ContextError),
    #[error(
        "STATUS_TOKEN_SECRET is not set: every function of a deployment needs the same secret \
         to sign and check status tokens (template.yaml takes it from Secrets Manager)"
    )]
    MissingStatusSecret,
    #[error("AWS resources are configured but this build has no AWS adapters (feature `aws`)")]
    AwsUnavailable,
    #[error(
        "no AWS resources are configured (TABLE_NAME, BUCKET_NAME, QUEUE_URL, DEAD_LETTER_QUEUE_URL, \
         WEBHOOK_QUEUE_URL, WEBHOOK_DEAD_LETTER_QUEUE_URL) \
         and this build has no embedded adapters (feature `embedded`)"
    )]
    EmbeddedUnavailable,
}

/// The context a Lambda function builds once at cold start, from its environment.
pub async fn from_env() -> Result<AppContext, BootError> {
    let config = Config::from_env()?;
    match config.aws.clone() {
        #[cfg(feature = "aws")]
        Some(resources) => aws_context(
            config,
            &resources,
            &crate::adapters::aws::sdk_config().await,
        ),
        #[cfg(not(feature = "aws"))]
        Some(_) => Err(BootError::AwsUnavailable),
        #[cfg(feature = "embedded")]
        None => {
            let base_url = config
                .public_base_url
                .clone()
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", config.port));
            let adapters = EmbeddedAdapters::open(&config, &base_url)?;
            Ok(AppContext::embedded(config, &adapters))
        }
        #[cfg(not(feature = "embedded"))]
        None => Err(BootError::EmbeddedUnavailable),
    }
}

/// A context on S3, DynamoDB and SQS, with clients built from one SDK configuration; refused
/// without `STATUS_TOKEN_SECRET`.
#[cfg(feature = "aws")]
pub fn aws_context(
    config: Config,
    resources: &crate::config::AwsResources,
    sdk: &aws_config::SdkConfig,
) -> Result<AppContext, BootError> {
    use crate::adapters::aws::{DynamoStore, S3Storage, SqsQueue};
    // Emulators serve buckets on the path, not on a subdomain.
    let s3 = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some())
        .build();
    let status_secret = config
        .status_token_secret
        .clone()
        .ok_or(BootError::MissingStatusSecret)?;
    // One client for both queues (the work queue and the deliveries').
    let sqs = aws_sdk_sqs::Client::new(sdk);
    // One table holds the jobs and the webhooks: one adapter serves both ports.
    let table = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &resources.table,
    ));
    Ok(AppContext::new(
        config,
        status_secret,
        table.clone(),
        Arc::new(S3Storage::new(
            aws_sdk_s3::Client::from_conf(s3),
            &resources.bucket,
            sdk,
        )),
        Arc::new(SqsQueue::new(
            sqs.clone(),
            &resources.queue_url,
            &resources.dead_letter_queue_url,
        )),
        table,
        Arc::new(SqsQueue::new(
            sqs,
            &resources.webhook_queue_url,
            &resources.webhook_dead_letter_queue_url,
        )),
    ))
}

/// Contexts on the embedded adapters of one data directory.
#[cfg(feature = "embedded")]
pub mod embedded {
    use super::AppContext;
    use crate::adapters::embedded::{DiskStorage, EmbeddedDb};
    use crate::config::{Config, Secret};
    use crate::ports::{StorageError, StoreError};
    use std::sync::Arc;

    #[derive(Debug, thiserror::Error)]
    pub enum ContextError {
        #[error("cannot open the embedded database: {0}")]
        Database(#[from] StoreError),
        #[error("cannot open object storage: {0}")]
        Storage(#[from] StorageError),
        #[error("cannot keep the status-token key: {0}")]
        Secret(#[from] std::io::Error),
    }

    /// The embedded adapters of one data directory, and its status-token key (kept there so
    /// tokens outlive a restart).
    #[derive(Clone)]
    pub struct EmbeddedAdapters {
        pub db: EmbeddedDb,
        pub storage: DiskStorage,
        pub status_secret: Secret,
    }

    impl EmbeddedAdapters {
        /// Opens `image2model.db` and `objects/` under the configured data directory; signed
        /// URLs start with `base_url`.
        pub fn open(config: &Config, base_url: &str) -> Result<Self, ContextError> {
            let db =
                EmbeddedDb::open(&config.data_dir.join("image2model.db"), config.max_receives)?;
            let storage = DiskStorage::open(&config.data_dir.join("objects"), base_url)?;
            let status_secret = Secret(crate::keys::kept_secret_file(
                &config.data_dir.join("status-token.key"),
                32,
                crate::keys::random_secret,
            )?);
            Ok(Self {
                db,
                storage,
                status_secret,
            })
        }
    }

    impl AppContext {
        /// A context on the embedded adapters.
        pub fn embedded(config: Config, adapters: &EmbeddedAdapters) -> Self {
            let status_secret = config
                .status_token_secret
                .clone()
                .unwrap_or_else(|| adapters.status_secret.clone());
            Self::new(
                config,
                status_secret,
                Arc::new(adapters.db.clone()),
                Arc::new(adapters.storage.clone()),
                Arc::new(adapters.db.work_queue()),
                Arc::new(adapters.db.clone()),
                Arc::new(adapters.db.delivery_queue()),
            )
        }
    }
}
