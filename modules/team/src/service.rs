//! My team's service functions: what the pages and the API both call. Every lookup is
//! scoped to the merchant admin's company; another company's ids answer 404.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::{Principal, ProjectScope, hash_password_blocking, password_problem, random_token};
use dashboard_core::directory::{self, valid_phone, valid_username};
use dashboard_core::links::{self, LinkPurpose};
use dashboard_core::registry::BuiltinRole;
use dashboard_core::schema::{
    audit_events, projects, role_permissions, roles, second_factors, user_projects, user_roles, users,
};
use dashboard_core::session::{self, needs_second_factor};
use dashboard_core::sms;
use dashboard_core::time::{now, rfc3339};
use dashboard_core::web::PRODUCT_NAME;
use dashboard_core::{AppError, AppState, db_run, db_transaction};
use diesel::prelude::{NullableExpressionMethods, Queryable, Selectable};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use poem_openapi::Object;
use serde::{Deserialize, Serialize};

/// Replaces a user's roles and project grants. A macro, because it runs inside a
/// transaction body that [`db_transaction!`] compiles once per database backend.
macro_rules! write_access {
    ($conn:ident, $user_id:expr, $input:expr) => {{
        diesel::delete(user_roles::table.filter(user_roles::user_id.eq($user_id))).execute($conn).await?;
        for role_id in &$input.role_ids {
            diesel::insert_into(user_roles::table)
                .values((user_roles::user_id.eq($user_id), user_roles::role_id.eq(*role_id)))
                .execute($conn)
                .await?;
        }
        diesel::delete(user_projects::table.filter(user_projects::user_id.eq($user_id))).execute($conn).await?;
        for project_id in $input.project_ids.iter().flatten() {
            diesel::insert_into(user_projects::table)
                .values((user_projects::user_id.eq($user_id), user_projects::project_id.eq(*project_id)))
                .execute($conn)
                .await?;
        }
    }};
}

/// Rows per page in lists.
pub const PAGE_SIZE: i64 = 50;

/// A role as a member shows it.
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RoleRef {
    pub id: i64,
    pub name: String,
}

/// A user of the company.
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Member {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub active: bool,
    /// `true`: every project of the company, also future ones.
    pub all_projects: bool,
    /// The projects granted when `all_projects` is false.
    pub project_ids: Vec<i64>,
    pub roles: Vec<RoleRef>,
    pub second_factor_enabled: bool,
    /// Failed sign-ins lock the account for a while (see `locked_until`).
    pub locked: bool,
    /// While it is locked: until when.
    pub locked_until: Option<dashboard_core::time::Timestamp>,
    pub created_at: dashboard_core::time::Timestamp,
}

/// What the merchant admin enters for a user.
#[derive(Debug, Clone, Deserialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberInput {
    pub display_name: String,
    pub email: Option<String>,
    /// International format, e.g. `+447700900123`; empty or omitted for none.
    pub phone: Option<String>,
    /// At least one role of the company.
    pub role_ids: Vec<i64>,
    /// Omit (or `null`) for every project; otherwise the granted projects.
    pub project_ids: Option<Vec<i64>>,
}

/// A new user: the details, a username, and either an initial password or none (then a
/// one-time set-password link is made).
#[derive(Debug, Clone, Deserialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NewMember {
    pub username: String,
    #[oai(flatten)]
    #[serde(flatten)]
    pub details: MemberInput,
    /// At least 10 characters; omit to get a set-password link instead.
    pub password: Option<String>,
}

/// The result of creating a user.
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreatedMember {
    pub member: Member,
    /// The one-time link to hand to the user when no password was given (72 hours).
    pub set_password_url: Option<String>,
}

/// List filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemberFilter {
    /// Part of the username or name.
    pub q: Option<String>,
    pub role_id: Option<i64>,
    /// `active` or `deactivated`.
    pub status: Option<String>,
    /// Keyset cursor: the last username of the previous page.
    pub after: Option<String>,
}

/// A user of the company, before roles, projects and the second factor are added.
#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct UserRow {
    id: i64,
    username: String,
    display_name: String,
    email: Option<String>,
    phone: Option<String>,
    active: bool,
    all_projects: bool,
    locked_until: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
}

fn unique_violation(message: String) -> impl FnOnce(DieselError) -> AppError {
    move |error| match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => AppError::Conflict(message),
        other => other.into(),
    }
}

/// A change an admin asks for, so that its refusal is recorded (`denied`, with the
/// reason): an attempt to take an account over or to widen access is evidence too.
struct Attempt<'a> {
    state: &'a AppState,
    admin: &'a Principal,
    action: &'static str,
    target: String,
}

