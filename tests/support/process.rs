//! The local server as a child process, started exactly as `cargo run -p image2model-local`
//! starts it, which a test can signal, limit, kill with SIGKILL and start again on the same data
//! directory.

use crate::{ADMIN, ALICE};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Spawns the server and reads the address it listens on.
fn spawn(exe: &str, dir: &std::path::Path, env: &[(String, String)]) -> (Child, String) {
    let mut child = Command::new(exe)
        .env("PORT", "0")
        .env("DATA_DIR", dir)
        .env("API_KEYS", format!("alice:{ALICE}"))
        .env("ADMIN_API_KEY", ADMIN)
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the local server starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server says where it listens")
            .expect("a line");
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

/// The local server as a child process, with its own data directory.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    exe: String,
    env: Vec<(String, String)>,
}

impl ServerProcess {
    /// Starts `exe` (a test's `env!("CARGO_BIN_EXE_local-server")`) on a free port with a new
    /// data directory, the test keys, and `env`.
    pub fn start(exe: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (child, base) = spawn(exe, dir.path(), &env);
        Self {
            child,
            base,
            dir,
            exe: exe.to_owned(),
            env,
        }
    }

    /// Kills the process with SIGKILL (no shutdown of any kind) and starts it again on the same
    /// data directory.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// Starts the process again on the same data directory (after [`Self::kill`]).
    pub fn restart(&mut self) {
        let (child, base) = spawn(&self.exe, self.dir.path(), &self.env);
        self.child = child;
        self.base = base;
    }

    /// SIGKILL, and the process reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Presigns `photo` (of `content_type`) with a job, uploads it with the grant, and returns
    /// the job's id.
    pub async fn upload_with_job(
        &self,
        client: &reqwest::Client,
        photo: &[u8],
        content_type: &str,
    ) -> String {
        let file = serde_json::json!({"filename": "photo", "content_type": content_type, "size": photo.len()});
        let presigned: serde_json::Value = client
            .post(format!("{}/api/v1/uploads/presign", self.base))
            .bearer_auth(ALICE)
            .json(&serde_json::json!({"files": [file], "generate": {}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entry = &presigned["files"][0];
        let sent = client
            .put(entry["upload"]["url"].as_str().expect("an upload URL"))
            .header("content-type", content_type)
            .body(photo.to_vec())
            .send()
            .await
            .unwrap();
        assert!(sent.status().is_success(), "{}", sent.status());
        entry["job_id"].as_str().unwrap().to_owned()
    }

    /// Peak resident memory of the process, in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib / 1024.0
    }

    /// Sets the largest file the server may write, from outside, as `prlimit` does: a write past
    /// it fails as on a full disk. `None` lifts the limit.
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        let pid = self.child.id() as libc::pid_t;
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit reads and writes only the structs passed to it, for our own child.
        unsafe {
            assert_eq!(
                libc::prlimit(pid, libc::RLIMIT_FSIZE, std::ptr::null(), &mut current),
                0
            );
            let limit = libc::rlimit {
                rlim_cur: bytes.map_or(current.rlim_max, |b| b.min(current.rlim_max)),
                rlim_max: current.rlim_max,
            };
            assert_eq!(
                libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()),
                0
            );
        }
    }

    /// The files under a folder of the server's object storage (`data`, `tmp`).
    pub fn stored_files(&self, folder: &str) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![self.dir.path().join("objects").join(folder)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    found.push(path);
                }
            }
        }
        found
    }

    pub fn terminate(&mut self) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
