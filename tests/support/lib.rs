//! The test harness: start the real application on port 0 with a fresh database and talk
//! to it over HTTP like a client would.
//!
//! Every story runs on SQLite, and on PostgreSQL when `DASHBOARD_TEST_POSTGRES` holds the
//! URL of a server where the tests may create databases, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`. Under `CI=true` that variable is
//! required, so that a CI run cannot silently skip PostgreSQL.
#![allow(clippy::unwrap_used)]

pub mod axe;
pub mod browser;
pub mod logs;

use std::path::PathBuf;

use dashboard::config::{Config, LogFormat};
use dashboard::server::Application;
use dashboard_core::AppState;
use dashboard_core::BuiltinRole;
use dashboard_core::directory::{self, NewUser};
use dashboard_core::second_factor;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::sync::oneshot;

pub use reqwest;

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a story once per backend: `story!(name);` expects `async fn name(app: TestApp)`.
#[macro_export]
macro_rules! story {
    ($name:ident) => {
        $crate::story!($name, $crate::TestOptions::default());
    };
    // With the application started with `$options` (a `TestOptions`).
    ($name:ident, $options:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = $crate::TestApp::spawn_with($crate::Backend::Sqlite, $options).await {
                    super::$name(app).await
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::TestApp::spawn_with($crate::Backend::Postgres, $options).await {
                    super::$name(app).await
                }
            }
        }
    };
}

/// Runs a diesel query on a test application's database, e.g. to age a session:
/// `query!(app, conn => sessions::table.count().get_result::<i64>(conn).await)`.
#[macro_export]
macro_rules! query {
    ($app:expr, $conn:ident => $body:expr) => {
        async { Ok::<_, dashboard_core::AppError>(dashboard_core::db_run!($app.state.db, $conn => $body)?) }
            .await
            .unwrap()
    };
}

/// Options for starting a test application.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub theme: String,
    pub theme_dir: Option<PathBuf>,
    /// Cookies without `Secure` (the explicit plain-HTTP development mode), so that the
    /// HTTP client sends them to 127.0.0.1.
    pub plain_http: bool,
    pub strict_mode: bool,
    pub idle_timeout_minutes: u32,
    /// Send SMS through this provider URL instead of the outbox file.
    pub sms_http_url: Option<String>,
    /// Callbacks to public HTTPS hosts only, as in production (the tests' receivers
    /// listen on 127.0.0.1, so the others allow private addresses).
    pub public_callbacks_only: bool,
    /// Settings of the crates (`hooks::Setting`) other than their defaults.
    pub settings: Vec<(&'static str, String)>,
}

impl TestOptions {
    /// The default options with one crate setting changed.
    pub fn with_setting(name: &'static str, value: &str) -> TestOptions {
        TestOptions { settings: vec![(name, value.to_owned())], ..TestOptions::default() }
    }
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            theme: "default".to_owned(),
            theme_dir: None,
            plain_http: true,
            strict_mode: false,
            idle_timeout_minutes: 30,
            sms_http_url: None,
            public_callbacks_only: false,
            settings: Vec::new(),
        }
    }
}

/// A running application and a client with its own cookie jar. A clone from
/// [`TestApp::another_browser`] shares the application; it stops with the last clone.
#[derive(Clone)]
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub backend: Backend,
    /// The application's own folder: SMS outbox, secret key.
    pub dir: PathBuf,
    pub database_url: String,
    files: std::sync::Arc<TestFiles>,
    _shutdown: std::sync::Arc<Shutdown>,
}

/// A test application's folder and SQLite file, removed when the last holder lets go (kept
/// after a failure, to look at). Thousands of stories must not fill the disk.
pub struct TestFiles {
    pub dir: PathBuf,
    pub database_url: String,
}

