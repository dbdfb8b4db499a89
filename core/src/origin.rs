//! API writes that ride on a browser's cookies must come from the dashboard's own pages.
//!
//! A session cookie goes with every request the browser makes to the dashboard, also
//! from another site's page (`SameSite=Strict` stops that in current browsers, not in all
//! of them). The pages check a CSRF token; the API, which tokens and scripts use, checks
//! where a browser says the request comes from instead: `Sec-Fetch-Site` when the
//! browser sends it, else `Origin` against the host the request was sent to. Requests
//! with a bearer token carry no ambient credential and are not concerned; neither are
//! clients that send neither header (they are not browsers).

use poem::http::{Method, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::error::{AppError, problem_response};

/// Refuses a cross-site API write (403) before anything reads it.
pub struct SameOriginApiWrites<E> {
    pub inner: E,
}

impl<E: Endpoint> Endpoint for SameOriginApiWrites<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.uri().path().starts_with("/api/") && is_write(req.method()) && !has_bearer(&req) && cross_site(&req) {
            let error = AppError::Refused("Requests from another site cannot use your session.".to_owned());
            return Ok(problem_response(&error));
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

fn has_bearer(req: &Request) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("Bearer "))
}

/// Whether the browser says the request comes from another site.
fn cross_site(req: &Request) -> bool {
    let text = |name| req.headers().get(name).and_then(|value: &header::HeaderValue| value.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return !matches!(site, "same-origin" | "none");
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
            !authority.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
    }
}
