//! The local server: every function's router merged behind the shared layers, the signed
//! local-storage URLs, and ingestion, the worker and the sweeper running in-process, all on the
//! embedded adapters of one data directory.

mod background;
mod storage_routes;

use axum::Router;
use image2model_shared::AppContext;
use image2model_shared::app::work::Worker;
use image2model_shared::builtin_generator::BuiltinGenerator;
use image2model_shared::config::Config;
use image2model_shared::context::{ContextError, EmbeddedAdapters};
use image2model_shared::fal::{FalClient, FalError};
use image2model_webhook::SignatureVerifier;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot build the FAL client: {0}")]
    Fal(#[from] FalError),
}

/// A started local server.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub ctx: AppContext,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting requests, lets in-flight requests and jobs finish, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Every function's routes in one router (the local server's whole API).
pub fn api_router(ctx: &AppContext) -> Result<Router<AppContext>, LocalError> {
    let verifier = SignatureVerifier::new(&ctx.config.fal)
        .map_err(|e| LocalError::Fal(FalError::Transport(e.to_string())))?;
    Ok(Router::new()
        .merge(image2model_health::router())
        .merge(image2model_upload::router(ctx))
        .merge(image2model_jobs::router())
        .merge(image2model_status::router())
        .merge(image2model_download::router())
        .merge(image2model_admin::router())
        .merge(image2model_webhook::router(Arc::new(verifier))))
}

/// Starts the server on `listener` with the embedded adapters under `config.data_dir`.
pub async fn start(config: Config, listener: TcpListener) -> Result<RunningServer, LocalError> {
    let addr = listener.local_addr()?;
    let base_url = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let adapters = EmbeddedAdapters::open(&config, &base_url)?;
    let ctx = AppContext::embedded(config, &adapters);

    let app = api_router(&ctx)?
        .with_state(ctx.clone())
        .merge(storage_routes::router(
            ctx.clone(),
            Arc::new(adapters.storage.clone()),
        ));
    let service = image2model_shared::web::into_service(app, &ctx.config);

    let (shutdown, signal) = watch::channel(false);
    let mut server_signal = signal.clone();
    let server = tokio::spawn(async move {
        let make = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            SocketAddr,
        >(service);
        let graceful = async move {
            let _ = server_signal.wait_for(|stop| *stop).await;
        };
        if let Err(err) = axum::serve(listener, make)
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::error!(error = %err, "server stopped");
        }
    });
    let mut worker = Worker::new(
        ctx.clone(),
        vec![Arc::new(BuiltinGenerator::new(ctx.config.max_pixels))],
    );
    if let Some(client) = FalClient::new(&ctx.config.fal).transpose()? {
        worker = worker.with_fal(client);
    }
    let tasks = vec![
        server,
        tokio::spawn(background::run_worker(ctx.clone(), worker, signal.clone())),
        tokio::spawn(background::run_sweeper(ctx.clone(), signal)),
    ];
    Ok(RunningServer {
        addr,
        ctx,
        shutdown,
        tasks,
    })
}
