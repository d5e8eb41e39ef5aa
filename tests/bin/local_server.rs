//! The local server as the tests run it: a child process they can signal and kill, started
//! exactly as `cargo run -p image2model-local` starts it.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    image2model_local::cli::main().await
}
