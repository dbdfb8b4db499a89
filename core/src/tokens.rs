//! API tokens for integrators: `Authorization: Bearer <token>`.
//!
//! A token carries scopes (a subset of its owner's permissions), optionally a subset of
//! the owner's projects, and optionally an expiry. It is shown once and stored as a
//! SHA-256 hash (it is checked on every request, so not argon2). A token acts without
//! TOTP: that is why a token whose scopes need the second factor can only be created in
//! a session that passed it. Each request re-checks the owner: a deactivated user, a
//! role that lost a permission or a revoked token takes effect at once. (The principal is
//! reused for up to [`PRINCIPAL_TTL`] between requests; every change of access made
//! through this process forgets it at once, see [`TokenPrincipals::forget_all`], so the
//! delay only applies to changes made by another process.)

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::{Queryable, Selectable};
use serde::Serialize;

use crate::audit::AuditEvent;
use crate::auth::{Principal, ProjectScope, random_token, sha256_hex};
use crate::error::AppError;
use crate::schema::api_tokens;
use crate::session::{load_principal, needs_second_factor};
use crate::state::AppState;
use crate::time::now;

/// Tokens start with this, so that leaked ones are easy to recognise.
pub const PREFIX: &str = "dsh_";
/// `last_used_at` is written at most this often per token.
const TOUCH_INTERVAL: TimeDelta = TimeDelta::seconds(60);

/// How long a token's principal is reused without reading the owner again. Integrators
/// send many requests a second with one token: loading the owner's permissions and
/// projects each time was most of an API call's database reads.
pub const PRINCIPAL_TTL: Duration = Duration::from_secs(1);

/// The principals of recently used tokens, by token hash.
#[derive(Default)]
pub struct TokenPrincipals {
    entries: Mutex<HashMap<String, CachedPrincipal>>,
    /// Bumped by [`Self::forget_all`], so that a principal loaded before a change of
    /// access is not stored after it.
    generation: AtomicU64,
}

struct CachedPrincipal {
    loaded: Instant,
    expires_at: Option<NaiveDateTime>,
    principal: Principal,
}

/// More tokens than this in use within a second is no longer a cache's job.
const MAX_CACHED_TOKENS: usize = 10_000;

impl TokenPrincipals {
    /// Forgets every cached principal: call it after any change of who may do what
    /// (roles, permissions, projects, deactivation, revoked tokens).
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedPrincipal>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, hash: &str, now: NaiveDateTime) -> Option<Principal> {
        let entries = self.lock();
        let cached = entries.get(hash)?;
        let fresh = cached.loaded.elapsed() < PRINCIPAL_TTL && cached.expires_at.is_none_or(|at| at > now);
        fresh.then(|| cached.principal.clone())
    }

    fn put(&self, hash: String, generation: u64, expires_at: Option<NaiveDateTime>, principal: &Principal) {
        let mut entries = self.lock();
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= MAX_CACHED_TOKENS {
            entries.retain(|_, cached| cached.loaded.elapsed() < PRINCIPAL_TTL);
            if entries.len() >= MAX_CACHED_TOKENS {
                return;
            }
        }
        entries.insert(hash, CachedPrincipal { loaded: Instant::now(), expires_at, principal: principal.clone() });
    }
}

/// What a user asks for.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scopes: Vec<String>,
    /// `None`: every project the owner may see (now and later).
    pub project_ids: Option<Vec<i64>>,
    pub expires_at: Option<NaiveDateTime>,
}

/// A token as its owner sees it in the list (never the token itself).
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    /// `null`: every project the owner may see.
    pub project_ids: Option<Vec<i64>>,
    pub created_at: crate::time::Timestamp,
    pub expires_at: Option<crate::time::Timestamp>,
    pub last_used_at: Option<crate::time::Timestamp>,
    pub revoked: bool,
}

/// A token as its owner's list shows it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct TokenRow {
    id: i64,
    name: String,
    /// Space-separated permission codes.
    scopes: String,
    /// Comma-separated project ids; `None`: every project the owner may see.
    project_ids: Option<String>,
    created_at: NaiveDateTime,
    expires_at: Option<NaiveDateTime>,
    last_used_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
}

