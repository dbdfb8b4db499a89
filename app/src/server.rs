//! The poem application: every section's pages and API, the shell's own routes, and the
//! middleware around them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use dashboard_core::AppState;
use dashboard_core::api::SectionApis;
use dashboard_core::auth::{HashingTurns, PageGuard};
use dashboard_core::crypto::{CryptoError, SecretBox};
use dashboard_core::db::{DbError, DbPool};
use dashboard_core::hooks;
use dashboard_core::limits::BodyLimit;
use dashboard_core::origin::SameOriginApiWrites;
use dashboard_core::rate_limit::ApiRateLimit;
use dashboard_core::registry::{Registry, RegistryError};
use dashboard_core::security_headers::SecurityHeaders;
use dashboard_core::session::{self, SessionLoader};
use dashboard_core::sms::{FileOutbox, HttpSms, SmsError, SmsSender};
use dashboard_core::state::Settings;
use dashboard_core::theme::{Theme, ThemeError};
use dashboard_core::throttle::SignInLane;

use crate::api_document;
use crate::query_parameters::KnownQueryParameters;
use dashboard_core::web::{HtmlErrors, static_file};
use poem::endpoint::BoxEndpoint;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::middleware::{CatchPanic, CookieJarManager, Csrf};
use poem::web::cookie::SameSite;
use poem::{Endpoint, EndpointExt, Route, RouteMethod, Server, get};
use poem_openapi::OpenApiService;

use crate::config::Config;
use crate::{shell, telemetry};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error("theme: {0}")]
    Theme(#[from] ThemeError),
    #[error(transparent)]
    Secrets(#[from] CryptoError),
    #[error("SMS provider: {0}")]
    Sms(#[from] SmsError),
    #[error("cannot start the service {0}")]
    Service(String),
    #[error("the sections' API types clash: {0}")]
    Api(String),
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: String, reason: String },
}

/// A built application, listening, not yet serving.
pub struct Application {
    acceptor: TcpAcceptor,
    port: u16,
    state: AppState,
}

impl Application {
    /// Checks the registry, opens and migrates the database, loads the theme and binds
    /// the listen address (port 0 picks a free port, as tests do).
    pub async fn build(config: &Config) -> Result<Application, StartError> {
        let registry = Registry::global()?;
        check_api_document()?;
        let db = DbPool::connect(&config.database_url, config.pool_size).await?;
        db.migrate().await?;
        let theme = Theme::load(&config.theme, config.theme_dir.as_deref(), registry)?;
        let settings = Settings {
            public_url: config.public_url.clone(),
            secure_cookies: !config.plain_http,
            session_lifetime: TimeDelta::hours(i64::from(config.session_lifetime_hours)),
            idle_timeout: TimeDelta::minutes(i64::from(config.idle_timeout_minutes)),
            lockout_attempts: i32::try_from(config.lockout_attempts).unwrap_or(i32::MAX),
            lockout_duration: TimeDelta::minutes(i64::from(config.lockout_minutes)),
            strict_mode: config.strict_mode,
            sms_per_hour: config.sms_per_hour,
            crate_settings: config.crate_settings.clone(),
        };
        let extensions = hooks::start_services(&settings).map_err(StartError::Service)?;
        let hashing = HashingTurns::from_settings(&settings).map_err(StartError::Service)?;
        let secrets = SecretBox::from_key_file(&config.secret_key_file)?;
        let sms: Arc<dyn SmsSender> = match &config.sms_http_url {
            Some(url) => Arc::new(HttpSms::new(url.clone(), config.sms_http_token.clone())?),
            None => Arc::new(FileOutbox::new(config.sms_outbox.clone())),
        };
        let state = AppState {
            db,
            registry,
            theme: Arc::new(theme),
            settings: Arc::new(settings),
            sms,
            secrets,
            extensions: Arc::new(extensions),
            token_principals: Arc::default(),
            hashing: Arc::new(hashing),
            requests: Arc::default(),
        };
        let listen_error =
            |e: std::io::Error| StartError::Listen { address: config.listen.to_string(), reason: e.to_string() };
        let acceptor = TcpListener::bind(config.listen).into_acceptor().await.map_err(listen_error)?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().map(|addr| addr.port()))
            .unwrap_or(config.listen.port());
        Ok(Application { acceptor, port, state })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish (10 s at most).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        // The jobs stop with this future, however it ends.
        let _jobs = hooks::spawn_jobs(&self.state);
        let app = routes(self.state);
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, shutdown, Some(Duration::from_secs(10)))
            .await
    }
}

