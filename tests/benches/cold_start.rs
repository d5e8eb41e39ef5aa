//! Cold starts: each Lambda function's release binary (this machine's architecture) started
//! under a stub of the Lambda runtime API, timed from the process's start to its first
//! `GET /2018-06-01/runtime/invocation/next`: configuration read, AWS clients built, ready for
//! its first event. Each runs `--runs` times (default 20); the median and the slowest are
//! printed with the size of the arm64 binary that `template.yaml` deploys.
//!
//! The functions run in their AWS configuration (the template's resource settings, dummy
//! credentials in the environment as Lambda gives them). Every address an AWS or FAL client
//! could reach points at a trap that counts connections: a function that fetches anything
//! before it asks for its first event is reported, since what it fetched could have waited.
//!
//! `bash scripts/bench_cold_start.sh` builds both sets of binaries and runs this.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// A listener that counts the connections made to it (and answers none).
fn trap() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a trap port");
    let address = format!("http://{}", listener.local_addr().expect("an address"));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (address, count)
}

/// One start of `binary`: the time until it asks for its first event.
fn start_once(binary: &Path, function: &str, trap: &str) -> Result<Duration, String> {
    let runtime = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let runtime_api = runtime.local_addr().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        )
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDCOLDSTART")
        .env("AWS_SECRET_ACCESS_KEY", "cold-start-secret")
        .env("AWS_SESSION_TOKEN", "cold-start-session")
        .env("AWS_ENDPOINT_URL", trap)
        .env("TABLE_NAME", "image2model")
        .env("BUCKET_NAME", "image2model-uploads")
        .env("QUEUE_URL", format!("{trap}/123456789012/jobs"))
        .env(
            "DEAD_LETTER_QUEUE_URL",
            format!("{trap}/123456789012/jobs-dlq"),
        )
        .env("WEBHOOK_QUEUE_URL", format!("{trap}/123456789012/webhooks"))
        .env(
            "WEBHOOK_DEAD_LETTER_QUEUE_URL",
            format!("{trap}/123456789012/webhooks-dlq"),
        )
        .env(
            "STATUS_TOKEN_SECRET",
            "cold-start-status-token-secret-0123456789",
        )
        .env("FAL_KEY", "cold-start-fal-key")
        .env("FAL_BASE_URL", trap)
        .env("FAL_JWKS_URL", format!("{trap}/jwks"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    runtime.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = started + Duration::from_secs(10);
    let outcome = loop {
        match runtime.accept() {
            Ok((stream, _)) => {
                let ready = started.elapsed();
                stream
                    .set_nonblocking(false)
                    .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(5))))
                    .map_err(|e| e.to_string())?;
                let mut line = String::new();
                BufReader::new(&stream)
                    .read_line(&mut line)
                    .map_err(|e| e.to_string())?;
                break if line.starts_with("GET /2018-06-01/runtime/invocation/next") {
                    Ok(ready)
                } else {
                    Err(format!("{function}: first asked {line:?}"))
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(stderr) = child.stderr.take() {
                        for line in BufReader::new(stderr).lines().map_while(Result::ok).take(5) {
                            err.push_str(&line);
                            err.push('\n');
                        }
                    }
                    break Err(format!(
                        "{function} exited ({status}) before it was ready:\n{err}"
                    ));
                }
                if Instant::now() > deadline {
                    break Err(format!("{function}: not ready within 10 s"));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => break Err(e.to_string()),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

fn main() -> std::process::ExitCode {
    let bins = PathBuf::from(arg("--bins").unwrap_or_else(|| "target/release".into()));
    let arm64 = arg("--arm64").map(PathBuf::from);
    let runs: usize = arg("--runs")
        .and_then(|r| r.parse().ok())
        .unwrap_or(20)
        .max(1);
    let functions_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let mut functions: Vec<String> = std::fs::read_dir(&functions_dir)
        .expect("functions/")
        .flatten()
        .map(|e| format!("image2model-{}", e.file_name().to_string_lossy()))
        .collect();
    functions.sort();
    let (trap, fetched) = trap();
    println!(
        "{runs} starts each under a stub runtime API ({} cores); ready = the first request for an event",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<22} {:>10} {:>10} {:>12} {:>14}",
        "function", "median", "slowest", "fetched", "arm64 binary"
    );
    let mut failed = false;
    for function in &functions {
        let binary = bins.join(function);
        let before = fetched.load(Ordering::SeqCst);
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            match start_once(&binary, function, &trap) {
                Ok(time) => times.push(time),
                Err(err) => {
                    eprintln!("{err}");
                    failed = true;
                    break;
                }
            }
        }
        // Connections at start arrive before the first event is asked for; a moment more lets
        // a late one land.
        std::thread::sleep(Duration::from_millis(50));
        let connections = fetched.load(Ordering::SeqCst) - before;
        failed |= connections > 0;
        if times.is_empty() {
            continue;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let size = arm64
            .as_ref()
            .and_then(|dir| std::fs::metadata(dir.join(function)).ok())
            .map_or("-".to_owned(), |m| {
                format!("{:.1} MiB", m.len() as f64 / (1024.0 * 1024.0))
            });
        println!(
            "{function:<22} {:>7.1} ms {:>7.1} ms {:>12} {:>14}",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            if connections == 0 {
                "nothing".to_owned()
            } else {
                format!("{connections} conn.")
            },
            size
        );
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
