//! Signing in and out. The pages and the API call the same service functions in
//! `dashboard_core::session`: password first, then the second factor when the user has
//! it enabled. A failure never says whether the username, the password or the account
//! state was the reason.

use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::{Principal, local_path};
use dashboard_core::links::{self, LinkPurpose};
use dashboard_core::registry::{Access, Api, Section, Template};
use dashboard_core::second_factor::CodeCheck;
use dashboard_core::session::{self, ClientInfo, PendingSecondFactor, SignIn};
use dashboard_core::web::{PRODUCT_NAME, see_other};
use dashboard_core::{ApiError, ApiResult, AppError, AppState, PageContext, operation, page, register_section};
use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Html, Query};
use poem::{IntoResponse, Request, Response, handler};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde::Deserialize;
use serde_json::json;

mod forgotten;

register_section!(Section {
    id: "session",
    title: "Sign-in",
    nav: None,
    permissions: &[],
    pages: &[
        page!(GET "/sign-in" => sign_in_page, Access::Public),
        page!(POST "/sign-in" => sign_in_submit, Access::Public),
        page!(GET "/sign-in/second-factor" => second_factor_page, Access::Public),
        page!(POST "/sign-in/second-factor" => second_factor_submit, Access::Public),
        page!(POST "/sign-out" => sign_out_submit, Access::Public),
        page!(GET "/step-up" => step_up_page, Access::SignedIn),
        page!(POST "/step-up" => step_up_submit, Access::SignedIn),
        page!(GET "/set-password" => set_password_page, Access::Public),
        page!(POST "/set-password" => set_password_submit, Access::Public),
        page!(GET "/forgot-password" => forgot_password_page, Access::Public),
        page!(POST "/forgot-password" => forgot_password_submit, Access::Public),
    ],
    api: Some(Api::of::<SessionApi>(&[
        operation!(POST "/session", Access::Public),
        operation!(POST "/session/second-factor", Access::Public),
        operation!(DELETE "/session", Access::Public),
        operation!(GET "/session", Access::SignedIn),
        operation!(POST "/session/step-up", Access::SignedIn),
        operation!(POST "/password-links", Access::Public),
        operation!(POST "/password-links/redemption", Access::Public),
    ])),
    templates: &[
        Template { name: "session/sign-in", source: include_str!("../templates/sign-in.hbs") },
        Template { name: "session/second-factor", source: include_str!("../templates/second-factor.hbs") },
        Template { name: "session/set-password", source: include_str!("../templates/set-password.hbs") },
        Template { name: "session/forgot-password", source: include_str!("../templates/forgot-password.hbs") },
        Template { name: "session/step-up", source: include_str!("../templates/step-up.hbs") },
    ],
});

const REFUSED: &str = "The username or password is incorrect.";

/// The links that set a password: the administrator's and the user's own.
const PASSWORD_LINKS: &[LinkPurpose] = &[LinkPurpose::SetPassword, LinkPurpose::ResetPassword];
const CODE_REFUSED: &str =
    "The code is incorrect. Use the current code from your authenticator app, or a recovery code.";

/// What a refused second-factor code is told.
fn code_refused(check: CodeCheck) -> &'static str {
    match check {
        CodeCheck::JustUsed => CodeCheck::JUST_USED,
        CodeCheck::Wrong | CodeCheck::Accepted => CODE_REFUSED,
    }
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    username: String,
    password: String,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    code: String,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ForgotPasswordForm {
    username: String,
}

#[derive(Debug, Deserialize)]
struct SetPasswordForm {
    token: String,
    password: String,
    password_again: String,
}

fn safe_next(next: Option<&str>) -> String {
    next.and_then(local_path).unwrap_or_else(|| "/".to_owned())
}

fn with_next(path: &str, next: &str) -> String {
    if next == "/" { path.to_owned() } else { format!("{path}?next={}", dashboard_core::auth::urlencode(next)) }
}

fn render(page: &PageContext, template: &str, title: &str, data: serde_json::Value) -> Result<String, AppError> {
    let content = page.render_part(template, &data)?;
    page.render_layout(title, &content)
}

fn sign_in_html(page: &PageContext, next: &str, username: &str, error: Option<&str>) -> Result<String, AppError> {
    sign_in_html_with_notice(page, next, username, error, None)
}

