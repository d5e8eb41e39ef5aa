//! The fake FAL.AI as a standalone server, for demos of the FAL path without a FAL account:
//! `cargo run -p image2model-tests --bin fake-fal`, then start the local server with the
//! environment it prints. Requests take a few seconds (queue, then logs) and return a GLB, or a
//! depth map for the depth model.

use image2model_tests::fake_fal::{FAKE_FAL_KEY, FakeFal, Script, depth_png};
use std::time::Duration;

#[tokio::main]
async fn main() {
    let fake = FakeFal::start(Script {
        run_time: Duration::from_secs(6),
        depth_output: Some(depth_png(256, 192)),
        ..Script::default()
    })
    .await;
    println!("fake FAL.AI listening on {}", fake.base);
    println!("start the local server against it with:");
    println!(
        "  FAL_KEY={FAKE_FAL_KEY} FAL_BASE_URL={base} FAL_JWKS_URL={base}/.well-known/jwks.json \\\n  FAL_POLL_INITIAL_SECONDS=1 FAL_POLL_MAX_SECONDS=2 cargo run --release -p image2model-local",
        base = fake.base
    );
    let _ = tokio::signal::ctrl_c().await;
}
