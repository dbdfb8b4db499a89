//! Rendering pages inside the themed layout, and the shell's own endpoints.

use poem::http::{StatusCode, header};
use poem::web::{CsrfToken, Html};
use poem::{Endpoint, FromRequest, IntoResponse, Request, RequestBody, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::{Principal, visible_nav};
use crate::error::AppError;
use crate::state::AppState;

/// Product name shown in the layout.
pub const PRODUCT_NAME: &str = "Merchant Dashboard";

/// Everything a page handler needs to answer with a themed page.
///
/// ```ignore
/// #[handler]
/// async fn index(page: PageContext) -> Result<Html<String>, AppError> {
///     page.render("Example", "example/index", &json!({ "greeting": "Hello" }))
/// }
/// ```
pub struct PageContext {
    pub state: AppState,
    pub principal: Option<Principal>,
    pub path: String,
    /// Token for the forms of the page (poem's CSRF middleware).
    pub csrf_token: String,
}

impl<'a> FromRequest<'a> for PageContext {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = req
            .data::<AppState>()
            .cloned()
            .ok_or_else(|| AppError::Internal("application state missing".to_owned()))?;
        Ok(PageContext::new(state, req))
    }
}

impl PageContext {
    fn new(state: AppState, req: &Request) -> PageContext {
        PageContext {
            principal: req.extensions().get::<Principal>().cloned(),
            path: req.uri().path().to_owned(),
            csrf_token: match crate::session::session_token(&state, req.cookie()) {
                Some(session) => crate::auth::session_csrf_token(&state, &session),
                None => req.extensions().get::<CsrfToken>().map(|token| token.0.clone()).unwrap_or_default(),
            },
            state,
        }
    }

    /// The signed-in user; pages guarded by a permission always have one.
    pub fn principal(&self) -> Result<&Principal, AppError> {
        self.principal.as_ref().ok_or(AppError::Unauthorized)
    }

    /// Renders `template` with `data` inside the layout titled `title`.
    pub fn render<T: Serialize>(&self, title: &str, template: &str, data: &T) -> Result<Html<String>, AppError> {
        let content = self.render_part(template, data)?;
        self.render_layout(title, &content).map(Html)
    }

    /// Renders `template` with `data` alone (a part of a page), times in the person's zone.
    pub fn render_part<T: Serialize>(&self, template: &str, data: &T) -> Result<String, AppError> {
        let _zone = crate::theme::ShownZone::set(self.principal.as_ref().map_or("UTC", |p| p.time_zone.as_str()));
        self.state.theme.render(template, data).map_err(|e| AppError::Internal(e.to_string()))
    }

    /// Wraps already rendered `content` in the layout.
    pub fn render_layout(&self, title: &str, content: &str) -> Result<String, AppError> {
        let context = self.layout_context(title, content);
        self.state.theme.render("layout", &context).map_err(|e| AppError::Internal(e.to_string()))
    }

    fn layout_context(&self, title: &str, content: &str) -> Value {
        let nav: Vec<Value> = visible_nav(self.state.registry, self.principal.as_ref())
            .into_iter()
            .map(|entry| {
                let active = entry.is_current(&self.path);
                json!({ "label": entry.label, "path": entry.path, "icon": entry.icon.unwrap_or("file"), "active": active })
            })
            .collect();
        let user = self.principal.as_ref().map(|p| {
            json!({
                "display_name": p.display_name,
                "username": p.username,
                "company": p.company_name,
                "initials": initials(&p.display_name),
            })
        });
        json!({
            "product": PRODUCT_NAME,
            "title": title,
            "content": content,
            "nav": nav,
            "user": user,
            "second_factor_banner": self.principal.as_ref().is_some_and(|p| p.needs_second_factor())
                && !self.path.starts_with("/profile"),
            "theme": self.state.theme.name(),
            "csrf_token": self.csrf_token,
        })
    }

