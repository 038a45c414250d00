//! `h200 worker` processes for fault tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gpu_backend::queue::noop::ECHO_KIND;

use crate::common::TestDatabase;

/// A worker process and the id it registered under.
pub struct WorkerProcess {
    child: Child,
    pub id: String,
}

impl WorkerProcess {
    pub fn start(db: &TestDatabase, name: &str, lease_secs: u64) -> WorkerProcess {
        let data_dir = std::env::temp_dir().join(crate::common::unique("h200_worker"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_h200"))
            .args([
                "worker",
                "--name",
                name,
                "--kinds",
                ECHO_KIND,
                "--heartbeat-ms",
                "200",
                "--poll-ms",
                "50",
            ])
            .args(["--lease-secs", &lease_secs.to_string()])
            .env("H200_DATABASE_URL", &db.url)
            .env("H200_DATA_DIR", &data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting h200 worker");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let id = line.trim().to_owned();
        assert_eq!(id.len(), 36, "the worker prints its id first: {line:?}");
        WorkerProcess { child, id }
    }

    /// The process id (for a signal).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if it exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
