//! My profile: the user's account and the set-up of the second factor.
//!
//! The set-up follows the seed: an SMS activation code to the phone on the account, then
//! the secret to scan (QR code and text), then a code from the app, then recovery codes
//! shown once. Enabling it renews the session, which then carries every permission.

mod service;

use dashboard_core::auth::Principal;
use dashboard_core::directory::{self, ProfileDetails};
use dashboard_core::registry::{Access, Api, BuiltinRole, Permission, Section, Template};
use dashboard_core::second_factor::{self, Enrolment, SecondFactorStatus};
use dashboard_core::session::{self, ClientInfo};
use dashboard_core::tokens::{self, NewToken, TokenInfo};
use dashboard_core::web::{HtmlForm, see_other};
use dashboard_core::{ApiResult, AppError, AppState, PageContext, operation, page, register_section};
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Html, Query};
use poem::{IntoResponse, Request, Response, handler};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;
use serde_json::json;

register_section!(Section {
    id: "profile",
    title: "My profile",
    nav: None,
    permissions: &[
        Permission {
            code: EDIT,
            label: "Edit my profile",
            description: "Change one's own name, e-mail address and time zone.",
            // PSD2 exemption listed in the seed: "editing user profile".
            second_factor_exempt: true,
            default_roles: &BuiltinRole::ALL,
        },
        Permission {
            code: TOKENS,
            label: "Manage my API tokens",
            description: "Create and revoke API tokens that act with a subset of one's own permissions.",
            // PSD2 exemption listed in the seed: "managing API tokens". Creating a token whose
            // scopes need the second factor still needs a session that passed it.
            second_factor_exempt: true,
            default_roles: &BuiltinRole::ALL,
        },
        Permission {
            code: SUPPORT_BOT,
            label: "Link the support bot",
            description: "Get a one-time code that links a chat with the support bot to one's account.",
            // PSD2 exemption listed in the seed: "managing the Telegram bot of technical support".
            second_factor_exempt: true,
            default_roles: &BuiltinRole::ALL,
        },
    ],
    pages: &[
        page!(GET "/profile" => profile_page, Access::SignedIn),
        page!(POST "/profile" => details_submit, Access::Permission(EDIT)),
        page!(POST "/profile/second-factor/sms" => send_sms_submit, Access::SignedIn),
        page!(POST "/profile/second-factor/activate" => activate_submit, Access::SignedIn),
        page!(POST "/profile/second-factor/enable" => enable_submit, Access::SignedIn),
        page!(POST "/profile/tokens" => create_token_submit, Access::Permission(TOKENS)),
        page!(POST "/profile/phone" => phone_submit, Access::Permission(EDIT)),
        page!(POST "/profile/phone/confirm" => phone_confirm_submit, Access::Permission(EDIT)),
        page!(POST "/profile/second-factor/disable" => disable_submit, Access::SignedIn),
        page!(POST "/profile/support-bot" => support_bot_submit, Access::Permission(SUPPORT_BOT)),
        page!(POST "/profile/tokens/:id/revoke" => revoke_token_submit, Access::Permission(TOKENS)),
    ],
    api: Some(Api::of::<ProfileApi>(&[
        operation!(GET "/profile", Access::SignedIn),
        operation!(PUT "/profile", Access::Permission(EDIT)),
        operation!(GET "/profile/second-factor", Access::SignedIn),
        operation!(POST "/profile/second-factor/activation-code", Access::SignedIn),
        operation!(POST "/profile/second-factor/activation", Access::SignedIn),
        operation!(POST "/profile/second-factor", Access::SignedIn),
        operation!(POST "/profile/phone/confirmation-code", Access::Permission(EDIT)),
        operation!(PUT "/profile/phone", Access::Permission(EDIT)),
        operation!(POST "/profile/second-factor/deactivation", Access::SignedIn),
        operation!(POST "/profile/support-bot-code", Access::Permission(SUPPORT_BOT)),
        operation!(GET "/profile/tokens", Access::Permission(TOKENS)),
        operation!(POST "/profile/tokens", Access::Permission(TOKENS)),
        operation!(DELETE "/profile/tokens/{id}", Access::Permission(TOKENS)),
    ])),
    templates: &[
        Template { name: "profile/index", source: include_str!("../templates/index.hbs") },
        Template { name: "profile/recovery-codes", source: include_str!("../templates/recovery-codes.hbs") },
    ],
});