fn info(row: TokenRow) -> TokenInfo {
    TokenInfo {
        id: row.id,
        name: row.name,
        scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
        project_ids: row.project_ids.map(|list| parse_ids(&list)),
        created_at: crate::time::Timestamp::from(&row.created_at),
        expires_at: row.expires_at.as_ref().map(crate::time::Timestamp::from),
        last_used_at: row.last_used_at.as_ref().map(crate::time::Timestamp::from),
        revoked: row.revoked_at.is_some(),
    }
}

fn parse_ids(list: &str) -> Vec<i64> {
    list.split(',').filter_map(|id| id.trim().parse().ok()).collect()
}

/// Creates a token for `principal`; returns it (shown once) with its description.
pub async fn create(state: &AppState, principal: &Principal, new: NewToken) -> Result<(String, TokenInfo), AppError> {
    principal.require_session()?;
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::BadRequest("Give the token a name of 1 to 100 characters.".to_owned()));
    }
    let scopes: BTreeSet<String> = new.scopes.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    if scopes.is_empty() {
        return Err(AppError::BadRequest("Choose at least one permission for the token.".to_owned()));
    }
    let granted: BTreeSet<&String> = principal.permissions.iter().chain(&principal.awaiting_second_factor).collect();
    if let Some(foreign) = scopes.iter().find(|scope| !granted.contains(scope)) {
        return Err(AppError::BadRequest(format!(
            "You do not hold the permission {foreign:?}, so a token cannot either."
        )));
    }
    if !principal.second_factor_verified && scopes.iter().any(|scope| needs_second_factor(state, scope)) {
        return Err(AppError::SecondFactorRequired);
    }
    if let Some(ids) = &new.project_ids {
        if ids.is_empty() {
            return Err(AppError::BadRequest("Choose at least one project, or all projects.".to_owned()));
        }
        let visible: BTreeSet<i64> =
            crate::directory::visible_projects(&state.db, principal).await?.into_iter().map(|p| p.id).collect();
        if let Some(id) = ids.iter().find(|id| !visible.contains(id)) {
            return Err(AppError::BadRequest(format!("Project {id} is not one of your projects.")));
        }
    }
    if new.expires_at.is_some_and(|at| at <= now()) {
        return Err(AppError::BadRequest("The expiry must be in the future.".to_owned()));
    }
    let token = format!("{PREFIX}{}", random_token());
    let scopes_text = scopes.into_iter().collect::<Vec<_>>().join(" ");
    let projects_text =
        new.project_ids.as_ref().map(|ids| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
    let user_id = principal.user_id;
    let created: TokenInfo = crate::db_transaction!(state.db, conn => {
        let row: TokenRow = diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::user_id.eq(user_id),
                api_tokens::name.eq(&name),
                api_tokens::token_hash.eq(sha256_hex(&token)),
                api_tokens::scopes.eq(&scopes_text),
                api_tokens::project_ids.eq(&projects_text),
                api_tokens::created_at.eq(now()),
                api_tokens::expires_at.eq(new.expires_at),
            ))
            .returning(TokenRow::as_returning())
            .get_result(conn)
            .await?;
        let created = info(row);
        let event = AuditEvent::success(principal, "token.created")
            .target(format!("token {}", created.id))
            .details(serde_json::json!({ "name": created.name, "scopes": created.scopes, "projects": created.project_ids }));
        crate::record_audit!(conn, event)?;
        Ok::<_, diesel::result::Error>(created)
    })?;
    Ok((token, created))
}

