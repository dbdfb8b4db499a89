//! The headers every response carries, so that a browser never runs a script the
//! dashboard did not serve, frames a page (a refund confirmation could be clickjacked),
//! guesses a content type, leaks a URL to another site, or keeps a page of payment data
//! or an export in its cache; and `Retry-After` on every "busy" or "too many" answer.

use poem::http::{HeaderName, HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

/// The pages: scripts, styles and images from the dashboard's own files only (no
/// inline script, no other origin).
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                           object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the security headers to every response of `inner`. `https` adds HSTS (a
/// dashboard served over plain HTTP in development must not pin its host to HTTPS).
pub struct SecurityHeaders<E> {
    pub inner: E,
    pub https: bool,
}

impl<E: Endpoint> Endpoint for SecurityHeaders<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let mut response = match self.inner.call(req).await {
            Ok(output) => output.into_response(),
            Err(error) => error.into_response(),
        };
        let headers = response.headers_mut();
        // A page with a policy of its own keeps it (the hosted Payment Page allows nothing
        // but its own files; the designer's preview may be framed by the designer).
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
        }
        if !headers.contains_key(header::X_FRAME_OPTIONS) {
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        headers.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
        if self.https {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
        }
        // Everything but the fingerprinted static files (which say how long to keep them)
        // may hold payment data, a secret or an export.
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        // A client told to come back later is told when (busy or throttled).
        let later = matches!(response.status(), StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS);
        if later && !response.headers().contains_key(header::RETRY_AFTER) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        Ok(response)
    }
}