    /// A themed error page for `error`.
    pub fn error_page(&self, error: &AppError) -> Response {
        let status = error.status();
        if status.is_server_error() {
            tracing::error!(error = %error, "request failed");
        }
        let data = json!({
            "status": status.as_u16(),
            "reason": status.canonical_reason().unwrap_or("Error"),
            "message": error.public_message(),
            "signed_in": self.principal.is_some(),
        });
        let page = self
            .state
            .theme
            .render("error", &data)
            .map_err(|e| AppError::Internal(e.to_string()))
            .and_then(|content| self.render_layout(status.canonical_reason().unwrap_or("Error"), &content));
        match page {
            Ok(html) => Response::builder().status(status).content_type("text/html; charset=utf-8").body(html),
            Err(render_error) => {
                tracing::error!(error = %render_error, "error page failed to render");
                Response::builder().status(status).body(error.public_message())
            }
        }
    }
}

/// A submitted HTML form; unlike poem's `Form`, repeated fields (checkboxes, multiple
/// selects) fill a `Vec`.
pub struct HtmlForm<T>(pub T);

impl<'a, T: serde::de::DeserializeOwned> FromRequest<'a> for HtmlForm<T> {
    async fn from_request(_req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = body.take()?.into_bytes().await?;
        serde_html_form::from_bytes(&bytes)
            .map(HtmlForm)
            .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}")).into())
    }
}

/// A redirect after a form (`303 See Other`).
pub fn see_other(location: &str) -> Response {
    Response::builder().status(StatusCode::SEE_OTHER).header(header::LOCATION, location).finish()
}

/// Initials for the avatar in the top bar.
fn initials(name: &str) -> String {
    name.split_whitespace().filter_map(|word| word.chars().next()).take(2).collect::<String>().to_uppercase()
}

/// Answers errors of HTML routes with a themed error page (API routes answer problem+json).
pub struct HtmlErrors<E> {
    pub inner: E,
}

impl<E: Endpoint> Endpoint for HtmlErrors<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let Some(state) = req.data::<AppState>().cloned() else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        if req.uri().path().starts_with("/api/") {
            let path = req.uri().path().to_owned();
            // A path the API names exactly (`/fraud/rules/export`) is that resource, though
            // the router would take another method of it for an instance of a template it
            // fits (`PUT /fraud/rules/{id}`) and refuse the id: the method is what is wrong.
            let declared = state.registry.api_methods_named(path.trim_start_matches("/api/v1"));
            if declared.as_ref().is_some_and(|methods| !takes(methods, req.method())) {
                let refused: poem::Result<Response> = Err(poem::Error::from_status(StatusCode::METHOD_NOT_ALLOWED));
                return Ok(api_problems(&state, &path, refused).await);
            }
            return Ok(api_problems(&state, &path, self.inner.call(req).await).await);
        }
        let context = PageContext::new(state, &req);
        let back = referring_page(&req);
        match self.inner.call(req).await {
            Ok(output) => {
                let response = output.into_response();
                if response.status() == StatusCode::NOT_FOUND && response.headers().get(header::CONTENT_TYPE).is_none()
                {
                    return Ok(context.error_page(&AppError::NotFound));
                }
                Ok(response)
            }
            Err(error) => {
                let app_error = match error.downcast::<AppError>() {
                    Ok(app_error) => app_error,
                    Err(other) if other.status() == StatusCode::NOT_FOUND => AppError::NotFound,
                    Err(other) if other.status() == StatusCode::METHOD_NOT_ALLOWED => {
                        return Ok(other.into_response());
                    }
                    Err(other) if other.status().is_client_error() => AppError::BadRequest(other.to_string()),
                    Err(other) => AppError::Internal(other.to_string()),
                };
                if matches!(app_error, AppError::StepUpRequired) {
                    // The code first; then back to the form, to send it again.
                    let next = back.unwrap_or_else(|| "/".to_owned());
                    return Ok(see_other(&format!("/step-up?next={}", crate::auth::urlencode(&next))));
                }
                Ok(context.error_page(&app_error))
            }
        }
    }
}

/// Whether an operation of `methods` answers `method` (`HEAD` as its `GET`, `OPTIONS`
/// always: the framework answers them).
fn takes(methods: &[&str], method: &poem::http::Method) -> bool {
    let method = if method == poem::http::Method::HEAD { "GET" } else { method.as_str() };
    method == "OPTIONS" || methods.iter().any(|declared| declared.eq_ignore_ascii_case(method))
}

