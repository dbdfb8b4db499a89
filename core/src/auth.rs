//! Who is asking: passwords, sessions, the signed-in principal and the route guards.
//!
//! Every section route is wrapped in a guard built from the registry's declared access
//! (deny by default). The guard reads the [`Principal`] that [`SessionLoader`] put into
//! the request; a handler can take it as an extractor.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::PasswordVerifier;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use poem::http::{StatusCode, header};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::{Endpoint, FromRequest, IntoResponse, Request, RequestBody, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::DbError;
use crate::error::{AppError, problem_response};
use crate::registry::{Access, BuiltinRole, Registry};
use crate::schema::{role_permissions, roles, user_roles};
use crate::state::AppState;

/// Which projects of the company a user may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectScope {
    All,
    Only(BTreeSet<i64>),
}

impl ProjectScope {
    pub fn allows(&self, project_id: i64) -> bool {
        match self {
            ProjectScope::All => true,
            ProjectScope::Only(ids) => ids.contains(&project_id),
        }
    }
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub company_id: i64,
    pub company_name: String,
    pub username: String,
    pub display_name: String,
    /// The user's time zone (IANA name, as chosen in the profile): days begin and end
    /// there.
    pub time_zone: String,
    /// What the user may use now: all granted permissions after the second factor,
    /// only the exempt ones before (none in strict mode).
    pub permissions: BTreeSet<String>,
    /// Granted permissions that wait for the second factor (empty once it was given).
    pub awaiting_second_factor: BTreeSet<String>,
    /// The second factor was given in this session.
    pub second_factor_verified: bool,
    /// When it was last given in this session (at sign-in or a step-up); none for API
    /// tokens and sessions without it.
    pub second_factor_at: Option<chrono::NaiveDateTime>,
    pub projects: ProjectScope,
    /// Authenticated by an API token (no session, no cookie).
    pub via_api_token: bool,
}

/// How long a second-factor code confirms the sensitive actions that follow it.
pub const STEP_UP_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

impl Principal {
    /// The customer paying on the hosted Payment Page: no person of the company, only the
    /// project whose page it is, and no permission. Its `user_id` is 0, which no user has
    /// (ids start at 1); [`Principal::person`] says none.
    pub fn customer(company_id: i64, company_name: String, project_id: i64) -> Principal {
        Principal {
            user_id: 0,
            company_id,
            company_name,
            username: String::new(),
            display_name: "Customer".to_owned(),
            time_zone: "UTC".to_owned(),
            permissions: BTreeSet::new(),
            awaiting_second_factor: BTreeSet::new(),
            second_factor_verified: false,
            second_factor_at: None,
            projects: ProjectScope::Only(BTreeSet::from([project_id])),
            via_api_token: false,
        }
    }

    /// The dashboard itself acting for company `company_id` in project `project_id`, as a
    /// background job does (releasing a held payment at its deadline): no person and no
    /// permission, like [`Principal::customer`].
    pub fn automatic(company_id: i64, project_id: i64) -> Principal {
        Principal { display_name: "Automatic".to_owned(), ..Principal::customer(company_id, String::new(), project_id) }
    }

    /// The user acting, if a person of the company acts (not a customer on the hosted page).
    pub fn person(&self) -> Option<i64> {
        (self.user_id > 0).then_some(self.user_id)
    }

    /// Refuses API-token callers: managing tokens, the second factor or the phone needs
    /// the person, in a session (a token could otherwise outlive or widen itself).
    pub fn require_session(&self) -> Result<(), AppError> {
        if self.via_api_token {
            Err(AppError::Refused("This needs a signed-in session; API tokens cannot do it.".to_owned()))
        } else {
            Ok(())
        }
    }

