//! Sessions: sign-in with lockout, the second-factor step, idle and absolute timeouts.
//!
//! The cookie carries a random token; the database keeps its SHA-256. A session starts
//! in stage `second_factor` when the user has TOTP enabled (it authenticates nothing
//! until the code is given, then a new session replaces it) and `active` otherwise. An
//! active session without the second factor carries only the exempt permissions.
//! Idle timeout: 5 minutes for a session holding any permission that needs the second
//! factor (PSD2 RTS art. 4(3)(d)), the configured time otherwise.

use std::collections::BTreeSet;

use chrono::{NaiveDateTime, TimeDelta};
use poem::web::cookie::{Cookie, SameSite};
use poem::{Endpoint, Request};

use crate::audit::{self, AuditEvent};
use crate::auth::{Principal, ProjectScope, random_token, sha256_hex, user_permissions, verify_password};
use crate::db::prelude::*;
use crate::error::AppError;
use crate::schema::{companies, sessions, user_projects, users};
use crate::second_factor::{self, CodeCheck};
use crate::state::AppState;
use crate::time::now;

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "dashboard_session";

/// The session cookie's name: over https with the `__Host-` prefix, which browsers
/// accept only from this very host, over https, for every path, so that no other site or
/// subdomain can set or shadow it.
pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.settings.secure_cookies { "__Host-dashboard_session" } else { SESSION_COOKIE }
}

/// The session token of the browser's cookie, if any.
pub fn session_token(state: &AppState, cookies: &poem::web::cookie::CookieJar) -> Option<String> {
    cookies
        .get(session_cookie_name(state))
        .map(|cookie| cookie.value_str().to_owned())
        .filter(|token| !token.is_empty())
}
/// Idle timeout of a session that holds permissions needing the second factor.
pub const SECOND_FACTOR_IDLE: TimeDelta = TimeDelta::minutes(5);
/// Time to enter the code after the password.
pub const SECOND_FACTOR_WINDOW: TimeDelta = TimeDelta::minutes(5);
/// Writes of `last_seen_at` are skipped when the last one is this recent.
const TOUCH_INTERVAL: TimeDelta = TimeDelta::seconds(5);

const STAGE_ACTIVE: &str = "active";
const STAGE_SECOND_FACTOR: &str = "second_factor";

/// Where the client stands after the password.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in; the token goes into the cookie.
    Active { token: String, principal: Box<Principal> },
    /// The password was right; the second factor is asked next (the token is for that step).
    SecondFactorRequired { token: String },
    /// Wrong username or password: the answer never says which.
    Refused,
    /// The account is locked after failed sign-ins, until then: said whether or not the
    /// password was right (it is not checked meanwhile).
    Locked { until: NaiveDateTime },
}

/// The client's address and browser, for the session row and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    pub fn from_request(req: &Request) -> ClientInfo {
        ClientInfo {
            ip: req.remote_addr().as_socket_addr().map(|addr| addr.ip().to_string()),
            user_agent: req
                .headers()
                .get(poem::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(300).collect()),
        }
    }
}

/// A session that passed the password and waits for the second factor.
#[derive(Debug, Clone)]
pub struct PendingSecondFactor {
    pub user_id: i64,
}

