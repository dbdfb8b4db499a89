//! Query parameters the API does not know are refused (400), not ignored: a misspelt
//! filter (`?satus=declined`) would otherwise answer every payment, and an export would
//! send them all. What each operation knows comes from the OpenAPI document itself. A
//! parameter given with no value (`?from=&to=2026-11-30`, as forms and many clients send
//! unused fields) counts as not given.

use std::collections::{BTreeSet, HashMap};

use dashboard_core::AppError;
use dashboard_core::registry::path_fits;
use poem::{Endpoint, IntoResponse, Request, Response};

/// The query parameters of each operation: (method, path template such as
/// `/payments/{id}`) → names.
type Known = HashMap<(String, String), BTreeSet<String>>;

/// Refuses a request to `inner` (the API under `/api/v1`) that carries a query parameter
/// its operation does not declare.
pub struct KnownQueryParameters<E> {
    inner: E,
    known: Known,
}

impl<E> KnownQueryParameters<E> {
    /// `document`: the API's OpenAPI document (JSON).
    pub fn new(inner: E, document: &str) -> KnownQueryParameters<E> {
        KnownQueryParameters { inner, known: known(document) }
    }
}

fn known(document: &str) -> Known {
    let document: serde_json::Value = serde_json::from_str(document).unwrap_or_default();
    let mut known = Known::new();
    for (path, operations) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in operations.as_object().into_iter().flatten() {
            let names = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|parameter| parameter["in"] == "query")
                .filter_map(|parameter| parameter["name"].as_str().map(str::to_owned))
                .collect();
            known.insert((method.to_ascii_uppercase(), path.clone()), names);
        }
    }
    known
}

impl<E: Endpoint> KnownQueryParameters<E> {
    /// The first query parameter of `req` its operation does not declare, if the
    /// operation is known at all (an unknown route is answered 404 as it is).
    fn unknown_parameter(&self, req: &Request) -> Option<String> {
        let query = req.uri().query().filter(|query| !query.is_empty())?;
        let path = req.uri().path().trim_start_matches("/api/v1");
        let method = req.method().as_str();
        // An exact path wins over a template (`/payments/export` over `/payments/{id}`).
        let names = self.known.get(&(method.to_owned(), path.to_owned())).or_else(|| {
            self.known
                .iter()
                .find(|((m, template), _)| m == method && path_fits(template, path))
                .map(|(_, names)| names)
        })?;
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(name, _)| name.into_owned())
            .find(|name| !names.contains(name))
    }
}

impl<E: Endpoint> Endpoint for KnownQueryParameters<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if let Some(name) = self.unknown_parameter(&req) {
            return Err(AppError::BadRequest(format!("There is no query parameter {name:?} here.")).into());
        }
        without_empty_parameters(&mut req);
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// Drops the query parameters of `req` that have no value.
fn without_empty_parameters(req: &mut Request) {
    let Some(query) = req.uri().query() else { return };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    if pairs.iter().all(|(_, value)| !value.is_empty()) {
        return;
    }
    let kept = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(_, value)| !value.is_empty()))
        .finish();
    let path = req.uri().path();
    let target = if kept.is_empty() { path.to_owned() } else { format!("{path}?{kept}") };
    if let Ok(uri) = target.parse() {
        *req.uri_mut() = uri;
    }
}
