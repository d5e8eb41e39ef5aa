//! Lambda entry point of the webhook function: wires configuration, adapters and the verifier
//! (whose key cache lives as long as the instance), serves the route.

use image2model_webhook::SignatureVerifier;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    image2model_shared::telemetry::init();
    let ctx = image2model_shared::context::from_env().await?;
    let verifier = Arc::new(SignatureVerifier::new(&ctx.config.fal)?);
    let service = image2model_shared::web::into_service(
        image2model_webhook::router(verifier)
            .split_for_parts()
            .0
            .with_state(ctx.clone()),
        &ctx.config,
    );
    lambda_http::run(service).await
}