/// Checks username and password. Unknown users cost the same argon2 verification; a
/// locked account is refused even with the right password, and every failure counts
/// towards the lockout.
pub async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    client: &ClientInfo,
) -> Result<SignIn, AppError> {
    // Before anything is read or counted: a sign-in refused by the throttle or for want
    // of a turn changes nothing.
    crate::throttle::SignInThrottle::of(state)?.check(client.ip.as_deref(), username)?;
    let _turn = state.hashing.turn().await?;
    let username = username.trim().to_lowercase();
    let found: Option<(i64, i64, String)> = crate::db_run!(state.db, conn => {
        users::table
            .filter(users::username.eq(&username))
            .filter(users::active.eq(true))
            .select((users::id, users::company_id, users::password_hash))
            .first(conn)
            .await
            .optional()
    })?;
    let Some((user_id, company_id, hash)) = found else {
        // Same cost as for a known user; the typed name is not logged (often a password).
        verify_password(password.to_owned(), None).await;
        let event = AuditEvent::anonymous("session.sign_in", "unknown username".to_owned(), "failure");
        record(state, event, client).await?;
        return Ok(SignIn::Refused);
    };
    let Some(attempt) = begin_attempt(state, user_id).await? else {
        verify_password(password.to_owned(), Some(hash)).await;
        let event = AuditEvent::by_user(company_id, user_id, "session.sign_in", "denied");
        record(state, event.details(serde_json::json!({ "reason": "account locked" })), client).await?;
        return Ok(match locked_until(state, user_id).await? {
            Some(until) => SignIn::Locked { until },
            None => SignIn::Refused,
        });
    };
    if !verify_password(password.to_owned(), Some(hash)).await {
        let locked = attempt_failed(state, attempt, company_id, client).await?;
        let event = AuditEvent::by_user(company_id, user_id, "session.sign_in", "failure");
        record(state, event.details(serde_json::json!({ "reason": "wrong password" })), client).await?;
        return Ok(locked.map_or(SignIn::Refused, |until| SignIn::Locked { until }));
    }
    if second_factor::is_enabled(state, user_id).await? {
        // The right password neither adds a failure nor clears the earlier ones: signing
        // in again must not reset the count of wrong codes.
        attempt_undone(state, user_id).await?;
        let token = insert_session(state, user_id, STAGE_SECOND_FACTOR, None, SECOND_FACTOR_WINDOW, client).await?;
        return Ok(SignIn::SecondFactorRequired { token });
    }
    attempt_succeeded(state, user_id).await?;
    let token = insert_session(state, user_id, STAGE_ACTIVE, None, state.settings.session_lifetime, client).await?;
    record(state, AuditEvent::by_user(company_id, user_id, "session.sign_in", "success"), client).await?;
    let principal = principal_for_token(state, &token).await?.ok_or(AppError::Unauthorized)?;
    Ok(SignIn::Active { token, principal: Box::new(principal) })
}

/// Asks a signed-in person for their password again before something sensitive is shown
/// (a project's secret key). A wrong password counts towards the lockout as a sign-in's
/// does, so a session left open cannot be used to guess it; a locked account is refused.
pub async fn confirm_password(
    state: &AppState,
    principal: &Principal,
    password: &str,
    client: &ClientInfo,
) -> Result<(), AppError> {
    let refused = || AppError::Refused("The password is not right.".to_owned());
    let _turn = state.hashing.turn().await?;
    let hash: String = crate::db_run!(state.db, conn => {
        users::table.find(principal.user_id).select(users::password_hash).first(conn).await
    })?;
    let Some(attempt) = begin_attempt(state, principal.user_id).await? else {
        return Err(refused());
    };
    if !verify_password(password.to_owned(), Some(hash)).await {
        attempt_failed(state, attempt, principal.company_id, client).await?;
        let event =
            AuditEvent::by_user(principal.company_id, principal.user_id, "session.password_confirmed", "failure");
        record(state, event, client).await?;
        return Err(refused());
    }
    attempt_succeeded(state, principal.user_id).await?;
    Ok(())
}

/// The second step: a TOTP or recovery code for the session `pending_token`. On success
/// the pending session is replaced by a new one (a new id) that carries all the user's
/// permissions; a wrong code counts towards the lockout. `Err(check)`: refused, and why
/// (no pending session is a wrong code).
pub async fn complete_second_factor(
    state: &AppState,
    pending_token: &str,
    code: &str,
    client: &ClientInfo,
) -> Result<Result<(String, Principal), CodeCheck>, AppError> {
    let Some(pending) = pending_session(state, pending_token).await? else { return Ok(Err(CodeCheck::Wrong)) };
    let user_id = pending.user_id;
    let company_id = crate::directory::company_of_user(&state.db, user_id).await?;
    let checked = check_code(state, user_id, company_id, code, client).await?;
    if !checked.accepted() {
        if locked_until(state, user_id).await?.is_some() {
            delete_session(state, pending_token).await?;
        }
        let event = AuditEvent::by_user(company_id, user_id, "session.second_factor", "failure");
        record(state, event, client).await?;
        return Ok(Err(checked));
    }
    delete_session(state, pending_token).await?;
    let token =
        insert_session(state, user_id, STAGE_ACTIVE, Some(now()), state.settings.session_lifetime, client).await?;
    record(state, AuditEvent::by_user(company_id, user_id, "session.sign_in", "success"), client).await?;
    let principal = principal_for_token(state, &token).await?.ok_or(AppError::Unauthorized)?;
    Ok(Ok((token, principal)))
}

