//! Lambda entry point of the admin function: serves its routes.

use image2model_shared::web::lambda::{Answers, Error, serve};

#[tokio::main]
async fn main() -> Result<(), Error> {
    serve(
        |_| Ok::<_, Error>(image2model_admin::router()),
        Answers::Whole,
    )
    .await
}
