//! API load from outside the server's process: `wrk` (Debian's package), a C load
//! generator that takes little of the machine, with a script that gives every purchase
//! an Idempotency-Key of its own (and the next of the bodies given, in turn) and prints
//! the latency percentiles.

use std::process::Command;

/// What one load run measured.
pub struct Load {
    pub requests: u64,
    pub seconds: f64,
    /// Latency percentiles in microseconds: p50, p90, p99, p99.9, max.
    pub latency_us: [u64; 5],
    /// Answers other than 2xx, and socket errors (connect, read, write, timeout).
    pub failed: u64,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

const SCRIPT: &str = r#"
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. TOKEN
end
function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = RUN .. "-" .. id .. "-" .. counter
  return wrk.format(nil, nil, nil, BODIES[(counter % #BODIES) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, e.status + e.connect + e.read + e.write + e.timeout))
end
"#;

/// Whether `wrk` can be run here.
pub fn available() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

/// `connections` clients posting purchases to `url` for `seconds`, each the next of
/// `bodies`.
pub fn purchases(url: &str, token: &str, bodies: &[String], connections: usize, seconds: u64) -> Load {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let lua = |text: &str| format!("{text:?}");
    let bodies: Vec<String> = bodies.iter().map(|body| lua(body)).collect();
    let script = format!("BODIES = {{{}}}\nTOKEN = {}\nRUN = {}\n{SCRIPT}", bodies.join(", "), lua(token), lua(&run));
    let path = std::env::temp_dir().join(format!("dashboard-bench-{run}.lua"));
    std::fs::write(&path, script).unwrap();
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--timeout", "10s", "-s"])
        .arg(&path)
        .arg(url)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("BENCH "))
        .unwrap_or_else(|| panic!("wrk printed no figures:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    let numbers: Vec<u64> = line.split_whitespace().map(|n| n.parse().unwrap()).collect();
    Load {
        requests: numbers[0],
        seconds: numbers[1] as f64 / 1e6,
        latency_us: [numbers[2], numbers[3], numbers[4], numbers[5], numbers[6]],
        failed: numbers[7],
    }
}