const EDIT: &str = "profile.edit";
const TOKENS: &str = "profile.api_tokens";
const SUPPORT_BOT: &str = "profile.support_bot";

#[derive(Debug, Deserialize)]
struct PhoneForm {
    phone: String,
    code: Option<String>,
}

/// What the profile page shows besides its usual content.
#[derive(Debug, Default)]
struct Extras<'a> {
    notice: Option<&'a str>,
    error: Option<&'a str>,
    new_token: Option<&'a str>,
    /// A phone waiting for its SMS code.
    pending_phone: Option<&'a str>,
    /// A support-bot code just issued, and its expiry.
    bot_code: Option<(&'a str, &'a str)>,
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    /// "all", or the chosen `project_ids`.
    projects: String,
    #[serde(default)]
    project_ids: Vec<i64>,
    /// `YYYY-MM-DD`, empty for no expiry; the token ends at the start of that day (UTC).
    expires_on: String,
}

#[derive(Debug, Deserialize)]
struct DetailsForm {
    display_name: String,
    email: String,
    time_zone: String,
}

#[derive(Debug, Deserialize)]
struct Notice {
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    code: String,
}

fn notice_text(key: Option<&str>) -> Option<&'static str> {
    match key? {
        "sms-sent" => Some("We sent a 6-digit code to your phone. It is valid for 5 minutes."),
        "saved" => Some("Your profile was saved."),
        "revoked" => Some("The token was revoked: it no longer works."),
        "phone-saved" => Some("Your phone number was confirmed and saved."),
        "second-factor-off" => Some("Two-factor authentication is off."),
        _ => None,
    }
}

async fn render_profile(
    page: &PageContext,
    notice: Option<&str>,
    error: Option<&str>,
) -> Result<Html<String>, AppError> {
    render_profile_with(page, Extras { notice, error, ..Extras::default() }).await
}

async fn render_profile_with(page: &PageContext, extras: Extras<'_>) -> Result<Html<String>, AppError> {
    let principal = page.principal()?;
    let can_manage_tokens = principal.has_permission(TOKENS);
    let token_list = if can_manage_tokens { tokens::list(&page.state, principal.user_id).await? } else { Vec::new() };
    let projects = directory::visible_projects(&page.state.db, principal).await?;
    let scope_choices: Vec<serde_json::Value> = principal
        .permissions
        .iter()
        .chain(&principal.awaiting_second_factor)
        .filter_map(|code| page.state.registry.permission(code))
        .map(|p| {
            json!({
                "code": p.code,
                "label": p.label,
                "needs_second_factor": session::needs_second_factor(&page.state, p.code),
            })
        })
        .collect();
    let status = second_factor::status(&page.state, principal.user_id).await?;
    let enrolment =
        if status.awaiting_app_code { second_factor::enrolment(&page.state, principal.user_id).await? } else { None };
    let details = directory::profile_details(&page.state.db, principal.user_id).await?;
    let data = json!({
        "csrf_token": page.csrf_token,
        "zones": dashboard_core::time::zone_choices(&details.time_zone),
        "details": details,
        "can_edit": principal.has_permission(EDIT),
        "display_name": principal.display_name,
        "username": principal.username,
        "company": principal.company_name,
        "status": status,
        "enrolment": enrolment,
        "needs_second_factor": principal.needs_second_factor(),
        "needs_second_factor_roles": principal
            .permissions
            .iter()
            .chain(&principal.awaiting_second_factor)
            .any(|code| session::needs_second_factor(&page.state, code)),
        "awaiting": principal
            .awaiting_second_factor
            .iter()
            .map(|code| page.state.registry.permission(code).map_or(code.as_str(), |p| p.label))
            .collect::<Vec<_>>(),
        "notice": extras.notice,
        "error": extras.error,
        "can_manage_tokens": can_manage_tokens,
        "tokens": token_list,
        "new_token": extras.new_token,
        "pending_phone": extras.pending_phone,
        "phone": directory::profile_phone(&page.state.db, principal.user_id).await?,
        "can_use_bot": principal.has_permission(SUPPORT_BOT),
        "bot_code": extras.bot_code.map(|(code, expires)| json!({ "code": code, "expires_at": expires })),
        "scope_choices": scope_choices,
        "projects": projects,
        "second_factor_verified": principal.second_factor_verified,
    });
    page.render("My profile", "profile/index", &data)
}

#[handler]
async fn profile_page(page: PageContext, Query(query): Query<Notice>) -> Result<Html<String>, AppError> {
    render_profile(&page, notice_text(query.notice.as_deref()), None).await
}

