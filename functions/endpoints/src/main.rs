//! Lambda entry point of the webhook endpoints function: wires configuration and adapters,
//! serves the routes.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    image2model_shared::telemetry::init();
    let ctx = image2model_shared::context::from_env().await?;
    let service = image2model_shared::web::into_service(
        image2model_endpoints::router(&ctx)
            .split_for_parts()
            .0
            .with_state(ctx.clone()),
        &ctx.config,
    );
    lambda_http::run(service).await
}