impl Drop for TestFiles {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(path) = self.database_url.strip_prefix("sqlite://") {
            for suffix in ["", "-wal", "-shm", ".analytics-lock"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
}

/// Stops the application when dropped.
struct Shutdown(Option<oneshot::Sender<()>>);

impl Drop for Shutdown {
    fn drop(&mut self) {
        if let Some(shutdown) = self.0.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A fresh database URL for `backend`, or `None` when PostgreSQL is not configured here.
pub async fn fresh_database(backend: Backend) -> Option<String> {
    let name = format!("dashboard_test_{}", uuid::Uuid::new_v4().simple());
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("dashboard-tests");
            std::fs::create_dir_all(&dir).unwrap();
            Some(format!("sqlite://{}", dir.join(format!("{name}.db")).display()))
        }
        Backend::Postgres => {
            let Ok(admin_url) = std::env::var("DASHBOARD_TEST_POSTGRES") else {
                assert!(
                    std::env::var("CI").is_err(),
                    "CI must run the PostgreSQL stories: set DASHBOARD_TEST_POSTGRES"
                );
                eprintln!("skipped on PostgreSQL: DASHBOARD_TEST_POSTGRES is not set");
                return None;
            };
            let mut admin = AsyncPgConnection::establish(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("cannot reach DASHBOARD_TEST_POSTGRES ({admin_url}): {e}"));
            admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
            let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin_url);
            Some(format!("{base}/{name}"))
        }
    }
}

/// A folder of its own for one test application.
pub fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("dashboard-tests").join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A configuration for a test application on a free port, with its files in `dir`.
pub fn test_config(database_url: String, dir: &std::path::Path, options: &TestOptions) -> Config {
    Config {
        idle_timeout_minutes: options.idle_timeout_minutes,
        lockout_attempts: 5,
        lockout_minutes: 30,
        strict_mode: options.strict_mode,
        sms_outbox: dir.join("sms-outbox.jsonl"),
        sms_http_url: options.sms_http_url.clone(),
        sms_http_token: Some("test-provider-token".to_owned()),
        sms_per_hour: 5,
        secret_key_file: dir.join("secret.key"),
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url,
        theme: options.theme.clone(),
        theme_dir: options.theme_dir.clone(),
        public_url: "http://127.0.0.1".to_owned(),
        plain_http: options.plain_http,
        session_lifetime_hours: 12,
        pool_size: 8,
        log_format: LogFormat::Text,
        crate_settings: [
            ("callbacks_to_private_addresses", (!options.public_callbacks_only).to_string()),
            ("reports_dir", dir.join("reports").display().to_string()),
            ("mail_outbox", dir.join("mail-outbox").display().to_string()),
            ("evidence_dir", dir.join("evidence").display().to_string()),
            // Stories send requests faster than people: the limits have a story of their own.
            ("api_requests_per_second", "0".to_owned()),
            ("api_requests_per_second_per_address", "0".to_owned()),
            ("pay_attempts_per_minute_per_address", "0".to_owned()),
            ("pay_attempts_per_minute_per_link", "0".to_owned()),
        ]
        .into_iter()
        .chain(options.settings.iter().cloned())
        .collect(),
    }
}

impl TestApp {
    /// Starts the application on `backend` with the default options.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, TestOptions::default()).await
    }

    /// Stops this application and starts a new one on the same database and folder (the
    /// other handles of this application must be gone).
    pub async fn restart(self) -> TestApp {
        let (backend, files) = (self.backend, self.files.clone());
        drop(self);
        TestApp::start(backend, files, TestOptions::default()).await
    }

    /// Keeps this application's folder and database after it stops, for a story that goes
    /// on with them (e.g. with a server of its own), until the returned handle is dropped.
    pub fn hold_files(&self) -> std::sync::Arc<TestFiles> {
        self.files.clone()
    }

    pub async fn spawn_with(backend: Backend, options: TestOptions) -> Option<TestApp> {
        logs::watch();
        let database_url = fresh_database(backend).await?;
        let files = std::sync::Arc::new(TestFiles { dir: fresh_dir(), database_url });
        Some(TestApp::start(backend, files, options).await)
    }

