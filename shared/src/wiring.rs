//! Which adapters run, chosen from the configuration: the AWS ones when `TABLE_NAME` and friends
//! are set, the embedded ones otherwise (each behind its feature, so a Lambda build links only
//! the AWS side). The one place a process turns its environment into an [`AppContext`].

use crate::config::Config;
use crate::context::AppContext;

#[cfg(feature = "embedded")]
use crate::adapters::embedded::{EmbeddedAdapters, OpenError};

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[cfg(feature = "embedded")]
    #[error(transparent)]
    Embedded(#[from] OpenError),
    #[error("cannot keep the status-token key: {0}")]
    Secret(#[from] std::io::Error),
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
                .local
                .public_base_url
                .clone()
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", config.local.port));
            let adapters = EmbeddedAdapters::open(&config, &base_url)?;
            embedded_context(config, &adapters)
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
    let status_secret = config
        .status
        .status_token_secret
        .clone()
        .ok_or(BootError::MissingStatusSecret)?;
    let ports = crate::adapters::aws::ports(resources, sdk);
    Ok(AppContext::new(config, status_secret, ports))
}

/// A context on the embedded adapters of the configured data directory; status tokens are
/// signed with `STATUS_TOKEN_SECRET` when set, otherwise with a key kept in the data directory
/// (`status-token.key`), so that tokens outlive a restart.
#[cfg(feature = "embedded")]
pub fn embedded_context(
    config: Config,
    adapters: &EmbeddedAdapters,
) -> Result<AppContext, BootError> {
    let status_secret = match config.status.status_token_secret.clone() {
        Some(secret) => secret,
        None => crate::config::Secret(crate::keys::kept_secret_file(
            &config.local.data_dir.join("status-token.key"),
            32,
            crate::keys::random_secret,
        )?),
    };
    Ok(AppContext::new(config, status_secret, adapters.ports()))
}
