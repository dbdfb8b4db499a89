//! My team, for the merchant admin: users (create, edit roles and project access, phone
//! numbers, deactivate, reset the second factor, set-password links), custom roles, the
//! role × permission matrix, and the audit log. Pages and API call `service`.

mod api;
mod pages;
pub mod service;

use dashboard_core::registry::{Access, Api, Nav, Permission, Section, Template};
use dashboard_core::{operation, page, register_section};

/// Managing users and roles.
const MANAGE: &str = "team.manage";
/// Reading the audit log.
const AUDIT: &str = "team.audit";

register_section!(Section {
    id: "team",
    title: "My team",
    nav: Some(Nav { label: "My team", path: "/team", order: 800, icon: Some("users"), covers: &[] }),
    permissions: &[
        Permission {
            code: MANAGE,
            label: "Manage the team",
            description: "Create and edit users, their roles, project access and phone numbers; deactivate them; \
                          reset their second factor; define custom roles.",
            second_factor_exempt: false,
            // Only the merchant admin, who holds every permission.
            default_roles: &[],
        },
        Permission {
            code: AUDIT,
            label: "Read the audit log",
            description: "See and export who did what, when and from where.",
            second_factor_exempt: false,
            default_roles: &[],
        },
    ],
    pages: &[
        page!(GET "/team" => pages::users_page, Access::Permission(MANAGE)),
        page!(GET "/team/users.csv" => pages::users_csv, Access::Permission(MANAGE)),
        page!(GET "/team/users/new" => pages::new_user, Access::Permission(MANAGE)),
        page!(POST "/team/users" => pages::create_user, Access::Permission(MANAGE)),
        page!(GET "/team/users/:id" => pages::edit_user, Access::Permission(MANAGE)),
        page!(POST "/team/users/:id" => pages::update_user, Access::Permission(MANAGE)),
        page!(POST "/team/users/:id/deactivate" => pages::deactivate_user, Access::Permission(MANAGE)),
        page!(POST "/team/users/:id/reactivate" => pages::reactivate_user, Access::Permission(MANAGE)),
        page!(POST "/team/users/:id/unlock" => pages::unlock_user, Access::Permission(MANAGE)),
        page!(POST "/team/users/:id/reset-second-factor" => pages::reset_second_factor, Access::Permission(MANAGE)),
        page!(POST "/team/users/:id/password-link" => pages::password_link, Access::Permission(MANAGE)),
        page!(GET "/team/roles" => pages::roles_page, Access::Permission(MANAGE)),
        page!(POST "/team/roles" => pages::create_role, Access::Permission(MANAGE)),
        page!(GET "/team/roles/:id" => pages::edit_role, Access::Permission(MANAGE)),
        page!(POST "/team/roles/:id" => pages::update_role, Access::Permission(MANAGE)),
        page!(POST "/team/roles/:id/delete" => pages::delete_role, Access::Permission(MANAGE)),
        page!(GET "/team/audit" => pages::audit_page, Access::Permission(AUDIT)),
        page!(GET "/team/audit.csv" => pages::audit_csv, Access::Permission(AUDIT)),
    ],
    api: Some(Api::of::<api::TeamApi>(&[
        operation!(GET "/team/users", Access::Permission(MANAGE)),
        operation!(POST "/team/users", Access::Permission(MANAGE)),
        operation!(GET "/team/users/{id}", Access::Permission(MANAGE)),
        operation!(PUT "/team/users/{id}", Access::Permission(MANAGE)),
        operation!(POST "/team/users/{id}/deactivation", Access::Permission(MANAGE)),
        operation!(DELETE "/team/users/{id}/deactivation", Access::Permission(MANAGE)),
        operation!(POST "/team/users/{id}/unlock", Access::Permission(MANAGE)),
        operation!(POST "/team/users/{id}/second-factor-reset", Access::Permission(MANAGE)),
        operation!(POST "/team/users/{id}/password-link", Access::Permission(MANAGE)),
        operation!(GET "/team/roles", Access::Permission(MANAGE)),
        operation!(POST "/team/roles", Access::Permission(MANAGE)),
        operation!(PUT "/team/roles/{id}", Access::Permission(MANAGE)),
        operation!(DELETE "/team/roles/{id}", Access::Permission(MANAGE)),
        operation!(GET "/team/permissions", Access::Permission(MANAGE)),
        operation!(GET "/team/audit-events", Access::Permission(AUDIT)),
        operation!(GET "/team/audit-events/export", Access::Permission(AUDIT)),
    ])),
    templates: &[
        Template { name: "team/users", source: include_str!("../templates/users.hbs") },
        Template { name: "team/user", source: include_str!("../templates/user.hbs") },
        Template { name: "team/roles", source: include_str!("../templates/roles.hbs") },
        Template { name: "team/role", source: include_str!("../templates/role.hbs") },
        Template { name: "team/audit", source: include_str!("../templates/audit.hbs") },
        Template { name: "team/tabs", source: include_str!("../templates/tabs.hbs") },
    ],
});