/// Every error the API answers is a problem document (RFC 9457), those of the framework
/// too (a body or parameter it cannot read, an unknown route, a method or content type
/// it does not take): their text becomes the `detail`. A 405 says which methods the path
/// takes (`Allow`), a 401 how to authenticate (`WWW-Authenticate`).
async fn api_problems(state: &AppState, path: &str, answer: poem::Result<impl IntoResponse>) -> Response {
    let mut response = match answer {
        Ok(output) => output.into_response(),
        Err(error) => error.into_response(),
    };
    let status = response.status();
    if !status.is_client_error() && !status.is_server_error() {
        return response;
    }
    let is_problem = response.content_type().is_some_and(|kind| kind.starts_with("application/problem+json"));
    if !is_problem {
        let text = response.take_body().into_string().await.unwrap_or_default();
        let detail: String = readable(text.trim()).chars().take(500).collect();
        let problem = crate::error::Problem {
            kind: format!("https://dashboard.invalid/problems/{}", problem_kind(status)),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: (!detail.is_empty()).then_some(detail),
        };
        let headers = response.headers().clone();
        response = Response::builder()
            .status(status)
            .content_type("application/problem+json")
            .body(serde_json::to_string(&problem).unwrap_or_default());
        for (name, value) in &headers {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                response.headers_mut().insert(name, value.clone());
            }
        }
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let methods = state.registry.api_methods(path.trim_start_matches("/api/v1"));
        if let Ok(allow) = methods.join(", ").parse() {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    if status == StatusCode::UNAUTHORIZED && !response.headers().contains_key(header::WWW_AUTHENTICATE) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"dashboard\""));
    }
    response
}

/// The framework's words for a parameter whose value is not one of a closed set (its
/// pattern `^(a|b|c)$`), as people read it: "The parameter `grain` must be one of day,
/// week, month." Any other text is kept.
fn readable(text: &str) -> String {
    let parameter = text.strip_prefix("failed to parse parameter `").and_then(|rest| rest.split_once('`'));
    let choices = text.split_once("pattern(\"^(").and_then(|(_, rest)| rest.split_once(")$\")"));
    match (parameter, choices) {
        (Some((name, _)), Some((choices, _))) if !choices.contains(['[', '\\', '(', '*', '+', '{']) => {
            format!("The parameter `{name}` must be one of {}.", choices.split('|').collect::<Vec<_>>().join(", "))
        }
        _ => text.to_owned(),
    }
}

/// The problem `type` of an answer the framework gave.
fn problem_kind(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::UNAUTHORIZED => "unauthorized",
        status if status.is_server_error() => "internal",
        _ => "bad-request",
    }
}

/// The page of this site a request came from (its `Referer`), as a local path.
fn referring_page(req: &Request) -> Option<String> {
    let referer = url::Url::parse(req.header(header::REFERER)?).ok()?;
    let host = req.header(header::HOST)?;
    if referer.host_str().map(|h| match referer.port() {
        Some(port) => format!("{h}:{port}"),
        None => h.to_owned(),
    }) != Some(host.to_owned())
    {
        return None;
    }
    let path = match referer.query() {
        Some(query) => format!("{}?{query}", referer.path()),
        None => referer.path().to_owned(),
    };
    crate::auth::local_path(&path)
}

/// Serves the theme's static files; their URLs carry a content version, so they may be
/// cached for a year.
#[poem::handler]
pub async fn static_file(req: &Request, poem::web::Path(path): poem::web::Path<String>) -> Response {
    let Some(state) = req.data::<AppState>() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match state.theme.asset(&path) {
        Some(asset) => {
            let etag = format!("\"{}\"", asset.version);
            // Compared weakly (RFC 9110): a compressed copy's tag is weak (`W/"…"`).
            let known = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if known.split(',').any(|tag| tag.trim().trim_start_matches("W/") == etag) {
                return StatusCode::NOT_MODIFIED.into_response();
            }
            Response::builder()
                .content_type(asset.content_type)
                .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
                .header(header::ETAG, etag)
                .body(asset.bytes.clone())
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A query string of the pairs that hold a non-empty value, e.g. the filters of a page
/// to put in a link.
pub fn query_string(pairs: &[(&str, &Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(key, value)| {
            value.as_deref().filter(|v| !v.is_empty()).map(|v| format!("{key}={}", crate::auth::urlencode(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}
