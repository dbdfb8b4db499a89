//! The operator's command line, run as a user would run it.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

struct Cli {
    database_url: String,
}

/// Each test's database goes with it (kept after a failure, to look at).
impl Drop for Cli {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.database_file()));
            }
        }
    }
}

impl Cli {
    fn new() -> Cli {
        let dir = std::env::temp_dir().join("dashboard-cli-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()));
        Cli { database_url: format!("sqlite://{}", file.display()) }
    }

    fn database_file(&self) -> &str {
        self.database_url.trim_start_matches("sqlite://")
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dashboard"))
            .args(args)
            .env("DASHBOARD_DATABASE_URL", &self.database_url)
            .env_remove("DASHBOARD_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed with `--json`; returns its one JSON line.
    fn json(&self, args: &[&str], stdin: &str) -> Value {
        let output = self.run(args, stdin);
        assert!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
        serde_json::from_str(&stdout).unwrap()
    }

    fn fails(&self, args: &[&str], stdin: &str) -> (i32, String) {
        let output = self.run(args, stdin);
        assert!(!output.status.success(), "{args:?} should fail");
        (output.status.code().unwrap(), String::from_utf8(output.stderr).unwrap())
    }
}

#[test]
fn the_operator_creates_a_company_a_project_and_a_user() {
    let cli = Cli::new();
    let company = cli.json(&["company", "create", "--name", "Acme Ltd", "--json"], "");
    assert_eq!(company["name"], "Acme Ltd");
    let company_id = company["id"].as_i64().unwrap().to_string();

    let project = cli.json(&["project", "create", "--company", &company_id, "--name", "Web shop", "--json"], "");
    assert_eq!(project["name"], "Web shop");
    assert_eq!(project["company_id"].to_string(), company_id);

    let user = cli.json(
        &["user", "create", "--company", &company_id, "--username", "Alice", "--role", "finance"]
            .into_iter()
            .chain(["--phone", "+44 7700 900123", "--password-stdin", "--json"])
            .collect::<Vec<_>>(),
        "a long enough password\n",
    );
    assert_eq!(user["username"], "alice");
    assert_eq!(user["phone"], "+447700900123");
    assert_eq!(user["roles"], serde_json::json!(["Finance"]));
    assert!(user.get("password_hash").is_none(), "the hash is never printed");

    let text = cli.run(&["company", "create", "--name", "Globex"], "");
    assert!(String::from_utf8(text.stdout).unwrap().starts_with("Created company "));
}

#[test]
fn bad_input_is_refused_with_a_clear_message_and_changes_nothing() {
    let cli = Cli::new();
    let company = cli.json(&["company", "create", "--name", "Acme", "--json"], "");
    let id = company["id"].to_string();

    let (code, message) = cli.fails(&["company", "create", "--name", "Acme"], "");
    assert_eq!(code, 1);
    assert!(message.contains("A company named \"Acme\" already exists."), "{message}");

    let (_, message) = cli.fails(&["project", "create", "--company", "999", "--name", "X"], "");
    assert!(message.contains("There is no company with id 999."), "{message}");

    let user_args = ["user", "create", "--company", &id, "--username", "bob", "--role", "support", "--password-stdin"];
    let (_, message) = cli.fails(&user_args, "short\n");
    assert!(message.contains("at least 10 characters"), "{message}");
    let (_, message) = cli.fails(&user_args, "password1234\n");
    assert!(message.contains("too common or too easy to guess"), "{message}");
    let (_, message) = cli.fails(&[&user_args[..], &["--phone", "07700 900123"]].concat(), "a long enough password");
    assert!(message.contains("international format"), "{message}");
    let (code, message) =
        cli.fails(&["user", "create", "--company", &id, "--username", "bob", "--role", "boss", "--password-stdin"], "");
    assert_eq!(code, 2);
    assert!(message.contains("unknown role \"boss\""), "{message}");

    // None of the refused users exists: the name is still free.
    cli.json(&[&user_args[..], &["--json"]].concat(), "a long enough password");
}

#[test]
fn the_demo_is_idempotent_and_says_how_to_sign_in() {
    let cli = Cli::new();
    for _ in 0..2 {
        let output = cli.run(&["demo"], "");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.contains("http://127.0.0.1:8080/sign-in"), "{stdout}");
        assert!(stdout.contains("admin") && stdout.contains("demo-password"), "{stdout}");
    }
    let (_, message) = cli.fails(&["company", "create", "--name", "Demo Merchant"], "");
    assert!(message.contains("already exists"), "one demo company after two runs: {message}");
    let (_, message) = cli.fails(&["project", "create", "--company", "1", "--name", "Web shop"], "");
    assert!(message.contains("already has a project named \"Web shop\""), "{message}");
}

#[test]
fn invalid_configuration_is_refused_before_anything_starts() {
    let cli = Cli::new();
    let output = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .args(["serve"])
        .env("DASHBOARD_DATABASE_URL", &cli.database_url)
        .env("DASHBOARD_LISTEN", "everywhere")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8(output.stderr).unwrap();
    assert!(message.contains("invalid configuration") && message.contains("DASHBOARD_LISTEN"), "{message}");
    assert!(cli.run(&["migrate"], "").status.success());
}

#[test]
fn a_sandbox_chargeback_of_an_unknown_payment_is_refused() {
    let cli = Cli::new();
    let args = ["sandbox", "chargeback", "pay_unknown", "--reason-code", "10.4", "--reason", "Fraud"];
    let (code, message) = cli.fails(&args, "");
    assert_eq!(code, 1);
    assert!(message.contains("Not found."), "{message}");
}
