//! My team's HTML pages: forms over the service functions.

use dashboard_core::auth::urlencode;
use dashboard_core::export::csv_response;
use dashboard_core::pager::{PageOf, Trail};
use dashboard_core::web::{HtmlForm, see_other};
use dashboard_core::{AppError, PageContext};
use poem::web::{Html, Path, Query};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::service::{self, AuditFilter, MemberFilter, MemberInput, NewMember, PAGE_SIZE, RoleInput};

#[derive(Debug, Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

fn notice_text(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "created" => "The user was created.",
        "saved" => "Saved. The user's sessions ended, so the changes apply at once.",
        "deactivated" => "The user was deactivated: their sessions ended and their API tokens were revoked.",
        "reactivated" => "The user can sign in again.",
        "unlocked" => "The user was unlocked and can sign in again.",
        "second-factor-reset" => "Two-factor authentication was reset: the user sets it up again at the next sign-in.",
        "role-created" => "The role was created.",
        "role-saved" => "The role was saved. Its users' sessions ended, so the change applies at once.",
        "role-deleted" => "The role was deleted.",
        _ => return None,
    })
}

#[derive(Debug, Deserialize)]
pub struct UserForm {
    username: Option<String>,
    display_name: String,
    email: String,
    phone: String,
    #[serde(default)]
    role_ids: Vec<i64>,
    /// "all", or the chosen `project_ids`.
    projects: String,
    #[serde(default)]
    project_ids: Vec<i64>,
    /// New users: an initial password, or empty for a set-password link.
    password: Option<String>,
}

impl UserForm {
    fn input(&self) -> MemberInput {
        MemberInput {
            display_name: self.display_name.clone(),
            email: Some(self.email.clone()),
            phone: Some(self.phone.clone()),
            role_ids: self.role_ids.clone(),
            project_ids: (self.projects != "all").then(|| self.project_ids.clone()),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: Vec<String>,
}

impl RoleForm {
    fn input(&self) -> RoleInput {
        RoleInput {
            name: self.name.clone(),
            description: self.description.clone(),
            permissions: self.permissions.clone(),
        }
    }
}

fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(key, value)| value.as_ref().filter(|v| !v.is_empty()).map(|v| format!("{key}={}", urlencode(v))))
        .collect::<Vec<_>>()
        .join("&")
}

