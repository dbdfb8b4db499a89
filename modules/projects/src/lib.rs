//! Projects: the company's projects (created by the platform operator) and their
//! settings: callbacks (which payment events go to which URL, signed with the project's
//! secret key, each attempt logged, a test event on demand), the secret key (shown after
//! the password is typed again, every read audited; rotated with an overlap) and payout
//! limits.

use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::directory::{self, Project};
use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section, Template};
use dashboard_core::session::{self, ClientInfo};
use dashboard_core::web::see_other;
use dashboard_core::{ApiResult, AppError, AppState, PageContext, operation, page, register_section};
use dashboard_payments_domain::callbacks::{self, Attempt, Endpoint};
use dashboard_payments_domain::checkout::{self, AcceptedMethod, Checkout, Redirects};
use dashboard_payments_domain::model::Method;
use dashboard_payments_domain::moto;
use dashboard_payments_domain::payouts::{self, PayoutLimit};
use poem::web::{Data, Form, Html, Path, Query};
use poem::{Request, Response, handler};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::json;

const VIEW: &str = "projects.view";
const MANAGE: &str = "projects.manage";
/// Attempts of each callback the page lists.
const LOG_ON_PAGE: i64 = 10;

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
        page!(POST "/projects/:id/callbacks/test" => callback_test_submit, Access::Permission(MANAGE)),
        page!(POST "/projects/:id/callbacks/removal" => callback_remove_submit, Access::Permission(MANAGE)),
        page!(POST "/projects/:id/secret-key" => secret_key_submit, Access::Permission(MANAGE)),
        page!(POST "/projects/:id/secret-key/rotation" => rotation_submit, Access::Permission(MANAGE)),
        page!(POST "/projects/:id/payout-limits" => payout_limits_submit, Access::Permission(MANAGE)),
        page!(POST "/projects/:id/moto" => moto_submit, Access::Permission(MANAGE)),
        page!(POST "/projects/:id/redirects" => redirects_submit, Access::Permission(MANAGE)),
        page!(POST "/projects/:id/methods" => methods_submit, Access::Permission(MANAGE)),
    ],
    api: Some(Api::of::<ProjectsApi>(&[
        operation!(GET "/projects", Access::Permission(VIEW)),
        operation!(GET "/projects/{id}/callbacks", Access::Permission(VIEW)),
        operation!(PUT "/projects/{id}/callbacks", Access::Permission(MANAGE)),
        operation!(POST "/projects/{id}/callbacks/test", Access::Permission(MANAGE)),
        operation!(DELETE "/projects/{id}/callbacks", Access::Permission(MANAGE)),
        operation!(GET "/projects/{id}/callbacks/attempts", Access::Permission(VIEW)),
        operation!(GET "/projects/{id}/secret-key", Access::Permission(MANAGE)),
        operation!(POST "/projects/{id}/secret-key/rotation", Access::Permission(MANAGE)),
        operation!(GET "/projects/{id}/payout-limits", Access::Permission(VIEW)),
        operation!(PUT "/projects/{id}/payout-limits", Access::Permission(MANAGE)),
        operation!(GET "/projects/{id}/moto", Access::Permission(VIEW)),
        operation!(PUT "/projects/{id}/moto", Access::Permission(MANAGE)),
        operation!(GET "/projects/{id}/checkout", Access::Permission(VIEW)),
        operation!(PUT "/projects/{id}/redirects", Access::Permission(MANAGE)),
        operation!(PUT "/projects/{id}/methods", Access::Permission(MANAGE)),
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

/// The service behind the page's Remove and `DELETE /projects/{id}/callbacks?event=…`.
async fn remove_callback(state: &AppState, principal: &Principal, id: i64, event: &str) -> Result<(), AppError> {
    project(state, principal, id).await?;
    callbacks::remove_endpoint(state, principal, id, event).await
}

/// The service behind the page and `POST /projects/{id}/callbacks/test`.
async fn test_callback(state: &AppState, principal: &Principal, id: i64, event: &str) -> Result<Attempt, AppError> {
    project(state, principal, id).await?;
    callbacks::send_test_event(state, principal, id, event).await
}

/// The service behind the page and `GET /projects/{id}/secret-key`: the project's keys,
/// the read audited (who saw a key that signs the project's callbacks is evidence when one
/// leaks).
async fn read_keys(state: &AppState, principal: &Principal, id: i64) -> Result<SecretKey, AppError> {
    project(state, principal, id).await?;
    let keys = callbacks::signing_keys(state, id).await?;
    let event = AuditEvent::success(principal, "project.secret_key_read").target(format!("project {id}"));
    dashboard_core::audit::record(&state.db, event).await?;
    Ok(SecretKey::from(keys))
}

/// The service behind the page and `POST /projects/{id}/secret-key/rotation`.
async fn rotate_key(
    state: &AppState,
    principal: &Principal,
    id: i64,
    overlap_hours: i64,
) -> Result<SecretKey, AppError> {
    project(state, principal, id).await?;
    Ok(SecretKey::from(callbacks::rotate_key(state, principal, id, overlap_hours).await?))
}

#[derive(Debug, Deserialize)]
struct CallbackForm {
    event: String,
    url: String,
    #[serde(default)]
    enabled: Option<String>,
}

/// What the projects page shows besides the projects: a notice, and a key just revealed.
#[derive(Default)]
struct Shown {
    notice: Option<&'static str>,
    revealed: Option<(i64, SecretKey)>,
}

#[derive(Debug, Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

#[handler]
async fn projects_page(page: PageContext, Query(query): Query<NoticeQuery>) -> Result<Html<String>, AppError> {
    let notice = match query.notice.as_deref() {
        Some("tested") => Some("Test event sent: its result is the newest line of the callback's log."),
        Some("saved") => Some("Callback saved. Deliveries still waiting go to its address from their next attempt."),
        Some("removed") => Some("Callback removed. Deliveries still waiting were given up; its log stays."),
        Some("checkout") => Some("Checkout settings saved: every way of paying follows them from now on."),
        _ => None,
    };
    render_projects(&page, Shown { notice, ..Shown::default() }).await
}

async fn render_projects(page: &PageContext, shown: Shown) -> Result<Html<String>, AppError> {
    let principal = page.principal()?;
    let mut projects = Vec::new();
    for p in directory::visible_projects(&page.state.db, principal).await? {
        let mut endpoints = Vec::new();
        for endpoint in callbacks::endpoints(&page.state, p.id).await? {
            let log = callbacks::endpoint_log(&page.state, p.id, &endpoint.event, LOG_ON_PAGE).await?;
            endpoints.push(json!({ "endpoint": endpoint, "log": log }));
        }
        let revealed = shown.revealed.as_ref().filter(|(id, _)| *id == p.id).map(|(_, key)| key);
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
        let checkout = checkout::settings(&page.state, principal, p.id).await?;
        let methods = method_rows(&checkout.methods);
        projects.push(json!({
            "project": p, "endpoints": endpoints, "limits": limits, "moto": moto, "revealed": revealed,
            "checkout": checkout, "methods": methods,
        }));
    }
    let data = json!({
        "projects": projects,
        "events": callbacks::events(),
        "currencies": dashboard_core::money::CURRENCIES,
        "can_manage": principal.has_permission(MANAGE),
        "csrf_token": page.csrf_token,
        "notice": shown.notice,
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
    Ok(see_other(&format!("/projects?notice=saved#project-{id}")))
}

/// The callback a button acts on.
#[derive(Debug, Deserialize)]
struct EventForm {
    event: String,
}

#[handler]
async fn callback_test_submit(
    page: PageContext,
    Path(id): Path<i64>,
    Form(form): Form<EventForm>,
) -> Result<Response, AppError> {
    test_callback(&page.state, page.principal()?, id, &form.event).await?;
    Ok(see_other(&format!("/projects?notice=tested#project-{id}")))
}

#[handler]
async fn callback_remove_submit(
    page: PageContext,
    Path(id): Path<i64>,
    Form(form): Form<EventForm>,
) -> Result<Response, AppError> {
    remove_callback(&page.state, page.principal()?, id, &form.event).await?;
    Ok(see_other(&format!("/projects?notice=removed#project-{id}")))
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    #[serde(default)]
    password: String,
    /// For a rotation: how long the old key goes on signing.
    #[serde(default)]
    overlap_hours: Option<i64>,
}

/// The key is shown on the answer to a password typed again, never kept in a page that
/// can be reloaded or found in the history.
#[handler]
async fn secret_key_submit(
    page: PageContext,
    req: &Request,
    Path(id): Path<i64>,
    Form(form): Form<PasswordForm>,
) -> Result<Html<String>, AppError> {
    let principal = page.principal()?;
    session::confirm_password(&page.state, principal, &form.password, &ClientInfo::from_request(req)).await?;
    let key = read_keys(&page.state, principal, id).await?;
    render_projects(&page, Shown { revealed: Some((id, key)), ..Shown::default() }).await
}

#[handler]
async fn rotation_submit(
    page: PageContext,
    req: &Request,
    Path(id): Path<i64>,
    Form(form): Form<PasswordForm>,
) -> Result<Html<String>, AppError> {
    let principal = page.principal()?;
    session::confirm_password(&page.state, principal, &form.password, &ClientInfo::from_request(req)).await?;
    let overlap = form.overlap_hours.unwrap_or(callbacks::DEFAULT_OVERLAP_HOURS);
    let key = rotate_key(&page.state, principal, id, overlap).await?;
    let notice = Some("New key made. Until the old one stops signing, callbacks carry a signature for each.");
    render_projects(&page, Shown { notice, revealed: Some((id, key)) }).await
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

/// The accepted methods as the form lists them: each one set, then two empty rows to add
/// more.
fn method_rows(methods: &[AcceptedMethod]) -> Vec<serde_json::Value> {
    let shown = |amount: Option<i64>, currency: &str| {
        amount.map_or(String::new(), |a| dashboard_core::money::format_decimal(a, currency))
    };
    let set = methods.iter().map(|m| {
        json!({
            "method": m.method.as_str(), "label": m.method.label(), "currency": m.currency,
            "min": shown(m.min_amount, &m.currency), "max": shown(m.max_amount, &m.currency), "set": true,
        })
    });
    let empty = std::iter::repeat_n(json!({ "method": "", "currency": "", "min": "", "max": "" }), 2);
    set.chain(empty)
        .enumerate()
        .map(|(row, mut value)| {
            let choices: Vec<_> = Method::ALL
                .iter()
                .map(|m| json!({ "value": m.as_str(), "label": m.label(), "selected": value["method"] == m.as_str() }))
                .collect();
            value["row"] = json!(row);
            value["choices"] = json!(choices);
            value
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct RedirectsForm {
    #[serde(default)]
    success_url: String,
    #[serde(default)]
    failure_url: String,
    #[serde(default)]
    return_url: String,
}

#[handler]
async fn redirects_submit(
    page: PageContext,
    Path(id): Path<i64>,
    Form(form): Form<RedirectsForm>,
) -> Result<Response, AppError> {
    let redirects = Redirects {
        success_url: Some(form.success_url),
        failure_url: Some(form.failure_url),
        return_url: Some(form.return_url),
    };
    checkout::set_redirects(&page.state, page.principal()?, id, redirects).await?;
    Ok(see_other(&format!("/projects?notice=checkout#project-{id}")))
}

/// The methods form: one row per method and currency; a row without a currency is
/// left out.
#[derive(Debug, Deserialize)]
struct MethodsForm {
    #[serde(default)]
    method: Vec<String>,
    #[serde(default)]
    currency: Vec<String>,
    #[serde(default)]
    min: Vec<String>,
    #[serde(default)]
    max: Vec<String>,
}

#[handler]
async fn methods_submit(
    page: PageContext,
    Path(id): Path<i64>,
    dashboard_core::web::HtmlForm(form): dashboard_core::web::HtmlForm<MethodsForm>,
) -> Result<Response, AppError> {
    let mut methods = Vec::new();
    for (row, currency) in form.currency.iter().enumerate() {
        let currency = currency.trim().to_ascii_uppercase();
        if currency.is_empty() {
            continue;
        }
        let cell = |cells: &[String]| cells.get(row).cloned().unwrap_or_default();
        let method = Method::parse(&cell(&form.method))
            .ok_or_else(|| AppError::BadRequest("Choose a method for each currency.".to_owned()))?;
        methods.push(AcceptedMethod {
            method,
            min_amount: typed_amount(&cell(&form.min), &currency, "smallest amount")?,
            max_amount: typed_amount(&cell(&form.max), &currency, "largest amount")?,
            currency,
        });
    }
    checkout::set_methods(&page.state, page.principal()?, id, methods).await?;
    Ok(see_other(&format!("/projects?notice=checkout#project-{id}")))
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

/// The key that signs the project's callbacks, and after a rotation the one it replaced
/// while that one still signs.
///
/// Verify a callback: take `t` and every `v1` from its `Dashboard-Signature` header; compute
/// HMAC-SHA256 of `"<t>.<raw body>"` keyed with the secret key exactly as given here (its 64
/// characters, as text); accept when it equals one of the `v1` values (in constant time)
/// and `t` is recent.
#[derive(Debug, Object, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct SecretKey {
    pub secret_key: String,
    /// The key a rotation replaced; callbacks carry its signature too until `previous_valid_until`.
    pub previous_secret_key: Option<String>,
    pub previous_valid_until: Option<dashboard_core::time::Timestamp>,
}

impl From<callbacks::SigningKeys> for SecretKey {
    fn from(keys: callbacks::SigningKeys) -> Self {
        let (previous_secret_key, until) = keys.previous.unzip();
        SecretKey {
            secret_key: keys.current,
            previous_secret_key,
            previous_valid_until: until.as_ref().map(dashboard_core::time::Timestamp::from),
        }
    }
}

/// A key rotation: how long the replaced key goes on signing.
#[derive(Debug, Object)]
pub struct Rotation {
    /// Hours, 0 to 168 (default 24); 0 stops the old key at once.
    #[oai(default = "default_overlap_hours", validator(minimum(value = "0"), maximum(value = "168")))]
    pub overlap_hours: i64,
}

fn default_overlap_hours() -> i64 {
    callbacks::DEFAULT_OVERLAP_HOURS
}

/// Which event a test is sent for.
#[derive(Debug, Object)]
pub struct TestEvent {
    /// One of the project's callback events, e.g. `payment.completed`.
    pub event: String,
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

    /// The project's checkout: redirect URLs of the hosted Payment Page, and the methods
    /// and currencies it accepts with their limits
    #[oai(path = "/projects/:id/checkout", method = "get", operation_id = "projects_checkout_get")]
    async fn checkout(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
    ) -> ApiResult<Json<Checkout>> {
        Ok(Json(checkout::settings(&state, principal, id.0).await?))
    }

    /// Set where the hosted Payment Page sends customers after paying
    ///
    /// Each an `https://` URL; leave one out (or empty) for none. The shop receives the
    /// payment's id, status, amount and a `signature` made with the project's secret key.
    #[oai(path = "/projects/:id/redirects", method = "put", operation_id = "projects_redirects_set")]
    async fn set_redirects(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
        body: Json<Redirects>,
    ) -> ApiResult<Json<Redirects>> {
        Ok(Json(checkout::set_redirects(&state, principal, id.0, body.0).await?))
    }

    /// Set the methods and currencies the project accepts, with their limits
    ///
    /// Replaces the list. An empty list accepts every method and currency without limits.
    /// Every way of paying (this API, the virtual terminal, the hosted page) keeps to it.
    #[oai(path = "/projects/:id/methods", method = "put", operation_id = "projects_methods_set")]
    async fn set_methods(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
        body: Json<Vec<AcceptedMethod>>,
    ) -> ApiResult<Json<Vec<AcceptedMethod>>> {
        Ok(Json(checkout::set_methods(&state, principal, id.0, body.0).await?))
    }

    /// The project's secret key for verifying callbacks (every read is audited)
    #[oai(path = "/projects/:id/secret-key", method = "get", operation_id = "projects_secret_key")]
    async fn secret_key(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
    ) -> ApiResult<Json<SecretKey>> {
        Ok(Json(read_keys(&state, principal, id.0).await?))
    }

    /// Replace the project's secret key
    ///
    /// The old key goes on signing for `overlap_hours`: each callback then carries one
    /// `v1` signature per key, so receivers can switch without losing any.
    #[oai(path = "/projects/:id/secret-key/rotation", method = "post", operation_id = "projects_secret_key_rotate")]
    async fn rotate_secret_key(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
        body: Json<Rotation>,
    ) -> ApiResult<Json<SecretKey>> {
        Ok(Json(rotate_key(&state, principal, id.0, body.overlap_hours).await?))
    }

    /// Send a test event to one of the project's callbacks now
    ///
    /// The body says `"test": true` and describes no real payment; the answer is the
    /// attempt (the receiver's status, latency and the start of its answer), also logged.
    #[oai(path = "/projects/:id/callbacks/test", method = "post", operation_id = "projects_callbacks_test")]
    async fn test_event(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
        body: Json<TestEvent>,
    ) -> ApiResult<Json<Attempt>> {
        Ok(Json(test_callback(&state, principal, id.0, &body.event).await?))
    }

    /// Remove one of the project's callbacks
    ///
    /// Nothing more is sent for the event; deliveries still waiting are given up (their
    /// log stays). Setting the event again with `PUT` brings it back.
    #[oai(path = "/projects/:id/callbacks", method = "delete", operation_id = "projects_callbacks_remove")]
    async fn remove(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
        /// The callback's event, e.g. `payment.completed`.
        #[oai(validator(min_length = 1, max_length = 100))]
        event: poem_openapi::param::Query<String>,
    ) -> ApiResult<Removed> {
        remove_callback(&state, principal, id.0, &event.0).await?;
        Ok(Removed::Done)
    }

    /// The latest attempts of one of the project's callbacks, newest first
    #[oai(path = "/projects/:id/callbacks/attempts", method = "get", operation_id = "projects_callbacks_attempts")]
    async fn attempts(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: poem_openapi::param::Path<i64>,
        /// The callback's event, e.g. `payment.completed`.
        #[oai(validator(min_length = 1, max_length = 100))]
        event: poem_openapi::param::Query<String>,
        /// At most this many (1 to 500, default 50).
        #[oai(default = "default_attempts", validator(minimum(value = "1"), maximum(value = "500")))]
        limit: poem_openapi::param::Query<i64>,
    ) -> ApiResult<Json<Vec<Attempt>>> {
        project(&state, principal, id.0).await?;
        Ok(Json(callbacks::endpoint_log(&state, id.0, &event.0, limit.0).await?))
    }
}

fn default_attempts() -> i64 {
    50
}

#[derive(poem_openapi::ApiResponse)]
enum Removed {
    /// Removed.
    #[oai(status = 204)]
    Done,
}

#[derive(poem_openapi::Tags)]
enum ProjectsTag {
    /// The company's projects and their callbacks.
    Projects,
}
