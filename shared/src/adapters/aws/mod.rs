//! AWS adapters: the ports on S3, DynamoDB and SQS. Clients come from one shared SDK config,
//! built once per process; `AWS_ENDPOINT_URL` (the SDK's standard variable) points every client
//! at an emulator.

pub mod dynamodb;
pub mod s3;
pub mod sqs;

pub use dynamodb::DynamoStore;
pub use s3::S3Storage;
pub use sqs::SqsQueue;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Loads the SDK configuration from the environment (region, credentials, endpoint override).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The error text of any SDK failure, with the service's code when there is one; it goes to
/// logs, never to clients. (Every SDK crate re-exports the same smithy `SdkError`, so this one
/// function serves S3, DynamoDB and SQS.)
fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or_default()
        ),
        None => DisplayErrorContext(err).to_string(),
    }
}
