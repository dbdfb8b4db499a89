//! The test harness: start the real application on port 0 with a fresh database and talk
//! to it over HTTP like a client would.
//!
//! Every story runs on SQLite, and on PostgreSQL when `DASHBOARD_TEST_POSTGRES` holds the
//! URL of a server where the tests may create databases, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`. Under `CI=true` that variable is
//! required, so that a CI run cannot silently skip PostgreSQL.
#![allow(clippy::unwrap_used)]

pub mod browser;

use std::path::PathBuf;

use dashboard::config::{Config, LogFormat};
use dashboard::server::Application;
use dashboard_core::AppState;
use dashboard_core::BuiltinRole;
use dashboard_core::directory::{self, NewUser};
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
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = $crate::TestApp::spawn($crate::Backend::Sqlite).await {
                    super::$name(app).await
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::TestApp::spawn($crate::Backend::Postgres).await {
                    super::$name(app).await
                }
            }
        }
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
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions { theme: "default".to_owned(), theme_dir: None, plain_http: true }
    }
}

/// A running application and a client with its own cookie jar.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub backend: Backend,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
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

/// A configuration for a test application on a free port.
pub fn test_config(database_url: String, options: &TestOptions) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url,
        theme: options.theme.clone(),
        theme_dir: options.theme_dir.clone(),
        public_url: "http://127.0.0.1".to_owned(),
        plain_http: options.plain_http,
        session_lifetime_hours: 12,
        pool_size: 8,
        log_format: LogFormat::Text,
    }
}

impl TestApp {
    /// Starts the application on `backend` with the default options.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, TestOptions::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: TestOptions) -> Option<TestApp> {
        let database_url = fresh_database(backend).await?;
        let config = test_config(database_url, &options);
        let app = Application::build(&config).await.unwrap_or_else(|e| panic!("the application did not start: {e}"));
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Some(TestApp { address, client: new_client(), state, backend, shutdown: Some(shutdown) })
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
        let new = NewUser {
            company_id,
            username: username.to_owned(),
            display_name: Some(format!("{username} tester")),
            password: PASSWORD.to_owned(),
            role,
            phone: None,
        };
        directory::create_user(&self.state.db, new).await.unwrap().id
    }
}

async fn csrf_token_for(client: &reqwest::Client, url: &str) -> String {
    let html = client.get(url).send().await.unwrap().text().await.unwrap();
    form_value(&html, "csrf_token").unwrap_or_else(|| panic!("no CSRF token on {url}"))
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
