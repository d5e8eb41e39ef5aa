//! The local server: every function's router merged behind the shared layers, the signed
//! local-storage URLs, and ingestion, the worker and the sweeper running in-process, all on the
//! embedded adapters of one data directory.

mod background;
pub mod cli;
mod serve;
mod storage_routes;
mod web_client;

use axum::Router;
use image2model_shared::AppContext;
use image2model_shared::adapters::embedded::EmbeddedAdapters;
use image2model_shared::adapters::fal::FalClient;
use image2model_shared::app::deliver::Deliverer;
use image2model_shared::app::work::Worker;
use image2model_shared::builtin_generator::BuiltinGenerator;
use image2model_shared::config::Config;
use image2model_shared::ports::FalError;
use image2model_shared::wiring::{BootError, embedded_context};
use image2model_webhook::SignatureVerifier;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Context(#[from] BootError),
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot build the FAL client: {0}")]
    Fal(#[from] FalError),
}

/// A started local server.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub ctx: AppContext,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting requests, ends open event streams, gives in-flight requests the grace
    /// period (`SHUTDOWN_GRACE_SECONDS`) and lets in-flight jobs finish, and returns.
    pub async fn shutdown(self) {
        self.ctx.shutdown.trigger();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Every function's routes in one router (the local server's whole API), with the OpenAPI
/// description they declare.
pub fn api(ctx: &AppContext) -> Result<(Router<AppContext>, OpenApi), LocalError> {
    let verifier = SignatureVerifier::new(&ctx.config.fal)
        .map_err(|e| LocalError::Fal(FalError::Transport(e.to_string())))?;
    let (router, api) = OpenApiRouter::new()
        .merge(image2model_health::router())
        .merge(image2model_upload::router(ctx))
        .merge(image2model_jobs::router(ctx))
        .merge(image2model_status::router(ctx))
        .merge(image2model_download::router())
        .merge(image2model_admin::router())
        .merge(image2model_endpoints::router(ctx))
        .merge(image2model_webhook::router(Arc::new(verifier)))
        .split_for_parts();
    Ok((router, image2model_shared::web::openapi::document(api)))
}

/// Every function's routes in one router (the local server's whole API).
pub fn api_router(ctx: &AppContext) -> Result<Router<AppContext>, LocalError> {
    api(ctx).map(|(router, _)| router)
}

/// The OpenAPI description of the whole API, as `functions/health/openapi.json` holds it.
pub fn openapi(ctx: &AppContext) -> Result<String, LocalError> {
    let (_, api) = api(ctx)?;
    let mut json = api
        .to_pretty_json()
        .map_err(|e| LocalError::Io(std::io::Error::other(e)))?;
    json.push('\n');
    Ok(json)
}

/// Starts the server on `listener` with the embedded adapters under `config.local.data_dir`.
pub async fn start(config: Config, listener: TcpListener) -> Result<RunningServer, LocalError> {
    start_with(config, listener, Router::new()).await
}

/// [`start`], with `extra` routes beside the API (the tests' own).
async fn start_with(
    config: Config,
    listener: TcpListener,
    extra: Router,
) -> Result<RunningServer, LocalError> {
    let addr = listener.local_addr()?;
    let base_url = config
        .local
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let adapters = EmbeddedAdapters::open(&config, &base_url).map_err(BootError::from)?;
    // The web client this server serves may be opened under any of its loopback names while
    // signed URLs name one of them: those origins are its own, so they may call across.
    let mut config = config;
    // The port the links of webhook payloads name, when bound to any free one.
    config.local.port = addr.port();
    for origin in [
        format!("http://localhost:{}", addr.port()),
        format!("http://127.0.0.1:{}", addr.port()),
        format!("http://[::1]:{}", addr.port()),
    ] {
        if !config.sign_in.cors_origins.contains(&origin) {
            config.sign_in.cors_origins.push(origin);
        }
    }
    let ctx = embedded_context(config, &adapters)?;
    let page_policy = web_client::policy(&base_url);

    let app = api_router(&ctx)?
        .with_state(ctx.clone())
        .merge(storage_routes::router(
            ctx.clone(),
            Arc::new(adapters.storage.clone()),
        ))
        .merge(web_client::router(page_policy.clone()))
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(
            page_policy,
            web_client::page_for_browsers,
        ));
    let service = image2model_shared::web::into_service(app, &ctx.config);

    let server = tokio::spawn(serve::serve(
        listener,
        service,
        ctx.config.clone(),
        ctx.shutdown.clone(),
    ));
    let mut worker = Worker::new(
        ctx.clone(),
        vec![Arc::new(BuiltinGenerator::new(ctx.config.image_limits()))],
    );
    if let Some(client) = FalClient::new(&ctx.config.fal).transpose()? {
        worker = worker.with_fal(client);
    }
    let deliverer =
        Deliverer::new(ctx.clone()).map_err(|e| LocalError::Io(std::io::Error::other(e)))?;
    let tasks = vec![
        server,
        tokio::spawn(background::run_worker(ctx.clone(), worker)),
        tokio::spawn(background::run_deliveries(ctx.clone(), deliverer)),
        tokio::spawn(background::run_sweeper(
            ctx.clone(),
            Arc::new(adapters.storage.clone()),
        )),
    ];
    Ok(RunningServer { addr, ctx, tasks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[tokio::test]
    async fn a_panicking_handler_answers_a_500_envelope_and_the_server_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.local.data_dir = dir.path().to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let panics = Router::new().route(
            "/test/panic",
            get(|| async {
                let limits: Vec<u32> = Vec::new();
                limits[3].to_string()
            }),
        );
        let server = start_with(config, listener, panics).await.unwrap();
        let base = format!("http://{}", server.addr);
        let client = reqwest::Client::new();
        for _ in 0..3 {
            let response = client
                .get(format!("{base}/test/panic"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 500);
            assert!(response.headers().contains_key("x-request-id"));
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error_code"], "INTERNAL_ERROR", "{body}");
            assert!(!body.to_string().contains("index out of bounds"), "{body}");
        }
        let health = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        server.shutdown().await;
    }
}
