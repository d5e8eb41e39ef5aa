//! Lambda entry point of the sweeper: an EventBridge schedule invokes it.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    image2model_shared::telemetry::init();
    let ctx = image2model_shared::wiring::from_env().await?;
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| {
        let ctx = ctx.clone();
        async move {
            image2model_sweeper::run(&ctx)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
