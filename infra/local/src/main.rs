//! `image2model-local`: the whole system on one machine (see `cli.rs`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    image2model_local::cli::main().await
}
