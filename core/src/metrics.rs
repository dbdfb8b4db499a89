//! Prometheus metrics at `/metrics`: requests and their latencies per route (the route's
//! template, not its path, so that ids do not make a series each), background jobs' rounds,
//! the requests in flight and the database pool. Served only with `--metrics-token` set and
//! that token as a bearer credential (404 otherwise): the figures are for the operator.

use std::sync::OnceLock;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, handler};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::hooks::Setting;

/// The setting that turns `/metrics` on.
const TOKEN_SETTING: &str = "metrics_token";

crate::register!(Setting {
    name: TOKEN_SETTING,
    help: "Bearer token a Prometheus scraper sends to read /metrics (empty: /metrics answers 404)",
    default: "",
    check: |value| {
        if value.is_empty() || value.len() >= 16 { Ok(()) } else { Err("must have at least 16 characters".to_owned()) }
    },
});

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobResultLabels {
    job: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: String,
}

type Timings<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds from 1 ms to about 16 s.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The process's metrics (one server a process, as deployed).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Timings<RouteLabels>,
    job_rounds: Family<JobResultLabels, Counter>,
    job_seconds: Timings<JobLabels>,
    in_flight: Gauge,
    pool: Family<PoolLabels, Gauge>,
}

/// The metrics of this process.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Timings::<RouteLabels>::new_with_constructor(latency_buckets);
        let job_rounds = Family::<JobResultLabels, Counter>::default();
        let job_seconds = Timings::<JobLabels>::new_with_constructor(latency_buckets);
        let in_flight = Gauge::default();
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register("http_requests", "Requests answered, by route template and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route template",
            request_seconds.clone(),
        );
        registry.register("job_rounds", "Background jobs' rounds, by result", job_rounds.clone());
        registry.register("job_round_duration_seconds", "Background jobs' rounds' time", job_seconds.clone());
        registry.register("http_requests_in_flight", "Requests being answered now", in_flight.clone());
        registry.register("db_pool_connections", "Database pool connections, by state", pool.clone());
        Metrics { registry, requests, request_seconds, job_rounds, job_seconds, in_flight, pool }
    })
}

impl Metrics {
    /// One request answered.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let (method, route) = (method.to_owned(), route.to_owned());
        self.request_seconds
            .get_or_create(&RouteLabels { method: method.clone(), route: route.clone() })
            .observe(seconds);
        self.requests.get_or_create(&RequestLabels { method, route, status }).inc();
    }

    /// One round of a background job.
    pub fn job_round(&self, job: &str, succeeded: bool, seconds: f64) {
        let result = if succeeded { "ok" } else { "failed" };
        self.job_rounds.get_or_create(&JobResultLabels { job: job.to_owned(), result: result.to_owned() }).inc();
        self.job_seconds.get_or_create(&JobLabels { job: job.to_owned() }).observe(seconds);
    }

    /// The text a scraper reads, with the gauges read now.
    fn render(&self, state: &AppState) -> String {
        let status = state.db.status();
        self.in_flight.set(i64::try_from(state.requests.in_flight_count()).unwrap_or(i64::MAX));
        for (name, value) in
            [("in_use", status.size - status.available), ("idle", status.available), ("waiting", status.waiting)]
        {
            self.pool.get_or_create(&PoolLabels { state: name.to_owned() }).set(i64::try_from(value).unwrap_or(0));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// `GET /metrics`: for the configured bearer token only.
#[handler]
pub fn scrape(req: &Request, state: Data<&AppState>) -> Response {
    let expected = state.settings.setting(TOKEN_SETTING);
    let given = req
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let allowed = !expected.is_empty()
        && given.is_some_and(|given| crate::crypto::same_secret(given.as_bytes(), expected.as_bytes()));
    if !allowed {
        return Response::builder().status(StatusCode::NOT_FOUND).finish();
    }
    Response::builder()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics().render(&state))
}
