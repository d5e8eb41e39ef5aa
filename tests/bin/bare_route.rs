//! The yardstick of `benches/routes.rs`: a bare axum route answering "hello", on the same
//! runtime, axum features and build profile as the local server, so that the ratio of a route to
//! it measures our own work per request and not the machine.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