/// The user's tokens, newest first.
pub async fn list(state: &AppState, user_id: i64) -> Result<Vec<TokenInfo>, AppError> {
    let rows: Vec<TokenRow> = crate::db_run!(state.db, conn => {
        api_tokens::table
            .filter(api_tokens::user_id.eq(user_id))
            .order(api_tokens::id.desc())
            .select(TokenRow::as_select())
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(info).collect())
}

/// Revokes one of the principal's own tokens, at once; someone else's answers 404.
pub async fn revoke(state: &AppState, principal: &Principal, token_id: i64) -> Result<(), AppError> {
    principal.require_session()?;
    let user_id = principal.user_id;
    let event = AuditEvent::success(principal, "token.revoked").target(format!("token {token_id}"));
    crate::db_transaction!(state.db, conn => {
        let revoked = diesel::update(
            api_tokens::table
                .filter(api_tokens::id.eq(token_id))
                .filter(api_tokens::user_id.eq(user_id))
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(Some(now())))
        .execute(conn)
        .await?;
        if revoked == 0 {
            return Err(AppError::NotFound);
        }
        crate::record_audit!(conn, event)?;
        Ok(())
    })?;
    state.token_principals.forget_all();
    Ok(())
}

/// Revokes every token of a user (deactivation); returns how many.
pub async fn revoke_all(state: &AppState, user_id: i64) -> Result<usize, AppError> {
    let revoked = crate::db_write!(state.db, conn => crate::revoke_user_tokens!(conn, user_id))?;
    state.token_principals.forget_all();
    Ok(revoked)
}

/// Revokes every live token of `$user_id` with `$conn`, inside the caller's write;
/// evaluates to the number revoked. The caller then calls
/// `state.token_principals.forget_all()`, once the write is committed.
#[macro_export]
macro_rules! revoke_user_tokens {
    ($conn:ident, $user_id:expr) => {{
        use $crate::schema::api_tokens as __tokens;
        diesel::update(__tokens::table.filter(__tokens::user_id.eq($user_id)).filter(__tokens::revoked_at.is_null()))
            .set(__tokens::revoked_at.eq(Some($crate::time::now())))
            .execute($conn)
            .await
    }};
}

/// A token that works, as a request using it needs it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct LiveToken {
    id: i64,
    user_id: i64,
    scopes: String,
    project_ids: Option<String>,
    last_used_at: Option<NaiveDateTime>,
    expires_at: Option<NaiveDateTime>,
}

/// The principal a bearer token acts as: the owner's current permissions narrowed to the
/// token's scopes and projects, with the second factor taken as given.
pub async fn principal_for_api_token(state: &AppState, token: &str) -> Result<Option<Principal>, AppError> {
    if !token.starts_with(PREFIX) {
        return Ok(None);
    }
    let hash = sha256_hex(token);
    let now = now();
    if let Some(principal) = state.token_principals.get(&hash, now) {
        return Ok(Some(principal));
    }
    let generation = state.token_principals.generation.load(Ordering::SeqCst);
    let row: Option<LiveToken> = crate::db_run!(state.db, conn => {
        api_tokens::table
            .filter(api_tokens::token_hash.eq(&hash))
            .filter(api_tokens::revoked_at.is_null())
            .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(now)))
            .select(LiveToken::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    let Some(LiveToken { id, user_id, scopes, project_ids, last_used_at: last_used, expires_at }) = row else {
        return Ok(None);
    };
    let Some(mut principal) = load_principal(state, user_id, true).await? else { return Ok(None) };
    principal.via_api_token = true;
    let scopes: BTreeSet<&str> = scopes.split_whitespace().collect();
    principal.permissions.retain(|code| scopes.contains(code.as_str()));
    if let Some(list) = project_ids {
        let owner_scope = principal.projects.clone();
        let ids = parse_ids(&list).into_iter().filter(|id| owner_scope.allows(*id)).collect();
        principal.projects = ProjectScope::Only(ids);
    }
    if last_used.is_none_or(|at| now - at > TOUCH_INTERVAL) {
        crate::db_write!(state.db, conn => {
            diesel::update(api_tokens::table.find(id)).set(api_tokens::last_used_at.eq(Some(now))).execute(conn).await
        })?;
    }
    state.token_principals.put(hash, generation, expires_at, &principal);
    Ok(Some(principal))
}
