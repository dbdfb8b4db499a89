//! Projects: the company's projects (created by the platform operator) and their
//! settings: callbacks (which payment events go to which URL, signed with the project's
//! secret key) and payout limits.

use dashboard_core::auth::Principal;
use dashboard_core::directory::{self, Project};
use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section, Template};
use dashboard_core::web::see_other;
use dashboard_core::{ApiResult, AppError, AppState, PageContext, operation, page, register_section};
use dashboard_payments_domain::callbacks::{self, Endpoint};
use dashboard_payments_domain::moto;
use dashboard_payments_domain::payouts::{self, PayoutLimit};
use poem::web::{Data, Form, Html, Path};
use poem::{Response, handler};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::json;

const VIEW: &str = "projects.view";
const MANAGE: &str = "projects.manage";

register_section!(Section {
    id: "projects",
    title: "Projects",
    nav: Some(Nav { label: "Projects", path: "/projects", order: 700, icon: Some("folder"), covers: &[] }),
    permissions: &[
        Permission {
            code: VIEW,
            label: "View projects",
            description: "See the company's projects and their settings.",
            // PSD2 exemption listed in the seed: viewing projects.
            second_factor_exempt: true,
            default_roles: &BuiltinRole::ALL,
        },
        Permission {
            code: MANAGE,
            label: "Set up projects",
            description: "Change a project's callbacks and payout limits, and see its secret key.",
            second_factor_exempt: false,
            default_roles: &[],
        },
    ],
    pages: &[
        page!(GET "/projects" => projects_page, Access::Permission(VIEW)),
        page!(POST "/projects/:id/callbacks" => callback_submit, Access::Permission(MANAGE)),
        page!(POST "/projects/:id/payout-limits" => payout_limits_submit, Access::Permission(MANAGE)),
        page!(POST "/projects/:id/moto" => moto_submit, Access::Permission(MANAGE)),
    ],
    api: Some(Api::of::<ProjectsApi>(&[
        operation!(GET "/projects", Access::Permission(VIEW)),
        operation!(GET "/projects/{id}/callbacks", Access::Permission(VIEW)),
        operation!(PUT "/projects/{id}/callbacks", Access::Permission(MANAGE)),
        operation!(GET "/projects/{id}/secret-key", Access::Permission(MANAGE)),
        operation!(GET "/projects/{id}/payout-limits", Access::Permission(VIEW)),
        operation!(PUT "/projects/{id}/payout-limits", Access::Permission(MANAGE)),
        operation!(GET "/projects/{id}/moto", Access::Permission(VIEW)),
        operation!(PUT "/projects/{id}/moto", Access::Permission(MANAGE)),
    ])),
    templates: &[Template { name: "projects/list", source: include_str!("../templates/list.hbs") }],
});

/// A project of the principal's, or 404.
async fn project(state: &AppState, principal: &Principal, id: i64) -> Result<Project, AppError> {
    directory::visible_projects(&state.db, principal).await?.into_iter().find(|p| p.id == id).ok_or(AppError::NotFound)
}

/// The service behind the form and `PUT /projects/{id}/callbacks`.
async fn set_callback(
    state: &AppState,
    principal: &Principal,
    id: i64,
    endpoint: &Endpoint,
) -> Result<Endpoint, AppError> {
    project(state, principal, id).await?;
    callbacks::set_endpoint(state, principal, id, endpoint).await
}

#[derive(Debug, Deserialize)]
struct CallbackForm {
    event: String,
    url: String,
    #[serde(default)]
    enabled: Option<String>,
}

#[handler]
async fn projects_page(page: PageContext) -> Result<Html<String>, AppError> {
    let principal = page.principal()?;
    let mut projects = Vec::new();
    for p in directory::visible_projects(&page.state.db, principal).await? {
        let endpoints = callbacks::endpoints(&page.state, p.id).await?;
        let limits: Vec<_> = payouts::limits(&page.state, principal, p.id)
            .await?
            .into_iter()
            .map(|limit| {
                let shown = |amount: Option<i64>| {
                    amount.map_or("no limit".to_owned(), |a| dashboard_core::money::format_grouped(a, &limit.currency))
                };
                json!({ "currency": limit.currency, "per_payout": shown(limit.per_payout), "per_day": shown(limit.per_day) })
            })
            .collect();
        let moto = moto::enabled(&page.state, p.id).await?;
        projects.push(json!({ "project": p, "endpoints": endpoints, "limits": limits, "moto": moto }));
    }
    let data = json!({
        "projects": projects,
        "events": callbacks::events(),
        "currencies": dashboard_core::money::CURRENCIES,
        "can_manage": principal.has_permission(MANAGE),
        "csrf_token": page.csrf_token,
    });
    page.render("Projects", "projects/list", &data)
}

#[handler]
async fn callback_submit(
    page: PageContext,
    Path(id): Path<i64>,
    Form(form): Form<CallbackForm>,
) -> Result<Response, AppError> {
    let endpoint = Endpoint { event: form.event, url: form.url, enabled: form.enabled.is_some() };
    set_callback(&page.state, page.principal()?, id, &endpoint).await?;
    Ok(see_other("/projects"))
}

#[derive(Debug, Deserialize)]
struct MotoForm {
    /// `on` or `off`.
    enabled: String,
}

#[handler]
async fn moto_submit(page: PageContext, Path(id): Path<i64>, Form(form): Form<MotoForm>) -> Result<Response, AppError> {
    moto::set_enabled(&page.state, page.principal()?, id, form.enabled == "on").await?;
    Ok(see_other("/projects"))
}

#[derive(Debug, Deserialize)]
struct PayoutLimitForm {
    currency: String,
    #[serde(default)]
    per_payout: String,
    #[serde(default)]
    per_day: String,
}

