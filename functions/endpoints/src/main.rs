//! Lambda entry point of the webhook endpoints function: serves its routes.

use image2model_shared::web::lambda::{Answers, Error, serve};

#[tokio::main]
async fn main() -> Result<(), Error> {
    serve(
        |ctx| Ok::<_, Error>(image2model_endpoints::router(ctx)),
        Answers::Whole,
    )
    .await
}