    async fn start(backend: Backend, files: std::sync::Arc<TestFiles>, options: TestOptions) -> TestApp {
        let (dir, database_url) = (files.dir.clone(), files.database_url.clone());
        let config = test_config(database_url.clone(), &dir, &options);
        let app = Application::build(&config).await.unwrap_or_else(|e| panic!("the application did not start: {e}"));
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let shutdown = std::sync::Arc::new(Shutdown(Some(shutdown)));
        TestApp { address, client: new_client(), state, backend, dir, database_url, files, _shutdown: shutdown }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client.post(self.url(path)).form(fields).send().await.unwrap()
    }

    /// The CSRF token of the forms on `path` (this also sets the CSRF cookie).
    pub async fn csrf_token(&self, path: &str) -> String {
        csrf_token_for(&self.client, &self.url(path)).await
    }

    /// Signs in through the form, like a browser.
    pub async fn sign_in(&self, username: &str, password: &str) -> reqwest::Response {
        self.sign_in_with(&self.client, username, password).await
    }

    /// Another client (another browser), signed in as `username` with [`PASSWORD`].
    pub async fn signed_in_client(&self, username: &str) -> reqwest::Client {
        let client = new_client();
        let response = self.sign_in_with(&client, username, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{username} could not sign in");
        client
    }

    async fn sign_in_with(&self, client: &reqwest::Client, username: &str, password: &str) -> reqwest::Response {
        let token = csrf_token_for(client, &self.url("/sign-in")).await;
        let fields = [("username", username), ("password", password), ("csrf_token", token.as_str())];
        client.post(self.url("/sign-in")).form(&fields).send().await.unwrap()
    }

    /// A new client for the same application (another browser).
    pub fn another_client(&self) -> reqwest::Client {
        new_client()
    }

    /// The same application through `client` (e.g. one whose cookie jar outlives it).
    pub fn with_client(self, client: reqwest::Client) -> TestApp {
        TestApp { client, ..self }
    }

    /// The same application seen from another browser, with its own cookies.
    pub fn another_browser(&self) -> TestApp {
        TestApp { client: new_client(), ..self.clone() }
    }

    /// Creates a company with `projects` projects; returns its id and the project ids.
    pub async fn company(&self, name: &str, projects: &[&str]) -> (i64, Vec<i64>) {
        let company = directory::create_company(&self.state.db, name).await.unwrap();
        let mut ids = Vec::new();
        for project in projects {
            ids.push(directory::create_project(&self.state.db, company.id, project).await.unwrap().id);
        }
        (company.id, ids)
    }

    /// Creates a user with a built-in role and the password [`PASSWORD`].
    pub async fn user(&self, company_id: i64, username: &str, role: BuiltinRole) -> i64 {
        self.user_with_phone(company_id, username, role, None).await
    }

    pub async fn user_with_phone(
        &self,
        company_id: i64,
        username: &str,
        role: BuiltinRole,
        phone: Option<&str>,
    ) -> i64 {
        let new = NewUser {
            company_id,
            username: username.to_owned(),
            display_name: Some(format!("{username} tester")),
            password: PASSWORD.to_owned(),
            role,
            phone: phone.map(str::to_owned),
        };
        directory::create_user(&self.state.db, new).await.unwrap().id
    }

    /// The text messages sent so far, oldest first: (to, text).
    pub fn sms_outbox(&self) -> Vec<(String, String)> {
        let Ok(text) = std::fs::read_to_string(self.dir.join("sms-outbox.jsonl")) else { return Vec::new() };
        text.lines()
            .map(|line| {
                let message: serde_json::Value = serde_json::from_str(line).unwrap();
                (message["to"].as_str().unwrap().to_owned(), message["text"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    /// The 6-digit code of the last text message sent to `phone`.
    pub fn last_sms_code(&self, phone: &str) -> String {
        let (_, text) = self.sms_outbox().into_iter().rev().find(|(to, _)| to == phone).expect("an SMS to that phone");
        first_code(&text).expect("a code in the SMS")
    }

    /// Sets up the second factor of a user with a phone, through the same services as
    /// the profile page; returns the base32 secret (the "authenticator app").
    pub async fn enable_second_factor(&self, user_id: i64, phone: &str) -> Authenticator {
        second_factor::send_activation_code(&self.state, user_id).await.unwrap();
        let enrolment = second_factor::activate(&self.state, user_id, &self.last_sms_code(phone)).await.unwrap();
        let mut authenticator = Authenticator::new(&enrolment.secret);
        authenticator.recovery_codes =
            second_factor::enable(&self.state, user_id, &authenticator.code(), None).await.unwrap();
        authenticator
    }

    /// A user of `role` with a phone and the second factor on; signs this client in
    /// with password and code.
    pub async fn sign_in_with_second_factor(
        &self,
        company_id: i64,
        username: &str,
        role: BuiltinRole,
    ) -> Authenticator {
        let phone = format!("+4477009{:05}", rand_suffix());
        let user_id = self.user_with_phone(company_id, username, role, Some(&phone)).await;
        let authenticator = self.enable_second_factor(user_id, &phone).await;
        let response = self.sign_in(username, PASSWORD).await;
        assert_eq!(location(response.headers()), "/sign-in/second-factor");
        let response = self.submit_code(&authenticator.code()).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "the code was refused");
        authenticator
    }

    /// Posts a second-factor code on the sign-in page.
    pub async fn submit_code(&self, code: &str) -> reqwest::Response {
        let token = self.csrf_token("/sign-in/second-factor").await;
        self.post_form("/sign-in/second-factor", &[("code", code), ("csrf_token", &token)]).await
    }
}

/// The CSRF token of the forms on `url` as `client` sees them (this also sets its CSRF cookie).
pub async fn csrf_token_for(client: &reqwest::Client, url: &str) -> String {
    let html = client.get(url).send().await.unwrap().text().await.unwrap();
    form_value(&html, "csrf_token").unwrap_or_else(|| panic!("no CSRF token on {url}"))
}

fn rand_suffix() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32 % 100_000
}

/// The first run of exactly 6 digits in `text` (not part of a longer number).
pub fn first_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(5))
        .find(|&i| {
            bytes[i..i + 6].iter().all(u8::is_ascii_digit)
                && (i == 0 || !bytes[i - 1].is_ascii_digit())
                && (i + 6 == bytes.len() || !bytes[i + 6].is_ascii_digit())
        })
        .map(|i| text[i..i + 6].to_owned())
}

/// A test's authenticator app. Each code is for a later time step than the one before
/// (the server accepts each step once), starting at the current one: at most three
/// codes within 30 seconds, as the server allows one step of drift.
pub struct Authenticator {
    totp: totp_rs::Totp,
    next_offset: std::sync::atomic::AtomicU64,
    /// The recovery codes shown when the second factor was enabled.
    pub recovery_codes: Vec<String>,
}

impl Authenticator {
    pub fn new(secret_base32: &str) -> Authenticator {
        let secret = totp_rs::Secret::try_from_base32(secret_base32).unwrap();
        let totp = totp_rs::Builder::new().with_secret(secret.to_vec()).build().unwrap();
        Authenticator { totp, next_offset: std::sync::atomic::AtomicU64::new(0), recovery_codes: Vec::new() }
    }

    /// The next code the server has not seen.
    pub fn code(&self) -> String {
        let offset = self.next_offset.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert!(offset <= 1, "a test may use two codes per 30 seconds");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        self.totp.generate(now + offset * 30).to_string()
    }

    /// The code of the current step again (for replay tests).
    pub fn current(&self) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        self.totp.generate(now).to_string()
    }
}

fn new_client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The value of the form field `name` in `html`, with HTML entities decoded.
pub fn form_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(decode_entities(&html[start..end]))
}

fn decode_entities(text: &str) -> String {
    text.replace("&#x3D;", "=").replace("&#x2F;", "/").replace("&quot;", "\"").replace("&amp;", "&")
}

/// The `Location` header of a redirect.
pub fn location(headers: &HeaderMap) -> String {
    headers.get(reqwest::header::LOCATION).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}
