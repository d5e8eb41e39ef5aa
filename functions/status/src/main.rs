//! Lambda entry point of the status function. It runs with response streaming behind a Function
//! URL (`InvokeMode: RESPONSE_STREAM`), so Server-Sent Events reach the client as they happen;
//! the same URL answers plain status polls.

use image2model_shared::web::lambda::{Answers, Error, serve};

#[tokio::main]
async fn main() -> Result<(), Error> {
    serve(
        |ctx| Ok::<_, Error>(image2model_status::router(ctx)),
        Answers::Streamed,
    )
    .await
}