/// Shows a service error on the profile page instead of an error page: these are the
/// user's own mistakes (wrong code, no phone), to fix on the spot.
async fn or_profile_error(page: &PageContext, result: Result<Response, AppError>) -> Result<Response, AppError> {
    match result {
        Err(error @ (AppError::BadRequest(_) | AppError::Conflict(_) | AppError::TooManyRequests(_))) => {
            let html = render_profile(page, None, Some(&error.to_string())).await?;
            Ok((error.status(), html).into_response())
        }
        other => other,
    }
}

#[handler]
async fn details_submit(page: PageContext, Form(form): Form<DetailsForm>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let details =
        ProfileDetails { display_name: form.display_name, email: Some(form.email), time_zone: form.time_zone };
    let result = update_details(&page.state, principal, &details).await.map(|_| see_other("/profile?notice=saved"));
    or_profile_error(&page, result).await
}

/// The service behind the form and `PUT /profile`.
async fn update_details(
    state: &AppState,
    principal: &Principal,
    details: &ProfileDetails,
) -> Result<ProfileDetails, AppError> {
    let saved = directory::update_profile(&state.db, principal.user_id, details).await?;
    let event = dashboard_core::audit::AuditEvent::success(principal, "profile.updated");
    dashboard_core::audit::record(&state.db, event).await?;
    Ok(saved)
}

#[handler]
async fn send_sms_submit(page: PageContext) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let result = second_factor::send_activation_code(&page.state, principal.user_id)
        .await
        .map(|()| see_other("/profile?notice=sms-sent"));
    or_profile_error(&page, result).await
}

#[handler]
async fn activate_submit(page: PageContext, Form(form): Form<CodeForm>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let result =
        second_factor::activate(&page.state, principal.user_id, &form.code).await.map(|_| see_other("/profile"));
    or_profile_error(&page, result).await
}

#[handler]
async fn enable_submit(
    page: PageContext,
    req: &Request,
    cookies: &CookieJar,
    Form(form): Form<CodeForm>,
) -> Result<Response, AppError> {
    let result = enable(&page.state, page.principal()?, req, cookies, &form.code).await;
    let codes = match result {
        Ok(codes) => codes,
        Err(error) => return or_profile_error(&page, Err(error)).await,
    };
    let data = json!({ "codes": codes });
    Ok(page.render("Recovery codes", "profile/recovery-codes", &data)?.into_response())
}

/// The service behind the page and the API: enables the second factor, records it, and
/// renews the session, which now carries every granted permission.
async fn enable(
    state: &AppState,
    principal: &Principal,
    req: &Request,
    cookies: &CookieJar,
    code: &str,
) -> Result<Vec<String>, AppError> {
    principal.require_session()?;
    let client = ClientInfo::from_request(req);
    let event = dashboard_core::audit::AuditEvent::success(principal, "second_factor.enabled").ip(client.ip.clone());
    let codes = second_factor::enable(state, principal.user_id, code, Some(event)).await?;
    if let Some(token) = session::session_token(state, cookies) {
        let renewed = session::elevate(state, principal, &token, &client).await?;
        cookies.add(session::session_cookie(state, &renewed));
    }
    Ok(codes)
}

#[handler]
async fn create_token_submit(page: PageContext, HtmlForm(form): HtmlForm<TokenForm>) -> Result<Response, AppError> {
    let result = async {
        let expires_at = parse_expiry(&form.expires_on)?;
        let project_ids = (form.projects != "all").then_some(form.project_ids);
        let new = NewToken { name: form.name, scopes: form.scopes, project_ids, expires_at };
        tokens::create(&page.state, page.principal()?, new).await
    }
    .await;
    match result {
        Ok((token, _)) => {
            let notice = "Copy the token now: it is shown only once.";
            let extras = Extras { notice: Some(notice), new_token: Some(&token), ..Extras::default() };
            Ok(render_profile_with(&page, extras).await?.into_response())
        }
        Err(error) => or_profile_error(&page, Err(error)).await,
    }
}

/// `YYYY-MM-DD` → the start of that day, UTC; empty → no expiry.
fn parse_expiry(text: &str) -> Result<Option<chrono::NaiveDateTime>, AppError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(Some)
        .ok_or_else(|| AppError::BadRequest("The expiry date must look like 2027-01-31.".to_owned()))
}

