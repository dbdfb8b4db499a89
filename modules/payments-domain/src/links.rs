//! Payment links: a merchant creates a link for an amount (or for one the customer enters
//! within limits), optionally reusable and with an expiry; a customer pays through it on
//! the hosted Payment Page. A link takes at most its `max_payments` payments: the write
//! that starts each payment holds the link ([`use_link!`](crate::use_link)), so two
//! customers paying a single-use link at once cannot both pay. A declined payment does not
//! use it up.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::card::Card;
use crate::idempotency::{Claim, Replay};
use crate::model::{Flow, LinkStatus, Method, Status};
use crate::schema::{payment_links, payments};
use crate::service::{Customer, Money, NewPurchase, PaymentView};
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::db::DbPool;
use dashboard_core::db::prelude::*;
use dashboard_core::time::{Timestamp, now};
use dashboard_core::{AppError, AppState};

/// The statuses of a payment that do not hold its link: no other payment waits for them.
pub const NOT_USING: [&str; 2] = ["declined", "failed"];

/// The statuses of a payment that has not paid its link (yet, or at all): the link is not
/// used up by them, though one still under way holds it.
pub const NOT_PAID: [&str; 4] = ["declined", "failed", "processing", "awaiting_challenge"];

/// The most payments a reusable link may take.
pub const MOST_PAYMENTS: i32 = 1_000_000;

/// A link to create, as the API and the form take it.
#[derive(Debug, Clone, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LinkRequest {
    pub project_id: i64,
    /// ISO 4217, e.g. `EUR`.
    #[oai(validator(
        pattern = "^(AED|AUD|BGN|BHD|BRL|CAD|CHF|CLP|CNY|CZK|DKK|EUR|GBP|HKD|HUF|IDR|ILS|INR|ISK|JOD|JPY|KRW|KWD|MXN|MYR|NOK|NZD|OMR|PHP|PLN|RON|SAR|SEK|SGD|THB|TND|TRY|UAH|USD|VND|ZAR)$"
    ))]
    pub currency: String,
    /// A fixed amount in minor units; without it the customer enters the amount, between
    /// `min_amount` and `max_amount`.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000")))]
    pub amount: Option<i64>,
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000")))]
    pub min_amount: Option<i64>,
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000")))]
    pub max_amount: Option<i64>,
    /// What the customer pays for, shown on the page.
    #[oai(validator(min_length = 1, max_length = 500))]
    pub description: String,
    #[oai(validator(max_length = 100))]
    pub merchant_order_id: Option<String>,
    /// After this instant the link takes no payment.
    pub expires_at: Option<DateTime<Utc>>,
    /// How many successful payments it takes: 1 for a single-use link (the default), none
    /// for a link that takes any number.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
    pub max_payments: Option<i32>,
    /// Whether `max_payments` is left unlimited (a reusable link); `max_payments` then is
    /// ignored.
    pub reusable: Option<bool>,
    /// The Payment Page style to show; none: the project's published style.
    pub style_id: Option<i64>,
}

/// A payment link.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LinkView {
    /// The link's id, e.g. `lnk_…`.
    pub id: String,
    /// Where customers pay.
    pub url: String,
    pub project_id: i64,
    #[oai(validator(
        pattern = "^(AED|AUD|BGN|BHD|BRL|CAD|CHF|CLP|CNY|CZK|DKK|EUR|GBP|HKD|HUF|IDR|ILS|INR|ISK|JOD|JPY|KRW|KWD|MXN|MYR|NOK|NZD|OMR|PHP|PLN|RON|SAR|SEK|SGD|THB|TND|TRY|UAH|USD|VND|ZAR)$"
    ))]
    pub currency: String,
    pub amount: Option<i64>,
    pub min_amount: Option<i64>,
    pub max_amount: Option<i64>,
    pub description: String,
    pub merchant_order_id: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// None: any number of payments.
    pub max_payments: Option<i32>,
    pub style_id: Option<i64>,
    pub status: LinkStatus,
    /// Payments that went through (or are on their way), which use the link up.
    pub payments_made: i64,
    pub created_by: Option<i64>,
    pub created_at: Timestamp,
    pub deactivated_at: Option<Timestamp>,
}

/// One payment made through a link.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LinkPayment {
    pub id: String,
    pub status: Status,
    pub amount: Money,
    pub customer_email: Option<String>,
    pub created_at: Timestamp,
}