/// Checks a second-factor code under the lockout: the attempt is counted before the
/// check, so that parallel guesses cannot exceed the limit; a right code clears the count.
pub async fn check_code(
    state: &AppState,
    user_id: i64,
    company_id: i64,
    code: &str,
    client: &ClientInfo,
) -> Result<CodeCheck, AppError> {
    let Some(attempt) = begin_attempt(state, user_id).await? else { return Ok(CodeCheck::Wrong) };
    let checked = second_factor::check(state, user_id, code).await?;
    if checked.accepted() {
        attempt_succeeded(state, user_id).await?;
    } else {
        attempt_failed(state, attempt, company_id, client).await?;
    }
    Ok(checked)
}

/// Replaces the caller's own active session by a new one that has passed the second
/// factor (after they enabled it in this session): a new id, as after any change of
/// privilege. Any other session (another user's, pending, expired) is refused.
pub async fn elevate(
    state: &AppState,
    principal: &Principal,
    token: &str,
    client: &ClientInfo,
) -> Result<String, AppError> {
    let user_id = principal.user_id;
    if session_user(state, token, STAGE_ACTIVE).await? != Some(user_id) {
        return Err(AppError::Forbidden);
    }
    delete_session(state, token).await?;
    insert_session(state, user_id, STAGE_ACTIVE, Some(now()), state.settings.session_lifetime, client).await
}

/// Confirms the person behind the session `token` again with a second-factor code
/// (step-up): the session's second factor is stamped now, for the actions that need a
/// recent one ([`Principal::require_step_up`]). Only for the caller's own session that
/// passed the second factor at sign-in (so its permissions do not change and it keeps
/// its id); a wrong code counts towards the lockout.
pub async fn step_up(
    state: &AppState,
    principal: &Principal,
    token: &str,
    code: &str,
    client: &ClientInfo,
) -> Result<CodeCheck, AppError> {
    principal.require_session()?;
    let user_id = principal.user_id;
    if session_user(state, token, STAGE_ACTIVE).await? != Some(user_id) {
        return Err(AppError::Forbidden);
    }
    if principal.second_factor_at.is_none() {
        return Err(AppError::Refused(
            "This session signed in without a second factor: set it up in My profile, or sign in again with it."
                .to_owned(),
        ));
    }
    let checked = check_code(state, user_id, principal.company_id, code, client).await?;
    if !checked.accepted() {
        record(state, AuditEvent::by_user(principal.company_id, user_id, "session.step_up", "failure"), client).await?;
        return Ok(checked);
    }
    let (hash, now) = (sha256_hex(token), now());
    crate::db_write!(state.db, conn => {
        diesel::update(sessions::table.find(&hash)).set(sessions::second_factor_at.eq(Some(now))).execute(conn).await
    })?;
    record(state, AuditEvent::by_user(principal.company_id, user_id, "session.step_up", "success"), client).await?;
    Ok(CodeCheck::Accepted)
}

async fn record(state: &AppState, event: AuditEvent, client: &ClientInfo) -> Result<(), AppError> {
    audit::record(&state.db, event.ip(client.ip.clone())).await
}

/// A counted sign-in attempt: the user and the count of consecutive failures including it.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    user_id: i64,
    count: i32,
}

/// Counts an attempt before its credentials are checked, in one atomic update that
/// succeeds only while the account is unlocked and under the limit: however many
/// requests run in parallel, at most the limit are ever checked. `None`: locked.
async fn begin_attempt(state: &AppState, user_id: i64) -> Result<Option<Attempt>, AppError> {
    let limit = state.settings.lockout_attempts;
    let now = now();
    let count: Option<i32> = crate::db_write!(state.db, conn => {
        diesel::update(
            users::table
                .find(user_id)
                .filter(users::locked_until.is_null().or(users::locked_until.le(now)))
                .filter(users::failed_attempts.lt(limit)),
        )
        .set(users::failed_attempts.eq(users::failed_attempts + 1))
        .returning(users::failed_attempts)
        .get_result(conn)
        .await
        .optional()
    })?;
    Ok(count.map(|count| Attempt { user_id, count }))
}

