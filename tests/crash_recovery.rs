//! Crashes for real: the local server as a child process, killed with SIGKILL (no shutdown, no
//! flush) while it works, and started again on the same data directory. Whatever a kill cuts
//! short must end exactly once: every job completed with one model and one preview, its
//! attempts counted, nothing in the dead letters, the database intact, no temp file left. The
//! lease is two seconds and the sweeper runs every second, so the test takes seconds.

use image2model_tests::process::ServerProcess;
use image2model_tests::{ADMIN, ALICE, noisy_png};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_local-server");

fn crashable_server() -> ServerProcess {
    ServerProcess::start(
        SERVER,
        &[
            ("VISIBILITY_TIMEOUT_SECONDS", "2"),
            ("SWEEP_INTERVAL_SECONDS", "1"),
            ("WORKER_CONCURRENCY", "2"),
        ],
    )
}

async fn get(client: &reqwest::Client, server: &ServerProcess, key: &str, path: &str) -> Value {
    let response = client
        .get(format!("{}{path}", server.base))
        .bearer_auth(key)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the server answers");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

/// Every job of the test, by id.
async fn jobs(client: &reqwest::Client, server: &ServerProcess) -> BTreeMap<String, Value> {
    let listed = get(client, server, ALICE, "/api/v1/jobs?limit=100").await;
    listed["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| (j["job_id"].as_str().unwrap().to_owned(), j.clone()))
        .collect()
}

/// Waits (at most `within`) until `holds` is true of the jobs, and returns them.
async fn wait_for_jobs(
    client: &reqwest::Client,
    server: &ServerProcess,
    within: Duration,
    holds: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + within;
    loop {
        let jobs = jobs(client, server).await;
        if holds(&jobs) {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "not reached within {within:?}: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The first column of a query on the (stopped) server's database.
fn in_database(server: &ServerProcess, sql: &str) -> Vec<String> {
    let db = rusqlite::Connection::open(server.dir.path().join("image2model.db")).unwrap();
    let mut statement = db.prepare(sql).unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn integrity(server: &ServerProcess) -> String {
    let db = rusqlite::Connection::open(server.dir.path().join("image2model.db")).unwrap();
    db.query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn jobs_cut_short_by_sigkill_end_exactly_once_after_restarts() {
    let client = reqwest::Client::new();
    let mut server = crashable_server();
    let photo = noisy_png(800, 600);
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(server.upload_with_job(&client, &photo, "image/png").await);
    }

    // Two kills, each while a job runs: the first during a first run, the second during a run
    // that took over a job the first kill cut short. Which jobs each kill cut short is read
    // from the database once the process is dead.
    let mut interrupted = std::collections::BTreeSet::new();
    for round in 0..2 {
        wait_for_jobs(&client, &server, Duration::from_secs(120), |jobs| {
            jobs.values()
                .any(|j| j["status"] == "processing" && j["attempts"].as_u64().unwrap_or(0) > round)
        })
        .await;
        server.kill();
        // A run is a job and its attempt: a job still marked processing by a run an earlier
        // kill cut (not yet taken over) is the same run, not a second one.
        let cut = in_database(
            &server,
            "SELECT job_id || '#' || json_extract(body, '$.attempts') FROM jobs \
             WHERE status = 'processing'",
        );
        assert!(!cut.is_empty(), "the kill cut a job short");
        interrupted.extend(cut);
        server.restart();
    }

    let done = wait_for_jobs(&client, &server, Duration::from_secs(240), |jobs| {
        ids.iter().all(|id| {
            jobs.get(id).is_some_and(|j| {
                ["completed", "failed", "cancelled"].contains(&j["status"].as_str().unwrap())
            })
        })
    })
    .await;
    for id in &ids {
        let job = &done[id];
        assert_eq!(job["status"], "completed", "{job}");
        // Each run counts: one more for each kill that cut it short, never more.
        let attempts = job["attempts"].as_u64().unwrap();
        let cut = interrupted
            .iter()
            .filter(|run| run.split('#').next() == Some(id.as_str()))
            .count() as u64;
        assert!(
            (1 + cut..=3).contains(&attempts),
            "{cut} runs cut short, {attempts} attempts: {job}"
        );
        // One model and one preview, whatever number of runs wrote them.
        let results = server.dir.path().join("objects/data/results").join(id);
        let mut stored: Vec<String> = std::fs::read_dir(&results)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        stored.sort();
        assert_eq!(stored, ["model.glb", "preview.png"], "{id}");
        let model = std::fs::read(results.join("model.glb")).unwrap();
        assert_eq!(&model[..4], b"glTF");
        assert_eq!(
            u32::from_le_bytes(model[8..12].try_into().unwrap()) as usize,
            model.len(),
            "a whole GLB"
        );
    }
    let dead = get(&client, &server, ADMIN, "/api/v1/admin/dead-letters").await;
    assert_eq!(dead["count"], 0, "{dead}");

    // Killed once more at rest: the database is intact and nothing is left half-written.
    server.kill();
    assert_eq!(integrity(&server), "ok");
    assert!(
        server.stored_files("tmp").is_empty(),
        "{:?}",
        server.stored_files("tmp")
    );
}

/// An upload cut by SIGKILL halfway stores nothing, and its grant still works after the
/// restart; an upload whose 200 came just before the kill (its ingestion still running) is
/// kept and ingested by the next start.
#[tokio::test]
async fn uploads_cut_by_sigkill_store_nothing_half_written() {
    let client = reqwest::Client::new();
    let mut server = crashable_server();
    // Big enough that ingesting it (decoding included) is still under way at the kill.
    let photo = noisy_png(2000, 1500);
    let presign = |n: usize| {
        let files: Vec<Value> = (0..n)
            .map(|_| json!({"filename": "a.png", "content_type": "image/png", "size": photo.len()}))
            .collect();
        client
            .post(format!("{}/api/v1/uploads/presign", server.base))
            .bearer_auth(ALICE)
            .json(&json!({ "files": files }))
            .send()
    };
    let presigned: Value = presign(2).await.unwrap().json().await.unwrap();
    let cut = presigned["files"][0].clone();
    let whole = presigned["files"][1].clone();

    // The whole one first: answered 200, then the process dies at once.
    let sent = client
        .put(whole["upload"]["url"].as_str().unwrap())
        .header("content-type", "image/png")
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success());
    // The cut one: headers and half the body, then the kill.
    let url = reqwest::Url::parse(cut["upload"]["url"].as_str().unwrap()).unwrap();
    let mut socket = std::net::TcpStream::connect(url.socket_addrs(|| None).unwrap()[0]).unwrap();
    use std::io::Write;
    write!(
        socket,
        "PUT {}?{} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        url.path(),
        url.query().unwrap(),
        photo.len()
    )
    .unwrap();
    socket.write_all(&photo[..photo.len() / 2]).unwrap();
    socket.flush().unwrap();
    let base = server.base.clone();
    server.kill();
    drop(socket);
    let whole_id = whole["file_id"].as_str().unwrap();
    assert_eq!(
        in_database(
            &server,
            &format!("SELECT status FROM files WHERE file_id = '{whole_id}'")
        ),
        ["pending"],
        "killed before its ingestion finished"
    );
    server.restart();

    // After the restart: the whole upload is ingested; the cut one left no object and no temp
    // file, its file is still pending, and its grant still works.
    let file = |id: &str| format!("/api/v1/files/{id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let settled = get(
            &client,
            &server,
            ALICE,
            &file(whole["file_id"].as_str().unwrap()),
        )
        .await;
        if settled["status"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "never ingested: {settled}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pending = get(
        &client,
        &server,
        ALICE,
        &file(cut["file_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(pending["status"], "pending", "{pending}");
    let key = format!("uploads/alice/{}", cut["file_id"].as_str().unwrap());
    assert!(!server.dir.path().join("objects/data").join(&key).exists());
    assert!(server.stored_files("tmp").is_empty());
    let again = cut["upload"]["url"]
        .as_str()
        .unwrap()
        .replace(&base, &server.base);
    let sent = client
        .put(again)
        .header("content-type", "image/png")
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success(), "{}", sent.status());
    server.kill();
    assert_eq!(integrity(&server), "ok");
}