/// The list's filters, as typed.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct LinkFilter {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    /// A link id, its description or its merchant order id (a part of it).
    #[serde(default)]
    pub q: Option<String>,
    /// The opaque cursor of the next page.
    #[serde(default)]
    pub after: Option<String>,
}

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = payment_links, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct LinkRow {
    id: i64,
    public_id: String,
    company_id: i64,
    project_id: i64,
    currency: String,
    amount: Option<i64>,
    min_amount: Option<i64>,
    max_amount: Option<i64>,
    description: String,
    merchant_order_id: Option<String>,
    expires_at: Option<NaiveDateTime>,
    max_payments: Option<i32>,
    style_id: Option<i64>,
    created_by: Option<i64>,
    created_at: NaiveDateTime,
    deactivated_at: Option<NaiveDateTime>,
}

/// Where a link stands at `at`, having taken `made` payments.
fn status_of(
    deactivated: Option<NaiveDateTime>,
    expires: Option<NaiveDateTime>,
    max_payments: Option<i32>,
    made: i64,
    at: NaiveDateTime,
) -> LinkStatus {
    if deactivated.is_some() {
        LinkStatus::Deactivated
    } else if expires.is_some_and(|expires| expires <= at) {
        LinkStatus::Expired
    } else if max_payments.is_some_and(|most| made >= i64::from(most)) {
        LinkStatus::Exhausted
    } else {
        LinkStatus::Active
    }
}

/// Why a link takes no payment now, in the customer's words; none when it does.
pub fn refusal(status: LinkStatus) -> Option<&'static str> {
    match status {
        LinkStatus::Active => None,
        LinkStatus::Exhausted => Some("This link has already been paid."),
        LinkStatus::Expired => Some("This link has expired."),
        LinkStatus::Deactivated => Some("This link is no longer active."),
    }
}

/// Whether the link the write holds takes one more payment: the answer of
/// [`use_link!`](crate::use_link).
#[doc(hidden)]
pub fn may_pay(
    found: Option<(Option<i32>, Option<NaiveDateTime>, Option<NaiveDateTime>)>,
    (paid, taken): (i64, i64),
    at: NaiveDateTime,
) -> Result<(), AppError> {
    let Some((max_payments, expires, deactivated)) = found else { return Err(AppError::NotFound) };
    if let Some(reason) = refusal(status_of(deactivated, expires, max_payments, paid, at)) {
        return Err(AppError::Conflict(reason.to_owned()));
    }
    if max_payments.is_some_and(|most| taken >= i64::from(most)) {
        return Err(AppError::Conflict(
            "A payment through this link is under way. If it does not go through, the link takes \
             another in a few minutes."
                .to_owned(),
        ));
    }
    Ok(())
}

/// Holds payment link `$link_id` for the rest of the write with `$conn` and checks that it
/// takes one more payment at `$now`: parallel payments of a link wait here for each other,
/// so each counts those before it. Evaluates to `Result<(), AppError>`.
#[macro_export]
macro_rules! use_link {
    ($conn:ident, $link_id:expr, $now:expr) => {{
        use $crate::schema::{payment_links as __links, payments as __payments};
        let (__link, __now): (i64, chrono::NaiveDateTime) = ($link_id, $now);
        let __found: Option<(Option<i32>, Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>)> =
            diesel::update(__links::table.find(__link))
                .set(__links::last_paid_at.eq(Some(__now)))
                .returning((__links::max_payments, __links::expires_at, __links::deactivated_at))
                .get_result($conn)
                .await
                .optional()?;
        let __statuses: Vec<String> = __payments::table
            .filter(__payments::link_id.eq(__link))
            .filter(__payments::status.ne_all($crate::links::NOT_USING))
            .select(__payments::status)
            .load($conn)
            .await?;
        let __paid = __statuses.iter().filter(|status| !$crate::links::NOT_PAID.contains(&status.as_str())).count();
        let __counts = (i64::try_from(__paid).unwrap_or(i64::MAX), i64::try_from(__statuses.len()).unwrap_or(i64::MAX));
        $crate::links::may_pay(__found, __counts, __now)
    }};
}

fn link_url(state: &AppState, public_id: &str) -> String {
    format!("{}/pay/{public_id}", state.settings.public_url)
}

