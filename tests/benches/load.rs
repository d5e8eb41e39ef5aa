//! Load and soak against the local server (a release build, started here as a child process on
//! its own data directory), through real sockets as browsers would use it.
//!
//! Load: for each N of `--clients` (default `100,1000`), N clients at once each do presign ->
//! PUT -> job -> stream until completed -> download, each with its own key (the per-key rate
//! limits and the per-address limit are lifted: they are not what is measured). Prints the success rate,
//! latency percentiles per step, the time until every job completed and the server's peak
//! memory; then the knee: the concurrency at which p99 of the status route passes 100 ms.
//!
//! Soak (`--soak MINUTES`): a steady mix (uploads with jobs, status polls, streams, downloads,
//! listings) for that long, with a retention of a minute, printing the server's memory, open
//! files and data directory size every minute; a rising trend is a finding.
//!
//! `cargo bench -p image2model-tests --bench load [-- --clients 100,1000] [-- --soak 10]`
//! (`scripts/load.sh` and `scripts/soak.sh` run these).

use image2model_tests::png;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_local-server");
const KEYS: usize = 1000;

fn key(i: usize) -> String {
    format!("load-key-{i:04}-0123456789")
}

struct Server {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// The server on a new data directory, with `env` added to the load settings.
    fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys: Vec<String> = (0..KEYS).map(|i| format!("load{i}:{}", key(i))).collect();
        let mut child = Command::new(SERVER)
            .env("PORT", "0")
            .env("DATA_DIR", dir.path())
            .env("API_KEYS", keys.join(","))
            .env("DAILY_JOB_QUOTA", "1000000")
            // The per-client limits guard a deployment; every client here comes from one
            // address, so they are lifted: the server's capacity is what is measured.
            .env("RATE_LIMIT_PER_MINUTE", "10000000")
            // The connection cap per client address too (0 turns it off): a thousand clients
            // on one address hold a thousand connections.
            .env("MAX_CONNECTIONS_PER_CLIENT", "0")
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the local server starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let base = loop {
            let line = lines.next().expect("an address").expect("a line");
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, base, dir }
    }

    fn proc_status(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }

    fn peak_rss_mib(&self) -> f64 {
        self.proc_status("VmHWM:")
    }

    fn rss_mib(&self) -> f64 {
        self.proc_status("VmRSS:")
    }

    fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }

    /// The bytes under the data directory (database, uploads, results), in MiB.
    fn data_mib(&self) -> f64 {
        fn bytes(dir: &std::path::Path) -> u64 {
            std::fs::read_dir(dir).map_or(0, |entries| {
                entries
                    .flatten()
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => bytes(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
        }
        bytes(self.dir.path()) as f64 / (1024.0 * 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The open-file limit raised to its hard limit (a thousand clients need two thousand sockets
/// between them and the server, which inherits the limit).
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct given, for this process.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[derive(Default)]
struct Steps {
    presign: Vec<Duration>,
    put: Vec<Duration>,
    job: Vec<Duration>,
    stream: Vec<Duration>,
    download: Vec<Duration>,
}

type Outcome = Result<[Duration; 5], String>;

async fn ok_json(
    response: reqwest::Result<reqwest::Response>,
    step: &str,
) -> Result<Value, String> {
    let response = response.map_err(|e| format!("{step}: {e}"))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| format!("{step}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{step}: {status} {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{step}: {e}"))
}

/// One client's whole journey; the time of each step.
async fn journey(http: &reqwest::Client, base: &str, key: &str, photo: &[u8]) -> Outcome {
    let t = Instant::now();
    let presigned = ok_json(
        http.post(format!("{base}/api/v1/uploads/presign"))
            .bearer_auth(key)
            .json(&json!({"files": [{"filename": "p.png", "content_type": "image/png", "size": photo.len()}]}))
            .send()
            .await,
        "presign",
    )
    .await?;
    let presign = t.elapsed();
    let entry = &presigned["files"][0];
    let t = Instant::now();
    let put = http
        .put(entry["upload"]["url"].as_str().ok_or("no upload URL")?)
        .header("content-type", "image/png")
        .body(photo.to_vec())
        .send()
        .await
        .map_err(|e| format!("put: {e}"))?;
    if !put.status().is_success() {
        return Err(format!("put: {}", put.status()));
    }
    let put = t.elapsed();
    let t = Instant::now();
    let job = ok_json(
        http.post(format!("{base}/api/v1/jobs"))
            .bearer_auth(key)
            .json(&json!({"file_id": entry["file_id"]}))
            .send()
            .await,
        "job",
    )
    .await?;
    let job_time = t.elapsed();
    let job_id = job["job_id"].as_str().ok_or("no job id")?.to_owned();
    let t = Instant::now();
    let mut stream = http
        .get(format!("{base}/api/v1/status/tasks/{job_id}/stream"))
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| format!("stream: {e}"))?;
    let mut text = String::new();
    loop {
        match stream.chunk().await.map_err(|e| format!("stream: {e}"))? {
            Some(chunk) => {
                text.push_str(&String::from_utf8_lossy(&chunk));
                if text.contains("event: task_completed") {
                    break;
                }
                if text.contains("event: task_failed") || text.contains("event: timeout") {
                    return Err(format!(
                        "stream: {}",
                        text.lines().last().unwrap_or_default()
                    ));
                }
            }
            None => return Err("stream: ended before completion".into()),
        }
    }
    drop(stream);
    let stream_time = t.elapsed();
    let t = Instant::now();
    let link = ok_json(
        http.get(format!("{base}/api/v1/download/{job_id}?redirect=false"))
            .bearer_auth(key)
            .send()
            .await,
        "download link",
    )
    .await?;
    let model = http
        .get(link["url"].as_str().ok_or("no download URL")?)
        .send()
        .await
        .map_err(|e| format!("download: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("download: {e}"))?;
    if model.get(..4) != Some(b"glTF".as_slice()) {
        return Err("download: not a GLB".into());
    }
    Ok([presign, put, job_time, stream_time, t.elapsed()])
}

fn percentiles(label: &str, mut times: Vec<Duration>) {
    if times.is_empty() {
        println!("  {label:<10} -");
        return;
    }
    times.sort();
    let at = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {label:<10} p50 {:>8.1} ms  p95 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
        ms(at(0.50)),
        ms(at(0.95)),
        ms(at(0.99)),
        ms(*times.last().expect("times"))
    );
}

async fn load(clients: usize) {
    let server = Server::start(&[]);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client");
    let photo = Arc::new(png(96, 72));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (http, base, photo) = (http.clone(), server.base.clone(), photo.clone());
        tasks.push(tokio::spawn(async move {
            journey(&http, &base, &key(i % KEYS), &photo).await
        }));
    }
    let mut steps = Steps::default();
    let mut failures = Vec::new();
    for task in tasks {
        match task.await.expect("client task") {
            Ok([presign, put, job, stream, download]) => {
                steps.presign.push(presign);
                steps.put.push(put);
                steps.job.push(job);
                steps.stream.push(stream);
                steps.download.push(download);
            }
            Err(e) => failures.push(e),
        }
    }
    let all_done = started.elapsed();
    let succeeded = clients - failures.len();
    println!(
        "{clients} clients: {succeeded}/{clients} succeeded ({:.1} %), every job completed after {:.1} s, server peak memory {:.0} MiB",
        100.0 * succeeded as f64 / clients as f64,
        all_done.as_secs_f64(),
        server.peak_rss_mib()
    );
    for (label, times) in [
        ("presign", steps.presign),
        ("put", steps.put),
        ("job", steps.job),
        ("stream", steps.stream),
        ("download", steps.download),
    ] {
        percentiles(label, times);
    }
    failures.sort();
    failures.dedup();
    for failure in failures.iter().take(5) {
        println!("  failure: {failure}");
    }
}

/// p99 of `GET /status/tasks/{id}/status` with `level` clients polling for two seconds.
async fn status_p99(
    http: &reqwest::Client,
    base: &str,
    ids: &[String],
    level: usize,
) -> (Duration, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..level {
        let (http, url, stop, errors) = (
            http.clone(),
            format!("{base}/api/v1/status/tasks/{}/status", ids[i % ids.len()]),
            stop.clone(),
            errors.clone(),
        );
        let key = key(i % ids.len());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match http.get(&url).bearer_auth(&key).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        times.push(t.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            times
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await.expect("poller"));
    }
    times.sort();
    let p99 = times
        .get((times.len() * 99 / 100).min(times.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default();
    (p99, errors.load(Ordering::Relaxed))
}

async fn knee() {
    let server = Server::start(&[]);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(2000)
        .build()
        .expect("client");
    // One completed job per key, each polled by its owner.
    let photo = png(96, 72);
    let mut ids = Vec::new();
    for i in 0..20 {
        journey(&http, &server.base, &key(i), &photo)
            .await
            .expect("a job");
        let listed = ok_json(
            http.get(format!("{}/api/v1/jobs?limit=1", server.base))
                .bearer_auth(key(i))
                .send()
                .await,
            "list",
        )
        .await
        .expect("jobs");
        ids.push(
            listed["jobs"][0]["job_id"]
                .as_str()
                .expect("an id")
                .to_owned(),
        );
    }
    println!("status route (GET /status/tasks/{{id}}/status), p99 by concurrent pollers:");
    let mut knee = None;
    for level in [1, 10, 25, 50, 100, 200, 400, 800] {
        let (p99, errors) = status_p99(&http, &server.base, &ids, level).await;
        println!(
            "  {level:>4} pollers: p99 {:>7.1} ms ({errors} errors)",
            p99.as_secs_f64() * 1000.0
        );
        if knee.is_none() && p99 > Duration::from_millis(100) {
            knee = Some(level);
        }
    }
    match knee {
        Some(level) => println!("knee: p99 passes 100 ms at {level} concurrent pollers"),
        None => println!("knee: p99 stayed under 100 ms up to 800 concurrent pollers"),
    }
}

/// Retention in the soak: results and uploads older than this are deleted as the run goes, so
/// the data directory must level off (with the default day it grows by every journey).
const SOAK_RETENTION: &str = "60";

async fn soak(minutes: u64) {
    let server = Server::start(&[("RETENTION_SECONDS", SOAK_RETENTION)]);
    let http = reqwest::Client::new();
    let photo = Arc::new(png(96, 72));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // Twenty clients: each loops its journey, then polls and lists before the next.
    for i in 0..20 {
        let (http, base, photo, stop, done, failed) = (
            http.clone(),
            server.base.clone(),
            photo.clone(),
            stop.clone(),
            done.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match journey(&http, &base, &key(i), &photo).await {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
                let _ = http
                    .get(format!("{base}/api/v1/jobs?limit=20"))
                    .bearer_auth(key(i))
                    .send()
                    .await;
            }
        }));
    }
    println!("retention {SOAK_RETENTION} s");
    println!("minute  journeys  failed  rss MiB  open files  data MiB");
    for minute in 1..=minutes {
        tokio::time::sleep(Duration::from_secs(60)).await;
        println!(
            "{minute:>6}  {:>8}  {:>6}  {:>7.1}  {:>10}  {:>8.1}",
            done.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            server.rss_mib(),
            server.open_files(),
            server.data_mib()
        );
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
}

#[tokio::main]
async fn main() {
    raise_open_files();
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(minutes) = value("--soak") {
        soak(minutes.parse().expect("--soak MINUTES")).await;
        return;
    }
    let levels = value("--clients").unwrap_or_else(|| "100,1000".into());
    for clients in levels.split(',') {
        load(clients.trim().parse().expect("--clients N,N")).await;
    }
    knee().await;
}