    /// Refuses unless this is a session whose second factor was given within
    /// [`STEP_UP_WINDOW`]: changing someone else's credentials, second factor, roles or
    /// project access needs the person at the keyboard now, not a session left open.
    pub fn require_step_up(&self) -> Result<(), AppError> {
        self.require_session()?;
        match self.second_factor_at {
            Some(at) if crate::time::now() - at <= STEP_UP_WINDOW => Ok(()),
            _ => Err(AppError::StepUpRequired),
        }
    }

    pub fn has_permission(&self, code: &str) -> bool {
        self.permissions.contains(code)
    }

    /// Some granted permissions wait for the second factor: the UI guides to its set-up.
    pub fn needs_second_factor(&self) -> bool {
        !self.awaiting_second_factor.is_empty()
    }

    /// Whether this principal may use a route with `access`.
    pub fn may(&self, access: Access) -> bool {
        match access {
            Access::Public | Access::SignedIn => true,
            Access::Permission(code) => self.has_permission(code),
            Access::AnyOf(codes) => codes.iter().any(|code| self.has_permission(code)),
            Access::Undeclared => false,
        }
    }
}

/// Whether an optional principal may use a route with `access`.
pub fn allowed(principal: Option<&Principal>, access: Access) -> bool {
    match (access, principal) {
        (Access::Public, _) => true,
        (_, Some(principal)) => principal.may(access),
        (_, None) => false,
    }
}

impl<'a> FromRequest<'a> for &'a Principal {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        req.extensions().get::<Principal>().ok_or_else(|| AppError::Unauthorized.into())
    }
}

// ---------------------------------------------------------------------------------------
// Passwords

/// OWASP's baseline for argon2id: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with argon2id (PHC string). CPU-heavy: call off the async runtime,
/// e.g. through [`hash_password_blocking`].
pub fn hash_password(password: &str) -> Result<String, AppError> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
}

/// Hashes off the async runtime. Requests take a [`HashingTurns`] turn first; the
/// operator's commands need none.
pub async fn hash_password_blocking(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
}

const HASHING_AT_ONCE: &str = "password_hashing_at_once";
const HASHING_QUEUE: &str = "password_hashing_queue";

crate::register!(crate::hooks::Setting {
    name: HASHING_AT_ONCE,
    help: "Password checks (argon2, about 20 MB and a core each) running at once (0: one less than the machine's \
           cores, one at least)",
    default: "0",
    check: |value| crate::hooks::check_number_up_to(value, 1024),
});

crate::register!(crate::hooks::Setting {
    name: HASHING_QUEUE,
    help: "Password checks that may wait for a turn; more sign-ins are refused at once with 503 and Retry-After",
    default: "32",
    check: |value| match value.parse::<u32>() {
        Ok(1..=100_000) => Ok(()),
        _ => Err(format!("{value:?} is not a whole number from 1 to 100000")),
    },
});

/// Turns to hash or verify passwords. A storm of sign-ins (each costs an argon2 run)
/// must not take every core: at most `password_hashing_at_once` hash at once, at most
/// `password_hashing_queue` wait, and the rest are refused with 503 (and `Retry-After`)
/// before any work, so pages and payments keep their share.
pub struct HashingTurns {
    running: Arc<tokio::sync::Semaphore>,
    waiting: Arc<AtomicUsize>,
    queue: usize,
}

impl HashingTurns {
    /// `at_once` 0: one less than the machine's cores, one at least.
    pub fn new(at_once: usize, queue: usize) -> HashingTurns {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let at_once = if at_once == 0 { cores.saturating_sub(1).max(1) } else { at_once };
        HashingTurns { running: Arc::new(tokio::sync::Semaphore::new(at_once)), waiting: Arc::default(), queue }
    }

    /// The turns the settings ask for.
    pub fn from_settings(settings: &crate::state::Settings) -> Result<HashingTurns, String> {
        let number = |name: &str| settings.setting(name).parse::<usize>().map_err(|e| format!("{name}: {e}"));
        Ok(HashingTurns::new(number(HASHING_AT_ONCE)?, number(HASHING_QUEUE)?))
    }
}