#[handler]
async fn revoke_token_submit(
    page: PageContext,
    poem::web::Path(id): poem::web::Path<i64>,
) -> Result<Response, AppError> {
    tokens::revoke(&page.state, page.principal()?, id).await?;
    Ok(see_other("/profile?notice=revoked"))
}

#[handler]
async fn phone_submit(page: PageContext, Form(form): Form<PhoneForm>) -> Result<Response, AppError> {
    match service::request_phone_code(&page.state, page.principal()?, &form.phone).await {
        Ok(phone) => {
            let notice = Some("We sent a 6-digit code to the new number. Enter it to confirm the number.");
            let extras = Extras { notice, pending_phone: Some(&phone), ..Extras::default() };
            Ok(render_profile_with(&page, extras).await?.into_response())
        }
        Err(error) => or_profile_error(&page, Err(error)).await,
    }
}

#[handler]
async fn phone_confirm_submit(page: PageContext, Form(form): Form<PhoneForm>) -> Result<Response, AppError> {
    let code = form.code.unwrap_or_default();
    match service::confirm_phone(&page.state, page.principal()?, &form.phone, &code).await {
        Ok(_) => Ok(see_other("/profile?notice=phone-saved")),
        Err(AppError::BadRequest(message)) => {
            let extras = Extras { error: Some(&message), pending_phone: Some(&form.phone), ..Extras::default() };
            Ok((poem::http::StatusCode::BAD_REQUEST, render_profile_with(&page, extras).await?).into_response())
        }
        Err(error) => Err(error),
    }
}

#[handler]
async fn disable_submit(page: PageContext, req: &Request, Form(form): Form<CodeForm>) -> Result<Response, AppError> {
    let client = ClientInfo::from_request(req);
    let result = service::disable_second_factor(&page.state, page.principal()?, &form.code, &client)
        .await
        .map(|()| see_other("/profile?notice=second-factor-off"));
    or_profile_error(&page, result).await
}

#[handler]
async fn support_bot_submit(page: PageContext) -> Result<Response, AppError> {
    let (code, expires_at) = service::support_bot_code(&page.state, page.principal()?).await?;
    let extras = Extras { bot_code: Some((&code, &expires_at)), ..Extras::default() };
    Ok(render_profile_with(&page, extras).await?.into_response())
}

/// A phone number to confirm.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PhoneRequest {
    /// International format, e.g. `+447700900123`.
    pub phone: String,
}

/// The phone and the code that was sent to it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PhoneConfirmation {
    pub phone: String,
    pub code: String,
}

/// A one-time code for the support bot.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SupportBotCode {
    pub code: String,
    pub expires_at: dashboard_core::time::Timestamp,
}

#[derive(ApiResponse)]
enum Done {
    #[oai(status = 204)]
    Done,
}

/// What `POST /profile/tokens` takes.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TokenRequest {
    pub name: String,
    /// Permission codes, each one the caller holds.
    pub scopes: Vec<String>,
    /// Omit for every project the caller may see.
    pub project_ids: Option<Vec<i64>>,
    /// RFC 3339; omit for no expiry.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A new token: `token` is shown this once.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreatedToken {
    pub token: String,
    pub info: TokenInfo,
}

#[derive(ApiResponse)]
enum TokenCreated {
    #[oai(status = 201)]
    Created(Json<CreatedToken>),
}

#[derive(ApiResponse)]
enum Revoked {
    /// The token no longer works.
    #[oai(status = 204)]
    Done,
}

/// The code from the SMS or the app.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Code {
    pub code: String,
}

/// Single-use recovery codes, shown this once.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

#[derive(ApiResponse)]
enum Sent {
    /// The SMS activation code was sent to the phone on the account.
    #[oai(status = 204)]
    Done,
}

#[derive(Default)]
pub struct ProfileApi;

#[OpenApi(tag = "ProfileTag::Profile")]
impl ProfileApi {
    /// The caller's profile
    #[oai(path = "/profile", method = "get", operation_id = "profile_get")]
    async fn get(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<ProfileDetails>> {
        Ok(Json(directory::profile_details(&state.db, principal.user_id).await?))
    }

    /// Change the caller's profile
    #[oai(path = "/profile", method = "put", operation_id = "profile_update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<ProfileDetails>,
    ) -> ApiResult<Json<ProfileDetails>> {
        Ok(Json(update_details(&state, principal, &body).await?))
    }

