//! Lambda entry point of the status function. It runs with response streaming behind a Function
//! URL (`InvokeMode: RESPONSE_STREAM`), so Server-Sent Events reach the client as they happen;
//! the same URL answers plain status polls.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    image2model_shared::telemetry::init();
    let ctx = image2model_shared::context::from_env().await?;
    let service = image2model_shared::web::into_service(
        image2model_status::router(&ctx)
            .split_for_parts()
            .0
            .with_state(ctx.clone()),
        &ctx.config,
    );
    lambda_http::run_with_streaming_response(service).await
}