impl<'a> Attempt<'a> {
    fn new(state: &'a AppState, admin: &'a Principal, action: &'static str, target: String) -> Attempt<'a> {
        Attempt { state, admin, action, target }
    }

    /// Passes `check` on; a refusal is recorded first.
    async fn allow(&self, check: Result<(), AppError>) -> Result<(), AppError> {
        let Err(refusal) = check else { return Ok(()) };
        let event = AuditEvent::by_user(self.admin.company_id, self.admin.user_id, self.action, "denied")
            .target(self.target.clone())
            .details(serde_json::json!({ "reason": refusal.to_string() }));
        dashboard_core::audit::record(&self.state.db, event).await?;
        Err(refusal)
    }
}

/// The audit entry of a change an admin made.
fn change(admin: &Principal, action: &'static str, target: String, details: serde_json::Value) -> AuditEvent {
    AuditEvent::success(admin, action).target(target).details(details)
}

/// One page of the company's users, by username, and the cursor of the next page.
pub async fn list_members(
    state: &AppState,
    company_id: i64,
    filter: &MemberFilter,
    limit: i64,
) -> Result<(Vec<Member>, Option<String>), AppError> {
    let pattern =
        filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(|q| format!("%{}%", q.to_lowercase()));
    let active = match filter.status.as_deref() {
        Some("active") => Some(true),
        Some("deactivated") => Some(false),
        _ => None,
    };
    let role_id = filter.role_id;
    let after = filter.after.clone();
    let rows: Vec<UserRow> = db_run!(state.db, conn => {
        let mut query = users::table
            .filter(users::company_id.eq(company_id))
            .order(users::username.asc())
            .limit(limit + 1)
            .select(UserRow::as_select())
            .into_boxed();
        if let Some(pattern) = &pattern {
            query = query.filter(users::username.like(pattern.clone()).or(lower(users::display_name).like(pattern.clone())));
        }
        if let Some(active) = active {
            query = query.filter(users::active.eq(active));
        }
        if let Some(role_id) = role_id {
            query = query.filter(users::id.eq_any(user_roles::table.filter(user_roles::role_id.eq(role_id)).select(user_roles::user_id)));
        }
        if let Some(after) = &after {
            query = query.filter(users::username.gt(after.clone()));
        }
        query.load(conn).await
    })?;
    let next = (rows.len() as i64 > limit).then(|| rows[limit as usize - 1].username.clone());
    let rows: Vec<UserRow> = rows.into_iter().take(limit as usize).collect();
    Ok((members_of(state, rows).await?, next))
}

/// Adds roles, projects and the second-factor state to user rows (three queries).
async fn members_of(state: &AppState, rows: Vec<UserRow>) -> Result<Vec<Member>, AppError> {
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let role_rows: Vec<(i64, i64, String)> = db_run!(state.db, conn => {
        user_roles::table
            .inner_join(roles::table)
            .filter(user_roles::user_id.eq_any(&ids))
            .order(roles::name.asc())
            .select((user_roles::user_id, roles::id, roles::name))
            .load(conn)
            .await
    })?;
    let project_rows: Vec<(i64, i64)> = db_run!(state.db, conn => {
        user_projects::table
            .filter(user_projects::user_id.eq_any(&ids))
            .select((user_projects::user_id, user_projects::project_id))
            .load(conn)
            .await
    })?;
    let enabled: BTreeSet<i64> = db_run!(state.db, conn => {
        second_factors::table
            .filter(second_factors::user_id.eq_any(&ids))
            .filter(second_factors::enabled_at.is_not_null())
            .select(second_factors::user_id)
            .load::<i64>(conn)
            .await
    })?
    .into_iter()
    .collect();
    let mut roles_of: BTreeMap<i64, Vec<RoleRef>> = BTreeMap::new();
    for (user_id, id, name) in role_rows {
        roles_of.entry(user_id).or_default().push(RoleRef { id, name });
    }
    let mut projects_of: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (user_id, project_id) in project_rows {
        projects_of.entry(user_id).or_default().push(project_id);
    }
    let now = now();
    Ok(rows
        .into_iter()
        .map(|row| Member {
            id: row.id,
            username: row.username,
            display_name: row.display_name,
            email: row.email,
            phone: row.phone,
            active: row.active,
            all_projects: row.all_projects,
            project_ids: projects_of.remove(&row.id).unwrap_or_default(),
            roles: roles_of.remove(&row.id).unwrap_or_default(),
            second_factor_enabled: enabled.contains(&row.id),
            locked: row.locked_until.is_some_and(|until| until > now),
            locked_until: row.locked_until.filter(|until| *until > now).map(|until| (&until).into()),
            created_at: dashboard_core::time::Timestamp::from(&row.created_at),
        })
        .collect())
}

/// One user of the company, or 404.
pub async fn member(state: &AppState, company_id: i64, user_id: i64) -> Result<Member, AppError> {
    let rows: Vec<UserRow> = db_run!(state.db, conn => {
        users::table
            .filter(users::id.eq(user_id))
            .filter(users::company_id.eq(company_id))
            .select(UserRow::as_select())
            .load(conn)
            .await
    })?;
    members_of(state, rows).await?.pop().ok_or(AppError::NotFound)
}

/// Checked details, ready to write.
struct CheckedInput {
    display_name: String,
    email: Option<String>,
    phone: Option<String>,
    role_ids: Vec<i64>,
    project_ids: Option<Vec<i64>>,
}

async fn check_input(state: &AppState, company_id: i64, input: &MemberInput) -> Result<CheckedInput, AppError> {
    let probe = directory::ProfileDetails {
        display_name: input.display_name.clone(),
        email: input.email.clone(),
        time_zone: "UTC".to_owned(),
    };
    let checked = directory::check_profile(&probe)?;
    let phone = input.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(valid_phone).transpose()?;
    let role_ids: BTreeSet<i64> = input.role_ids.iter().copied().collect();
    if role_ids.is_empty() {
        return Err(AppError::BadRequest("Give the user at least one role.".to_owned()));
    }
    let known: BTreeSet<i64> = company_role_ids(state, company_id).await?;
    if let Some(id) = role_ids.iter().find(|id| !known.contains(id)) {
        return Err(AppError::BadRequest(format!("There is no role {id} in your company.")));
    }
    let project_ids = match &input.project_ids {
        None => None,
        Some(ids) => {
            let company: BTreeSet<i64> =
                directory::company_projects(&state.db, company_id).await?.into_iter().map(|p| p.id).collect();
            if let Some(id) = ids.iter().find(|id| !company.contains(id)) {
                return Err(AppError::BadRequest(format!("There is no project {id} in your company.")));
            }
            Some(ids.iter().copied().collect::<BTreeSet<_>>().into_iter().collect())
        }
    };
    Ok(CheckedInput {
        display_name: checked.display_name,
        email: checked.email,
        phone,
        role_ids: role_ids.into_iter().collect(),
        project_ids,
    })
}

async fn company_role_ids(state: &AppState, company_id: i64) -> Result<BTreeSet<i64>, AppError> {
    let ids: Vec<i64> = db_run!(state.db, conn => {
        roles::table.filter(roles::company_id.eq(company_id)).select(roles::id).load(conn).await
    })?;
    Ok(ids.into_iter().collect())
}

/// Creates a user of the admin's company with roles and project access.
pub async fn create_member(state: &AppState, admin: &Principal, new: &NewMember) -> Result<CreatedMember, AppError> {
    let attempt = Attempt::new(state, admin, "user.created", format!("user {}", new.username.trim()));
    attempt.allow(admin.require_step_up()).await?;
    let username = valid_username(&new.username)?;
    let input = check_input(state, admin.company_id, &new.details).await?;
    attempt.allow(refuse_more_than_held(admin, &granted_by(state, admin.company_id, &input.role_ids).await?)).await?;
    attempt.allow(refuse_projects_beyond(admin, input.project_ids.as_deref())).await?;
    let password = match &new.password {
        Some(password) => {
            if let Some(problem) = password_problem(password) {
                return Err(AppError::BadRequest(problem.to_owned()));
            }
            password.clone()
        }
        // Nobody knows this one: the user sets a password through the link.
        None => random_token(),
    };
    let hash = {
        let _turn = state.hashing.turn().await?;
        hash_password_blocking(password).await?
    };
    let company_id = admin.company_id;
    let created = now();
    let user_id: i64 = db_transaction!(state.db, conn => {
        let user_id: i64 = diesel::insert_into(users::table)
            .values((
                users::company_id.eq(company_id),
                users::username.eq(&username),
                users::display_name.eq(&input.display_name),
                users::email.eq(&input.email),
                users::phone.eq(&input.phone),
                users::password_hash.eq(&hash),
                users::all_projects.eq(input.project_ids.is_none()),
                users::created_at.eq(created),
                users::updated_at.eq(created),
            ))
            .returning(users::id)
            .get_result(conn)
            .await?;
        write_access!(conn, user_id, input);
        let details = serde_json::json!({ "username": username, "roles": input.role_ids, "projects": input.project_ids });
        dashboard_core::record_audit!(conn, change(admin, "user.created", format!("user {user_id}"), details))?;
        Ok::<_, DieselError>(user_id)
    })
    .map_err(unique_violation(format!("The username {username:?} is taken.")))?;
    let set_password_url = match new.password {
        Some(_) => None,
        None => Some(password_link(state, user_id, None).await?),
    };
    Ok(CreatedMember { member: member(state, company_id, user_id).await?, set_password_url })
}

/// Changes a user's details, roles and project access. Their sessions end, so that the
/// new permissions apply at once.
pub async fn update_member(
    state: &AppState,
    admin: &Principal,
    user_id: i64,
    input: &MemberInput,
) -> Result<Member, AppError> {
    let before = member(state, admin.company_id, user_id).await?;
    let input = check_input(state, admin.company_id, input).await?;
    let roles_before: BTreeSet<i64> = before.roles.iter().map(|role| role.id).collect();
    let added_roles: Vec<i64> = input.role_ids.iter().copied().filter(|id| !roles_before.contains(id)).collect();
    let projects_before: Option<BTreeSet<i64>> =
        (!before.all_projects).then(|| before.project_ids.iter().copied().collect());
    let projects_after: Option<BTreeSet<i64>> = input.project_ids.as_ref().map(|ids| ids.iter().copied().collect());
    let projects_change = projects_before != projects_after;
    let access_changes = !added_roles.is_empty() || input.role_ids.len() != roles_before.len() || projects_change;
    let phone_changes = before.phone != input.phone;
    let attempt = Attempt::new(state, admin, "user.updated", format!("user {user_id}"));
    if access_changes || phone_changes {
        attempt.allow(admin.require_step_up()).await?;
        if user_id == admin.user_id {
            let refusal = AppError::Refused(
                "You cannot change your own roles, projects or phone here: another admin can, and your phone is \
                 changed in My profile."
                    .to_owned(),
            );
            attempt.allow(Err(refusal)).await?;
        }
    }
    attempt.allow(refuse_more_than_held(admin, &granted_by(state, admin.company_id, &added_roles).await?)).await?;
    if projects_change {
        attempt.allow(refuse_projects_beyond(admin, input.project_ids.as_deref())).await?;
    }
    let updated = now();
    let details = serde_json::json!({
        "roles": input.role_ids,
        "projects": input.project_ids,
        "phone_changed": phone_changes,
    });
    let event = change(admin, "user.updated", format!("user {user_id}"), details);
    db_transaction!(state.db, conn => {
        diesel::update(users::table.find(user_id))
            .set((
                users::display_name.eq(&input.display_name),
                users::email.eq(&input.email),
                users::phone.eq(&input.phone),
                users::all_projects.eq(input.project_ids.is_none()),
                users::updated_at.eq(updated),
            ))
            .execute(conn)
            .await?;
        write_access!(conn, user_id, input);
        if user_id != admin.user_id {
            dashboard_core::end_user_sessions!(conn, user_id)?;
        }
        if phone_changes {
            // Whoever changed it may not be the user: their tokens stop (they were issued
            // to the person the old phone confirmed).
            dashboard_core::revoke_user_tokens!(conn, user_id)?;
        }
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, DieselError>(())
    })?;
    state.token_principals.forget_all();
    if phone_changes && let Some(old) = &before.phone {
        tell_old_phone(state, admin, old).await;
    }
    member(state, admin.company_id, user_id).await
}

/// The permissions the given roles of the company grant.
async fn granted_by(state: &AppState, company_id: i64, role_ids: &[i64]) -> Result<BTreeSet<String>, AppError> {
    if role_ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let roles = list_roles(state, company_id).await?;
    Ok(roles.into_iter().filter(|role| role_ids.contains(&role.id)).flat_map(|role| role.permissions).collect())
}

/// Nobody grants a permission they do not hold themselves (a user who may manage the
/// team could otherwise make themselves, or a friend, merchant admin).
fn refuse_more_than_held(admin: &Principal, permissions: &BTreeSet<String>) -> Result<(), AppError> {
    let held = |code: &String| admin.permissions.contains(code) || admin.awaiting_second_factor.contains(code);
    match permissions.iter().find(|code| !held(code)) {
        Some(code) => Err(AppError::Refused(format!("You cannot grant {code:?}: you do not hold it yourself."))),
        None => Ok(()),
    }
}

/// Nobody grants access to projects they cannot see themselves; `None` is all projects.
fn refuse_projects_beyond(admin: &Principal, projects: Option<&[i64]>) -> Result<(), AppError> {
    let ProjectScope::Only(own) = &admin.projects else { return Ok(()) };
    match projects {
        None => {
            Err(AppError::Refused("You cannot grant access to all projects: you do not have it yourself.".to_owned()))
        }
        Some(ids) => match ids.iter().find(|id| !own.contains(id)) {
            Some(id) => Err(AppError::Refused(format!("You cannot grant access to project {id}: you do not have it."))),
            None => Ok(()),
        },
    }
}

/// Tells a user's old phone number that it was replaced.
async fn tell_old_phone(state: &AppState, admin: &Principal, old: &str) {
    let text = format!(
        "{PRODUCT_NAME}: your phone number was changed by {}. If you did not expect this, contact your \
         administrator.",
        admin.display_name
    );
    sms::notify(state, old.to_owned(), text).await;
}

/// Credentials and the second factor of someone else: in a session whose second factor
/// was given within the last minutes (step-up) only.
fn refuse_credential_change(admin: &Principal, user_id: i64) -> Result<(), AppError> {
    admin.require_step_up()?;
    if user_id == admin.user_id {
        return Err(AppError::Refused("Your own password and second factor are changed in My profile.".to_owned()));
    }
    Ok(())
}

/// Deactivates a user: their sessions end and their API tokens are revoked at once.
/// Reactivation gives the account back (tokens stay revoked).
pub async fn set_active(state: &AppState, admin: &Principal, user_id: i64, active: bool) -> Result<Member, AppError> {
    member(state, admin.company_id, user_id).await?;
    if user_id == admin.user_id && !active {
        return Err(AppError::Conflict("You cannot deactivate yourself.".to_owned()));
    }
    let action = if active { "user.reactivated" } else { "user.deactivated" };
    db_transaction!(state.db, conn => {
        diesel::update(users::table.find(user_id))
            .set((users::active.eq(active), users::updated_at.eq(now())))
            .execute(conn)
            .await?;
        let details = if active {
            serde_json::json!({})
        } else {
            let sessions = dashboard_core::end_user_sessions!(conn, user_id)?;
            let tokens = dashboard_core::revoke_user_tokens!(conn, user_id)?;
            serde_json::json!({ "sessions_ended": sessions, "tokens_revoked": tokens })
        };
        dashboard_core::record_audit!(conn, change(admin, action, format!("user {user_id}"), details))?;
        Ok::<_, DieselError>(())
    })?;
    state.token_principals.forget_all();
    member(state, admin.company_id, user_id).await
}

/// Unlocks a user locked out by failed sign-ins before the lock ends by itself (the user
/// called to say it was them); audited. A user who is not locked is left as they are.
pub async fn unlock(state: &AppState, admin: &Principal, user_id: i64) -> Result<Member, AppError> {
    member(state, admin.company_id, user_id).await?;
    let at = now();
    db_transaction!(state.db, conn => {
        let unlocked = diesel::update(users::table.find(user_id).filter(users::locked_until.gt(at)))
            .set((users::locked_until.eq(None::<NaiveDateTime>), users::failed_attempts.eq(0)))
            .execute(conn)
            .await?;
        if unlocked == 1 {
            let event = change(admin, "user.unlocked", format!("user {user_id}"), serde_json::json!({}));
            dashboard_core::record_audit!(conn, event)?;
        }
        Ok::<_, DieselError>(())
    })?;
    member(state, admin.company_id, user_id).await
}

/// Removes a user's second factor (lost phone): they set it up again at next sign-in.
/// Their sessions end and their API tokens are revoked, in the same write: the tokens
/// were issued behind the factor just removed.
pub async fn reset_second_factor(state: &AppState, admin: &Principal, user_id: i64) -> Result<Member, AppError> {
    Attempt::new(state, admin, "second_factor.reset", format!("user {user_id}"))
        .allow(refuse_credential_change(admin, user_id))
        .await?;
    member(state, admin.company_id, user_id).await?;
    db_transaction!(state.db, conn => {
        dashboard_core::remove_second_factor!(conn, user_id);
        let sessions = dashboard_core::end_user_sessions!(conn, user_id)?;
        let tokens = dashboard_core::revoke_user_tokens!(conn, user_id)?;
        let details = serde_json::json!({ "sessions_ended": sessions, "tokens_revoked": tokens });
        dashboard_core::record_audit!(conn, change(admin, "second_factor.reset", format!("user {user_id}"), details))?;
        Ok::<_, DieselError>(())
    })?;
    state.token_principals.forget_all();
    member(state, admin.company_id, user_id).await
}

/// A one-time link for the user to set a password (72 hours); earlier links stop working.
pub async fn issue_password_link(state: &AppState, admin: &Principal, user_id: i64) -> Result<String, AppError> {
    Attempt::new(state, admin, "user.password_link", format!("user {user_id}"))
        .allow(refuse_credential_change(admin, user_id))
        .await?;
    member(state, admin.company_id, user_id).await?;
    let event = change(admin, "user.password_link", format!("user {user_id}"), serde_json::json!({}));
    password_link(state, user_id, Some(event)).await
}

/// The link's URL; `event` is recorded with it (a new user's link is part of their creation).
async fn password_link(state: &AppState, user_id: i64, event: Option<AuditEvent>) -> Result<String, AppError> {
    let token = links::issue(state, user_id, LinkPurpose::SetPassword, event).await?;
    Ok(format!("{}/set-password?token={token}", state.settings.public_url))
}

// ---------------------------------------------------------------------------------------
// Roles

/// A role and what it grants.
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RoleInfo {
    pub id: i64,
    pub name: String,
    /// Built-in roles cannot be changed; their permissions follow the sections.
    pub builtin: bool,
    pub description: String,
    pub permissions: Vec<String>,
    pub users: i64,
}

#[derive(Debug, Clone, Deserialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RoleInput {
    pub name: String,
    #[serde(default)]
    #[oai(default)]
    pub description: String,
    pub permissions: Vec<String>,
}