/// Header of the users export.
const USER_COLUMNS: &[&str] =
    &["id", "username", "name", "email", "phone", "roles", "projects", "second_factor", "status", "created_at"];
/// Header of the audit log export.
const AUDIT_COLUMNS: &[&str] = &["id", "at", "actor", "action", "target", "result", "ip", "details"];

fn user_row(member: &service::Member) -> Vec<String> {
    use dashboard_core::export::safe_cell;
    vec![
        member.id.to_string(),
        safe_cell(&member.username),
        safe_cell(&member.display_name),
        safe_cell(member.email.as_deref().unwrap_or_default()),
        safe_cell(member.phone.as_deref().unwrap_or_default()),
        safe_cell(&member.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join("; ")),
        if member.all_projects {
            "all".to_owned()
        } else {
            member.project_ids.iter().map(i64::to_string).collect::<Vec<_>>().join("; ")
        },
        if member.second_factor_enabled { "on" } else { "off" }.to_owned(),
        if member.active { "active" } else { "deactivated" }.to_owned(),
        member.created_at.0.clone(),
    ]
}

fn audit_row(entry: &service::AuditEntry) -> Vec<String> {
    use dashboard_core::export::safe_cell;
    vec![
        entry.id.to_string(),
        entry.at.clone(),
        safe_cell(entry.actor.as_deref().unwrap_or_default()),
        safe_cell(&entry.action),
        safe_cell(entry.target.as_deref().unwrap_or_default()),
        safe_cell(&entry.result),
        safe_cell(entry.ip.as_deref().unwrap_or_default()),
        safe_cell(&entry.details),
    ]
}

/// The streamed export of every user matching `filter`, audited.
async fn users_export(
    state: dashboard_core::AppState,
    principal: &dashboard_core::Principal,
    filter: service::MemberFilter,
) -> Result<poem::Body, dashboard_core::AppError> {
    dashboard_core::audit::export(&state.db, principal, "team.users_export", &filter).await?;
    let company_id = principal.company_id;
    let rows = dashboard_core::export::paged(move |cursor: Option<String>| {
        let (state, mut filter) = (state.clone(), filter.clone());
        async move {
            filter.after = cursor;
            let (members, next) = service::list_members(&state, company_id, &filter, 1000).await?;
            Ok((members.iter().map(user_row).collect(), next))
        }
    });
    Ok(dashboard_core::export::csv_body(USER_COLUMNS, rows))
}

/// The streamed export of every audit event matching `filter` (refused before anything
/// is sent when the filter is bad), audited.
async fn audit_export(
    state: dashboard_core::AppState,
    principal: &dashboard_core::Principal,
    filter: service::AuditFilter,
) -> Result<poem::Body, dashboard_core::AppError> {
    let (company_id, time_zone) = (principal.company_id, principal.time_zone.clone());
    service::audit_log(&state, company_id, &time_zone, &filter, 1).await?;
    dashboard_core::audit::export(&state.db, principal, "team.audit_export", &filter).await?;
    let rows = dashboard_core::export::paged(move |cursor: Option<i64>| {
        let (state, mut filter, time_zone) = (state.clone(), filter.clone(), time_zone.clone());
        async move {
            filter.before = cursor;
            let (entries, next) = service::audit_log(&state, company_id, &time_zone, &filter, 1000).await?;
            Ok((entries.iter().map(audit_row).collect(), next))
        }
    });
    Ok(dashboard_core::export::csv_body(AUDIT_COLUMNS, rows))
}