fn view_of(state: &AppState, row: LinkRow, made: i64, at: NaiveDateTime) -> LinkView {
    LinkView {
        url: link_url(state, &row.public_id),
        status: status_of(row.deactivated_at, row.expires_at, row.max_payments, made, at),
        id: row.public_id,
        project_id: row.project_id,
        currency: row.currency,
        amount: row.amount,
        min_amount: row.min_amount,
        max_amount: row.max_amount,
        description: row.description,
        merchant_order_id: row.merchant_order_id,
        expires_at: row.expires_at.as_ref().map(Timestamp::from),
        max_payments: row.max_payments,
        style_id: row.style_id,
        payments_made: made,
        created_by: row.created_by,
        created_at: Timestamp::from(&row.created_at),
        deactivated_at: row.deactivated_at.as_ref().map(Timestamp::from),
    }
}

fn text(value: Option<String>) -> Option<String> {
    value.map(|value| value.trim().to_owned()).filter(|value| !value.is_empty())
}

/// The link a request asks for, checked: a fixed amount or limits for the customer's,
/// an expiry in the future, a style of the same project.
struct Checked {
    currency: String,
    amount: Option<i64>,
    min_amount: Option<i64>,
    max_amount: Option<i64>,
    description: String,
    merchant_order_id: Option<String>,
    expires_at: Option<NaiveDateTime>,
    max_payments: Option<i32>,
}

fn check(request: &LinkRequest, at: NaiveDateTime) -> Result<Checked, AppError> {
    let bad = |message: &str| AppError::BadRequest(message.to_owned());
    let currency = crate::model::currency(&request.currency)?;
    for amount in [request.amount, request.min_amount, request.max_amount].into_iter().flatten() {
        crate::service::amount_check(amount)?;
    }
    if request.amount.is_some() && (request.min_amount.is_some() || request.max_amount.is_some()) {
        return Err(bad("Give either a fixed amount or the limits of the amount the customer enters, not both."));
    }
    if let (Some(min), Some(max)) = (request.min_amount, request.max_amount)
        && min > max
    {
        return Err(bad("The smallest amount is above the largest."));
    }
    let description = request.description.trim().to_owned();
    if description.is_empty() || description.chars().count() > 500 {
        return Err(bad("Describe what the customer pays for, in at most 500 characters."));
    }
    if crate::card::holds_card_number(&description) {
        return Err(bad("The description holds what looks like a card number."));
    }
    let expires_at = request.expires_at.map(|at| at.naive_utc());
    if expires_at.is_some_and(|expires| expires <= at) {
        return Err(bad("The expiry must be in the future."));
    }
    let max_payments = if request.reusable.unwrap_or(false) { None } else { Some(request.max_payments.unwrap_or(1)) };
    if max_payments.is_some_and(|most| !(1..=MOST_PAYMENTS).contains(&most)) {
        return Err(bad("A link takes from 1 to 1,000,000 payments."));
    }
    let merchant_order_id = text(request.merchant_order_id.clone());
    if merchant_order_id.as_ref().is_some_and(|id| id.chars().count() > 100) {
        return Err(bad("The merchant order id is longer than 100 characters."));
    }
    Ok(Checked {
        currency,
        amount: request.amount,
        min_amount: request.min_amount,
        max_amount: request.max_amount,
        description,
        merchant_order_id,
        expires_at,
        max_payments,
    })
}

/// Creates a link in a project the principal may use; audited in the same write.
pub async fn create(state: &AppState, principal: &Principal, request: LinkRequest) -> Result<LinkView, AppError> {
    let at = now();
    let checked = check(&request, at)?;
    dashboard_core::directory::visible_project(&state.db, principal, request.project_id)
        .await
        .map_err(|_| AppError::BadRequest(format!("There is no project {} you may use.", request.project_id)))?;
    if let Some(style_id) = request.style_id {
        crate::page_styles::require_style_of(&state.db, request.project_id, style_id).await?;
    }
    // A link its project could never take is refused now, not on the customer's page.
    for amount in [checked.amount, checked.min_amount, checked.max_amount].into_iter().flatten() {
        crate::checkout::require_accepted(&state.db, request.project_id, Method::Card, &checked.currency, amount)
            .await?;
    }
    let event = AuditEvent::success(principal, "payment_link.create").details(serde_json::json!({
        "project_id": request.project_id, "currency": checked.currency, "amount": checked.amount,
        "description": checked.description, "max_payments": checked.max_payments,
    }));
    let by = (principal.company_id, principal.person(), Some(event));
    let row = insert(&state.db, by, request.project_id, &checked, request.style_id, at).await?;
    Ok(view_of(state, row, 0, at))
}

