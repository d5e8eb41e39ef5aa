//! The dependencies every handler gets: configuration, keys and the ports. Built once per
//! process (in `main`, or by the local server) and cloned cheaply into each request or event.
//! `from_env` picks the AWS adapters when `TABLE_NAME` and friends are set, the embedded ones
//! otherwise (each behind its feature, so a Lambda build links only the AWS side).

use crate::config::{Config, Secret};
use crate::keys::KeyRing;
use crate::ports::{ObjectStorage, Store, WorkQueue};
use crate::shutdown::Shutdown;
use std::sync::Arc;
use tokio::sync::Semaphore;

#[cfg(feature = "embedded")]
pub use embedded::{ContextError, EmbeddedAdapters};

#[derive(Clone)]
pub struct AppContext {
    pub config: Arc<Config>,
    pub keys: Arc<KeyRing>,
    pub store: Arc<dyn Store>,
    pub storage: Arc<dyn ObjectStorage>,
    pub queue: Arc<dyn WorkQueue>,
    /// Permits to decode an image (`MAX_CONCURRENT_DECODES`): validation and generation each
    /// hold one, so decoding's memory stays within the permits times `MAX_DECODE_BYTES`.
    pub decodes: Arc<Semaphore>,
    /// Triggered when the process stops (the local server); open streams end on it.
    pub shutdown: Shutdown,
}

impl AppContext {
    pub fn new(
        mut config: Config,
        store: Arc<dyn Store>,
        storage: Arc<dyn ObjectStorage>,
        queue: Arc<dyn WorkQueue>,
    ) -> Self {
        if config.status_token_secret.is_none() {
            // Tokens this process signs verify only here: fine for one process, so AWS
            // deployments set STATUS_TOKEN_SECRET for every function.
            tracing::warn!("STATUS_TOKEN_SECRET is not set: status tokens are this process's own");
            config.status_token_secret = Some(Secret(crate::keys::random_secret()));
        }
        let keys = KeyRing::from_config(&config);
        crate::host::uptime(); // Uptime counts from here.
        let decodes = Arc::new(Semaphore::new(config.max_concurrent_decodes));
        Self {
            config: Arc::new(config),
            keys: Arc::new(keys),
            store,
            storage,
            queue,
            decodes,
            shutdown: Shutdown::default(),
        }
    }
}

impl AppContext {
    /// The key status tokens are signed with (always set once the context exists).
    pub fn status_secret(&self) -> &[u8] {
        self.config
            .status_token_secret
            .as_ref()
            .map_or(&[][..], |s| s.0.as_bytes())
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
    #[error("AWS resources are configured but this build has no AWS adapters (feature `aws`)")]
    AwsUnavailable,
    #[error(
        "no AWS resources are configured (TABLE_NAME, BUCKET_NAME, QUEUE_URL, DEAD_LETTER_QUEUE_URL) \
         and this build has no embedded adapters (feature `embedded`)"
    )]
    EmbeddedUnavailable,
}

/// The context a Lambda function builds once at cold start, from its environment.
pub async fn from_env() -> Result<AppContext, BootError> {
    let config = Config::from_env()?;
    match config.aws.clone() {
        #[cfg(feature = "aws")]
        Some(resources) => Ok(aws_context(
            config,
            &resources,
            &crate::adapters::aws::sdk_config().await,
        )),
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

/// A context on S3, DynamoDB and SQS, with clients built from one SDK configuration.
#[cfg(feature = "aws")]
pub fn aws_context(
    config: Config,
    resources: &crate::config::AwsResources,
    sdk: &aws_config::SdkConfig,
) -> AppContext {
    use crate::adapters::aws::{DynamoStore, S3Storage, SqsQueue};
    // Emulators serve buckets on the path, not on a subdomain.
    let s3 = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some())
        .build();
    AppContext::new(
        config,
        Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &resources.table,
        )),
        Arc::new(S3Storage::new(
            aws_sdk_s3::Client::from_conf(s3),
            &resources.bucket,
            sdk,
        )),
        Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            &resources.queue_url,
            &resources.dead_letter_queue_url,
        )),
    )
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

    /// The key in `path`, or a new one written there (readable by this user only).
    fn kept_secret(path: &std::path::Path) -> std::io::Result<Secret> {
        match std::fs::read_to_string(path) {
            Ok(secret) if secret.trim().len() >= 32 => Ok(Secret(secret.trim().to_owned())),
            _ => {
                let secret = crate::keys::random_secret();
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, &secret)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
                }
                std::fs::rename(&tmp, path)?;
                Ok(Secret(secret))
            }
        }
    }

    impl EmbeddedAdapters {
        /// Opens `image2model.db` and `objects/` under the configured data directory; signed
        /// URLs start with `base_url`.
        pub fn open(config: &Config, base_url: &str) -> Result<Self, ContextError> {
            let db =
                EmbeddedDb::open(&config.data_dir.join("image2model.db"), config.max_receives)?;
            let storage = DiskStorage::open(&config.data_dir.join("objects"), base_url)?;
            let status_secret = kept_secret(&config.data_dir.join("status-token.key"))?;
            Ok(Self {
                db,
                storage,
                status_secret,
            })
        }
    }

    impl AppContext {
        /// A context on the embedded adapters.
        pub fn embedded(mut config: Config, adapters: &EmbeddedAdapters) -> Self {
            if config.status_token_secret.is_none() {
                config.status_token_secret = Some(adapters.status_secret.clone());
            }
            Self::new(
                config,
                Arc::new(adapters.db.clone()),
                Arc::new(adapters.storage.clone()),
                Arc::new(adapters.db.clone()),
            )
        }
    }
}
