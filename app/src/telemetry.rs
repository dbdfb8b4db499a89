//! Structured logs: one line per request with a request id, also sent back as
//! `X-Request-Id` so a user's report can be matched with the log.

use std::sync::Arc;
use std::time::Instant;

use dashboard_core::pacing::Requests;
use dashboard_core::registry::Registry;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

const REQUEST_ID: &str = "x-request-id";

/// Installs the global subscriber, writing to standard output; the filter comes from
/// `DASHBOARD_LOG` (default `info`).
pub fn init(format: LogFormat) {
    init_with(format, "info", std::io::stdout);
}

/// Installs the global subscriber writing to `writer`, with the filter from
/// `DASHBOARD_LOG` or else `default_filter` (tests read the logs they cause).
pub fn init_with<W>(format: LogFormat, default_filter: &str, writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_env("DASHBOARD_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(writer);
    // A second call (tests start several applications) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Middleware: request id, span, and a log line with status and duration; the request is
/// counted as in flight meanwhile (long jobs give way to it).
pub struct RequestLog {
    pub requests: Arc<Requests>,
    /// For the route templates the metrics count by.
    pub registry: &'static Registry,
}

impl<E: Endpoint> Middleware<E> for RequestLog {
    type Output = RequestLogEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequestLogEndpoint { inner, requests: self.requests.clone(), registry: self.registry }
    }
}

pub struct RequestLogEndpoint<E> {
    inner: E,
    requests: Arc<Requests>,
    registry: &'static Registry,
}

/// A client's id is kept when it is short and plain; otherwise a new one is made.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let id = request_id(&req);
        let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
        let _answering = self.requests.begin();
        let (method, route) =
            (req.method().to_string(), self.registry.route_template(req.method().as_str(), req.uri().path()));
        async move {
            let started = Instant::now();
            let mut response = match self.inner.call(req).await {
                Ok(output) => output.into_response(),
                Err(error) => error.into_response(),
            };
            let status = response.status().as_u16();
            let seconds = started.elapsed().as_secs_f64();
            dashboard_core::metrics::metrics().request(&method, &route, status, seconds);
            let millis = seconds * 1000.0;
            if status >= 500 {
                tracing::error!(status, millis, "request failed");
            } else {
                tracing::info!(status, millis, "request");
            }
            if let Ok(value) = id.parse() {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            Ok(response)
        }
        .instrument(span)
        .await
    }
}