/// Stores a link of company `by.0`, made by person `by.1` (none for the demo's), with its
/// audit event (named for the link's new id) in the same write.
async fn insert(
    db: &DbPool,
    (company_id, user_id, event): (i64, Option<i64>, Option<AuditEvent>),
    project_id: i64,
    checked: &Checked,
    style_id: Option<i64>,
    at: NaiveDateTime,
) -> Result<LinkRow, AppError> {
    let public_id = format!("lnk_{}", &dashboard_core::auth::random_token()[..20]);
    let event = event.map(|event| event.target(format!("payment link {public_id}")));
    dashboard_core::db_transaction!(db, conn => {
        let row = diesel::insert_into(payment_links::table)
            .values((
                payment_links::public_id.eq(&public_id),
                payment_links::company_id.eq(company_id),
                payment_links::project_id.eq(project_id),
                payment_links::currency.eq(&checked.currency),
                payment_links::amount.eq(checked.amount),
                payment_links::min_amount.eq(checked.min_amount),
                payment_links::max_amount.eq(checked.max_amount),
                payment_links::description.eq(&checked.description),
                payment_links::merchant_order_id.eq(&checked.merchant_order_id),
                payment_links::expires_at.eq(checked.expires_at),
                payment_links::max_payments.eq(checked.max_payments),
                payment_links::style_id.eq(style_id),
                payment_links::created_by.eq(user_id),
                payment_links::created_at.eq(at),
            ))
            .returning(LinkRow::as_returning())
            .get_result(conn)
            .await?;
        if let Some(event) = event {
            dashboard_core::record_audit!(conn, event)?;
        }
        Ok::<_, AppError>(row)
    })
}

/// The demo company's links, unless it has some: a single-use one, a reusable one the
/// customer prices, and one that was deactivated.
pub async fn add_demo(db: &DbPool, company_id: i64, project_id: i64) -> Result<usize, AppError> {
    let existing: i64 = dashboard_core::db_run!(db, conn => {
        payment_links::table.filter(payment_links::company_id.eq(company_id)).count().get_result(conn).await
    })?;
    if existing > 0 {
        return Ok(0);
    }
    let at = now();
    let link = |description: &str, amount: Option<i64>, range: Option<(i64, i64)>, max_payments: Option<i32>| Checked {
        currency: "EUR".to_owned(),
        amount,
        min_amount: range.map(|(min, _)| min),
        max_amount: range.map(|(_, max)| max),
        description: description.to_owned(),
        merchant_order_id: None,
        expires_at: Some(at + chrono::TimeDelta::days(30)),
        max_payments,
    };
    let links = [
        link("Two concert tickets, 14 March", Some(4_990), None, Some(1)),
        link("Donation to the spring appeal", None, Some((500, 50_000)), None),
        link("Workshop seat (withdrawn)", Some(12_000), None, Some(20)),
    ];
    for (index, checked) in links.iter().enumerate() {
        let row = insert(db, (company_id, None, None), project_id, checked, None, at).await?;
        if index == 2 {
            dashboard_core::db_write!(db, conn => {
                diesel::update(payment_links::table.find(row.id))
                    .set(payment_links::deactivated_at.eq(Some(at)))
                    .execute(conn)
                    .await
            })?;
        }
    }
    Ok(links.len())
}

/// How many payments each of `links` has taken.
async fn payments_made(db: &DbPool, links: Vec<i64>) -> Result<std::collections::HashMap<i64, i64>, AppError> {
    if links.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let counts: Vec<(Option<i64>, i64)> = dashboard_core::db_run!(db, conn => {
        payments::table
            .filter(payments::link_id.eq_any(links))
            .filter(payments::status.ne_all(NOT_PAID))
            .group_by(payments::link_id)
            .select((payments::link_id, diesel::dsl::count_star()))
            .load(conn)
            .await
    })?;
    Ok(counts.into_iter().filter_map(|(link, count)| Some((link?, count))).collect())
}

/// The SQL that says whether a link has taken all its payments.
fn exhausted() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    let not_paid: Vec<String> = NOT_PAID.iter().map(|status| format!("'{status}'")).collect();
    diesel::dsl::sql(&format!(
        "(payment_links.max_payments IS NOT NULL AND payment_links.max_payments <= \
         (SELECT COUNT(*) FROM payments WHERE payments.link_id = payment_links.id \
          AND payments.status NOT IN ({})))",
        not_paid.join(", ")
    ))
}

