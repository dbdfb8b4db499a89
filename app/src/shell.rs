//! The application shell's own routes: sign-in, sign-out and health probes.

use dashboard_core::audit::{self, AuditEvent};
use dashboard_core::auth::{self, Principal, SESSION_COOKIE, is_local_path};
use dashboard_core::{AppError, AppState, PageContext};
use poem::http::{StatusCode, header};
use poem::web::cookie::CookieJar;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Html, Query, RealIp};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::json;

/// Liveness: the process answers.
#[handler]
pub fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
#[handler]
pub async fn readyz(state: Data<&AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => "ready".into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    username: String,
    password: String,
    csrf_token: String,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf_token: String,
}

fn safe_next(next: Option<&str>) -> String {
    next.filter(|target| is_local_path(target)).unwrap_or("/").to_owned()
}

fn see_other(location: &str) -> Response {
    Response::builder().status(StatusCode::SEE_OTHER).header(header::LOCATION, location).finish()
}

fn render_sign_in(
    page: &PageContext,
    csrf: &CsrfToken,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Result<String, AppError> {
    let data = json!({
        "product": dashboard_core::web::PRODUCT_NAME,
        "csrf_token": csrf.0,
        "next": next,
        "username": username,
        "error": error,
    });
    let content = page.state.theme.render("sign-in", &data).map_err(|e| AppError::Internal(e.to_string()))?;
    page.render_layout("Sign in", &content)
}

/// The sign-in form; a signed-in user goes straight on.
#[handler]
pub fn sign_in_page(page: PageContext, csrf: &CsrfToken, Query(query): Query<NextQuery>) -> Result<Response, AppError> {
    let next = safe_next(query.next.as_deref());
    if page.principal.is_some() {
        return Ok(see_other(&next));
    }
    Ok(Html(render_sign_in(&page, csrf, &next, "", None)?).into_response())
}

/// Checks the credentials; on success starts a new session (any previous one of this
/// browser ends) and goes to `next`.
#[handler]
pub async fn sign_in(
    page: PageContext,
    req: &Request,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    cookies: &CookieJar,
    RealIp(ip): RealIp,
    Form(form): Form<SignInForm>,
) -> Result<Response, AppError> {
    if !verifier.is_valid(&form.csrf_token) {
        return Err(AppError::BadRequest("The form expired. Reload the page and try again.".to_owned()));
    }
    let state = &page.state;
    let next = safe_next(form.next.as_deref());
    let ip = ip.map(|ip| ip.to_string());
    let Some(user_id) = auth::authenticate(state, &form.username, &form.password).await? else {
        let target = format!("username {}", form.username.trim());
        audit::record(&state.db, AuditEvent::anonymous("session.sign_in", target, "failure").ip(ip)).await?;
        let html =
            render_sign_in(&page, csrf, &next, form.username.trim(), Some("The username or password is incorrect."))?;
        return Ok((StatusCode::UNAUTHORIZED, Html(html)).into_response());
    };
    if let Some(previous) = cookies.get(SESSION_COOKIE) {
        auth::delete_session(state, previous.value_str()).await?;
    }
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let token = auth::create_session(state, user_id, ip.clone(), user_agent).await?;
    let principal = auth::principal_for_session(state, &token).await?.ok_or(AppError::Unauthorized)?;
    audit::record(&state.db, AuditEvent::by_user(principal.company_id, user_id, "session.sign_in", "success").ip(ip))
        .await?;
    cookies.add(auth::session_cookie(state, &token));
    Ok(see_other(&next))
}

/// Ends the session on the server and in the browser.
#[handler]
pub async fn sign_out(
    state: Data<&AppState>,
    principal: Option<&Principal>,
    verifier: &CsrfVerifier,
    cookies: &CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    if !verifier.is_valid(&form.csrf_token) {
        return Err(AppError::BadRequest("The form expired. Reload the page and try again.".to_owned()));
    }
    if let Some(cookie) = cookies.get(SESSION_COOKIE) {
        auth::delete_session(&state, cookie.value_str()).await?;
    }
    if let Some(principal) = principal {
        audit::record(
            &state.db,
            AuditEvent::by_user(principal.company_id, principal.user_id, "session.sign_out", "success"),
        )
        .await?;
    }
    cookies.add(auth::session_cookie(&state, ""));
    Ok(see_other("/sign-in"))
}