/// A role of the company, before its permissions and users are added.
#[derive(Queryable, Selectable)]
#[diesel(table_name = roles, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct RoleRow {
    id: i64,
    name: String,
    /// The built-in role's key; `None` for a custom role.
    builtin: Option<String>,
    description: String,
}

/// The company's roles: built-in first, then custom ones by name.
pub async fn list_roles(state: &AppState, company_id: i64) -> Result<Vec<RoleInfo>, AppError> {
    let rows: Vec<RoleRow> = db_run!(state.db, conn => {
        roles::table
            .filter(roles::company_id.eq(company_id))
            .order((roles::builtin.is_null(), roles::name.asc()))
            .select(RoleRow::as_select())
            .load(conn)
            .await
    })?;
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let granted: Vec<(i64, String)> = db_run!(state.db, conn => {
        role_permissions::table
            .filter(role_permissions::role_id.eq_any(&ids))
            .select((role_permissions::role_id, role_permissions::permission))
            .load(conn)
            .await
    })?;
    let counts: Vec<(i64, i64)> = db_run!(state.db, conn => {
        user_roles::table
            .inner_join(users::table)
            .filter(user_roles::role_id.eq_any(&ids))
            .filter(users::active.eq(true))
            .group_by(user_roles::role_id)
            .select((user_roles::role_id, diesel::dsl::count_star()))
            .load(conn)
            .await
    })?;
    let counts: BTreeMap<i64, i64> = counts.into_iter().collect();
    let mut custom: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (role_id, permission) in granted {
        if state.registry.permission(&permission).is_some() {
            custom.entry(role_id).or_default().push(permission);
        }
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let builtin_role = row.builtin.as_deref().and_then(BuiltinRole::from_key);
            let permissions = match builtin_role {
                Some(role) => state.registry.default_permissions(role).into_iter().map(str::to_owned).collect(),
                None => custom.remove(&row.id).unwrap_or_default(),
            };
            RoleInfo {
                id: row.id,
                name: row.name,
                builtin: builtin_role.is_some(),
                description: row.description,
                permissions,
                users: counts.get(&row.id).copied().unwrap_or(0),
            }
        })
        .collect())
}

