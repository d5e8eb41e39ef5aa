//! Lambda entry point of the worker: SQS batches, answering with the failed message ids only
//! (`ReportBatchItemFailures`).

use aws_lambda_events::event::sqs::SqsEvent;
use image2model_shared::adapters::fal::FalClient;
use image2model_shared::app::work::Worker;
use image2model_shared::builtin_generator::BuiltinGenerator;
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    image2model_shared::telemetry::init();
    let ctx = image2model_shared::wiring::from_env().await?;
    let generator = Arc::new(BuiltinGenerator::new(ctx.config.image_limits()));
    let fal = FalClient::new(&ctx.config.fal).transpose()?;
    let mut worker = Worker::new(ctx, vec![generator]);
    if let Some(client) = fal {
        worker = worker.with_fal(client);
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move {
            Ok::<_, lambda_runtime::Error>(
                image2model_worker::handle_sqs_event(&worker, event.payload).await,
            )
        }
    }))
    .await
}
