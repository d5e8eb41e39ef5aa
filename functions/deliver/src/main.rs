//! Lambda entry point of the delivery function: SQS batches of the deliveries' queue, answering
//! with the failed message ids only (`ReportBatchItemFailures`).

use aws_lambda_events::event::sqs::SqsEvent;
use image2model_shared::app::deliver::Deliverer;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    image2model_shared::telemetry::init();
    let ctx = image2model_shared::wiring::from_env().await?;
    let deliverer = Deliverer::new(ctx)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deliverer = deliverer.clone();
        async move {
            Ok::<_, lambda_runtime::Error>(
                image2model_deliver::handle_sqs_event(&deliverer, event.payload).await,
            )
        }
    }))
    .await
}