fn check_role(state: &AppState, input: &RoleInput) -> Result<(String, String, Vec<String>), AppError> {
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 60 {
        return Err(AppError::BadRequest("The role name must have 1 to 60 characters.".to_owned()));
    }
    let permissions: BTreeSet<String> = input.permissions.iter().map(|p| p.trim().to_owned()).collect();
    if permissions.is_empty() {
        return Err(AppError::BadRequest("Choose at least one permission.".to_owned()));
    }
    if let Some(unknown) = permissions.iter().find(|code| state.registry.permission(code).is_none()) {
        return Err(AppError::BadRequest(format!("There is no permission {unknown:?}.")));
    }
    Ok((name, input.description.trim().chars().take(300).collect(), permissions.into_iter().collect()))
}

/// Creates a custom role from any registered permissions.
pub async fn create_role(state: &AppState, admin: &Principal, input: &RoleInput) -> Result<RoleInfo, AppError> {
    let attempt = Attempt::new(state, admin, "role.created", format!("role {}", input.name.trim()));
    attempt.allow(admin.require_step_up()).await?;
    let (name, description, permissions) = check_role(state, input)?;
    attempt.allow(refuse_more_than_held(admin, &permissions.iter().cloned().collect())).await?;
    let company_id = admin.company_id;
    let role_id: i64 = db_transaction!(state.db, conn => {
        let role_id: i64 = diesel::insert_into(roles::table)
            .values((
                roles::company_id.eq(company_id),
                roles::name.eq(&name),
                roles::description.eq(&description),
                roles::created_at.eq(now()),
            ))
            .returning(roles::id)
            .get_result(conn)
            .await?;
        for permission in &permissions {
            diesel::insert_into(role_permissions::table)
                .values((role_permissions::role_id.eq(role_id), role_permissions::permission.eq(permission)))
                .execute(conn)
                .await?;
        }
        let details = serde_json::json!({ "name": name, "permissions": permissions });
        dashboard_core::record_audit!(conn, change(admin, "role.created", format!("role {role_id}"), details))?;
        Ok::<_, DieselError>(role_id)
    })
    .map_err(unique_violation(format!("A role named {name:?} exists already.")))?;
    role(state, company_id, role_id).await
}

