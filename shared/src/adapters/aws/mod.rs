//! AWS adapters: the ports on S3, DynamoDB and SQS. Clients come from one shared SDK config,
//! built once per process; `AWS_ENDPOINT_URL` (the SDK's standard variable) points every client
//! at an emulator.

pub mod dynamodb;
pub mod s3;
pub mod sqs;

pub use dynamodb::DynamoStore;
pub use s3::S3Storage;
pub use sqs::SqsQueue;

use crate::config::AwsResources;
use crate::ports::Ports;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::sync::Arc;

/// The ports on the deployment's `resources`, with clients built from one SDK configuration.
pub fn ports(resources: &AwsResources, sdk: &aws_config::SdkConfig) -> Ports {
    // Emulators serve buckets on the path, not on a subdomain.
    let s3 = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some())
        .build();
    // One client for both queues (the work queue and the deliveries').
    let sqs = aws_sdk_sqs::Client::new(sdk);
    // One table holds the jobs and the webhooks: one adapter serves both ports.
    let table = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &resources.table,
    ));
    Ports {
        store: table.clone(),
        storage: Arc::new(S3Storage::new(
            aws_sdk_s3::Client::from_conf(s3),
            &resources.bucket,
            sdk,
        )),
        queue: Arc::new(SqsQueue::new(
            sqs.clone(),
            &resources.queue_url,
            &resources.dead_letter_queue_url,
        )),
        webhooks: table,
        deliveries: Arc::new(SqsQueue::new(
            sqs,
            &resources.webhook_queue_url,
            &resources.webhook_dead_letter_queue_url,
        )),
    }
}

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