fn sign_in_html_with_notice(
    page: &PageContext,
    next: &str,
    username: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<String, AppError> {
    let data = json!({
        "product": PRODUCT_NAME, "csrf_token": page.csrf_token, "next": next, "username": username, "error": error,
        "notice": notice,
    });
    render(page, "session/sign-in", "Sign in", data)
}

fn second_factor_html(page: &PageContext, next: &str, error: Option<&str>) -> Result<String, AppError> {
    let data = json!({ "product": PRODUCT_NAME, "csrf_token": page.csrf_token, "next": next, "error": error });
    render(page, "session/second-factor", "Two-factor authentication", data)
}

#[handler]
fn sign_in_page(page: PageContext, req: &Request, Query(query): Query<NextQuery>) -> Result<Response, AppError> {
    let next = safe_next(query.next.as_deref());
    if page.principal.is_some() {
        return Ok(see_other(&next));
    }
    if req.extensions().get::<PendingSecondFactor>().is_some() {
        return Ok(see_other(&with_next("/sign-in/second-factor", &next)));
    }
    let notice = (query.notice.as_deref() == Some("password-set")).then_some("Your password was set. Sign in with it.");
    Ok(Html(sign_in_html_with_notice(&page, &next, "", None, notice)?).into_response())
}

#[handler]
async fn sign_in_submit(
    page: PageContext,
    req: &Request,
    cookies: &CookieJar,
    Form(form): Form<SignInForm>,
) -> Result<Response, AppError> {
    let next = safe_next(form.next.as_deref());
    let state = &page.state;
    end_current_session(state, cookies).await?;
    match session::sign_in(state, &form.username, &form.password, &ClientInfo::from_request(req)).await? {
        SignIn::Active { token, .. } => {
            cookies.add(session::session_cookie(state, &token));
            Ok(see_other(&next))
        }
        SignIn::SecondFactorRequired { token } => {
            cookies.add(session::session_cookie(state, &token));
            Ok(see_other(&with_next("/sign-in/second-factor", &next)))
        }
        SignIn::Refused => {
            let html = sign_in_html(&page, &next, form.username.trim(), Some(REFUSED))?;
            Ok((StatusCode::UNAUTHORIZED, Html(html)).into_response())
        }
        SignIn::Locked { until } => {
            let html = sign_in_html(&page, &next, form.username.trim(), Some(&session::locked_message(until)))?;
            Ok((StatusCode::UNAUTHORIZED, Html(html)).into_response())
        }
    }
}

#[handler]
fn second_factor_page(page: PageContext, req: &Request, Query(query): Query<NextQuery>) -> Result<Response, AppError> {
    let next = safe_next(query.next.as_deref());
    if req.extensions().get::<PendingSecondFactor>().is_none() {
        return Ok(see_other(&with_next("/sign-in", &next)));
    }
    Ok(Html(second_factor_html(&page, &next, None)?).into_response())
}

#[handler]
async fn second_factor_submit(
    page: PageContext,
    req: &Request,
    cookies: &CookieJar,
    Form(form): Form<CodeForm>,
) -> Result<Response, AppError> {
    let next = safe_next(form.next.as_deref());
    let state = &page.state;
    let Some(pending_token) = session::session_token(state, cookies) else {
        return Ok(see_other(&with_next("/sign-in", &next)));
    };
    match session::complete_second_factor(state, &pending_token, &form.code, &ClientInfo::from_request(req)).await? {
        Ok((token, _)) => {
            cookies.add(session::session_cookie(state, &token));
            Ok(see_other(&next))
        }
        Err(check) => {
            let html = if req.extensions().get::<PendingSecondFactor>().is_some() {
                second_factor_html(&page, &next, Some(code_refused(check)))?
            } else {
                sign_in_html(&page, &next, "", Some(REFUSED))?
            };
            Ok((StatusCode::UNAUTHORIZED, Html(html)).into_response())
        }
    }
}

fn step_up_html(page: &PageContext, next: &str, error: Option<&str>) -> Result<Html<String>, AppError> {
    let data = json!({ "csrf_token": page.csrf_token, "next": next, "error": error });
    page.render("Confirm it is you", "session/step-up", &data)
}

#[handler]
async fn step_up_page(page: PageContext, Query(query): Query<NextQuery>) -> Result<Html<String>, AppError> {
    step_up_html(&page, &safe_next(query.next.as_deref()), None)
}

#[handler]
async fn step_up_submit(
    page: PageContext,
    req: &Request,
    cookies: &CookieJar,
    Form(form): Form<CodeForm>,
) -> Result<Response, AppError> {
    let next = safe_next(form.next.as_deref());
    let client = ClientInfo::from_request(req);
    let token = session::session_token(&page.state, cookies).unwrap_or_default();
    match session::step_up(&page.state, page.principal()?, &token, &form.code, &client).await? {
        CodeCheck::Accepted => Ok(see_other(&next)),
        refused => {
            Ok((StatusCode::UNAUTHORIZED, step_up_html(&page, &next, Some(code_refused(refused)))?).into_response())
        }
    }
}

#[handler]
async fn sign_out_submit(
    state: Data<&AppState>,
    principal: Option<&Principal>,
    cookies: &CookieJar,
) -> Result<Response, AppError> {
    sign_out(&state, principal, cookies).await?;
    Ok(see_other("/sign-in"))
}

const LINK_REFUSED: &str = "This link has expired or was used already. Ask your merchant admin for a new one.";

fn set_password_html(page: &PageContext, token: &str, valid: bool, error: Option<&str>) -> Result<String, AppError> {
    let data = json!({
        "product": PRODUCT_NAME, "csrf_token": page.csrf_token, "token": token, "valid": valid, "error": error,
    });
    render(page, "session/set-password", "Set your password", data)
}

#[handler]
async fn set_password_page(page: PageContext, Query(query): Query<TokenQuery>) -> Result<Response, AppError> {
    let token = query.token.unwrap_or_default();
    let valid = links::peek(&page.state, &token, PASSWORD_LINKS).await?.is_some();
    let error = (!valid).then_some(LINK_REFUSED);
    Ok(Html(set_password_html(&page, &token, valid, error)?).into_response())
}

#[handler]
async fn set_password_submit(
    page: PageContext,
    req: &Request,
    Form(form): Form<SetPasswordForm>,
) -> Result<Response, AppError> {
    if form.password != form.password_again {
        let html = set_password_html(&page, &form.token, true, Some("The two passwords differ."))?;
        return Ok((StatusCode::BAD_REQUEST, Html(html)).into_response());
    }
    match redeem_password_link(&page.state, &form.token, &form.password, &ClientInfo::from_request(req)).await {
        Ok(()) => Ok(see_other("/sign-in?notice=password-set")),
        Err(AppError::BadRequest(message)) => {
            let valid = links::peek(&page.state, &form.token, PASSWORD_LINKS).await?.is_some();
            let html = set_password_html(&page, &form.token, valid, Some(&message))?;
            Ok((StatusCode::BAD_REQUEST, Html(html)).into_response())
        }
        Err(error) => Err(error),
    }
}

fn forgot_password_html(
    page: &PageContext,
    username: &str,
    asked: bool,
    error: Option<&str>,
) -> Result<String, AppError> {
    let data = json!({
        "product": PRODUCT_NAME, "csrf_token": page.csrf_token, "username": username,
        "asked": asked.then_some(forgotten::ASKED), "error": error,
    });
    render(page, "session/forgot-password", "Forgot your password?", data)
}

#[handler]
fn forgot_password_page(page: PageContext) -> Result<Response, AppError> {
    Ok(Html(forgot_password_html(&page, "", false, None)?).into_response())
}

#[handler]
fn forgot_password_submit(
    page: PageContext,
    req: &Request,
    Form(form): Form<ForgotPasswordForm>,
) -> Result<Response, AppError> {
    if form.username.trim().is_empty() {
        let html = forgot_password_html(&page, "", false, Some("Give your username."))?;
        return Ok((StatusCode::BAD_REQUEST, Html(html)).into_response());
    }
    forgotten::ask(&page.state, &form.username, &ClientInfo::from_request(req))?;
    Ok(Html(forgot_password_html(&page, &form.username, true, None)?).into_response())
}

/// Sets the password of the link's user and uses the link up. The password is checked
/// before the link is spent, so a too-short password leaves the link usable. One write
/// uses the link, stores the password, ends the user's sessions, revokes their API tokens
/// (issued to whoever knew the old password) and records it all.
async fn redeem_password_link(
    state: &AppState,
    token: &str,
    password: &str,
    client: &ClientInfo,
) -> Result<(), AppError> {
    if let Some(problem) = dashboard_core::auth::password_problem(password) {
        return Err(AppError::BadRequest(problem.to_owned()));
    }
    let refused = || AppError::BadRequest(LINK_REFUSED.to_owned());
    // Before the link is used up: a busy refusal leaves it usable.
    let _turn = state.hashing.turn().await?;
    let user_id = links::peek(state, token, PASSWORD_LINKS).await?.ok_or_else(refused)?;
    let hash = dashboard_core::auth::hash_password_blocking(password.to_owned()).await?;
    let company_id = dashboard_core::directory::company_of_user(&state.db, user_id).await?;
    let event = AuditEvent::by_user(company_id, user_id, "user.password_set", "success").ip(client.ip.clone());
    let set = dashboard_core::db_transaction!(state.db, conn => {
        use dashboard_core::schema::users;
        if dashboard_core::use_link!(conn, token)? == 0 {
            return Ok(false);
        }
        // An invitation's link and a "forgot password" one may both be out.
        dashboard_core::spend_user_links!(conn, user_id, PASSWORD_LINKS)?;
        diesel::update(users::table.find(user_id))
            // A new password ends a lock: it guarded the old one against guessing.
            .set((
                users::password_hash.eq(&hash),
                users::failed_attempts.eq(0),
                users::locked_until.eq(None::<chrono::NaiveDateTime>),
                users::updated_at.eq(dashboard_core::time::now()),
            ))
            .execute(conn)
            .await?;
        let sessions = dashboard_core::end_user_sessions!(conn, user_id)?;
        let tokens = dashboard_core::revoke_user_tokens!(conn, user_id)?;
        let details = json!({ "sessions_ended": sessions, "tokens_revoked": tokens });
        dashboard_core::record_audit!(conn, event.details(details))?;
        Ok::<_, diesel::result::Error>(true)
    })?;
    state.token_principals.forget_all();
    if set { Ok(()) } else { Err(refused()) }
}

/// Ends the browser's current session, if any (a new sign-in always gets a new session).
async fn end_current_session(state: &AppState, cookies: &CookieJar) -> Result<(), AppError> {
    if let Some(token) = session::session_token(state, cookies) {
        session::delete_session(state, &token).await?;
    }
    Ok(())
}

/// Ends the session on the server and removes the cookie.
async fn sign_out(state: &AppState, principal: Option<&Principal>, cookies: &CookieJar) -> Result<(), AppError> {
    end_current_session(state, cookies).await?;
    if let Some(principal) = principal {
        let event = dashboard_core::audit::AuditEvent::success(principal, "session.sign_out");
        dashboard_core::audit::record(&state.db, event).await?;
    }
    cookies.add(session::session_cookie(state, ""));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// API

/// Where the client stands after a sign-in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Signed in with every granted permission.
    SignedIn,
    /// The password was right; send the authenticator code to `/session/second-factor`.
    SecondFactorRequired,
    /// Signed in with the exempt permissions only: set up the second factor (My profile)
    /// to use the others.
    SecondFactorSetupRequired,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SecondFactorCode {
    /// The 6-digit code of the authenticator app, or a recovery code.
    pub code: String,
}

/// The signed-in user as the session sees it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionInfo {
    pub status: SessionStatus,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub company: Option<String>,
    /// Permissions usable now.
    pub permissions: Vec<String>,
    /// Granted permissions that wait for the second factor.
    pub awaiting_second_factor: Vec<String>,
}

impl SessionInfo {
    fn of(principal: &Principal) -> SessionInfo {
        SessionInfo {
            status: if principal.needs_second_factor() {
                SessionStatus::SecondFactorSetupRequired
            } else {
                SessionStatus::SignedIn
            },
            username: Some(principal.username.clone()),
            display_name: Some(principal.display_name.clone()),
            company: Some(principal.company_name.clone()),
            permissions: principal.permissions.iter().cloned().collect(),
            awaiting_second_factor: principal.awaiting_second_factor.iter().cloned().collect(),
        }
    }

    fn second_factor_required() -> SessionInfo {
        SessionInfo {
            status: SessionStatus::SecondFactorRequired,
            username: None,
            display_name: None,
            company: None,
            permissions: Vec::new(),
            awaiting_second_factor: Vec::new(),
        }
    }
}

/// A one-time set-password link's token and the new password.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PasswordLinkRedemption {
    pub token: String,
    /// At least 10 characters, not a common or easily guessed one.
    #[oai(validator(min_length = 10, max_length = 1024))]
    pub password: String,
}

