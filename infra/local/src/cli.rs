//! The `image2model-local` command: the whole system on one machine. Listens on 127.0.0.1:8000
//! (or `PORT` / `--port`), keeps its data in `DATA_DIR`, prints a dev API key when none is
//! configured, and shuts down cleanly on SIGTERM or Ctrl-C (open streams end, in-flight requests
//! get `SHUTDOWN_GRACE_SECONDS`). The tests run the same command as a child process.

use image2model_shared::config::{Config, NamedKey, Secret};
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: image2model-local [--port PORT]\n\
environment: PORT, DATA_DIR, API_KEY, API_KEYS=name:key,..., ADMIN_API_KEY, CORS_ORIGINS,\n\
MAX_UPLOAD_BYTES, RATE_LIMIT_PER_MINUTE (see README)";

fn port_arg(args: &[String]) -> Result<Option<String>, String> {
    let mut port = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--port" | "-p" => port = Some(it.next().ok_or("--port needs a value")?.clone()),
            other if other.starts_with("--port=") => {
                port = Some(other["--port=".len()..].to_owned())
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(port)
}

/// A key kept in the data directory (readable by this user only) so it survives restarts,
/// created on first use.
fn persistent_key(dir: &Path, file: &str, prefix: &str) -> std::io::Result<String> {
    image2model_shared::keys::kept_secret_file(&dir.join(file), 16, || {
        format!("{prefix}{}", uuid::Uuid::new_v4().simple())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    if let Some(port) = port_arg(&args)? {
        vars.insert("PORT".to_owned(), port);
    }
    let mut config = Config::from_vars(&vars).map_err(|e| e.to_string())?;
    if config.sign_in.user_keys.is_empty() {
        let key = persistent_key(&config.local.data_dir, "dev-api-key", "i2m_dev_")
            .map_err(|e| e.to_string())?;
        println!("dev API key: {key}");
        config.sign_in.user_keys.push(NamedKey {
            name: "dev".to_owned(),
            key,
        });
    }
    if config.sign_in.admin_key.is_none() {
        let key = persistent_key(&config.local.data_dir, "dev-admin-key", "i2m_admin_")
            .map_err(|e| e.to_string())?;
        println!("dev admin key: {key}");
        config.sign_in.admin_key = Some(Secret(key));
    }
    let host = vars.get("HOST").map_or("127.0.0.1", String::as_str);
    let listener = tokio::net::TcpListener::bind((host, config.local.port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{}: {e}", config.local.port))?;
    let data_dir = config.local.data_dir.clone();
    let server = crate::start(config, listener)
        .await
        .map_err(|e| e.to_string())?;
    match &server.ctx.config.fal.key {
        Some(_) => println!("models run at FAL.AI ({})", server.ctx.config.fal.base_url),
        None => println!("models run on the built-in generator (set FAL_KEY to use FAL.AI)"),
    }
    if server.ctx.config.webhooks.allow_private {
        println!(
            "WEBHOOK_ALLOW_PRIVATE is set: webhooks may go to http URLs and to loopback, private \
             and link-local addresses (for local development and tests only)"
        );
    }
    println!("listening on http://{}", server.addr);
    tracing::info!(addr = %server.addr, data_dir = %data_dir.display(), "image2model local server ready");
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// A write past the file-size limit (`ulimit -f`, a quota) raises SIGXFSZ, which would kill the
/// process; ignored, the write fails with `EFBIG` like a full disk's `ENOSPC`, and the request or
/// job that made it gets an error while the server goes on.
fn survive_file_size_limits() {
    // SAFETY: setting a signal's disposition to "ignore" installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Runs the command with the process's arguments and environment until a shutdown signal.
pub async fn main() -> ExitCode {
    image2model_shared::telemetry::init();
    survive_file_size_limits();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the server keeps on disk (the dev keys here, the status-token key in the
    /// embedded adapters) is readable by its owner only.
    #[cfg(unix)]
    #[test]
    fn dev_keys_are_written_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = persistent_key(dir.path(), "dev-admin-key", "i2m_admin_").unwrap();
        assert!(key.starts_with("i2m_admin_"));
        let mode = std::fs::metadata(dir.path().join("dev-admin-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            persistent_key(dir.path(), "dev-admin-key", "other_").unwrap(),
            key
        );
    }
}
