//! Lambda entry point of the ingest function: S3 `ObjectCreated` events on `uploads/`.

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    image2model_shared::telemetry::init();
    let ctx = image2model_shared::wiring::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<S3Event>| {
        let ctx = ctx.clone();
        async move {
            image2model_ingest::handle_s3_event(&ctx, event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