/// An amount typed in the form: empty for none.
fn typed_amount(text: &str, currency: &str, what: &str) -> Result<Option<i64>, AppError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    dashboard_core::money::parse_amount(text, currency).map(Some).ok_or_else(|| {
        AppError::BadRequest(format!("The {what} must be an amount in {currency}, such as 1000.00, or left empty."))
    })
}

#[handler]
async fn payout_limits_submit(
    page: PageContext,
    Path(id): Path<i64>,
    Form(form): Form<PayoutLimitForm>,
) -> Result<Response, AppError> {
    let currency = form.currency.trim().to_ascii_uppercase();
    let limit = PayoutLimit {
        per_payout: typed_amount(&form.per_payout, &currency, "limit per payout")?,
        per_day: typed_amount(&form.per_day, &currency, "daily limit")?,
        currency,
    };
    payouts::set_limit(&page.state, page.principal()?, id, limit).await?;
    Ok(see_other("/projects"))
}

/// A project as the API shows it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProjectItem {
    pub id: i64,
    pub name: String,
    pub created_at: dashboard_core::time::Timestamp,
}

/// A project's callback settings.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Callbacks {
    /// Every event a project can subscribe to.
    pub events: Vec<String>,
    pub endpoints: Vec<Endpoint>,
}

/// Whether a project takes card payments by hand (MO/TO, without 3-D Secure).
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MotoSetting {
    pub enabled: bool,
}

/// The key that signs the project's callbacks.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SecretKey {
    /// Hex; verify `Dashboard-Signature` as HMAC-SHA256 of `"<t>.<body>"` with it.
    pub secret_key: String,
}

#[derive(Default)]
pub struct ProjectsApi;

#[OpenApi(tag = "ProjectsTag::Projects")]
impl ProjectsApi {
    /// The caller's projects
    #[oai(path = "/projects", method = "get", operation_id = "projects_list")]
    async fn list(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<Vec<ProjectItem>>> {
        let projects = directory::visible_projects(&state.db, principal).await?;
        Ok(Json(
            projects
                .into_iter()
                .map(|p| ProjectItem {
                    id: p.id,
                    name: p.name,
                    created_at: dashboard_core::time::Timestamp::from(&p.created_at),
                })
                .collect(),
        ))
    }

    /// A project's callback settings
    #[oai(path = "/projects/:id/callbacks", method = "get", operation_id = "projects_callbacks_get")]
    async fn callbacks(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
    ) -> ApiResult<Json<Callbacks>> {
        project(&state, principal, id.0).await?;
        Ok(Json(Callbacks { events: callbacks::events(), endpoints: callbacks::endpoints(&state, id.0).await? }))
    }

    /// Set where one event goes, and whether it is on
    #[oai(path = "/projects/:id/callbacks", method = "put", operation_id = "projects_callbacks_set")]
    async fn set(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
        body: Json<Endpoint>,
    ) -> ApiResult<Json<Endpoint>> {
        Ok(Json(set_callback(&state, principal, id.0, &body).await?))
    }

    /// A project's payout limits, per currency
    ///
    /// Amounts in minor units; a currency not listed has no limits (payouts are still
    /// bound by the project's available balance).
    #[oai(path = "/projects/:id/payout-limits", method = "get", operation_id = "projects_payout_limits_get")]
    async fn payout_limits(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
    ) -> ApiResult<Json<Vec<PayoutLimit>>> {
        Ok(Json(payouts::limits(&state, principal, id.0).await?))
    }

    /// Set a project's payout limits in one currency
    ///
    /// Leave both amounts out to remove the currency's limits.
    #[oai(path = "/projects/:id/payout-limits", method = "put", operation_id = "projects_payout_limits_set")]
    async fn set_payout_limit(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
        body: Json<PayoutLimit>,
    ) -> ApiResult<Json<PayoutLimit>> {
        Ok(Json(payouts::set_limit(&state, principal, id.0, body.0).await?))
    }

    /// Whether the project takes card payments by hand (MO/TO)
    #[oai(path = "/projects/:id/moto", method = "get", operation_id = "projects_moto_get")]
    async fn moto(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
    ) -> ApiResult<Json<MotoSetting>> {
        project(&state, principal, id.0).await?;
        Ok(Json(MotoSetting { enabled: moto::enabled(&state, id.0).await? }))
    }

    /// Turn card payments by hand (MO/TO) on or off for the project
    #[oai(path = "/projects/:id/moto", method = "put", operation_id = "projects_moto_set")]
    async fn set_moto(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
        body: Json<MotoSetting>,
    ) -> ApiResult<Json<MotoSetting>> {
        moto::set_enabled(&state, principal, id.0, body.enabled).await?;
        Ok(Json(MotoSetting { enabled: body.enabled }))
    }

    /// The project's secret key for verifying callbacks
    #[oai(path = "/projects/:id/secret-key", method = "get", operation_id = "projects_secret_key")]
    async fn secret_key(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
    ) -> ApiResult<Json<SecretKey>> {
        project(&state, principal, id.0).await?;
        let secret = callbacks::project_secret(&state, id.0).await?;
        // Who saw a key that signs the project's callbacks is evidence when one leaks.
        let event = dashboard_core::audit::AuditEvent::success(principal, "project.secret_key_read")
            .target(format!("project {}", id.0));
        dashboard_core::audit::record(&state.db, event).await?;
        Ok(Json(SecretKey { secret_key: secret.iter().map(|b| format!("{b:02x}")).collect() }))
    }
}

#[derive(poem_openapi::Tags)]
enum ProjectsTag {
    /// The company's projects and their callbacks.
    Projects,
}
