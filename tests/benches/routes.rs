//! The hot routes against a bare axum route, side by side in one run: an authenticated
//! `GET /api/v1/status/tasks/{id}/status`, the same without a key (the public view), and
//! `GET /health`, each as a ratio of the requests a second a bare "hello" route (`bare-route`,
//! same runtime, same build profile) answers on the same machine, measured in turn.
//!
//! The load is wrk (1 thread, 32 connections; `scripts/bench_routes.sh` installs it when
//! missing), as the issue that set the goals measured it. Each round measures the four targets
//! in turn, so a machine that slows down slows all of them; the ratios printed are the medians of
//! the rounds. Any answer other than 200 fails the bench: a route that answers 429 fast is not
//! fast.
//!
//! `cargo bench -p image2model-tests --bench routes [-- --seconds 5 --rounds 3]`

use image2model_tests::ALICE;
use image2model_tests::process::ServerProcess;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_local-server");
const BARE: &str = env!("CARGO_BIN_EXE_bare-route");

/// The goals of issue 26, as fractions of the bare route's rate.
const GOALS: [(&str, f64); 3] = [
    ("authenticated status", 0.35),
    ("public status", 0.30),
    ("health", 0.60),
];

struct Bare(Child, String);

impl Bare {
    fn start() -> Self {
        let mut child = Command::new(BARE)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the bare route starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = lines.next().expect("an address").expect("a line");
        let base = line
            .strip_prefix("listening on ")
            .expect("the bare route says where it listens")
            .to_owned();
        Self(child, base)
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One wrk run: requests a second, or why the run does not count.
fn wrk(url: &str, headers: &[&str], seconds: u64) -> Result<f64, String> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency"]);
    for header in headers {
        cmd.args(["-H", header]);
    }
    let out = cmd
        .arg(url)
        .output()
        .map_err(|e| format!("wrk: {e} (install it: apt-get install wrk)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx or 3xx")) {
        return Err(format!("{url}: {}", line.trim()));
    }
    if let Some(line) = text.lines().find(|l| l.contains("Socket errors")) {
        return Err(format!("{url}: {}", line.trim()));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{url}: no rate in wrk's output:\n{text}"))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A completed job of ALICE's, made through the server's own routes.
async fn completed_job(server: &ServerProcess) -> String {
    let http = reqwest::Client::new();
    let photo = std::fs::read(image2model_tests::photo_fixtures_dir().join("rocket.jpg"))
        .expect("the shared photos");
    let job = server.upload_with_job(&http, &photo, "image/jpeg").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value = http
            .get(format!("{}/api/v1/status/tasks/{job}/status", server.base))
            .bearer_auth(ALICE)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("a JSON status");
        if status["status"] == "completed" {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not complete: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // The servers are children: `run` returns (and drops them) before the process exits.
    match run().await {
        Ok(0) => std::process::ExitCode::SUCCESS,
        Ok(_missed) => std::process::ExitCode::from(2),
        Err(err) => {
            eprintln!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Measures, prints, and returns how many goals were missed.
async fn run() -> Result<usize, String> {
    let seconds = arg("--seconds", 5);
    let rounds = arg("--rounds", 3).max(1);
    let server = ServerProcess::start(
        SERVER,
        &[
            ("RUST_LOG", "error"),
            // One address sends every request: the per-address limits would answer 429, which
            // is not what is measured (the counting itself still runs).
            ("RATE_LIMIT_PER_MINUTE", "1000000000"),
            ("PUBLIC_STATUS_RATE_LIMIT_PER_MINUTE", "1000000000"),
        ],
    );
    let bare = Bare::start();
    let job = completed_job(&server).await;
    let status = format!("{}/api/v1/status/tasks/{job}/status", server.base);
    let auth = format!("Authorization: Bearer {ALICE}");
    let targets: [(&str, String, Vec<&str>); 4] = [
        ("bare axum route", format!("{}/", bare.1), vec![]),
        ("authenticated status", status.clone(), vec![auth.as_str()]),
        ("public status", status, vec![]),
        ("health", format!("{}/health", server.base), vec![]),
    ];
    println!(
        "wrk -t1 -c32, {seconds} s per target, {rounds} rounds; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // A first, short pass warms both servers (connections, caches, the allocator).
    for (_, url, headers) in &targets {
        wrk(url, headers, 1)?;
    }
    let mut rates = vec![Vec::new(); targets.len()];
    for round in 1..=rounds {
        for (i, (name, url, headers)) in targets.iter().enumerate() {
            let rate = wrk(url, headers, seconds)?;
            println!("  round {round}: {name:<22} {rate:>10.0} req/s");
            rates[i].push(rate);
        }
    }
    let bare_rates = &rates[0];
    println!("\nratio to the bare route (median of {rounds} rounds; goal):");
    let mut missed = 0;
    for (i, (name, goal)) in GOALS.iter().enumerate() {
        let ratios: Vec<f64> = rates[i + 1]
            .iter()
            .zip(bare_rates)
            .map(|(rate, bare)| rate / bare)
            .collect();
        let ratio = median(ratios);
        let met = ratio >= *goal;
        missed += usize::from(!met);
        println!(
            "  {name:<22} {:>5.1} %  (median {:>8.0} req/s; goal {:.0} %: {})",
            ratio * 100.0,
            median(rates[i + 1].clone()),
            goal * 100.0,
            if met { "met" } else { "MISSED" }
        );
    }
    println!(
        "  {:<22} {:>8.0} req/s (median)",
        "bare axum route",
        median(bare_rates.clone())
    );
    Ok(missed)
}