/// Builds the OpenAPI document once at start-up: poem-openapi panics when two sections
/// use different types of the same name, and that must stop the start, not a request.
fn check_api_document() -> Result<(), StartError> {
    std::panic::catch_unwind(|| OpenApiService::new(SectionApis, "check", "0").spec()).map(|_| ()).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "unknown clash".to_owned());
        StartError::Api(message)
    })
}

/// Every route of the application with its middleware.
pub fn routes(state: AppState) -> impl Endpoint {
    let settings = state.settings.clone();
    let api = OpenApiService::new(SectionApis, "Merchant Dashboard API", env!("CARGO_PKG_VERSION"))
        .description(
            "The HTTP API of the merchant dashboard: every action of the web UI, for integrators. \
             Each operation names the permission it requires. Errors are application/problem+json.",
        )
        .server("/api/v1");
    let document = api.spec();
    let served = api_document::with_security(&document, state.registry, session::session_cookie_name(&state));
    let reference = match crate::api_reference::page(&state.theme, &served) {
        Ok(page) => page,
        Err(error) => {
            tracing::error!(%error, "the API reference could not be drawn");
            "The API reference could not be drawn: see /api/openapi.json.".to_owned()
        }
    };
    let docs = poem::endpoint::make_sync(move |_| poem::web::Html(reference.clone()));
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder().content_type("application/json; charset=utf-8").body(served.clone())
    });
    let api = KnownQueryParameters::new(poem::IntoEndpoint::into_endpoint(api), &document);
    // Over budget is answered before anything reads the request.
    let api = ApiRateLimit::new(api, &state);

    let mut route = Route::new()
        .at("/healthz", get(shell::healthz))
        .at("/readyz", get(shell::readyz))
        .at("/metrics", get(dashboard_core::metrics::scrape))
        .at("/static/*path", get(static_file))
        .at("/api/openapi.json", spec)
        .at("/api/docs", get(docs))
        .nest("/api/v1", api);
    for (path, methods) in section_pages(state.registry) {
        route = route.at(path, methods);
    }

    // Over https, `__Host-`: only this host, over https, for every path, may set it.
    let csrf_cookie = if state.settings.secure_cookies { "__Host-dashboard_csrf" } else { "dashboard_csrf" };
    let csrf = Csrf::new().cookie_name(csrf_cookie).secure(state.settings.secure_cookies).same_site(SameSite::Strict);
    let https = state.settings.secure_cookies;
    let app = Arc::new(SessionLoader {
        inner: HtmlErrors { inner: SameOriginApiWrites { inner: BodyLimit { inner: route } } },
    });
    let (requests, registry) = (state.requests.clone(), state.registry);
    // Sessions are cookies for both (poem's CSRF middleware brings its own cookie jar).
    let app = CsrfForPages { pages: app.clone().with(csrf), api: app.with(CookieJarManager::new()) }
        .data(state)
        .with(dashboard_core::compression::Compression)
        .with(telemetry::RequestLog { requests, registry })
        .with(CatchPanic::new());
    // Anonymous credential requests take turns before anything else reads them.
    let app = SignInLane::new(app, &settings);
    SecurityHeaders { inner: app, https }
}

/// The CSRF token of poem's middleware (a cookie and a token for the forms, which the page
/// handlers check) for pages only: the API's handlers never check one, so its requests do
/// not pay for generating it.
struct CsrfForPages<P, A> {
    pages: P,
    api: A,
}

impl<P: Endpoint, A: Endpoint> Endpoint for CsrfForPages<P, A> {
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<poem::Response> {
        if req.uri().path().starts_with("/api/") {
            self.api.call(req).await.map(poem::IntoResponse::into_response)
        } else {
            self.pages.call(req).await.map(poem::IntoResponse::into_response)
        }
    }
}

/// Section pages grouped by path, each method behind the guard of its declared access.
fn section_pages(registry: &Registry) -> BTreeMap<&'static str, RouteMethod> {
    let mut by_path: BTreeMap<&'static str, RouteMethod> = BTreeMap::new();
    for section in registry.sections() {
        for page in section.pages {
            let guarded: BoxEndpoint<'static> = PageGuard { inner: (page.endpoint)(), access: page.access }.boxed();
            let methods = by_path.remove(page.path).unwrap_or_default();
            by_path.insert(page.path, methods.method(page.method.clone(), guarded));
        }
    }
    by_path
}