/// A list's filters as query pairs, each with the words its chip shows (`None`: unset).
type Filters = Vec<(&'static str, Option<String>, String)>;

fn member_filters(filter: &MemberFilter, roles: &[service::RoleInfo]) -> Filters {
    let role = |id: i64| roles.iter().find(|role| role.id == id).map_or(id.to_string(), |role| role.name.clone());
    let status = |status: &str| if status == "deactivated" { "Deactivated" } else { "Active" }.to_owned();
    vec![
        ("q", filter.q.clone(), format!("Search: {}", filter.q.as_deref().unwrap_or_default())),
        (
            "role_id",
            filter.role_id.map(|id| id.to_string()),
            format!("Role: {}", filter.role_id.map(role).unwrap_or_default()),
        ),
        (
            "status",
            filter.status.clone(),
            format!("Status: {}", filter.status.as_deref().map(status).unwrap_or_default()),
        ),
    ]
}

fn audit_filters(filter: &AuditFilter) -> Filters {
    let result = |result: &str| dashboard_core::labels::label("audit_result", result);
    vec![
        ("from", filter.from.clone(), format!("From: {}", filter.from.as_deref().unwrap_or_default())),
        ("to", filter.to.clone(), format!("To: {}", filter.to.as_deref().unwrap_or_default())),
        ("action", filter.action.clone(), format!("Action: {}", filter.action.as_deref().unwrap_or_default())),
        ("actor", filter.actor.clone(), format!("User: {}", filter.actor.as_deref().unwrap_or_default())),
        (
            "result",
            filter.result.clone(),
            format!("Result: {}", filter.result.as_deref().map(result).unwrap_or_default()),
        ),
    ]
}

/// The query string of `filters`, leaving out the one keyed `without`.
fn filters_query(filters: &Filters, without: Option<&str>) -> String {
    let pairs: Vec<(&str, Option<String>)> =
        filters.iter().filter(|(key, ..)| Some(*key) != without).map(|(key, value, _)| (*key, value.clone())).collect();
    query_string(&pairs)
}

/// The filters in use as removable chips: their words, and `path` without each.
fn chips(path: &str, filters: &Filters) -> Vec<Value> {
    filters
        .iter()
        .filter(|(_, value, _)| value.as_deref().is_some_and(|value| !value.trim().is_empty()))
        .map(|(key, _, label)| json!({ "label": label, "remove_url": with_query(path, &filters_query(filters, Some(key)), None) }))
        .collect()
}

fn with_query(path: &str, query: &str, extra: Option<String>) -> String {
    let query = [Some(query.to_owned()).filter(|q| !q.is_empty()), extra].into_iter().flatten().collect::<Vec<_>>();
    if query.is_empty() { path.to_owned() } else { format!("{path}?{}", query.join("&")) }
}

#[handler]
pub async fn users_page(
    page: PageContext,
    Query(filter): Query<MemberFilter>,
    Query(trail): Query<Trail>,
) -> Result<Html<String>, AppError> {
    let admin = page.principal()?;
    let (members, next) = service::list_members(&page.state, admin.company_id, &filter, PAGE_SIZE).await?;
    let roles = service::list_roles(&page.state, admin.company_id).await?;
    let filters = member_filters(&filter, &roles);
    let query = filters_query(&filters, None);
    let data = json!({
        "chips": chips("/team", &filters),
        "tab": "users",
        "members": members,
        "roles": roles,
        "filter": { "q": filter.q, "role_id": filter.role_id, "status": filter.status },
        "pager": trail.pager(&PageOf {
            base: &with_query("/team", &query, None),
            cursor: "after",
            current: filter.after.as_deref(),
            next: next.as_deref(),
            shown: members.len(),
            size: PAGE_SIZE as usize,
        }),
        "export_url": with_query("/team/users.csv", &query, None),
    });
    page.render("My team", "team/users", &data)
}

#[handler]
pub async fn users_csv(page: PageContext, Query(mut filter): Query<MemberFilter>) -> Result<Response, AppError> {
    filter.after = None;
    let principal = page.principal()?.clone();
    Ok(csv_response("team-users.csv", crate::users_export(page.state, &principal, filter).await?))
}

/// The user form, empty (`member` is `None`) or for an existing user.
async fn user_page(
    page: &PageContext,
    member: Option<&service::Member>,
    form: Option<&UserForm>,
    notice: Option<&str>,
    error: Option<&str>,
    link: Option<&str>,
) -> Result<Response, AppError> {
    let admin = page.principal()?;
    let roles = service::list_roles(&page.state, admin.company_id).await?;
    let projects = service::project_names(&page.state, admin.company_id).await?;
    let chosen_roles: Vec<i64> = match (form, member) {
        (Some(form), _) => form.role_ids.clone(),
        (None, Some(member)) => member.roles.iter().map(|r| r.id).collect(),
        _ => Vec::new(),
    };
    let (all_projects, chosen_projects) = match (form, member) {
        (Some(form), _) => (form.projects == "all", form.project_ids.clone()),
        (None, Some(member)) => (member.all_projects, member.project_ids.clone()),
        _ => (true, Vec::new()),
    };
    let values = match (form, member) {
        (Some(form), _) => json!({
            "username": form.username, "display_name": form.display_name, "email": form.email, "phone": form.phone,
        }),
        (None, Some(member)) => json!({
            "username": member.username, "display_name": member.display_name, "email": member.email, "phone": member.phone,
        }),
        _ => json!({ "username": "", "display_name": "", "email": "", "phone": "" }),
    };
    let roles: Vec<Value> = roles
        .iter()
        .map(|r| json!({ "id": r.id, "name": r.name, "builtin": r.builtin, "checked": chosen_roles.contains(&r.id) }))
        .collect();
    let projects: Vec<Value> = projects
        .iter()
        .map(|(id, name)| json!({ "id": id, "name": name, "checked": chosen_projects.contains(id) }))
        .collect();
    let data = json!({
        "tab": "users",
        "csrf_token": page.csrf_token,
        "member": member,
        "is_self": member.is_some_and(|m| m.id == admin.user_id),
        "values": values,
        "roles": roles,
        "projects": projects,
        "all_projects": all_projects,
        "notice": notice,
        "error": error,
        "link": link,
    });
    let title = member.map_or("New user".to_owned(), |m| m.display_name.clone());
    let status = match error {
        Some(_) => poem::http::StatusCode::BAD_REQUEST,
        None => poem::http::StatusCode::OK,
    };
    Ok((status, page.render(&title, "team/user", &data)?).into_response())
}

/// Shows the user's own mistakes on the form instead of an error page.
fn is_form_error(error: &AppError) -> bool {
    matches!(error, AppError::BadRequest(_) | AppError::Conflict(_))
}

#[handler]
pub async fn new_user(page: PageContext) -> Result<Response, AppError> {
    user_page(&page, None, None, None, None, None).await
}

#[handler]
pub async fn create_user(page: PageContext, HtmlForm(form): HtmlForm<UserForm>) -> Result<Response, AppError> {
    let new = NewMember {
        username: form.username.clone().unwrap_or_default(),
        details: form.input(),
        password: form.password.clone().filter(|p| !p.is_empty()),
    };
    match service::create_member(&page.state, page.principal()?, &new).await {
        Ok(created) => match created.set_password_url {
            Some(link) => {
                let notice =
                    Some("The user was created. Give them this one-time link to set their password (valid 72 hours).");
                user_page(&page, Some(&created.member), None, notice, None, Some(&link)).await
            }
            None => Ok(see_other(&format!("/team/users/{}?notice=created", created.member.id))),
        },
        Err(error) if is_form_error(&error) => {
            user_page(&page, None, Some(&form), None, Some(&error.to_string()), None).await
        }
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn edit_user(
    page: PageContext,
    Path(id): Path<i64>,
    Query(notice): Query<Notice>,
) -> Result<Response, AppError> {
    let member = service::member(&page.state, page.principal()?.company_id, id).await?;
    user_page(&page, Some(&member), None, notice_text(notice.notice.as_deref()), None, None).await
}

#[handler]
pub async fn update_user(
    page: PageContext,
    Path(id): Path<i64>,
    HtmlForm(form): HtmlForm<UserForm>,
) -> Result<Response, AppError> {
    let admin = page.principal()?;
    match service::update_member(&page.state, admin, id, &form.input()).await {
        Ok(_) => Ok(see_other(&format!("/team/users/{id}?notice=saved"))),
        Err(error) if is_form_error(&error) => {
            let member = service::member(&page.state, admin.company_id, id).await?;
            user_page(&page, Some(&member), Some(&form), None, Some(&error.to_string()), None).await
        }
        Err(error) => Err(error),
    }
}

/// Runs a user action from a button; a refused one is shown on the user's page.
async fn user_action(
    page: &PageContext,
    id: i64,
    notice: &str,
    result: Result<service::Member, AppError>,
) -> Result<Response, AppError> {
    match result {
        Ok(_) => Ok(see_other(&format!("/team/users/{id}?notice={notice}"))),
        Err(error) if is_form_error(&error) => {
            let member = service::member(&page.state, page.principal()?.company_id, id).await?;
            user_page(page, Some(&member), None, None, Some(&error.to_string()), None).await
        }
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn deactivate_user(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let result = service::set_active(&page.state, page.principal()?, id, false).await;
    user_action(&page, id, "deactivated", result).await
}

#[handler]
pub async fn reactivate_user(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let result = service::set_active(&page.state, page.principal()?, id, true).await;
    user_action(&page, id, "reactivated", result).await
}

#[handler]
pub async fn unlock_user(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let result = service::unlock(&page.state, page.principal()?, id).await;
    user_action(&page, id, "unlocked", result).await
}

#[handler]
pub async fn reset_second_factor(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let result = service::reset_second_factor(&page.state, page.principal()?, id).await;
    user_action(&page, id, "second-factor-reset", result).await
}

#[handler]
pub async fn password_link(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let admin = page.principal()?;
    let link = service::issue_password_link(&page.state, admin, id).await?;
    let member = service::member(&page.state, admin.company_id, id).await?;
    let notice =
        Some("Give the user this one-time link to set a new password (valid 72 hours; earlier links stopped working).");
    user_page(&page, Some(&member), None, notice, None, Some(&link)).await
}

async fn render_roles(
    page: &PageContext,
    notice: Option<&str>,
    error: Option<&str>,
    form: Option<&RoleForm>,
) -> Result<Response, AppError> {
    let admin = page.principal()?;
    let (roles, permissions) = service::permission_matrix(&page.state, admin.company_id).await?;
    let rows: Vec<Value> = permissions
        .iter()
        .map(|p| {
            let cells: Vec<bool> = roles.iter().map(|r| p.role_ids.contains(&r.id)).collect();
            let chosen = form.is_some_and(|f| f.permissions.contains(&p.code));
            json!({ "permission": p, "cells": cells, "chosen": chosen })
        })
        .collect();
    let data = json!({
        "tab": "roles",
        "csrf_token": page.csrf_token,
        "roles": roles,
        "rows": rows,
        "notice": notice,
        "error": error,
        "form": form.map_or_else(
            || json!({ "name": "", "description": "" }),
            |f| json!({ "name": f.name, "description": f.description }),
        ),
    });
    let status = if error.is_some() { poem::http::StatusCode::BAD_REQUEST } else { poem::http::StatusCode::OK };
    Ok((status, page.render("Roles and permissions", "team/roles", &data)?).into_response())
}

#[handler]
pub async fn roles_page(page: PageContext, Query(notice): Query<Notice>) -> Result<Response, AppError> {
    render_roles(&page, notice_text(notice.notice.as_deref()), None, None).await
}

#[handler]
pub async fn create_role(page: PageContext, HtmlForm(form): HtmlForm<RoleForm>) -> Result<Response, AppError> {
    match service::create_role(&page.state, page.principal()?, &form.input()).await {
        Ok(_) => Ok(see_other("/team/roles?notice=role-created")),
        Err(error) if is_form_error(&error) => render_roles(&page, None, Some(&error.to_string()), Some(&form)).await,
        Err(error) => Err(error),
    }
}

async fn role_page(
    page: &PageContext,
    id: i64,
    error: Option<&str>,
    form: Option<&RoleForm>,
) -> Result<Response, AppError> {
    let admin = page.principal()?;
    let role = service::role(&page.state, admin.company_id, id).await?;
    let chosen = form.map_or_else(|| role.permissions.clone(), |f| f.permissions.clone());
    let permissions: Vec<Value> = page
        .state
        .registry
        .permissions()
        .map(|p| {
            json!({
                "code": p.code, "label": p.label,
                "needs_second_factor": dashboard_core::session::needs_second_factor(&page.state, p.code),
                "checked": chosen.iter().any(|c| c == p.code),
            })
        })
        .collect();
    let data = json!({
        "tab": "roles",
        "csrf_token": page.csrf_token,
        "role": role,
        "name": form.map_or(role.name.clone(), |f| f.name.clone()),
        "description": form.map_or(role.description.clone(), |f| f.description.clone()),
        "permissions": permissions,
        "error": error,
    });
    let status = if error.is_some() { poem::http::StatusCode::BAD_REQUEST } else { poem::http::StatusCode::OK };
    Ok((status, page.render(&role.name, "team/role", &data)?).into_response())
}

#[handler]
pub async fn edit_role(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    role_page(&page, id, None, None).await
}

#[handler]
pub async fn update_role(
    page: PageContext,
    Path(id): Path<i64>,
    HtmlForm(form): HtmlForm<RoleForm>,
) -> Result<Response, AppError> {
    match service::update_role(&page.state, page.principal()?, id, &form.input()).await {
        Ok(_) => Ok(see_other("/team/roles?notice=role-saved")),
        Err(error) if is_form_error(&error) => role_page(&page, id, Some(&error.to_string()), Some(&form)).await,
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn delete_role(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    match service::delete_role(&page.state, page.principal()?, id).await {
        Ok(()) => Ok(see_other("/team/roles?notice=role-deleted")),
        Err(error) if is_form_error(&error) => role_page(&page, id, Some(&error.to_string()), None).await,
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn audit_page(
    page: PageContext,
    Query(filter): Query<AuditFilter>,
    Query(trail): Query<Trail>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let (entries, next, error) =
        match service::audit_log(&page.state, principal.company_id, &principal.time_zone, &filter, PAGE_SIZE).await {
            Ok((entries, next)) => (entries, next, None),
            Err(error) if is_form_error(&error) => (Vec::new(), None, Some(error.to_string())),
            Err(error) => return Err(error),
        };
    let filters = audit_filters(&filter);
    let query = filters_query(&filters, None);
    let chips = chips("/team/audit", &filters);
    // The filters behind "More filters" that are in use.
    let more_active = [&filter.actor, &filter.result]
        .iter()
        .filter(|value| value.as_deref().is_some_and(|v| !v.trim().is_empty()))
        .count();
    let data = json!({
        "more_active": more_active,
        "chips": chips,
        "tab": "audit",
        "entries": entries,
        "filter": { "from": filter.from, "to": filter.to, "action": filter.action, "actor": filter.actor, "result": filter.result },
        "pager": trail.pager(&PageOf {
            base: &with_query("/team/audit", &query, None),
            cursor: "before",
            current: filter.before.map(|before| before.to_string()).as_deref(),
            next: next.map(|before| before.to_string()).as_deref(),
            shown: entries.len(),
            size: PAGE_SIZE as usize,
        }),
        "export_url": with_query("/team/audit.csv", &query, None),
        "error": error,
    });
    let status = if data["error"].is_null() { poem::http::StatusCode::OK } else { poem::http::StatusCode::BAD_REQUEST };
    Ok((status, page.render("Audit log", "team/audit", &data)?).into_response())
}

#[handler]
pub async fn audit_csv(page: PageContext, Query(mut filter): Query<AuditFilter>) -> Result<Response, AppError> {
    filter.before = None;
    let principal = page.principal()?.clone();
    Ok(csv_response("audit-log.csv", crate::audit_export(page.state, &principal, filter).await?))
}
