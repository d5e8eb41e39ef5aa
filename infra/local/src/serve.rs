//! How the local server speaks HTTP to whoever connects: hyper's HTTP/1 with the limits a server
//! facing careless or hostile clients needs. A request's headers must arrive within
//! `HEADER_READ_TIMEOUT_SECONDS` (which also closes idle keep-alive connections and sockets that
//! never send); a request body may pause at most `BODY_IDLE_TIMEOUT_SECONDS` between chunks,
//! must average `BODY_MIN_BYTES_PER_SECOND` after `BODY_RATE_GRACE_SECONDS` and be whole within
//! `BODY_READ_TIMEOUT_SECONDS` of waiting (else 408); one client (an IPv4 address, an IPv6 /64)
//! holds at most `MAX_CONNECTIONS_PER_CLIENT` connections (more are answered 429 and closed), and at
//! most `MAX_CONNECTIONS` connections are served at once (the rest wait in the listen backlog,
//! holding no file descriptor). On shutdown the listener closes, idle connections close,
//! in-flight requests get `SHUTDOWN_GRACE_SECONDS` to finish, and whatever is left is cut.

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use image2model_shared::config::Config;
use image2model_shared::shutdown::Shutdown;
use image2model_shared::web::HttpService;
use image2model_shared::web::error::ErrorBody;
use image2model_shared::web::read_deadline;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutBody;

/// File descriptors kept for everything but connections (database, objects, logs).
const RESERVED_FDS: u64 = 64;

/// How many connections may be open at once: the configured cap, within what the process may
/// open (raised to the hard limit first).
pub fn connection_cap(config: &Config) -> usize {
    let open_files = raise_open_file_limit().unwrap_or(1024);
    let fit = usize::try_from(open_files.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
    config.local.max_connections.min(fit)
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

    /// Counts a new connection of `ip`, or `None` when its client holds the cap already (a
    /// cap of 0 counts nothing: behind a proxy every client has the proxy's address).
    fn admit(&self, ip: IpAddr) -> Option<ClientConnection> {
        let ip = client_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.cap == 0 {
            return Some(ClientConnection {
                ip,
                open: Arc::new(Mutex::default()),
            });
        }
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

/// The client an address stands for: an IPv6 address's /64 (one host holds a whole /64), an
/// IPv4 address itself (also when mapped into IPv6).
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        },
    }
}

/// Refused connections that may linger at once, reading what their client sent so that the
/// close is no reset that could wipe the answer from the client's buffer.
const LINGERING: usize = 256;

/// How long a refused connection lingers at most.
const LINGER: Duration = Duration::from_secs(1);

/// What a client over its connection cap reads before the connection closes: 429 in the
/// envelope, written only if the socket takes it at once (the accept loop never waits on it).
/// The connection then lingers a moment (within [`LINGERING`]) reading what the client sent,
/// so the answer is not lost to a reset; past that many, it closes at once.
fn refuse_busy_client(mut stream: TcpStream, lingering: &Arc<Semaphore>) {
    let id = uuid::Uuid::new_v4();
    let body = ErrorBody {
        error: true,
        error_code: "TOO_MANY_CONNECTIONS",
        message: "Too many connections".to_owned(),
        detail: "this client holds as many connections as one client may; reuse or close one"
            .to_owned(),
        status_code: 429,
        details: serde_json::json!({}),
        request_id: id.to_string(),
        report: serde_json::Map::new(),
    };
    let body = serde_json::to_string(&body).unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nx-request-id: {id}\r\nx-content-type-options: nosniff\r\nx-frame-options: DENY\r\nreferrer-policy: no-referrer\r\ncontent-security-policy: default-src 'none'; frame-ancestors 'none'\r\nstrict-transport-security: max-age=63072000; includeSubDomains\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
    let Ok(permit) = Arc::clone(lingering).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(LINGER, async {
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
        drop(permit);
    });
}

/// A request's body with its pauses bounded by `idle` and its pace by `limits`; a body that is
/// over before it starts (a `GET`'s) is left as it is, with no timer to set.
fn watched_body(body: Incoming, idle: Duration, limits: read_deadline::ReadLimits) -> Body {
    if body.is_end_stream() {
        return Body::new(body);
    }
    read_deadline::within(Body::new(TimeoutBody::new(idle, body)), limits)
}

/// Serves `app` on `listener` until `shutdown`, then drains.
pub async fn serve(
    listener: TcpListener,
    app: HttpService,
    config: Arc<Config>,
    shutdown: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(connection_cap(&config)));
    let per_client = ClientConnections::new(config.local.max_connections_per_client);
    let lingering = Arc::new(Semaphore::new(LINGERING));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.local.header_read_timeout)
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
            refuse_busy_client(stream, &lingering);
            continue;
        };
        let (body_read, body_idle) = (config.local.body_read, config.local.body_idle_timeout);
        let service = ServiceBuilder::new()
            .map_request(move |req: Request<Incoming>| {
                let (mut parts, body) = req.into_parts();
                parts.extensions.insert(ConnectInfo(peer));
                Request::from_parts(parts, watched_body(body, body_idle, body_read))
            })
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
    let grace = config.local.shutdown_grace;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_of(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_of(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            client_of(ip("2001:db8:1:2::7"))
        );
    }

    #[test]
    fn the_cap_counts_per_client_and_frees_on_close() {
        let clients = ClientConnections::new(2);
        let a = "2001:db8::1".parse().unwrap();
        let same_host = "2001:db8::2".parse().unwrap();
        let first = clients.admit(a).unwrap();
        let _second = clients.admit(same_host).unwrap();
        assert!(clients.admit(a).is_none(), "a /64 is one client");
        assert!(clients.admit("10.0.0.1".parse().unwrap()).is_some());
        drop(first);
        assert!(
            clients.admit(a).is_some(),
            "a closed connection frees its place"
        );
        // A cap of 0 counts nothing.
        let open = ClientConnections::new(0);
        let held: Vec<_> = (0..1000).map(|_| open.admit(a).unwrap()).collect();
        assert_eq!(held.len(), 1000);
    }
}