/// One role of the company, or 404.
pub async fn role(state: &AppState, company_id: i64, role_id: i64) -> Result<RoleInfo, AppError> {
    list_roles(state, company_id).await?.into_iter().find(|role| role.id == role_id).ok_or(AppError::NotFound)
}

async fn custom_role(state: &AppState, company_id: i64, role_id: i64) -> Result<RoleInfo, AppError> {
    let role = role(state, company_id, role_id).await?;
    if role.builtin {
        return Err(AppError::BadRequest("Built-in roles cannot be changed; create a custom role instead.".to_owned()));
    }
    Ok(role)
}

/// Changes a custom role; its users' sessions end so that the change applies at once.
pub async fn update_role(
    state: &AppState,
    admin: &Principal,
    role_id: i64,
    input: &RoleInput,
) -> Result<RoleInfo, AppError> {
    let attempt = Attempt::new(state, admin, "role.updated", format!("role {role_id}"));
    attempt.allow(admin.require_step_up()).await?;
    custom_role(state, admin.company_id, role_id).await?;
    let (name, description, permissions) = check_role(state, input)?;
    attempt.allow(refuse_more_than_held(admin, &permissions.iter().cloned().collect())).await?;
    let details = serde_json::json!({ "name": name, "permissions": permissions });
    let event = change(admin, "role.updated", format!("role {role_id}"), details);
    db_transaction!(state.db, conn => {
        diesel::update(roles::table.find(role_id))
            .set((roles::name.eq(&name), roles::description.eq(&description)))
            .execute(conn)
            .await?;
        diesel::delete(role_permissions::table.filter(role_permissions::role_id.eq(role_id))).execute(conn).await?;
        for permission in &permissions {
            diesel::insert_into(role_permissions::table)
                .values((role_permissions::role_id.eq(role_id), role_permissions::permission.eq(permission)))
                .execute(conn)
                .await?;
        }
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, DieselError>(())
    })
    .map_err(unique_violation(format!("A role named {name:?} exists already.")))?;
    state.token_principals.forget_all();
    end_role_sessions(state, admin, role_id).await?;
    role(state, admin.company_id, role_id).await
}