/// A turn: hashing may run while it is held.
pub struct HashingTurn {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Counts a request waiting for a turn for as long as it waits (also when it is dropped).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl HashingTurns {
    /// Waits for a turn, or refuses at once when the queue is full.
    pub async fn turn(&self) -> Result<HashingTurn, AppError> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(AppError::Unavailable("too many sign-ins at once; try again in a moment".to_owned()));
        }
        let waiting = Waiting(self.waiting.clone());
        let permit = self.running.clone().acquire_owned().await.map_err(|e| AppError::Internal(e.to_string()))?;
        drop(waiting);
        Ok(HashingTurn { _permit: permit })
    }
}

/// Verifies `password` against `hash`, off the async runtime. With no hash (unknown
/// user) a fixed dummy hash is verified instead, so that the answer takes as long.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
    let verified =
        tokio::task::spawn_blocking(move || argon2().verify_password(password.as_bytes(), hash.as_str()).is_ok())
            .await
            .unwrap_or(false);
    known && verified
}

/// argon2id hash (OWASP parameters) of a random string nobody knows.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$kq6hNzk6a2Cu9cTzPuuVRxfdL3Ij/IXxe6Ih2HfImLM";

/// Checks a new password: its length, and that it is not a common password or easy to
/// guess (zxcvbn: common passwords, names, words, keyboard patterns, dates, repeats);
/// returns the problem for the user.
pub fn password_problem(password: &str) -> Option<&'static str> {
    if password.chars().count() < 10 {
        Some("The password must have at least 10 characters.")
    } else if password.len() > 1024 {
        Some("The password must have at most 1024 bytes.")
    } else if zxcvbn::zxcvbn(password, &[]).score() < zxcvbn::Score::Two {
        Some(
            "This password is too common or too easy to guess. Use a few unrelated words, or let a password \
             manager make one.",
        )
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------
// Tokens

/// 256 random bits from the OS CSPRNG, hex encoded.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The permissions a user holds through all their roles: a built-in role's come from the
/// registry, a custom role's from `role_permissions`. Codes no section declares (a module
/// that was removed) are dropped.
pub async fn user_permissions(state: &AppState, user_id: i64) -> Result<BTreeSet<String>, AppError> {
    let role_rows: Vec<(i64, Option<String>)> = crate::db_run!(state.db, conn => {
        user_roles::table
            .inner_join(roles::table)
            .filter(user_roles::user_id.eq(user_id))
            .select((roles::id, roles::builtin))
            .load(conn)
            .await
    })
    .map_err(DbError::from)?;
    let mut permissions = BTreeSet::new();
    let mut custom_roles = Vec::new();
    for (role_id, builtin) in role_rows {
        match builtin.as_deref().and_then(BuiltinRole::from_key) {
            Some(role) => permissions.extend(state.registry.default_permissions(role).into_iter().map(String::from)),
            None => custom_roles.push(role_id),
        }
    }
    if !custom_roles.is_empty() {
        let granted: Vec<String> = crate::db_run!(state.db, conn => {
            role_permissions::table
                .filter(role_permissions::role_id.eq_any(&custom_roles))
                .select(role_permissions::permission)
                .load(conn)
                .await
        })
        .map_err(DbError::from)?;
        permissions.extend(granted.into_iter().filter(|code| state.registry.permission(code).is_some()));
    }
    Ok(permissions)
}

// ---------------------------------------------------------------------------------------
// Middleware and guards

/// Guards an HTML page: not signed in → the sign-in page; not allowed → 403.
pub struct PageGuard<E> {
    pub inner: E,
    pub access: Access,
}

impl<E: Endpoint> Endpoint for PageGuard<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if !req.method().is_safe() {
            csrf::check(&mut req).await?;
        }
        let principal = req.extensions().get::<Principal>();
        if allowed(principal, self.access) {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        if principal.is_none() {
            let next = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
            if req.method() != poem::http::Method::GET {
                return Err(AppError::Unauthorized.into());
            }
            let location = format!("/sign-in?next={}", urlencode(next));
            return Ok(Response::builder().status(StatusCode::SEE_OTHER).header(header::LOCATION, location).finish());
        }
        Err(forbidden(principal, self.access).into())
    }
}