/// A right answer: the consecutive failures start again from zero.
async fn attempt_succeeded(state: &AppState, user_id: i64) -> Result<(), AppError> {
    crate::db_write!(state.db, conn => {
        diesel::update(users::table.find(user_id).filter(users::failed_attempts.gt(0)))
            .set(users::failed_attempts.eq(0))
            .execute(conn)
            .await
    })?;
    Ok(())
}

/// Takes back the count of an attempt that was neither right nor wrong yet.
async fn attempt_undone(state: &AppState, user_id: i64) -> Result<(), AppError> {
    crate::db_write!(state.db, conn => {
        diesel::update(users::table.find(user_id).filter(users::failed_attempts.gt(0)))
            .set(users::failed_attempts.eq(users::failed_attempts - 1))
            .execute(conn)
            .await
    })?;
    Ok(())
}

/// A wrong answer: the attempt stays counted; the one that reaches the limit locks the
/// account, ends its sessions and is audited. The lock's end when this attempt locked it.
async fn attempt_failed(
    state: &AppState,
    attempt: Attempt,
    company_id: i64,
    client: &ClientInfo,
) -> Result<Option<NaiveDateTime>, AppError> {
    let limit = state.settings.lockout_attempts;
    if attempt.count < limit {
        return Ok(None);
    }
    let user_id = attempt.user_id;
    let locked_until = now() + state.settings.lockout_duration;
    crate::db_write!(state.db, conn => {
        diesel::update(users::table.find(user_id))
            .set((users::failed_attempts.eq(0), users::locked_until.eq(Some(locked_until))))
            .execute(conn)
            .await
    })?;
    let event = AuditEvent::by_user(company_id, user_id, "account.locked", "success")
        .details(serde_json::json!({ "until": crate::time::rfc3339(&locked_until), "failures": limit }));
    record(state, event, client).await?;
    delete_user_sessions(state, user_id).await?;
    tell_of_lock(state, user_id, limit).await?;
    Ok(Some(locked_until))
}

/// The user hears of a lock on their phone, if they gave one: someone may be guessing
/// their password, or locking them out on purpose.
async fn tell_of_lock(state: &AppState, user_id: i64, failures: i32) -> Result<(), AppError> {
    let Some(phone) = crate::directory::profile_phone(&state.db, user_id).await? else { return Ok(()) };
    let minutes = state.settings.lockout_duration.num_minutes();
    let text = format!(
        "{}: your account was locked for {minutes} minutes after {failures} failed sign-ins. If it was not you, \
         tell your administrator.",
        crate::web::PRODUCT_NAME
    );
    crate::sms::notify(state, phone, text).await;
    Ok(())
}

/// Until when failed sign-ins lock the account, while they do.
async fn locked_until(state: &AppState, user_id: i64) -> Result<Option<NaiveDateTime>, AppError> {
    let locked_until: Option<NaiveDateTime> = crate::db_run!(state.db, conn => {
        users::table.find(user_id).select(users::locked_until).first(conn).await
    })?;
    Ok(locked_until.filter(|until| *until > now()))
}