/// Deletes a custom role no user holds (deleting one in use would leave its users with
/// less, or with no role at all, without anyone deciding it for them).
pub async fn delete_role(state: &AppState, admin: &Principal, role_id: i64) -> Result<(), AppError> {
    Attempt::new(state, admin, "role.deleted", format!("role {role_id}")).allow(admin.require_step_up()).await?;
    let role = custom_role(state, admin.company_id, role_id).await?;
    let holders: Vec<String> = db_run!(state.db, conn => {
        user_roles::table
            .inner_join(users::table)
            .filter(user_roles::role_id.eq(role_id))
            .order(users::username.asc())
            .select(users::username)
            .load(conn)
            .await
    })?;
    if !holders.is_empty() {
        return Err(AppError::Conflict(format!(
            "The role {:?} is held by {}: give them other roles first.",
            role.name,
            holders.join(", ")
        )));
    }
    let event = change(admin, "role.deleted", format!("role {role_id}"), serde_json::json!({ "name": role.name }));
    db_transaction!(state.db, conn => {
        diesel::delete(roles::table.find(role_id)).execute(conn).await?;
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, DieselError>(())
    })?;
    state.token_principals.forget_all();
    Ok(())
}

async fn end_role_sessions(state: &AppState, admin: &Principal, role_id: i64) -> Result<(), AppError> {
    let holders: Vec<i64> = db_run!(state.db, conn => {
        user_roles::table.filter(user_roles::role_id.eq(role_id)).select(user_roles::user_id).load(conn).await
    })?;
    for user_id in holders.into_iter().filter(|id| *id != admin.user_id) {
        session::delete_user_sessions(state, user_id).await?;
    }
    Ok(())
}

