//! How the local server speaks HTTP to whoever connects: hyper's HTTP/1 with the limits a server
//! facing careless or hostile clients needs. A request's headers must arrive within
//! `HEADER_READ_TIMEOUT_SECONDS` (which also closes idle keep-alive connections and sockets that
//! never send); a request body may pause at most `BODY_IDLE_TIMEOUT_SECONDS` between chunks,
//! must average `BODY_MIN_BYTES_PER_SECOND` after `BODY_RATE_GRACE_SECONDS` and be whole within
//! `BODY_READ_TIMEOUT_SECONDS` (else 408); one client address holds at most
//! `MAX_CONNECTIONS_PER_CLIENT` connections (more are answered 429 and closed at once), and at
//! most `MAX_CONNECTIONS` connections are served at once (the rest wait in the listen backlog,
//! holding no file descriptor). On shutdown the listener closes, idle connections close,
//! in-flight requests get `SHUTDOWN_GRACE_SECONDS` to finish, and whatever is left is cut.

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use image2model_shared::config::Config;
use image2model_shared::shutdown::Shutdown;
use image2model_shared::web::HttpService;
use image2model_shared::web::read_deadline;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceBuilder;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// File descriptors kept for everything but connections (database, objects, logs).
const RESERVED_FDS: u64 = 64;

/// How many connections may be open at once: the configured cap, within what the process may
/// open (raised to the hard limit first).
pub fn connection_cap(config: &Config) -> usize {
    let open_files = raise_open_file_limit().unwrap_or(1024);
    let fit = usize::try_from(open_files.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
    config.max_connections.min(fit)
}

/// Raises the soft limit of open files to the hard limit; returns the limit in force.
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// How many connections each client address holds open, within a cap.
#[derive(Clone)]
struct ClientConnections {
    cap: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection of a client address; counted until dropped.
struct ClientConnection {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ClientConnections {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            open: Arc::default(),
        }
    }

    /// Counts a new connection of `ip`, or `None` when it holds its cap already.
    fn admit(&self, ip: IpAddr) -> Option<ClientConnection> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(ClientConnection {
            ip,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for ClientConnection {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What a client over its connection cap reads before the connection closes: 429 in the
/// envelope, written only if the socket takes it at once (the accept loop never waits on it).
fn refuse_busy_client(stream: TcpStream) {
    const BODY: &str = r#"{"error":true,"error_code":"TOO_MANY_CONNECTIONS","message":"Too many connections","detail":"this address holds as many connections as one client may; reuse or close one","status_code":429,"details":{},"request_id":null}"#;
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// Serves `app` on `listener` until `shutdown`, then drains.
pub async fn serve(
    listener: TcpListener,
    app: HttpService,
    config: Arc<Config>,
    shutdown: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(connection_cap(&config)));
    let per_client = ClientConnections::new(config.max_connections_per_client);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit,
            _ = shutdown.triggered() => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors or a connection reset before accept: wait a moment.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.triggered() => break,
        };
        while connections.try_join_next().is_some() {}
        let Some(client) = per_client.admit(peer.ip()) else {
            refuse_busy_client(stream);
            continue;
        };
        let body_read = config.body_read;
        let service = ServiceBuilder::new()
            .map_request(move |req: Request<_>| {
                let (mut parts, body) = req.into_parts();
                parts.extensions.insert(ConnectInfo(peer));
                Request::from_parts(parts, read_deadline::within(Body::new(body), body_read))
            })
            .layer(RequestBodyTimeoutLayer::new(config.body_idle_timeout))
            .service(app.clone());
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let watched = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(err) = watched.await {
                tracing::debug!(%peer, error = %err, "connection ended");
            }
            drop((permit, client));
        });
    }
    drop(listener);
    let grace = config.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            left = connections.len(),
            grace_s = grace.as_secs_f64(),
            "connections still busy after the grace period are cut"
        );
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
}