/// The CSRF token of the pages of a browser with a session: a MAC of its session token,
/// so that it is worth nothing with another session (a token and CSRF cookie taken from
/// another browser do not pass), and changes when the session does. Each page gets it
/// masked afresh (random bytes, then the MAC XOR those bytes): no two pages carry the same
/// text, so the size of a compressed page tells nothing of it (BREACH).
pub fn session_csrf_token(state: &AppState, session_token: &str) -> String {
    let secret = state.secrets.mac("csrf", session_token.as_bytes()).into_bytes();
    let mut mask = vec![0u8; secret.len()];
    rand::rng().fill_bytes(&mut mask);
    let masked: Vec<u8> = secret.iter().zip(&mask).map(|(byte, mask)| byte ^ mask).collect();
    URL_SAFE_NO_PAD.encode([mask, masked].concat())
}

/// Whether `token` is one of [`session_csrf_token`]'s maskings for the session.
fn is_session_csrf_token(state: &AppState, session_token: &str, token: &str) -> bool {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(token) else { return false };
    let (mask, masked) = bytes.split_at(bytes.len() / 2);
    let unmasked: Vec<u8> = masked.iter().zip(mask).map(|(byte, mask)| byte ^ mask).collect();
    crate::crypto::same_secret(&unmasked, state.secrets.mac("csrf", session_token.as_bytes()).as_bytes())
}

/// The CSRF check of every page that changes something (every method but GET, HEAD,
/// OPTIONS and TRACE), made by the guard before the handler runs, so that no handler can
/// forget it. A form sends the token of the page it came from in its `csrf_token` field
/// (`application/x-www-form-urlencoded`); a script may send it in the `X-CSRF-Token`
/// header instead; a file upload form (`multipart/form-data`, which is not read here)
/// sends it in its action's query. With a session, the token must be the session's
/// ([`session_csrf_token`]); before one (the sign-in form), poem's CSRF middleware checks
/// it against the browser's CSRF cookie.
mod csrf {
    use poem::Request;
    use poem::http::header;
    use poem::web::CsrfVerifier;

    use crate::error::AppError;
    use crate::state::AppState;

    /// The largest form body read for its token: pages' forms are small; file uploads
    /// send the token in the header.
    const FORM_LIMIT: usize = 1024 * 1024;

    #[derive(serde::Deserialize)]
    struct TokenField {
        csrf_token: Option<String>,
    }

    pub(super) async fn check(req: &mut Request) -> Result<(), AppError> {
        let token = match req.headers().get("x-csrf-token") {
            Some(value) => value.to_str().ok().map(str::to_owned),
            None if is_form(req) => {
                let body = req
                    .take_body()
                    .into_bytes_limit(FORM_LIMIT)
                    .await
                    .map_err(|_| AppError::BadRequest("The form is too large or could not be read.".to_owned()))?;
                let token = serde_html_form::from_bytes::<TokenField>(&body).ok().and_then(|field| field.csrf_token);
                req.set_body(body);
                token
            }
            None if is_upload(req) => req
                .uri()
                .query()
                .and_then(|query| serde_html_form::from_str::<TokenField>(query).ok())
                .and_then(|field| field.csrf_token),
            None => None,
        };
        let session =
            req.data::<AppState>().and_then(|state| Some((state, crate::session::session_token(state, req.cookie())?)));
        let valid = match (token, session, req.extensions().get::<CsrfVerifier>()) {
            (Some(token), Some((state, session)), _) => super::is_session_csrf_token(state, &session, &token),
            (Some(token), None, Some(verifier)) => verifier.is_valid(&token),
            _ => false,
        };
        if valid { Ok(()) } else { Err(AppError::FormExpired) }
    }