/// One row of the role × permission matrix.
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PermissionRow {
    pub code: String,
    pub label: String,
    pub description: String,
    pub section: String,
    pub needs_second_factor: bool,
    /// Ids of the roles that grant it.
    pub role_ids: Vec<i64>,
}

/// Every registered permission with the roles that grant it.
pub async fn permission_matrix(
    state: &AppState,
    company_id: i64,
) -> Result<(Vec<RoleInfo>, Vec<PermissionRow>), AppError> {
    let roles = list_roles(state, company_id).await?;
    let mut rows = Vec::new();
    for section in state.registry.sections() {
        for permission in section.permissions {
            rows.push(PermissionRow {
                code: permission.code.to_owned(),
                label: permission.label.to_owned(),
                description: permission.description.to_owned(),
                section: section.title.to_owned(),
                needs_second_factor: needs_second_factor(state, permission.code),
                role_ids: roles
                    .iter()
                    .filter(|r| r.permissions.iter().any(|p| p == permission.code))
                    .map(|r| r.id)
                    .collect(),
            });
        }
    }
    Ok((roles, rows))
}

// ---------------------------------------------------------------------------------------
// Audit log

/// One audit event.
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    /// The user who acted; `null` for the platform operator or an anonymous request.
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    pub result: String,
    pub ip: Option<String>,
    /// A JSON object with details.
    pub details: String,
}

