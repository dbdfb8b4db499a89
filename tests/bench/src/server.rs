//! The dashboard under measurement, as a process of its own: this binary started again
//! as `dashboard-bench dashboard serve …`, so that its memory and its CPU are its own and
//! the load comes from outside.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub address: String,
}

impl Server {
    /// Starts the server on `database_url` with the files of the test application in
    /// `dir` (its secret key) and more flags of `dashboard serve`, and waits until it
    /// answers `/readyz`.
    pub async fn start_with(database_url: &str, dir: &Path, flags: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .arg("dashboard")
            .args(["--database-url", database_url, "serve", "--plain-http", "true"])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--public-url", &address])
            .arg("--secret-key-file")
            .arg(dir.join("secret.key"))
            .arg("--sms-outbox")
            .arg(dir.join("sms-outbox.jsonl"))
            // The load generator is not a person: no API budgets.
            .args(["--api-requests-per-second", "0", "--api-requests-per-second-per-address", "0"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server { child, address };
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            let ready = client.get(format!("{}/readyz", server.address)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "the server did not start; see {}", dir.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The server's resident memory now and its peak since the last reset, in MiB, as
    /// the kernel reports them.
    pub fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib = |key: &str| -> f64 {
            status
                .lines()
                .find(|line| line.starts_with(key))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
                .unwrap_or(0.0)
        };
        (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
    }

    /// Starts a new peak of the resident memory ("5": Linux ≥ 4.0).
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    /// Stops the server as an operator would (SIGTERM) and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