    fn is_upload(req: &Request) -> bool {
        req.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("multipart/form-data"))
    }

    fn is_form(req: &Request) -> bool {
        req.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"))
    }
}

/// 403, saying when the second factor would grant the permission.
fn forbidden(principal: Option<&Principal>, access: Access) -> AppError {
    match (principal, access) {
        (Some(principal), Access::Permission(code)) if principal.awaiting_second_factor.contains(code) => {
            AppError::SecondFactorRequired
        }
        (Some(principal), Access::AnyOf(codes))
            if codes.iter().any(|code| principal.awaiting_second_factor.contains(*code)) =>
        {
            AppError::SecondFactorRequired
        }
        _ => AppError::Forbidden,
    }
}

/// Guards an API operation: 401 or 403 as `application/problem+json`.
pub struct ApiGuard<E> {
    pub inner: E,
    pub access: Access,
}

impl<E: Endpoint> Endpoint for ApiGuard<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let principal = req.extensions().get::<Principal>();
        if allowed(principal, self.access) {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let error = if principal.is_none() { AppError::Unauthorized } else { forbidden(principal, self.access) };
        Ok(problem_response(&error))
    }
}

/// Percent-encodes a value for a query string.
pub fn urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The path of this site that a `next` target after sign-in leads to, normalised; `None`
/// for anything that could lead elsewhere (no open redirect).
pub fn local_path(target: &str) -> Option<String> {
    // Where a browser would go: it drops tabs and newlines and reads `\` as `/`, so
    // `/\t/evil.example/` is `//evil.example/`, another site. The URL parser follows the
    // same (WHATWG) rules; the answer is what it resolved, never the raw text.
    const HERE: &str = "https://dashboard.invalid/";
    if !target.starts_with('/') || target.chars().any(char::is_control) {
        return None;
    }
    let here = url::Url::parse(HERE).ok()?;
    let resolved = here.join(target).ok()?;
    if resolved.origin() != here.origin() || !resolved.username().is_empty() {
        return None;
    }
    Some(match resolved.query() {
        Some(query) => format!("{}?{query}", resolved.path()),
        None => resolved.path().to_owned(),
    })
}

/// The navigation entries that a principal (or an anonymous visitor) may open.
pub fn visible_nav(registry: &Registry, principal: Option<&Principal>) -> Vec<crate::registry::NavEntry> {
    registry.nav().iter().filter(|entry| allowed(principal, entry.access)).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password_blocking("correct horse battery".to_owned()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "OWASP parameters: {hash}");
        assert!(verify_password("correct horse battery".to_owned(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse battery".to_owned(), Some(hash)).await);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unknown_users_run_a_real_verification_that_fails() {
        // The dummy hash must parse, or unknown users would answer faster than known ones.
        let parsed = argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert!(!verify_password("anything".to_owned(), None).await);
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path("/reports?status=failed").as_deref(), Some("/reports?status=failed"));
        assert_eq!(local_path("/payments/../team").as_deref(), Some("/team"));
        for elsewhere in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "/\t/evil.example/",
            "/\n/evil.example/",
            "\\/evil.example/",
            "evil.example",
            "",
        ] {
            assert_eq!(local_path(elsewhere), None, "{elsewhere:?}");
        }
    }

    #[test]
    fn tokens_are_256_bit_and_distinct() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}

#[cfg(test)]
mod password_tests {
    use super::password_problem;

    #[test]
    fn common_and_guessable_passwords_are_refused() {
        for weak in ["password123", "qwertyuiop", "1234567890", "iloveyou2026", "aaaaaaaaaaaa", "Password1!"] {
            assert!(password_problem(weak).is_some(), "{weak}");
        }
        for strong in ["correct horse battery", "demo-password", "a long enough password", "Tr0ub4dor&3-river-lamp"] {
            assert_eq!(password_problem(strong), None, "{strong}");
        }
    }
}