/// Who forgot their password.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PasswordLinkRequest {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub username: dashboard_core::api::Text,
}

#[derive(ApiResponse)]
enum PasswordLinkAsked {
    /// Asked: if the username has an account with an e-mail address, a link that works
    /// for one hour is sent there. The answer is the same for every username.
    #[oai(status = 202)]
    Accepted,
}

#[derive(ApiResponse)]
enum PasswordSet {
    /// The password was set; sign in with it.
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum SignedOut {
    /// The session ended.
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum SteppedUp {
    /// Confirmed: the actions that need it work for 5 minutes.
    #[oai(status = 204)]
    Done,
}

#[derive(Default)]
pub struct SessionApi;

#[OpenApi(tag = "SessionTag::Session")]
impl SessionApi {
    /// Sign in with username and password
    ///
    /// Sets the session cookie. `status` says whether the second factor is required next,
    /// or must be set up before the permissions that need it can be used.
    #[oai(path = "/session", method = "post", operation_id = "session_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        req: &Request,
        cookies: &CookieJar,
        body: Json<Credentials>,
    ) -> ApiResult<Json<SessionInfo>> {
        end_current_session(&state, cookies).await?;
        match session::sign_in(&state, &body.username, &body.password, &ClientInfo::from_request(req)).await? {
            SignIn::Active { token, principal } => {
                cookies.add(session::session_cookie(&state, &token));
                Ok(Json(SessionInfo::of(&principal)))
            }
            SignIn::SecondFactorRequired { token } => {
                cookies.add(session::session_cookie(&state, &token));
                Ok(Json(SessionInfo::second_factor_required()))
            }
            SignIn::Refused => Err(refused(REFUSED)),
            SignIn::Locked { until } => Err(refused(&session::locked_message(until))),
        }
    }

    /// Give the second factor
    ///
    /// After `POST /session` answered `second_factor_required`. A new session cookie
    /// replaces the previous one.
    #[oai(path = "/session/second-factor", method = "post", operation_id = "session_second_factor")]
    async fn second_factor(
        &self,
        state: Data<&AppState>,
        req: &Request,
        cookies: &CookieJar,
        body: Json<SecondFactorCode>,
    ) -> ApiResult<Json<SessionInfo>> {
        let pending = session::session_token(&state, cookies).unwrap_or_default();
        match session::complete_second_factor(&state, &pending, &body.code, &ClientInfo::from_request(req)).await? {
            Ok((token, principal)) => {
                cookies.add(session::session_cookie(&state, &token));
                Ok(Json(SessionInfo::of(&principal)))
            }
            Err(check) => Err(refused(code_refused(check))),
        }
    }

    /// Sign out
    #[oai(path = "/session", method = "delete", operation_id = "session_delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        principal: Option<&Principal>,
        cookies: &CookieJar,
    ) -> ApiResult<SignedOut> {
        sign_out(&state, principal, cookies).await?;
        Ok(SignedOut::Done)
    }