/// What a locked account is told: that it is locked, and for how long (in minutes: the
/// user's time zone is not known before sign-in).
pub fn locked_message(until: NaiveDateTime) -> String {
    let seconds = (until - now()).num_seconds().max(0);
    let minutes = ((seconds + 59) / 60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!(
        "This account is locked after too many failed attempts. Try again in {minutes} {unit}, set a new \
         password through \"Forgot your password?\", or ask your administrator to unlock it."
    )
}

async fn insert_session(
    state: &AppState,
    user_id: i64,
    stage: &'static str,
    second_factor_at: Option<NaiveDateTime>,
    lifetime: TimeDelta,
    client: &ClientInfo,
) -> Result<String, AppError> {
    let token = random_token();
    let now = now();
    let row = (
        sessions::token_hash.eq(sha256_hex(&token)),
        sessions::user_id.eq(user_id),
        sessions::created_at.eq(now),
        sessions::last_seen_at.eq(now),
        sessions::expires_at.eq(now + lifetime),
        sessions::second_factor_at.eq(second_factor_at),
        sessions::ip.eq(client.ip.clone()),
        sessions::user_agent.eq(client.user_agent.clone()),
        sessions::stage.eq(stage),
    );
    crate::db_write!(state.db, conn => {
        diesel::insert_into(sessions::table).values(row).execute(conn).await
    })?;
    Ok(token)
}

/// Ends the session whose cookie carries `token`.
pub async fn delete_session(state: &AppState, token: &str) -> Result<(), AppError> {
    let hash = sha256_hex(token);
    crate::db_write!(state.db, conn => {
        diesel::delete(sessions::table.filter(sessions::token_hash.eq(&hash))).execute(conn).await
    })?;
    Ok(())
}

/// Ends every session of a user (deactivation, second-factor reset).
pub async fn delete_user_sessions(state: &AppState, user_id: i64) -> Result<usize, AppError> {
    Ok(crate::db_write!(state.db, conn => crate::end_user_sessions!(conn, user_id))?)
}

/// Ends every session of `$user_id` with `$conn`, inside the caller's write (a change of
/// their credentials or access and its audit entry); evaluates to the number ended.
#[macro_export]
macro_rules! end_user_sessions {
    ($conn:ident, $user_id:expr) => {{
        use $crate::schema::sessions as __sessions;
        diesel::delete(__sessions::table.filter(__sessions::user_id.eq($user_id))).execute($conn).await
    }};
}

/// Deletes sessions past their absolute lifetime or idle for longer than any idle
/// timeout allows; returns how many.
pub async fn delete_expired(state: &AppState) -> Result<usize, AppError> {
    let now = now();
    let idle_cutoff = now - state.settings.idle_timeout.max(SECOND_FACTOR_IDLE);
    Ok(crate::db_write!(state.db, conn => {
        diesel::delete(
            sessions::table.filter(sessions::expires_at.le(now).or(sessions::last_seen_at.lt(idle_cutoff))),
        )
        .execute(conn)
        .await
    })?)
}

/// The session cookie for `token` (an empty token with max-age 0 removes it).
pub fn session_cookie(state: &AppState, token: &str) -> Cookie {
    let mut cookie = Cookie::new_with_str(session_cookie_name(state), token);
    cookie.set_path("/");
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_secure(state.settings.secure_cookies);
    if token.is_empty() {
        cookie.set_max_age(std::time::Duration::ZERO);
    }
    cookie
}

async fn pending_session(state: &AppState, token: &str) -> Result<Option<PendingSecondFactor>, AppError> {
    let user_id = session_user(state, token, STAGE_SECOND_FACTOR).await?;
    Ok(user_id.map(|user_id| PendingSecondFactor { user_id }))
}

/// The user of an unexpired session in `stage`.
async fn session_user(state: &AppState, token: &str, stage: &'static str) -> Result<Option<i64>, AppError> {
    let hash = sha256_hex(token);
    let now = now();
    Ok(crate::db_run!(state.db, conn => {
        sessions::table
            .filter(sessions::token_hash.eq(&hash))
            .filter(sessions::stage.eq(stage))
            .filter(sessions::expires_at.gt(now))
            .select(sessions::user_id)
            .first(conn)
            .await
            .optional()
    })?)
}

/// The principal of a live, active session, or `None`. Applies the idle timeout (an
/// idle session is deleted) and keeps `last_seen_at` current.
pub async fn principal_for_token(state: &AppState, token: &str) -> Result<Option<Principal>, AppError> {
    let hash = sha256_hex(token);
    let now = now();
    let row: Option<(i64, NaiveDateTime, Option<NaiveDateTime>)> = crate::db_run!(state.db, conn => {
        sessions::table
            .filter(sessions::token_hash.eq(&hash))
            .filter(sessions::stage.eq(STAGE_ACTIVE))
            .filter(sessions::expires_at.gt(now))
            .select((sessions::user_id, sessions::last_seen_at, sessions::second_factor_at))
            .first(conn)
            .await
            .optional()
    })?;
    let Some((user_id, last_seen, second_factor_at)) = row else { return Ok(None) };
    let Some(mut principal) = load_principal(state, user_id, second_factor_at.is_some()).await? else {
        return Ok(None);
    };
    principal.second_factor_at = second_factor_at;
    let idle_limit = if holds_second_factor_permission(state, &principal.permissions) {
        SECOND_FACTOR_IDLE
    } else {
        state.settings.idle_timeout
    };
    if now - last_seen > idle_limit {
        delete_session(state, token).await?;
        return Ok(None);
    }
    if now - last_seen > TOUCH_INTERVAL {
        crate::db_write!(state.db, conn => {
            diesel::update(sessions::table.find(&hash)).set(sessions::last_seen_at.eq(now)).execute(conn).await
        })?;
    }
    Ok(Some(principal))
}

/// The principal of an active user: company, permissions (split by the second factor)
/// and project scope. `None` for a deactivated or unknown user.
pub async fn load_principal(
    state: &AppState,
    user_id: i64,
    second_factor_verified: bool,
) -> Result<Option<Principal>, AppError> {
    let row: Option<(i64, String, String, String, String, bool)> = crate::db_run!(state.db, conn => {
        users::table
            .inner_join(companies::table)
            .filter(users::id.eq(user_id))
            .filter(users::active.eq(true))
            .select((
                users::company_id,
                companies::name,
                users::username,
                users::display_name,
                users::time_zone,
                users::all_projects,
            ))
            .first(conn)
            .await
            .optional()
    })?;
    let Some((company_id, company_name, username, display_name, time_zone, all_projects)) = row else {
        return Ok(None);
    };
    let granted = user_permissions(state, user_id).await?;
    let (permissions, awaiting_second_factor) = split_permissions(state, granted, second_factor_verified);
    let projects =
        if all_projects { ProjectScope::All } else { ProjectScope::Only(user_project_ids(state, user_id).await?) };
    Ok(Some(Principal {
        user_id,
        company_id,
        company_name,
        username,
        display_name,
        time_zone,
        permissions,
        awaiting_second_factor,
        second_factor_verified,
        second_factor_at: None,
        projects,
        via_api_token: false,
    }))
}

/// Whether a permission needs the second factor (all do in strict mode).
pub fn needs_second_factor(state: &AppState, code: &str) -> bool {
    state.settings.strict_mode || state.registry.permission(code).is_none_or(|p| !p.second_factor_exempt)
}

fn holds_second_factor_permission(state: &AppState, permissions: &BTreeSet<String>) -> bool {
    permissions.iter().any(|code| needs_second_factor(state, code))
}

/// (usable now, waiting for the second factor).
fn split_permissions(
    state: &AppState,
    granted: BTreeSet<String>,
    second_factor_verified: bool,
) -> (BTreeSet<String>, BTreeSet<String>) {
    if second_factor_verified {
        return (granted, BTreeSet::new());
    }
    granted.into_iter().partition(|code| !needs_second_factor(state, code))
}

async fn user_project_ids(state: &AppState, user_id: i64) -> Result<BTreeSet<i64>, AppError> {
    let ids: Vec<i64> = crate::db_run!(state.db, conn => {
        user_projects::table.filter(user_projects::user_id.eq(user_id)).select(user_projects::project_id).load(conn).await
    })?;
    Ok(ids.into_iter().collect())
}

/// Middleware: puts the [`Principal`] of an active session, or the
/// [`PendingSecondFactor`] of a session waiting for its code, into the request.
pub struct SessionLoader<E> {
    pub inner: E,
}

impl<E: Endpoint> Endpoint for SessionLoader<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let Some(state) = req.data::<AppState>().cloned() else { return self.inner.call(req).await };
        if let Some(bearer) = bearer_token(&req) {
            // Integrators: an API token, checked on every request, acting without TOTP.
            if let Some(principal) = crate::tokens::principal_for_api_token(&state, &bearer).await? {
                req.extensions_mut().insert(principal);
            }
            return self.inner.call(req).await;
        }
        if let Some(token) = session_token(&state, req.cookie()) {
            if let Some(principal) = principal_for_token(&state, &token).await? {
                req.extensions_mut().insert(principal);
            } else if let Some(pending) = pending_session(&state, &token).await? {
                req.extensions_mut().insert(pending);
            }
        }
        self.inner.call(req).await
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer_token(req: &Request) -> Option<String> {
    let value = req.headers().get(poem::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

// Expired sessions are deleted every minute while the server runs.
crate::register!(crate::hooks::Job {
    name: "session cleanup",
    every: std::time::Duration::from_secs(60),
    run: |state| {
        Box::pin(async move {
            let deleted = delete_expired(&state).await?;
            if deleted > 0 {
                tracing::debug!(deleted, "expired sessions deleted");
            }
            Ok(())
        })
    },
});
