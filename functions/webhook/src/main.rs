//! Lambda entry point of the webhook function: serves the route, with the verifier whose key
//! cache lives as long as the instance.

use image2model_shared::web::lambda::{Answers, Error, serve};
use image2model_webhook::SignatureVerifier;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    serve(
        |ctx| {
            let verifier = SignatureVerifier::new(&ctx.config.fal)?;
            Ok::<_, Error>(image2model_webhook::router(Arc::new(verifier)))
        },
        Answers::Whole,
    )
    .await
}