    /// Ask for a link to set a new password (forgot password)
    ///
    /// Sends a one-time link to the e-mail address of the account, if there is one; the
    /// answer never says whether the username exists. Counted as a sign-in attempt.
    #[oai(path = "/password-links", method = "post", operation_id = "password_link_request")]
    async fn request_password_link(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<PasswordLinkRequest>,
    ) -> ApiResult<PasswordLinkAsked> {
        forgotten::ask(&state, &body.username.0, &ClientInfo::from_request(req))?;
        Ok(PasswordLinkAsked::Accepted)
    }

    /// Set a password with a one-time link
    ///
    /// The token of the link the merchant admin gave, or of the one asked for with
    /// `POST /password-links`; the link works once.
    #[oai(path = "/password-links/redemption", method = "post", operation_id = "password_link_redeem")]
    async fn redeem_password_link(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<PasswordLinkRedemption>,
    ) -> ApiResult<PasswordSet> {
        redeem_password_link(&state, &body.token, &body.password, &ClientInfo::from_request(req)).await?;
        Ok(PasswordSet::Done)
    }

    /// Confirm it is you again (step-up)
    ///
    /// A code from the authenticator app (or a recovery code) for the current session:
    /// changing someone else's phone, password, second factor, roles or project access
    /// then works for 5 minutes. A wrong code counts towards the lockout.
    #[oai(path = "/session/step-up", method = "post", operation_id = "session_step_up")]
    async fn step_up(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        req: &Request,
        cookies: &CookieJar,
        body: Json<SecondFactorCode>,
    ) -> ApiResult<SteppedUp> {
        let client = ClientInfo::from_request(req);
        let token = session::session_token(&state, cookies).unwrap_or_default();
        match session::step_up(&state, principal, &token, &body.code, &client).await? {
            CodeCheck::Accepted => Ok(SteppedUp::Done),
            refused_code => Err(refused(code_refused(refused_code))),
        }
    }

    /// The current session
    #[oai(path = "/session", method = "get", operation_id = "session_get")]
    async fn get(&self, principal: &Principal) -> Json<SessionInfo> {
        Json(SessionInfo::of(principal))
    }
}

fn refused(message: &str) -> ApiError {
    let mut problem = dashboard_core::error::Problem::from_error(&AppError::Unauthorized);
    problem.detail = Some(message.to_owned());
    ApiError::Unauthorized(Json(problem))
}

#[derive(poem_openapi::Tags)]
enum SessionTag {
    /// Signing in and out, for browser-like clients. Integrators use API tokens.
    Session,
}