    /// The caller's second-factor status
    #[oai(path = "/profile/second-factor", method = "get", operation_id = "profile_second_factor_get")]
    async fn status(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<SecondFactorStatus>> {
        Ok(Json(second_factor::status(&state, principal.user_id).await?))
    }

    /// Send a confirmation code to a new phone number
    #[oai(path = "/profile/phone/confirmation-code", method = "post", operation_id = "profile_phone_code")]
    async fn phone_code(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<PhoneRequest>,
    ) -> ApiResult<Done> {
        service::request_phone_code(&state, principal, &body.phone).await?;
        Ok(Done::Done)
    }

    /// Set the phone number with the code sent to it
    #[oai(path = "/profile/phone", method = "put", operation_id = "profile_phone_set")]
    async fn set_phone(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<PhoneConfirmation>,
    ) -> ApiResult<Done> {
        service::confirm_phone(&state, principal, &body.phone, &body.code).await?;
        Ok(Done::Done)
    }

    /// Turn two-factor authentication off
    ///
    /// Only where none of the caller's roles needs it; takes a current code from the app.
    #[oai(
        path = "/profile/second-factor/deactivation",
        method = "post",
        operation_id = "profile_second_factor_disable"
    )]
    async fn disable(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        req: &Request,
        body: Json<Code>,
    ) -> ApiResult<Done> {
        service::disable_second_factor(&state, principal, &body.code, &ClientInfo::from_request(req)).await?;
        Ok(Done::Done)
    }

    /// A one-time code that links the support bot to the caller (10 minutes)
    #[oai(path = "/profile/support-bot-code", method = "post", operation_id = "profile_support_bot_code")]
    async fn support_bot_code(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<SupportBotCode>> {
        let (code, expires_at) = service::support_bot_code(&state, principal).await?;
        Ok(Json(SupportBotCode { code, expires_at: expires_at.into() }))
    }

    /// The caller's API tokens
    #[oai(path = "/profile/tokens", method = "get", operation_id = "profile_tokens_list")]
    async fn list_tokens(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<Vec<TokenInfo>>> {
        Ok(Json(tokens::list(&state, principal.user_id).await?))
    }

    /// Create an API token
    ///
    /// Tokens act without TOTP: a token whose scopes need the second factor can only be
    /// created in a session that passed it.
    #[oai(path = "/profile/tokens", method = "post", operation_id = "profile_tokens_create")]
    async fn create_token(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<TokenRequest>,
    ) -> ApiResult<TokenCreated> {
        let Json(request) = body;
        let new = NewToken {
            name: request.name,
            scopes: request.scopes,
            project_ids: request.project_ids,
            expires_at: request.expires_at.map(|at| at.naive_utc()),
        };
        let (token, info) = tokens::create(&state, principal, new).await?;
        Ok(TokenCreated::Created(Json(CreatedToken { token, info })))
    }

    /// Revoke an API token
    #[oai(path = "/profile/tokens/:id", method = "delete", operation_id = "profile_tokens_revoke")]
    async fn revoke_token(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
    ) -> ApiResult<Revoked> {
        tokens::revoke(&state, principal, id.0).await?;
        Ok(Revoked::Done)
    }

    /// Set-up step 1: send the SMS activation code
    #[oai(path = "/profile/second-factor/activation-code", method = "post", operation_id = "profile_second_factor_sms")]
    async fn send_activation_code(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Sent> {
        principal.require_session()?;
        second_factor::send_activation_code(&state, principal.user_id).await?;
        Ok(Sent::Done)
    }

    /// Set-up step 2: the SMS code, answered with the secret to scan
    #[oai(path = "/profile/second-factor/activation", method = "post", operation_id = "profile_second_factor_activate")]
    async fn activate(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<Code>,
    ) -> ApiResult<Json<Enrolment>> {
        principal.require_session()?;
        Ok(Json(second_factor::activate(&state, principal.user_id, &body.code).await?))
    }

    /// Set-up step 3: a code from the app enables the second factor
    ///
    /// Answers the recovery codes (shown once) and renews the session cookie.
    #[oai(path = "/profile/second-factor", method = "post", operation_id = "profile_second_factor_enable")]
    async fn enable(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        req: &Request,
        cookies: &CookieJar,
        body: Json<Code>,
    ) -> ApiResult<Json<RecoveryCodes>> {
        let recovery_codes = enable(&state, principal, req, cookies, &body.code).await?;
        Ok(Json(RecoveryCodes { recovery_codes }))
    }
}

#[derive(poem_openapi::Tags)]
enum ProfileTag {
    /// The caller's own account.
    Profile,
}
