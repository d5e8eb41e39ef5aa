//! The AWS adapters on the emulator `scripts/test.sh` starts: it exports `AWS_ENDPOINT_URL`,
//! dummy credentials and the resource names it provisioned from `template.yaml`.

use image2model_shared::config::Config;
use image2model_shared::ports::{ObjectStorage, Store, WebhookStore, WorkQueue};
use image2model_shared::wiring::aws_context;
use std::sync::Arc;

pub struct AwsAdapters {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn WorkQueue>,
    pub storage: Arc<dyn ObjectStorage>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub max_receives: u32,
}

/// The adapters for the provisioned emulator resources, on the contract test's own queue pair
/// (the flow test uses the work queue); panics with how to get them otherwise.
pub async fn adapters() -> AwsAdapters {
    let config = Config::from_env().expect("valid environment");
    let mut resources = config.aws.clone().expect(
        "AWS adapter tests need the emulator: run `bash scripts/test.sh`, which starts moto \\
         and exports TABLE_NAME, BUCKET_NAME, QUEUE_URL, DEAD_LETTER_QUEUE_URL and AWS_ENDPOINT_URL",
    );
    let contract_queue = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is provisioned by scripts/test.sh"))
    };
    resources.queue_url = contract_queue("CONTRACT_QUEUE_URL");
    resources.dead_letter_queue_url = contract_queue("CONTRACT_DEAD_LETTER_QUEUE_URL");
    let max_receives = config.jobs.max_receives;
    let sdk = image2model_shared::adapters::aws::sdk_config().await;
    let ctx = aws_context(config, &resources, &sdk)
        .expect("STATUS_TOKEN_SECRET is provisioned by scripts/test.sh");
    AwsAdapters {
        store: ctx.store.clone(),
        queue: ctx.queue.clone(),
        storage: ctx.storage.clone(),
        webhooks: ctx.webhooks.clone(),
        max_receives,
    }
}

/// A whole context on the emulator, with the test keys of [`crate::test_config`].
pub async fn context() -> image2model_shared::AppContext {
    let mut config = Config::from_env().expect("valid environment");
    let resources = config
        .aws
        .clone()
        .expect("run `bash scripts/test.sh`: it starts the emulator");
    let keys = crate::test_config(std::path::Path::new("."));
    config.sign_in.user_keys = keys.sign_in.user_keys;
    config.sign_in.admin_key = keys.sign_in.admin_key;
    let sdk = image2model_shared::adapters::aws::sdk_config().await;
    aws_context(config, &resources, &sdk)
        .expect("STATUS_TOKEN_SECRET is provisioned by scripts/test.sh")
}

/// The SQS event Lambda would hand the worker for `messages` received from a queue.
pub fn sqs_event(
    messages: &[aws_sdk_sqs::types::Message],
) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| serde_json::json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(), "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("an SQS event")
}