/// One page of the links the principal may see that match `filter`, newest first, and
/// the cursor of the next page.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    filter: &LinkFilter,
    limit: i64,
) -> Result<(Vec<LinkView>, Option<String>), AppError> {
    let given = |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let status = given(&filter.status)
        .map(|v| LinkStatus::parse(&v).ok_or_else(|| AppError::BadRequest(format!("{v:?} is not a link status."))))
        .transpose()?;
    let project_id = given(&filter.project_id)
        .map(|v| v.parse::<i64>().map_err(|_| AppError::BadRequest("Choose a project from the list.".to_owned())))
        .transpose()?;
    let before = given(&filter.after).map(|token| dashboard_core::cursor::decode::<1>(&token)).transpose()?;
    if project_id.is_some_and(|project| !principal.projects.allows(project)) {
        return Ok((Vec::new(), None));
    }
    let visible: Option<Vec<i64>> = match &principal.projects {
        dashboard_core::auth::ProjectScope::All => None,
        dashboard_core::auth::ProjectScope::Only(ids) => Some(ids.iter().copied().collect()),
    };
    let (company_id, at, q) = (principal.company_id, now(), given(&filter.q));
    let rows: Vec<LinkRow> = dashboard_core::db_run!(state.db, conn => {
        let mut query = payment_links::table
            .filter(payment_links::company_id.eq(company_id))
            .select(LinkRow::as_select())
            .order(payment_links::id.desc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(ids) = &visible {
            query = query.filter(payment_links::project_id.eq_any(ids.clone()));
        }
        if let Some(project_id) = project_id {
            query = query.filter(payment_links::project_id.eq(project_id));
        }
        if let Some([before]) = before {
            query = query.filter(payment_links::id.lt(before));
        }
        if let Some(q) = &q {
            // Words of the description, in any case (LIKE's wildcards removed from what
            // was typed).
            let pattern = format!("%{}%", q.replace(['%', '_', '\\'], "").to_lowercase());
            query = query.filter(
                payment_links::public_id
                    .eq(q.clone())
                    .or(payment_links::merchant_order_id.eq(q.clone()))
                    .or(lower(payment_links::description).like(pattern)),
            );
        }
        let open = payment_links::deactivated_at.is_null()
            .and(payment_links::expires_at.is_null().or(payment_links::expires_at.gt(at)));
        query = match status {
            None => query,
            Some(LinkStatus::Deactivated) => query.filter(payment_links::deactivated_at.is_not_null()),
            Some(LinkStatus::Expired) => query
                .filter(payment_links::deactivated_at.is_null())
                .filter(payment_links::expires_at.le(at)),
            Some(LinkStatus::Exhausted) => query.filter(open).filter(exhausted()),
            Some(LinkStatus::Active) => {
                query.filter(open).filter(diesel::dsl::not(exhausted()))
            }
        };
        query.load(conn).await
    })?;
    let page_size = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > page_size;
    let rows: Vec<LinkRow> = rows.into_iter().take(page_size).collect();
    let made = payments_made(&state.db, rows.iter().map(|row| row.id).collect()).await?;
    let next = if more { rows.last().map(|row| dashboard_core::cursor::encode(&[row.id])) } else { None };
    let views = rows
        .into_iter()
        .map(|row| {
            let count = made.get(&row.id).copied().unwrap_or(0);
            view_of(state, row, count, at)
        })
        .collect();
    Ok((views, next))
}

async fn row_of(db: &DbPool, public_id: &str) -> Result<Option<LinkRow>, AppError> {
    let wanted = public_id.to_owned();
    dashboard_core::db_run!(db, conn => {
        payment_links::table
            .filter(payment_links::public_id.eq(&wanted))
            .select(LinkRow::as_select())
            .first(conn)
            .await
            .optional()
    })
    .map_err(AppError::from)
}

/// A link of the principal's company and projects (404 for any other).
async fn visible_row(state: &AppState, principal: &Principal, public_id: &str) -> Result<LinkRow, AppError> {
    match row_of(&state.db, public_id).await? {
        Some(row) if row.company_id == principal.company_id && principal.projects.allows(row.project_id) => Ok(row),
        _ => Err(AppError::NotFound),
    }
}

/// A link the principal may see.
pub async fn view(state: &AppState, principal: &Principal, public_id: &str) -> Result<LinkView, AppError> {
    let row = visible_row(state, principal, public_id).await?;
    let made = payments_made(&state.db, vec![row.id]).await?.get(&row.id).copied().unwrap_or(0);
    Ok(view_of(state, row, made, now()))
}

/// The payments made through a link the principal may see, newest first (at most 500).
pub async fn payments_of(
    state: &AppState,
    principal: &Principal,
    public_id: &str,
) -> Result<Vec<LinkPayment>, AppError> {
    let row = visible_row(state, principal, public_id).await?;
    type Row = (String, String, i64, String, Option<String>, NaiveDateTime);
    let rows: Vec<Row> = dashboard_core::db_run!(state.db, conn => {
        payments::table
            .filter(payments::link_id.eq(row.id))
            .order(payments::id.desc())
            .limit(500)
            .select((
                payments::public_id,
                payments::status,
                payments::amount,
                payments::currency,
                payments::customer_email,
                payments::created_at,
            ))
            .load(conn)
            .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(id, status, amount, currency, customer_email, created)| LinkPayment {
            id,
            status: Status::parse(&status).unwrap_or(Status::Failed),
            amount: Money { amount, currency },
            customer_email,
            created_at: Timestamp::from(&created),
        })
        .collect())
}

/// Deactivates a link at once (no payment starts through it after this write); audited
/// in the same write. Deactivating one already deactivated changes nothing.
pub async fn deactivate(state: &AppState, principal: &Principal, public_id: &str) -> Result<LinkView, AppError> {
    let row = visible_row(state, principal, public_id).await?;
    let event = AuditEvent::success(principal, "payment_link.deactivate").target(format!("payment link {public_id}"));
    let (id, user_id, at) = (row.id, principal.person(), now());
    dashboard_core::db_transaction!(state.db, conn => {
        let changed = diesel::update(payment_links::table.find(id).filter(payment_links::deactivated_at.is_null()))
            .set((payment_links::deactivated_at.eq(Some(at)), payment_links::deactivated_by.eq(user_id)))
            .execute(conn)
            .await?;
        if changed == 1 {
            dashboard_core::record_audit!(conn, event)?;
        }
        Ok::<_, AppError>(())
    })?;
    view(state, principal, public_id).await
}

/// A link as the hosted page shows it to a customer: no sign-in, so only what the page
/// needs.
#[derive(Debug, Clone)]
pub struct OpenLink {
    pub id: i64,
    pub public_id: String,
    pub company_id: i64,
    pub project_id: i64,
    pub currency: String,
    pub amount: Option<i64>,
    pub min_amount: Option<i64>,
    pub max_amount: Option<i64>,
    pub description: String,
    pub merchant_order_id: Option<String>,
    pub style_id: Option<i64>,
    pub status: LinkStatus,
}

/// The link `public_id` for its hosted page, whatever its status (404 if there is none).
pub async fn open(db: &DbPool, public_id: &str) -> Result<OpenLink, AppError> {
    // Ids are `lnk_` and 20 hex digits: anything else is not looked up.
    let well_formed = public_id
        .strip_prefix("lnk_")
        .is_some_and(|rest| rest.len() == 20 && rest.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(AppError::NotFound);
    }
    let row = row_of(db, public_id).await?.ok_or(AppError::NotFound)?;
    let made = payments_made(db, vec![row.id]).await?.get(&row.id).copied().unwrap_or(0);
    Ok(OpenLink {
        status: status_of(row.deactivated_at, row.expires_at, row.max_payments, made, now()),
        id: row.id,
        public_id: row.public_id,
        company_id: row.company_id,
        project_id: row.project_id,
        currency: row.currency,
        amount: row.amount,
        min_amount: row.min_amount,
        max_amount: row.max_amount,
        description: row.description,
        merchant_order_id: row.merchant_order_id,
        style_id: row.style_id,
    })
}

/// What the customer typed on the hosted page.
pub struct CardEntry {
    /// The amount, for a link without a fixed one (minor units).
    pub amount: Option<i64>,
    pub card: Card,
    pub email: Option<String>,
    /// The customer's address.
    pub ip: Option<String>,
}

impl OpenLink {
    /// The amount the customer pays: the link's, or theirs within the link's limits.
    pub fn amount_to_pay(&self, entered: Option<i64>) -> Result<i64, AppError> {
        if let Some(fixed) = self.amount {
            return Ok(fixed);
        }
        let shown = |amount: i64| dashboard_core::money::format_grouped(amount, &self.currency);
        let amount = entered.ok_or_else(|| AppError::BadRequest("Enter the amount to pay.".to_owned()))?;
        if let Some(min) = self.min_amount.filter(|min| amount < *min) {
            return Err(AppError::BadRequest(format!("The amount must be at least {}.", shown(min))));
        }
        if let Some(max) = self.max_amount.filter(|max| amount > *max) {
            return Err(AppError::BadRequest(format!("The amount must be at most {}.", shown(max))));
        }
        crate::service::amount_check(amount)
    }

    /// Pays the link with what the customer typed, through the payment service as any
    /// purchase (a sale, 3-D Secure where the card asks for it), once per `form_key`: a
    /// resubmitted form answers as the first. After 3-D Secure the customer comes back
    /// to the link's page ([`crate::service::return_to`]).
    pub async fn pay(
        &self,
        state: &AppState,
        entry: CardEntry,
        form_key: &str,
    ) -> Result<Replay<PaymentView>, AppError> {
        // Whether the link still takes a payment is asked in the write that would start it,
        // after the key: a form sent again gets its first answer, not "already paid".
        let amount = self.amount_to_pay(entry.amount)?;
        let company =
            dashboard_core::directory::find_company(&state.db, self.company_id).await?.ok_or(AppError::NotFound)?;
        let principal = Principal::customer(self.company_id, company.name, self.project_id);
        let request = format!(
            "{}\n{amount}\n{}\n{}\n{}",
            self.public_id,
            entry.card.number.digits(),
            entry.card.expiry(),
            entry.email.as_deref().unwrap_or("")
        );
        let claim = Claim::new(state, &format!("link:{}", self.id), form_key, &request)?;
        let purchase = NewPurchase {
            project_id: self.project_id,
            flow: Flow::OneStep,
            amount,
            currency: self.currency.clone(),
            card: entry.card,
            merchant_order_id: self.merchant_order_id.clone(),
            description: Some(self.description.clone()),
            customer: Customer { email: entry.email, ip: entry.ip, ..Customer::default() },
            return_url: None,
            link_id: Some(self.id),
        };
        crate::service::create_purchase(state, &principal, purchase, &claim).await
    }
}

/// Where a payment made through a link stands, for the customer's result page.
#[derive(Debug, Clone)]
pub struct LinkPaymentResult {
    pub status: Status,
    pub amount: Money,
    /// When it last changed (settled, for a finished one).
    pub changed_at: NaiveDateTime,
}

/// The payment `payment_id` if it was made through link `link_id` (for the hosted page's
/// result, which a customer reaches without signing in).
pub async fn payment_of_link(db: &DbPool, link_id: i64, payment_id: &str) -> Result<LinkPaymentResult, AppError> {
    let wanted = payment_id.to_owned();
    let row: Option<(String, i64, String, NaiveDateTime)> = dashboard_core::db_run!(db, conn => {
        payments::table
            .filter(payments::public_id.eq(&wanted))
            .filter(payments::link_id.eq(link_id))
            .select((payments::status, payments::amount, payments::currency, payments::updated_at))
            .first(conn)
            .await
            .optional()
    })?;
    let (status, amount, currency, changed_at) = row.ok_or(AppError::NotFound)?;
    Ok(LinkPaymentResult {
        status: Status::parse(&status).unwrap_or(Status::Failed),
        amount: Money { amount, currency },
        changed_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_used_up_by_its_payments_and_closed_by_time_or_hand() {
        let at = now();
        let later = Some(at + chrono::TimeDelta::hours(1));
        let earlier = Some(at - chrono::TimeDelta::hours(1));
        assert_eq!(status_of(None, later, Some(1), 0, at), LinkStatus::Active);
        assert_eq!(status_of(None, later, Some(1), 1, at), LinkStatus::Exhausted);
        assert_eq!(status_of(None, None, None, 1_000, at), LinkStatus::Active);
        assert_eq!(status_of(None, earlier, Some(3), 0, at), LinkStatus::Expired);
        assert_eq!(status_of(Some(at), None, None, 0, at), LinkStatus::Deactivated);
    }
}
