//! My team's API: the twin of every page action.

use dashboard_core::auth::Principal;
use dashboard_core::export::attachment;
use dashboard_core::{ApiResult, AppState};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::service::{
    self, AuditEntry, AuditFilter, CreatedMember, Member, MemberFilter, MemberInput, NewMember, PermissionRow,
    RoleInfo, RoleInput,
};

/// A page of users; pass `next` as `after` for the following page.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberPage {
    pub items: Vec<Member>,
    pub next: Option<String>,
}

/// A page of audit events, newest first; pass `next` as `before` for older ones.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next: Option<i64>,
}

/// The roles and which of them grant each permission.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PermissionMatrix {
    pub roles: Vec<RoleInfo>,
    pub permissions: Vec<PermissionRow>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PasswordLink {
    /// One-time link for the user to set a password; valid 72 hours.
    pub url: String,
}

#[derive(ApiResponse)]
enum Created<T: poem_openapi::types::ToJSON> {
    #[oai(status = 201)]
    Created(Json<T>),
}

#[derive(ApiResponse)]
enum Deleted {
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum CsvFile {
    /// The whole matching audit log as CSV, streamed.
    #[oai(status = 200, content_type = "text/csv")]
    Csv(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
}

/// The page size asked for (the parameter's validator keeps it within 1 to 500).
fn limit(value: Option<i64>) -> i64 {
    value.unwrap_or(service::PAGE_SIZE)
}

#[derive(Default)]
pub struct TeamApi;

#[OpenApi(tag = "TeamTag::Team")]
impl TeamApi {
    /// List the company's users
    #[oai(path = "/team/users", method = "get", operation_id = "team_users_list")]
    #[allow(clippy::too_many_arguments)]
    async fn list_users(
        &self,
        state: Data<&AppState>,
        admin: &Principal,
        /// Part of the username or name.
        q: Query<Option<String>>,
        role_id: Query<Option<i64>>,
        /// `active` or `deactivated`.
        status: Query<Option<String>>,
        /// The `next` of the previous page.
        after: Query<Option<String>>,
        /// Items a page, 1 to 500 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<MemberPage>> {
        let filter = MemberFilter { q: q.0, role_id: role_id.0, status: status.0, after: after.0 };
        let (items, next) = service::list_members(&state, admin.company_id, &filter, self::limit(limit.0)).await?;
        Ok(Json(MemberPage { items, next }))
    }

    /// Create a user
    ///
    /// Without `password`, the answer holds a one-time set-password link for the user.
    #[oai(path = "/team/users", method = "post", operation_id = "team_users_create")]
    async fn create_user(
        &self,
        state: Data<&AppState>,
        admin: &Principal,
        body: Json<NewMember>,
    ) -> ApiResult<Created<CreatedMember>> {
        Ok(Created::Created(Json(service::create_member(&state, admin, &body).await?)))
    }

    /// One user
    #[oai(path = "/team/users/:id", method = "get", operation_id = "team_users_get")]
    async fn get_user(&self, state: Data<&AppState>, admin: &Principal, id: Path<i64>) -> ApiResult<Json<Member>> {
        Ok(Json(service::member(&state, admin.company_id, id.0).await?))
    }

    /// Change a user's details, roles and project access
    ///
    /// The user's sessions end, so that the change applies at once.
    #[oai(path = "/team/users/:id", method = "put", operation_id = "team_users_update")]
    async fn update_user(
        &self,
        state: Data<&AppState>,
        admin: &Principal,
        id: Path<i64>,
        body: Json<MemberInput>,
    ) -> ApiResult<Json<Member>> {
        Ok(Json(service::update_member(&state, admin, id.0, &body).await?))
    }

    /// Deactivate a user
    ///
    /// Ends their sessions and revokes their API tokens at once.
    #[oai(path = "/team/users/:id/deactivation", method = "post", operation_id = "team_users_deactivate")]
    async fn deactivate(&self, state: Data<&AppState>, admin: &Principal, id: Path<i64>) -> ApiResult<Json<Member>> {
        Ok(Json(service::set_active(&state, admin, id.0, false).await?))
    }

    /// Reactivate a user
    #[oai(path = "/team/users/:id/deactivation", method = "delete", operation_id = "team_users_reactivate")]
    async fn reactivate(&self, state: Data<&AppState>, admin: &Principal, id: Path<i64>) -> ApiResult<Json<Member>> {
        Ok(Json(service::set_active(&state, admin, id.0, true).await?))
    }

    /// Unlock a user locked out by failed sign-ins
    ///
    /// Before the lock ends by itself; a user who is not locked is answered as they are.
    #[oai(path = "/team/users/:id/unlock", method = "post", operation_id = "team_users_unlock")]
    async fn unlock(&self, state: Data<&AppState>, admin: &Principal, id: Path<i64>) -> ApiResult<Json<Member>> {
        Ok(Json(service::unlock(&state, admin, id.0).await?))
    }

    /// Reset a user's second factor
    #[oai(
        path = "/team/users/:id/second-factor-reset",
        method = "post",
        operation_id = "team_users_reset_second_factor"
    )]
    async fn reset_second_factor(
        &self,
        state: Data<&AppState>,
        admin: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<Member>> {
        Ok(Json(service::reset_second_factor(&state, admin, id.0).await?))
    }

    /// A one-time set-password link for a user
    #[oai(path = "/team/users/:id/password-link", method = "post", operation_id = "team_users_password_link")]
    async fn password_link(
        &self,
        state: Data<&AppState>,
        admin: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<PasswordLink>> {
        Ok(Json(PasswordLink { url: service::issue_password_link(&state, admin, id.0).await? }))
    }

    /// The company's roles
    #[oai(path = "/team/roles", method = "get", operation_id = "team_roles_list")]
    async fn list_roles(&self, state: Data<&AppState>, admin: &Principal) -> ApiResult<Json<Vec<RoleInfo>>> {
        Ok(Json(service::list_roles(&state, admin.company_id).await?))
    }

    /// Create a custom role
    #[oai(path = "/team/roles", method = "post", operation_id = "team_roles_create")]
    async fn create_role(
        &self,
        state: Data<&AppState>,
        admin: &Principal,
        body: Json<RoleInput>,
    ) -> ApiResult<Created<RoleInfo>> {
        Ok(Created::Created(Json(service::create_role(&state, admin, &body).await?)))
    }

    /// Change a custom role
    #[oai(path = "/team/roles/:id", method = "put", operation_id = "team_roles_update")]
    async fn update_role(
        &self,
        state: Data<&AppState>,
        admin: &Principal,
        id: Path<i64>,
        body: Json<RoleInput>,
    ) -> ApiResult<Json<RoleInfo>> {
        Ok(Json(service::update_role(&state, admin, id.0, &body).await?))
    }

    /// Delete a custom role
    #[oai(path = "/team/roles/:id", method = "delete", operation_id = "team_roles_delete")]
    async fn delete_role(&self, state: Data<&AppState>, admin: &Principal, id: Path<i64>) -> ApiResult<Deleted> {
        service::delete_role(&state, admin, id.0).await?;
        Ok(Deleted::Done)
    }

    /// The role × permission matrix
    ///
    /// Every registered permission, whether it needs the second factor, and the roles
    /// that grant it.
    #[oai(path = "/team/permissions", method = "get", operation_id = "team_permissions")]
    async fn permissions(&self, state: Data<&AppState>, admin: &Principal) -> ApiResult<Json<PermissionMatrix>> {
        let (roles, permissions) = service::permission_matrix(&state, admin.company_id).await?;
        Ok(Json(PermissionMatrix { roles, permissions }))
    }

    /// The audit log
    #[oai(path = "/team/audit-events", method = "get", operation_id = "team_audit_list")]
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        state: Data<&AppState>,
        admin: &Principal,
        /// First day, `YYYY-MM-DD` (UTC).
        from: Query<Option<chrono::NaiveDate>>,
        /// Last day, inclusive.
        to: Query<Option<chrono::NaiveDate>>,
        /// An action or its start, e.g. `session`.
        action: Query<Option<String>>,
        /// Username of the actor.
        actor: Query<Option<String>>,
        /// `success`, `failure` or `denied`.
        result: Query<Option<String>>,
        before: Query<Option<i64>>,
        /// Items a page, 1 to 500 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<AuditPage>> {
        let filter = AuditFilter {
            from: from.0.map(|day| day.to_string()),
            to: to.0.map(|day| day.to_string()),
            action: action.0,
            actor: actor.0,
            result: result.0,
            before: before.0,
        };
        let (items, next) =
            service::audit_log(&state, admin.company_id, &admin.time_zone, &filter, self::limit(limit.0)).await?;
        Ok(Json(AuditPage { items, next }))
    }

    /// Export the audit log as CSV
    ///
    /// Every event matching the filter, streamed.
    #[oai(path = "/team/audit-events/export", method = "get", operation_id = "team_audit_export")]
    #[allow(clippy::too_many_arguments)]
    async fn audit_export(
        &self,
        state: Data<&AppState>,
        admin: &Principal,
        from: Query<Option<chrono::NaiveDate>>,
        to: Query<Option<chrono::NaiveDate>>,
        action: Query<Option<String>>,
        actor: Query<Option<String>>,
        result: Query<Option<String>>,
    ) -> ApiResult<CsvFile> {
        let filter = AuditFilter {
            from: from.0.map(|day| day.to_string()),
            to: to.0.map(|day| day.to_string()),
            action: action.0,
            actor: actor.0,
            result: result.0,
            before: None,
        };
        let body = crate::audit_export(state.0.clone(), admin, filter).await?;
        Ok(CsvFile::Csv(Binary(body), attachment("audit-log.csv")))
    }
}

#[derive(poem_openapi::Tags)]
enum TeamTag {
    /// My team: users, roles and the audit log (merchant admin).
    Team,
}