/// Audit log filters; dates are inclusive days of the viewer's time zone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditFilter {
    pub from: Option<String>,
    pub to: Option<String>,
    /// An action or its start, e.g. `session` or `user.created`.
    pub action: Option<String>,
    /// Username of the actor.
    pub actor: Option<String>,
    pub result: Option<String>,
    /// Keyset cursor: events older than this id.
    pub before: Option<i64>,
}

/// An audit event with its actor's username (a left join: `None` for the platform
/// operator or an anonymous request).
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct AuditRow {
    id: i64,
    created_at: NaiveDateTime,
    #[diesel(select_expression = users::username.nullable())]
    actor_username: Option<String>,
    action: String,
    target: Option<String>,
    result: String,
    ip: Option<String>,
    details: String,
}

/// One page of the company's audit log, newest first, and the cursor of the next page;
/// the filter's days are those of `time_zone`.
pub async fn audit_log(
    state: &AppState,
    company_id: i64,
    time_zone: &str,
    filter: &AuditFilter,
    limit: i64,
) -> Result<(Vec<AuditEntry>, Option<i64>), AppError> {
    let (from, to) = dashboard_core::time::local_days(filter.from.as_deref(), filter.to.as_deref(), time_zone)?;
    let action = filter.action.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(|a| format!("{a}%"));
    let actor = filter.actor.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(str::to_lowercase);
    let result = filter.result.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned);
    let before = filter.before;
    let rows: Vec<AuditRow> = db_run!(state.db, conn => {
        let mut query = audit_events::table
            .left_join(users::table.on(users::id.nullable().eq(audit_events::actor_user_id)))
            .filter(audit_events::company_id.eq(company_id))
            .order(audit_events::id.desc())
            .limit(limit + 1)
            .select(AuditRow::as_select())
            .into_boxed();
        if let Some(from) = from {
            query = query.filter(audit_events::created_at.ge(from));
        }
        if let Some(to) = to {
            query = query.filter(audit_events::created_at.lt(to));
        }
        if let Some(action) = &action {
            query = query.filter(audit_events::action.like(action.clone()));
        }
        if let Some(actor) = &actor {
            query = query.filter(users::username.eq(actor.clone()));
        }
        if let Some(result) = &result {
            query = query.filter(audit_events::result.eq(result.clone()));
        }
        if let Some(before) = before {
            query = query.filter(audit_events::id.lt(before));
        }
        query.load(conn).await
    })?;
    let next = (rows.len() as i64 > limit).then(|| rows[limit as usize - 1].id);
    let entries = rows
        .into_iter()
        .take(limit as usize)
        .map(|row| AuditEntry {
            id: row.id,
            at: rfc3339(&row.created_at),
            actor: row.actor_username,
            action: row.action,
            target: row.target,
            result: row.result,
            ip: row.ip,
            details: row.details,
        })
        .collect();
    Ok((entries, next))
}

/// Project names of the company, by id (for showing grants).
pub async fn project_names(state: &AppState, company_id: i64) -> Result<Vec<(i64, String)>, AppError> {
    Ok(db_run!(state.db, conn => {
        projects::table
            .filter(projects::company_id.eq(company_id))
            .order(projects::name.asc())
            .select((projects::id, projects::name))
            .load(conn)
            .await
    })?)
}
