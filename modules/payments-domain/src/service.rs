//! Payment operations, shared by the gateway API and the dashboard's pages.
//!
//! Every operation runs in two short transactions around the acquirer call, so that no
//! database lock is held while the acquirer answers:
//! 1. check and reserve: one conditional update that only succeeds in an allowed state
//!    and within the allowed amount (atomic on both databases, also under concurrent
//!    requests), plus the operation row in `pending`;
//! 2. ask the acquirer;
//! 3. settle: the operation's result, the payment's new status and, on success, the
//!    balanced ledger postings; on failure the reservation is given back.
//!
//! Operations on existing payments run as sets (a batch file's rows, see
//! [`PaymentAction::run_together`]); one asked for alone is a set of one. A set takes the
//! same steps: the reservations of all in one transaction and the settlements in
//! another, the statements of all sent together, each operation answering as it would
//! alone.

use chrono::NaiveDateTime;
use diesel::IntoSql;
use diesel::QueryResult;
use diesel::prelude::{Queryable, Selectable};
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::card::Card;
use super::connector::{Outcome, order_reference};
use super::idempotency::{Claim, ClaimKeys, ClaimedKey, Entry, Held, Replay};
use super::ledger;
use super::model::{Flow, Kind, Method, OperationKind, OperationStatus, Status, allowed_from, illegal};
use super::recovery::within_timeout;
use crate::fraud::screening::Verdict;
use crate::schema::{ledger_postings, operations, payments};
use dashboard_core::audit::{self, AuditEvent};
use dashboard_core::auth::Principal;
use dashboard_core::db::prelude::*;
use dashboard_core::db::{DbPool, PgConn, SqliteWriteConn};
use dashboard_core::error::AppError;
use dashboard_core::state::AppState;
use dashboard_core::time::{now, rfc3339};

/// An amount of money: minor units of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Money {
    /// Minor units (cents): 1050 is 10.50 EUR, 500 is 500 JPY.
    pub amount: i64,
    /// ISO 4217, one the platform supports, e.g. `EUR`.
    #[oai(validator(
        pattern = "^(AED|AUD|BGN|BHD|BRL|CAD|CHF|CLP|CNY|CZK|DKK|EUR|GBP|HKD|HUF|IDR|ILS|INR|ISK|JOD|JPY|KRW|KWD|MXN|MYR|NOK|NZD|OMR|PHP|PLN|RON|SAR|SEK|SGD|THB|TND|TRY|UAH|USD|VND|ZAR)$"
    ))]
    pub currency: String,
}

/// The customer of a payment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Customer {
    pub email: Option<String>,
    /// The merchant's id of the customer.
    pub id: Option<String>,
    /// ISO 3166-1 alpha-2 country.
    pub country: Option<String>,
    pub ip: Option<String>,
}

/// The stored, masked card.
#[derive(Debug, Clone, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MaskedCard {
    /// The first six digits (the BIN); fewer for a number of under 16 digits, so that at
    /// least six always stay hidden.
    pub first6: String,
    pub last4: String,
    pub brand: String,
    /// `MM/YY`.
    pub expiry: String,
}

impl MaskedCard {
    /// As people read it: `card 4242…4242`.
    pub fn shown(&self) -> String {
        crate::payouts::payee_shown(&self.first6, &self.last4)
    }
}

/// One operation of a payment.
#[derive(Debug, Clone, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct OperationView {
    pub id: i64,
    pub kind: OperationKind,
    pub status: OperationStatus,
    pub amount: Money,
    pub decline_code: Option<String>,
    pub decline_reason: Option<String>,
    pub created_at: dashboard_core::time::Timestamp,
    pub completed_at: Option<dashboard_core::time::Timestamp>,
    /// Why it was made, as given with a refund.
    pub reason: Option<String>,
}

/// A payment with its operations.
#[derive(Debug, Clone, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PaymentView {
    /// The payment's id, e.g. `pay_…`.
    pub id: String,
    pub project_id: i64,
    pub kind: Kind,
    pub flow: Flow,
    pub method: Method,
    pub status: Status,
    pub amount: Money,
    pub authorized: i64,
    pub captured: i64,
    pub refunded: i64,
    pub charged_back: i64,
    /// What can still be refunded, in minor units.
    pub refundable: i64,
    pub merchant_order_id: Option<String>,
    pub description: Option<String>,
    pub customer: Customer,
    pub card: Option<MaskedCard>,
    pub decline_code: Option<String>,
    pub decline_reason: Option<String>,
    /// Where the customer passes 3-D Secure, while `status` is `awaiting_challenge`.
    pub challenge_url: Option<String>,
    pub created_at: dashboard_core::time::Timestamp,
    pub updated_at: dashboard_core::time::Timestamp,
    /// Where the customer goes after the 3-D Secure challenge.
    pub return_url: Option<String>,
    /// The payment link the customer paid through (`lnk_…`), for a payment-link payment.
    pub payment_link: Option<String>,
    /// What the fraud rules decided, where a rule matched (filled by [`view`] only).
    pub fraud: Option<crate::fraud::FraudCheck>,
    pub operations: Vec<OperationView>,
}

/// A purchase to make.
#[derive(Debug, Clone)]
pub struct NewPurchase {
    pub project_id: i64,
    pub flow: Flow,
    pub amount: i64,
    pub currency: String,
    pub card: Card,
    pub merchant_order_id: Option<String>,
    pub description: Option<String>,
    pub customer: Customer,
    /// Where the customer goes after a 3-D Secure challenge (https).
    pub return_url: Option<String>,
    /// The payment link the customer pays through on the hosted page.
    pub link_id: Option<i64>,
}

/// A purchase as the API takes it (the gateway's `POST /payments`, and the Manual
/// payments section's MO/TO twin).
#[derive(poem_openapi::Object, Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct PurchaseRequest {
    pub project_id: i64,
    /// `one_step` (sale, the default) or `two_step` (authorise now, capture or release
    /// later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<Flow>,
    pub amount: Money,
    pub card: crate::card::CardInput,
    pub merchant_order_id: Option<String>,
    pub description: Option<String>,
    pub customer: Option<Customer>,
    /// Where the customer goes after a 3-D Secure challenge: an https URL, to which
    /// `payment_id` and `status` are added.
    pub return_url: Option<String>,
}

impl PurchaseRequest {
    /// The purchase it asks for, checked.
    pub fn purchase(self) -> Result<NewPurchase, AppError> {
        super::model::currency(&self.amount.currency)?;
        Ok(NewPurchase {
            project_id: self.project_id,
            flow: self.flow.unwrap_or(Flow::OneStep),
            card: self.card.card()?,
            amount: self.amount.amount,
            currency: self.amount.currency,
            merchant_order_id: self.merchant_order_id,
            description: self.description,
            customer: self.customer.unwrap_or_default(),
            return_url: self.return_url,
            link_id: None,
        })
    }
}

/// A payout to a card.
#[derive(Debug, Clone)]
pub struct NewPayout {
    pub project_id: i64,
    pub amount: i64,
    pub currency: String,
    pub card: Card,
    pub merchant_order_id: Option<String>,
    pub description: Option<String>,
    pub customer: Customer,
    /// The SMS code sent for exactly this payout: a person in a session needs it, an
    /// API token does not ([`crate::payouts`]).
    pub code: Option<String>,
    /// The batch file this payout is a row of: the SMS code that confirmed the file, bound
    /// to its hash, rows and totals, confirmed this payout too.
    pub batch: Option<i64>,
}

/// Reads a payment's row and its operations, by a filter on `payments`, with `$conn`
/// (a macro because the body is compiled once per database backend).
macro_rules! read_payment_rows {
    ($conn:ident, $filter:expr) => {{
        let row: Option<PaymentRow> =
            payments::table.filter($filter).select(PaymentRow::as_select()).first($conn).await.optional()?;
        match row {
            None => None,
            Some(row) => {
                let ops: Vec<OperationRow> = operations::table
                    .filter(operations::payment_id.eq(row.id))
                    .order(operations::id.asc())
                    .select(OperationRow::as_select())
                    .load($conn)
                    .await?;
                Some((row, ops))
            }
        }
    }};
}

/// A payment as its view shows it.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = payments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct PaymentRow {
    id: i64,
    public_id: String,
    company_id: i64,
    project_id: i64,
    kind: String,
    flow: String,
    method: String,
    status: String,
    currency: String,
    amount: i64,
    authorized_amount: i64,
    captured_amount: i64,
    refunded_amount: i64,
    charged_back_amount: i64,
    merchant_order_id: Option<String>,
    description: Option<String>,
    customer_email: Option<String>,
    customer_id: Option<String>,
    customer_country: Option<String>,
    customer_ip: Option<String>,
    card_first6: Option<String>,
    card_last4: Option<String>,
    card_brand: Option<String>,
    card_expiry: Option<String>,
    decline_code: Option<String>,
    decline_reason: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    return_url: Option<String>,
    link_id: Option<i64>,
}

/// What a callback says of a payment and the operation that changed it.
fn change_of(payment: &PaymentRow, operation: Option<&OperationRow>) -> crate::callbacks::Change {
    crate::callbacks::Change {
        payment_id: payment.public_id.clone(),
        project_id: payment.project_id,
        merchant_order_id: payment.merchant_order_id.clone(),
        status: payment.status.clone(),
        currency: payment.currency.clone(),
        amount: payment.amount,
        captured: payment.captured_amount,
        refunded: payment.refunded_amount,
        decline_reason: payment.decline_reason.clone(),
        operation: operation.map(|operation| crate::callbacks::ChangeOperation {
            id: operation.id,
            kind: operation.kind.clone(),
            status: operation.status.clone(),
            amount: operation.amount,
            reason: operation.reason.clone(),
        }),
        chargeback: None,
    }
}

/// One operation of a payment, as its view shows it.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = operations, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct OperationRow {
    id: i64,
    actor_user_id: Option<i64>,
    kind: String,
    status: String,
    amount: i64,
    currency: String,
    decline_code: Option<String>,
    decline_reason: Option<String>,
    created_at: NaiveDateTime,
    completed_at: Option<NaiveDateTime>,
    reason: Option<String>,
}

/// A payment's state as the service works with it.
#[derive(Debug, Clone)]
struct Stored {
    id: i64,
    public_id: String,
    status: Status,
    currency: String,
    authorized: i64,
    captured: i64,
    refunded: i64,
    charged_back: i64,
    project_id: i64,
    company_id: i64,
    reference: Option<String>,
}

impl Stored {
    /// What is captured and neither refunded nor charged back.
    fn left(&self) -> i64 {
        self.captured - self.refunded - self.charged_back
    }

    fn standing(&self) -> Standing<'_> {
        Standing { status: self.status, currency: &self.currency, authorized: self.authorized, left: self.left() }
    }
}

/// Where a payment stands, as far as an operation on it is concerned.
struct Standing<'a> {
    status: Status,
    currency: &'a str,
    authorized: i64,
    /// What is captured and neither refunded nor charged back.
    left: i64,
}

impl Standing<'_> {
    /// What an operation of `kind` would move (`asked`, or all there is when none), or why
    /// it may not: the service's check before it reserves, and a page's before it asks
    /// "are you sure?".
    fn amount_for(&self, kind: OperationKind, asked: Option<i64>) -> Result<i64, AppError> {
        if !allowed_from(kind).contains(&self.status) {
            return Err(illegal(kind, self.status));
        }
        match kind {
            OperationKind::Capture => {
                self.at_most(amount_check(asked.unwrap_or(self.authorized))?, self.authorized, "captured")
            }
            OperationKind::Cancel => Ok(self.authorized),
            OperationKind::Refund => self.at_most(amount_check(asked.unwrap_or(self.left))?, self.left, "refunded"),
            OperationKind::Reversal => amount_check(self.left),
            other => Err(AppError::Internal(format!("{} is not an operation on a payment", other.as_str()))),
        }
    }

    fn at_most(&self, amount: i64, most: i64, what: &str) -> Result<i64, AppError> {
        if amount > most { Err(too_much(most, self.currency, what)) } else { Ok(amount) }
    }
}

/// The refusal of an amount above what an operation may move.
fn too_much(most: i64, currency: &str, what: &str) -> AppError {
    AppError::BadRequest(format!("At most {} can be {what}.", dashboard_core::money::format_minor(most, currency)))
}

pub(crate) fn amount_check(amount: i64) -> Result<i64, AppError> {
    if amount <= 0 {
        return Err(AppError::BadRequest("The amount must be more than zero.".to_owned()));
    }
    if amount > 1_000_000_000_000 {
        return Err(AppError::BadRequest("The amount is too large.".to_owned()));
    }
    Ok(amount)
}

fn optional_text(value: Option<String>, what: &str, max: usize) -> Result<Option<String>, AppError> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        Some(v) if v.chars().count() > max => {
            Err(AppError::BadRequest(format!("The {what} is longer than {max} characters.")))
        }
        Some(v) if crate::card::holds_card_number(&v) => Err(AppError::BadRequest(format!(
            "The {what} holds what looks like a card number; card numbers go in the card fields only."
        ))),
        other => Ok(other),
    }
}

fn check_customer(customer: Customer) -> Result<Customer, AppError> {
    let country = optional_text(customer.country, "customer country", 2)?.map(|c| c.to_ascii_uppercase());
    if let Some(country) = &country
        && (country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(AppError::BadRequest("The customer country must be two letters (ISO 3166-1).".to_owned()));
    }
    Ok(Customer {
        email: optional_text(customer.email, "customer e-mail", 254)?.map(|e| e.to_lowercase()),
        id: optional_text(customer.id, "customer id", 100)?,
        country,
        ip: optional_text(customer.ip, "customer IP", 45)?,
    })
}

/// A return URL: an absolute https URL without credentials (http too where callbacks may
/// go to private addresses, i.e. in development), at most 2,000 characters.
fn return_url_check(state: &AppState, text: &str) -> Result<String, AppError> {
    let refused = || {
        AppError::BadRequest("The return URL must be an absolute https:// URL of at most 2,000 characters.".to_owned())
    };
    let url = url::Url::parse(text.trim()).map_err(|_| refused())?;
    let scheme_allowed =
        url.scheme() == "https" || (url.scheme() == "http" && crate::callback_targets::private_allowed(state));
    if !scheme_allowed || url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(refused());
    }
    let url = url.to_string();
    if url.len() > 2_000 { Err(refused()) } else { Ok(url) }
}

/// Where the customer of `public_id` goes after the challenge: back to the hosted page of
/// the link it pays (on this site), else to the purchase's return URL with the payment's
/// id and status added, if it gave one.
pub async fn return_to(db: &DbPool, public_id: &str) -> Result<Option<String>, AppError> {
    use crate::schema::payment_links;
    let wanted = public_id.to_owned();
    let row: Option<(Option<String>, String, Option<String>)> = dashboard_core::db_run!(db, conn => {
        payments::table
            .left_join(payment_links::table)
            .filter(payments::public_id.eq(&wanted))
            .select((payments::return_url, payments::status, payment_links::public_id.nullable()))
            .first(conn)
            .await
            .optional()
    })?;
    Ok(row.and_then(|(url, status, link)| {
        if let Some(link) = link {
            return Some(format!("/pay/{link}/done?payment_id={public_id}"));
        }
        let mut url = url::Url::parse(&url?).ok()?;
        url.query_pairs_mut().append_pair("payment_id", public_id).append_pair("status", &status);
        Some(url.to_string())
    }))
}

fn no_such_project(project_id: i64) -> AppError {
    AppError::BadRequest(format!("There is no project {project_id} you may use."))
}

fn new_public_id() -> String {
    format!("pay_{}", &dashboard_core::auth::random_token()[..24])
}

/// Makes a purchase: a sale (one-step) or an authorisation (two-step), once per
/// idempotency claim.
pub async fn create_purchase(
    state: &AppState,
    principal: &Principal,
    new: NewPurchase,
    claim: &Claim,
) -> Result<Replay<PaymentView>, AppError> {
    // A repeated request answers as the first did, whatever changed since (the project's
    // limits, a link paid meanwhile).
    if let Some(answer) = claim.answered_before(state).await? {
        return Claim::replay(&answer);
    }
    let operation = if new.flow == Flow::OneStep { OperationKind::Sale } else { OperationKind::Auth };
    let start = Start {
        kind: if new.link_id.is_some() { Kind::PaymentLink } else { Kind::Purchase },
        flow: new.flow,
        operation,
        project_id: new.project_id,
        amount: new.amount,
        currency: new.currency,
        merchant_order_id: new.merchant_order_id,
        description: new.description,
        customer: new.customer,
        return_url: new.return_url,
        code: None,
        link_id: new.link_id,
    };
    let started = match begin(state, principal, &start, &new.card, claim).await? {
        Begun::Started(started) => started,
        Begun::Earlier(answer) => return Claim::replay(&answer),
    };
    if let Some(declined) = declined_by_rules(state, principal, &started, claim).await {
        return declined.map(Replay::Fresh);
    }
    let order = order_reference(started.operation.id);
    let charge = super::connector::of(state)?.charge(
        &order,
        &new.card,
        start.amount,
        &start.currency,
        started.kind == OperationKind::Sale,
        started.verdict.as_ref().is_some_and(Verdict::challenges),
    );
    let outcome = within_timeout(state, charge).await?;
    settle_own_start(state, principal, &started, outcome, claim).await.map(Replay::Fresh)
}

/// Settles a payment a fraud rule declined, without asking the acquirer: declined with
/// [`fraud::DECLINE_CODE`](crate::fraud::DECLINE_CODE) and the rule's name. None when no
/// rule declined it.
async fn declined_by_rules(
    state: &AppState,
    principal: &Principal,
    started: &Starting,
    claim: &Claim,
) -> Option<Result<PaymentView, AppError>> {
    let verdict = started.verdict.as_ref().filter(|verdict| verdict.declines())?;
    let rule = verdict.decided_by().map_or("", |rule| rule.name.as_str());
    let decline = (crate::fraud::DECLINE_CODE.to_owned(), crate::fraud::decline_reason(rule));
    let settled = finish(
        state,
        started,
        Status::Declined,
        OperationStatus::Declined,
        None,
        Some(decline),
        Some(&claim.claimed()),
    )
    .await;
    Some(match settled {
        Err(AppError::Conflict(_)) => view(state, principal, &started.payment.public_id).await,
        settled => settled,
    })
}

/// Sends money to a card, once per idempotency claim, within the project's balance and
/// limits and, for a person, with the SMS code sent for it ([`crate::payouts`]); a
/// refused payout is audited with the reason.
pub async fn create_payout(
    state: &AppState,
    principal: &Principal,
    new: NewPayout,
    claim: &Claim,
) -> Result<Replay<PaymentView>, AppError> {
    // A repeated request answers as the first did, with no new code.
    if let Some(answer) = claim.answered_before(state).await? {
        return Claim::replay(&answer);
    }
    let code = match crate::payouts::confirm(state, principal, &new).await {
        Ok(code) => code,
        Err(error) => {
            // The same request may have used the code a moment ago (its key and the code
            // are used in one write): its answer, or 409 while it runs.
            if let Some(answer) = claim.answered_before(state).await? {
                return Claim::replay(&answer);
            }
            crate::payouts::audit_refused(state, principal, &new, &error).await?;
            return Err(error);
        }
    };
    let start = Start {
        kind: Kind::Payout,
        flow: Flow::OneStep,
        operation: OperationKind::Payout,
        project_id: new.project_id,
        amount: new.amount,
        currency: new.currency.clone(),
        merchant_order_id: new.merchant_order_id.clone(),
        description: new.description.clone(),
        customer: new.customer.clone(),
        return_url: None,
        code,
        link_id: None,
    };
    let started = match begin(state, principal, &start, &new.card, claim).await {
        Ok(Begun::Started(started)) => started,
        Ok(Begun::Earlier(answer)) => return Claim::replay(&answer),
        Err(error @ (AppError::Unprocessable(_) | AppError::Refused(_))) => {
            crate::payouts::audit_refused(state, principal, &new, &error).await?;
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    if let Some(declined) = declined_by_rules(state, principal, &started, claim).await {
        return declined.map(Replay::Fresh);
    }
    let order = order_reference(started.operation.id);
    let payout = super::connector::of(state)?.payout(&order, &new.card, start.amount, &start.currency);
    let outcome = within_timeout(state, payout).await?;
    settle_own_start(state, principal, &started, outcome, claim).await.map(Replay::Fresh)
}

/// Settles a payment's start with the acquirer's answer to this request; when the
/// recovery settled it first (the answer came after it had given up waiting), the
/// payment as that left it. A failed write leaves the key claimed and the operation
/// pending, for the recovery: the acquirer may have moved the money.
async fn settle_own_start(
    state: &AppState,
    principal: &Principal,
    started: &Starting,
    outcome: Outcome,
    claim: &Claim,
) -> Result<PaymentView, AppError> {
    match settle_start(state, started, outcome, Some(&claim.claimed())).await {
        Err(AppError::Conflict(_)) => view(state, principal, &started.payment.public_id).await,
        settled => settled,
    }
}

/// Settles the start of payment `payment_id` whose answer was lost, as the acquirer now
/// says, answering `key` in the same write (for the recovery).
pub(crate) async fn settle_lost_start(
    state: &AppState,
    payment_id: i64,
    outcome: Outcome,
    key: Option<&ClaimedKey>,
) -> Result<(), AppError> {
    let started = pending_start(state, payment_id).await?;
    settle_start(state, &started, outcome, key).await.map(|_| ())
}

/// What the write that starts a payment did.
enum Begun {
    /// The payment is stored, with its first operation pending.
    Started(Box<Starting>),
    /// The idempotency key was answered before: that answer.
    Earlier(String),
}

/// A payment whose first operation waits for the acquirer's answer: both rows as they
/// are stored.
struct Starting {
    payment: PaymentRow,
    operation: OperationRow,
    kind: OperationKind,
    /// What the fraud rules decided, where the company has rules.
    verdict: Option<Verdict>,
}

/// What starts a payment.
struct Start {
    kind: Kind,
    flow: Flow,
    operation: OperationKind,
    project_id: i64,
    amount: i64,
    currency: String,
    merchant_order_id: Option<String>,
    description: Option<String>,
    customer: Customer,
    return_url: Option<String>,
    /// The SMS code that confirms it, used up in the write that stores it.
    code: Option<i64>,
    /// The payment link it pays, whose use is checked in the write that stores it.
    link_id: Option<i64>,
}

/// Checks the request and stores the payment and its first operation as pending.
/// Claims the idempotency key in the same write.
async fn begin(
    state: &AppState,
    principal: &Principal,
    start: &Start,
    card: &Card,
    claim: &Claim,
) -> Result<Begun, AppError> {
    let amount = amount_check(start.amount)?;
    let currency = super::model::currency(&start.currency)?;
    if !principal.projects.allows(start.project_id) {
        return Err(no_such_project(start.project_id));
    }
    let merchant_order_id = optional_text(start.merchant_order_id.clone(), "merchant order id", 100)?;
    let description = optional_text(start.description.clone(), "description", 500)?;
    let customer = check_customer(start.customer.clone())?;
    let return_url = start.return_url.as_deref().map(|url| return_url_check(state, url)).transpose()?;
    let public_id = new_public_id();
    let now = now();
    let fingerprint = card.fingerprint(&state.secrets);
    let (company_id, project_id, user_id) = (principal.company_id, start.project_id, principal.person());
    let (kind, flow) = (start.kind.as_str(), start.flow.as_str());
    if !ProjectOwners::of(state)?.owns(&state.db, company_id, project_id).await? {
        return Err(no_such_project(project_id));
    }
    // Only once the project is known to be the caller's: its limits are its own business.
    if start.kind != Kind::Payout {
        crate::checkout::require_accepted(&state.db, project_id, Method::Card, &currency, amount).await?;
    }
    let screening = crate::fraud::screening::prepare(
        state,
        &crate::fraud::screening::Payment {
            company_id,
            project_id,
            kind,
            amount,
            currency: &currency,
            card_brand: card.number.brand(),
            card_first_digits: card.number.first_digits(),
            card_fingerprint: &fingerprint,
            email: customer.email.as_deref(),
            country: customer.country.as_deref(),
            ip: customer.ip.as_deref(),
            payout: start.operation == OperationKind::Payout,
        },
    )
    .await?;
    let review_due = crate::fraud::reviews::due(state, now);
    let new_payment = diesel::insert_into(payments::table).values((
        payments::public_id.eq(&public_id),
        payments::company_id.eq(company_id),
        payments::project_id.eq(project_id),
        payments::kind.eq(kind),
        payments::flow.eq(flow),
        payments::method.eq(Method::Card.as_str()),
        payments::status.eq(Status::Processing.as_str()),
        payments::currency.eq(&currency),
        payments::amount.eq(amount),
        payments::merchant_order_id.eq(&merchant_order_id),
        payments::description.eq(&description),
        payments::customer_email.eq(&customer.email),
        payments::customer_id.eq(&customer.id),
        payments::customer_country.eq(&customer.country),
        payments::customer_ip.eq(&customer.ip),
        payments::card_first6.eq(card.number.first_digits()),
        payments::card_last4.eq(card.number.last4()),
        payments::card_brand.eq(card.number.brand()),
        payments::card_expiry.eq(card.expiry()),
        payments::card_fingerprint.eq(&fingerprint),
        payments::created_at.eq(now),
        payments::updated_at.eq(now),
        payments::return_url.eq(&return_url),
        payments::link_id.eq(start.link_id),
    ));
    // The operation finds its payment by the public id, so that it can be sent with the
    // payment's insert rather than after its answer. A payment a rule holds for review
    // starts as a hold, whatever was asked.
    let new_operation = |operation: OperationKind| {
        diesel::insert_into(operations::table)
            .values(payments::table.filter(payments::public_id.eq(&public_id)).select((
                payments::id,
                operation.as_str().into_sql::<Text>(),
                OperationStatus::Pending.as_str().into_sql::<Text>(),
                amount.into_sql::<BigInt>(),
                currency.as_str().into_sql::<Text>(),
                user_id.into_sql::<Nullable<BigInt>>(),
                now.into_sql::<Timestamp>(),
                claim.scope.as_str().into_sql::<Nullable<Text>>(),
                claim.key.as_str().into_sql::<Nullable<Text>>(),
                claim.entry.map(Entry::as_str).into_sql::<Nullable<Text>>(),
            )))
            .into_columns((
                operations::payment_id,
                operations::kind,
                operations::status,
                operations::amount,
                operations::currency,
                operations::actor_user_id,
                operations::created_at,
                operations::idempotency_scope,
                operations::idempotency_key,
                operations::entry,
            ))
    };
    // The key is claimed together with the inserts; a key used before rolls them back.
    let (pays_out, code, link_id) = (start.operation == OperationKind::Payout, start.code, start.link_id);
    let written = async {
        dashboard_core::db_transaction!(state.db, conn => {
            // First: payments of the same card (e-mail, address) wait here for each other,
            // so the velocities count every one before.
            let verdict = match &screening {
                Some(screening) => Some(crate::screen!(conn, screening, now)?),
                None => None,
            };
            let kind = match start.operation {
                OperationKind::Sale if verdict.as_ref().is_some_and(Verdict::holds) => OperationKind::Auth,
                operation => operation,
            };
            let new_operation = new_operation(kind);
            if pays_out {
                // Parallel payouts of the project wait here for each other, so each
                // counts those before it.
                crate::lock_payouts!(conn, project_id, &currency);
                crate::read_funds!(conn, project_id, &currency, now).allow(amount, &currency)?;
            }
            if let Some(link_id) = link_id {
                // Parallel payments of one link wait here for each other, so each counts
                // those before it.
                crate::use_link!(conn, link_id, now)?;
            }
            let shared = conn.together();
            let (earlier, payment, operation) = futures_util::try_join!(
                shared.with(|mut turn| async move {
                    let conn = turn.conn();
                    Ok::<_, NotBegun>(crate::claim_key!(conn, claim))
                }),
                shared.with(|mut turn| async move {
                    Ok(new_payment.returning(PaymentRow::as_returning()).get_result(turn.conn()).await?)
                }),
                shared.with(|mut turn| async move {
                    Ok(new_operation.returning(OperationRow::as_returning()).get_result(turn.conn()).await?)
                }),
            )?;
            if let Some(answer) = earlier {
                return Err(NotBegun::Earlier(answer));
            }
            // After the key: a repeated request gets the first one's answer, not "used".
            if let Some(code) = code
                && dashboard_core::use_code!(conn, code) != 1
            {
                return Err(NotBegun::Failed(crate::payouts::code_refused()));
            }
            if let Some(verdict) = &verdict {
                crate::record_verdict!(conn, verdict, &public_id, project_id, company_id, now, review_due)?;
            }
            Ok(Starting { payment, operation, kind, verdict })
        })
    };
    match written.await {
        Ok(started) => Ok(Begun::Started(Box::new(started))),
        Err(NotBegun::Earlier(answer)) => Ok(Begun::Earlier(answer)),
        Err(NotBegun::Failed(error)) => Err(error),
    }
}

/// Why the write that starts a payment was rolled back.
enum NotBegun {
    /// The idempotency key was answered before: that answer.
    Earlier(String),
    Failed(AppError),
}

impl From<AppError> for NotBegun {
    fn from(error: AppError) -> Self {
        NotBegun::Failed(error)
    }
}

impl From<DieselError> for NotBegun {
    fn from(error: DieselError) -> Self {
        NotBegun::Failed(error.into())
    }
}

impl From<dashboard_core::db::DbError> for NotBegun {
    fn from(error: dashboard_core::db::DbError) -> Self {
        NotBegun::Failed(error.into())
    }
}

/// The company of each project, once read: projects never move between companies, so
/// checking that a project is the caller's company's costs a query only the first time
/// (a round trip saved inside every payment's first write on PostgreSQL).
#[derive(Default)]
pub struct ProjectOwners(std::sync::RwLock<std::collections::HashMap<i64, i64>>);

impl ProjectOwners {
    fn of(state: &AppState) -> Result<&ProjectOwners, AppError> {
        Ok(state.extension::<std::sync::Arc<ProjectOwners>>()?.as_ref())
    }

    fn cached(&self, project_id: i64) -> Option<i64> {
        self.0.read().ok().and_then(|known| known.get(&project_id).copied())
    }

    /// Whether `project_id` is a project of `company_id`.
    async fn owns(&self, db: &DbPool, company_id: i64, project_id: i64) -> Result<bool, AppError> {
        if let Some(owner) = self.cached(project_id) {
            return Ok(owner == company_id);
        }
        let owner = dashboard_core::directory::company_of_project(db, project_id).await?;
        if let Some(owner) = owner
            && let Ok(mut known) = self.0.write()
        {
            known.insert(project_id, owner);
        }
        Ok(owner == Some(company_id))
    }
}

dashboard_core::register!(dashboard_core::hooks::Service {
    name: "project owners",
    start: |_, extensions| {
        extensions.insert(std::sync::Arc::new(ProjectOwners::default()));
        Ok(())
    },
});

/// Records the acquirer's answer to the operation that started a payment; returns the
/// payment as it is now (stored as the answer to `key` in the same write).
async fn settle_start(
    state: &AppState,
    started: &Starting,
    outcome: Outcome,
    key: Option<&ClaimedKey>,
) -> Result<PaymentView, AppError> {
    let (status, op_status, reference, decline) = match &outcome {
        Outcome::Approved { reference } => {
            let status = match started.kind {
                OperationKind::Auth => Status::Authorized,
                OperationKind::Payout => Status::PaidOut,
                _ => Status::Completed,
            };
            (status, OperationStatus::Success, Some(reference.clone()), None)
        }
        Outcome::ChallengeRequired { reference } => {
            (Status::AwaitingChallenge, OperationStatus::Pending, Some(reference.clone()), None)
        }
        Outcome::Declined { code, reason } => {
            (Status::Declined, OperationStatus::Declined, None, Some(((*code).to_owned(), (*reason).to_owned())))
        }
        Outcome::Failed { reason } => {
            (Status::Failed, OperationStatus::Failed, None, Some(("failed".to_owned(), reason.clone())))
        }
    };
    finish(state, started, status, op_status, reference, decline, key).await
}

/// Writes the end of a starting operation: payment status and amounts, the operation's
/// result, and postings when it succeeded. Only while the payment is starting (processing
/// or waiting for 3-D Secure) and its operation pending, so once; nothing else changes
/// such a payment, so the rows this write leaves are the rows begun with these fields
/// set, and their view, the caller's answer, is known before the write. It is stored for
/// `key` in the same write, and every statement of it is sent together (one round trip
/// on PostgreSQL); a payment that changed meanwhile rolls them all back.
#[allow(clippy::too_many_arguments)]
async fn finish(
    state: &AppState,
    started: &Starting,
    status: Status,
    op_status: OperationStatus,
    reference: Option<String>,
    decline: Option<(String, String)>,
    key: Option<&ClaimedKey>,
) -> Result<PaymentView, AppError> {
    let Starting { ref payment, ref operation, kind, .. } = *started;
    let (payment_id, operation_id, project_id, amount) =
        (payment.id, operation.id, payment.project_id, operation.amount);
    let now = now();
    let success = op_status == OperationStatus::Success;
    let (decline_code, decline_reason) = decline.unzip();
    let settled_payment = PaymentRow {
        status: status.as_str().to_owned(),
        authorized_amount: if success && kind == OperationKind::Auth { amount } else { 0 },
        captured_amount: if success && matches!(kind, OperationKind::Sale | OperationKind::Recurring) {
            amount
        } else {
            0
        },
        decline_code: decline_code.clone(),
        decline_reason: decline_reason.clone(),
        updated_at: now,
        ..payment.clone()
    };
    let settled_operation = OperationRow {
        status: op_status.as_str().to_owned(),
        decline_code: decline_code.clone(),
        decline_reason: decline_reason.clone(),
        completed_at: (op_status != OperationStatus::Pending).then_some(now),
        ..operation.clone()
    };
    // Two comparisons rather than `IN`: a statement of a fixed shape is prepared once.
    let starting =
        payments::status.eq(Status::Processing.as_str()).or(payments::status.eq(Status::AwaitingChallenge.as_str()));
    let update_payment = keep_prepared(diesel::update(payments::table.find(payment_id).filter(starting)).set((
        payments::status.eq(status.as_str()),
        payments::authorized_amount.eq(settled_payment.authorized_amount),
        payments::captured_amount.eq(settled_payment.captured_amount),
        payments::decline_code.eq(&decline_code),
        payments::decline_reason.eq(&decline_reason),
        payments::updated_at.eq(now),
    )));
    let update_operation = keep_prepared(
        diesel::update(
            operations::table.find(operation_id).filter(operations::status.eq(OperationStatus::Pending.as_str())),
        )
        .set((
            operations::status.eq(op_status.as_str()),
            operations::connector_reference.eq(&reference),
            operations::decline_code.eq(&decline_code),
            operations::decline_reason.eq(&decline_reason),
            operations::completed_at.eq(settled_operation.completed_at),
        )),
    );
    let postings = if success { ledger::postings(kind, amount, 0) } else { Vec::new() };
    let postings = ledger::rows(&postings, operation_id, payment_id, project_id, &payment.currency, now);
    let change = change_of(&settled_payment, Some(&settled_operation));
    let audit = (kind == OperationKind::Payout).then(|| payout_event(payment, operation, status, success));
    let view = view_of(state, settled_payment, vec![settled_operation]);
    let answer = key.map(|key| Ok::<_, AppError>((key, Claim::answer_of(&view)?))).transpose()?;
    let (pays_out, currency) = (kind == OperationKind::Payout, payment.currency.as_str());
    dashboard_core::db_transaction!(state.db, conn => {
        if pays_out {
            // A payout ends holding the lock it started with, so that a payout's check
            // (which holds it) sees each other payout either on its way or posted.
            crate::lock_payouts!(conn, project_id, currency);
        }
        let shared = conn.together();
        let (payments_settled, operations_settled, (), (), (), ()) = futures_util::try_join!(
            shared.with(|mut turn| async move { update_payment.execute(turn.conn()).await }),
            shared.with(|mut turn| async move { update_operation.execute(turn.conn()).await }),
            shared.with(|mut turn| async move { ledger::WritePostings::write_postings(turn.conn(), &postings).await }),
            shared.with(|mut turn| async move {
                let conn = turn.conn();
                crate::enqueue_callbacks!(conn, payment_id, now, change: change);
                Ok(())
            }),
            shared.with(|mut turn| async move {
                if let Some((key, answer)) = answer {
                    let conn = turn.conn();
                    crate::save_answer!(conn, &key.scope, &key.key, &answer);
                }
                Ok(())
            }),
            shared.with(|mut turn| async move {
                if let Some(event) = audit {
                    let conn = turn.conn();
                    dashboard_core::record_audit!(conn, event)?;
                }
                Ok(())
            }),
        )?;
        if payments_settled != 1 || operations_settled != 1 {
            return Err(AppError::Conflict("The payment changed meanwhile; it was not updated twice.".to_owned()));
        }
        Ok(())
    })?;
    Ok(view)
}

/// The audit entry of a payout the acquirer answered (written with its result).
fn payout_event(payment: &PaymentRow, operation: &OperationRow, status: Status, success: bool) -> AuditEvent {
    let payee = match (&payment.card_first6, &payment.card_last4) {
        (Some(first6), Some(last4)) => crate::payouts::payee_shown(first6, last4),
        _ => "unknown".to_owned(),
    };
    AuditEvent {
        company_id: Some(payment.company_id),
        actor_user_id: operation.actor_user_id,
        action: "payout.create",
        target: Some(format!("payment {}", payment.public_id)),
        result: if success { "success" } else { "failure" },
        ip: None,
        details: serde_json::json!({
            "project_id": payment.project_id,
            "amount": operation.amount,
            "currency": operation.currency,
            "payee": payee,
            "status": status.as_str(),
        }),
    }
}

/// The customer's answer to the sandbox's 3-D Secure challenge.
pub async fn complete_challenge(state: &AppState, public_id: &str, passed: bool) -> Result<Status, AppError> {
    let stored = load_any(&state.db, public_id).await?;
    if stored.status != Status::AwaitingChallenge {
        return Err(AppError::Conflict("This payment is not waiting for 3-D Secure.".to_owned()));
    }
    let reference = stored.reference.clone().unwrap_or_default();
    let outcome = within_timeout(state, super::connector::of(state)?.complete_challenge(&reference, passed)).await?;
    let started = pending_start(state, stored.id).await?;
    let outcome = match outcome {
        Outcome::Approved { .. } => Outcome::Approved { reference },
        other => other,
    };
    settle_start(state, &started, outcome, None).await?;
    Ok(load_any(&state.db, public_id).await?.status)
}

/// How long a customer has to answer the 3-D Secure challenge.
pub const CHALLENGE_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Declines the payments whose 3-D Secure challenge was not answered within
/// [`CHALLENGE_LIFETIME`] (their pending operation settles as declined, so nothing stays
/// waiting for ever); returns how many.
pub async fn expire_challenges(state: &AppState) -> Result<usize, AppError> {
    let cutoff = now() - CHALLENGE_LIFETIME;
    let expired: Vec<i64> = dashboard_core::db_run!(state.db, conn => {
        payments::table
            .filter(payments::status.eq(Status::AwaitingChallenge.as_str()))
            .filter(payments::created_at.lt(cutoff))
            .select(payments::id)
            .limit(500)
            .load(conn)
            .await
    })?;
    let mut declined = 0;
    for payment_id in expired {
        let outcome =
            Outcome::Declined { code: "authentication_expired", reason: "3-D Secure was not completed in time" };
        let settled = match pending_start(state, payment_id).await {
            Ok(started) => settle_start(state, &started, outcome, None).await.map(|_| ()),
            Err(error) => Err(error),
        };
        match settled {
            Ok(()) => declined += 1,
            // The customer answered meanwhile: their answer stands.
            Err(AppError::Conflict(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(declined)
}

// Unanswered 3-D Secure challenges are declined within a minute of expiring.
dashboard_core::register!(dashboard_core::hooks::Job {
    name: "3-D Secure expiry",
    every: std::time::Duration::from_secs(30),
    run: |state| Box::pin(async move { expire_challenges(&state).await.map(|_| ()) }),
});

/// A payment waiting for 3-D Secure, with its pending first operation.
async fn pending_start(state: &AppState, payment_id: i64) -> Result<Starting, AppError> {
    let rows: Option<(PaymentRow, OperationRow)> = dashboard_core::db_run!(state.db, conn => {
        operations::table
            .inner_join(payments::table)
            .filter(operations::payment_id.eq(payment_id))
            .filter(operations::status.eq(OperationStatus::Pending.as_str()))
            .select((PaymentRow::as_select(), OperationRow::as_select()))
            .first(conn)
            .await
            .optional()
    })?;
    let Some((payment, operation)) = rows else {
        return Err(AppError::Conflict("This payment has no operation waiting for 3-D Secure.".to_owned()));
    };
    let kind = OperationKind::parse(&operation.kind)
        .ok_or_else(|| AppError::Internal(format!("unknown operation kind {}", operation.kind)))?;
    Ok(Starting { payment, operation, kind, verdict: None })
}

/// Captures in full a payment a fraud rule held, as its review approves it.
pub(crate) async fn capture_reviewed(
    state: &AppState,
    principal: &Principal,
    public_id: &str,
    claim: &Claim,
) -> Result<Replay<PaymentView>, AppError> {
    let asked = Asked { stopped_by_hold: false, ..PaymentAction::Capture.asked(public_id, None, None, claim) };
    act(state, principal, asked).await
}

/// Releases a payment a fraud rule held, as its review declines it or its deadline passes.
pub(crate) async fn release_reviewed(
    state: &AppState,
    principal: &Principal,
    public_id: &str,
    claim: &Claim,
) -> Result<Replay<PaymentView>, AppError> {
    act(state, principal, PaymentAction::Release.asked(public_id, None, None, claim)).await
}

/// An operation on an existing payment that a person or an integrator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum PaymentAction {
    /// All that is left, or a part.
    Refund,
    /// All that is held, or a part.
    Capture,
    /// What is held goes back to the customer.
    Release,
    /// A completed sale undone in full.
    Reversal,
}

impl PaymentAction {
    pub const ALL: [PaymentAction; 4] =
        [PaymentAction::Refund, PaymentAction::Capture, PaymentAction::Release, PaymentAction::Reversal];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentAction::Refund => "refund",
            PaymentAction::Capture => "capture",
            PaymentAction::Release => "release",
            PaymentAction::Reversal => "reversal",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentAction> {
        PaymentAction::ALL.into_iter().find(|action| action.as_str() == text.trim().to_ascii_lowercase())
    }

    /// The verb people read on its button.
    pub fn verb(self) -> &'static str {
        match self {
            PaymentAction::Refund => "Refund",
            PaymentAction::Capture => "Capture",
            PaymentAction::Release => "Release",
            PaymentAction::Reversal => "Reverse",
        }
    }

    /// The action as a noun people read: `Refund`, `Capture`, `Release`, `Reversal`.
    pub fn verb_noun(self) -> &'static str {
        match self {
            PaymentAction::Refund => "Refund",
            PaymentAction::Capture => "Capture",
            PaymentAction::Release => "Release",
            PaymentAction::Reversal => "Reversal",
        }
    }

    /// Whether an amount may be given (else the action takes it all).
    pub fn takes_amount(self) -> bool {
        matches!(self, PaymentAction::Refund | PaymentAction::Capture)
    }

    /// The gateway API's operation for it: an idempotency key means the same request
    /// from the API, a page's confirmation or a manual form.
    fn route(self, public_id: &str) -> String {
        match self {
            PaymentAction::Refund => format!("POST /payments/{public_id}/refunds"),
            PaymentAction::Capture => format!("POST /payments/{public_id}/captures"),
            PaymentAction::Release => format!("POST /payments/{public_id}/cancellations"),
            PaymentAction::Reversal => format!("POST /payments/{public_id}/reversals"),
        }
    }

    /// What is asked of it, checked: an amount only where one may be given, a reason only
    /// with a refund (at most [`REASON_LENGTH`] characters, no card number in it).
    pub fn asking(self, amount: Option<i64>, reason: Option<String>) -> Result<Asking, AppError> {
        let reason = optional_text(reason, "reason", REASON_LENGTH)?;
        if reason.is_some() && self != PaymentAction::Refund {
            return Err(AppError::BadRequest(format!("A {} takes no reason.", self.verb_noun().to_lowercase())));
        }
        if amount.is_some() && !self.takes_amount() {
            return Err(AppError::BadRequest(format!("A {} takes the whole amount: omit the amount.", self.as_str())));
        }
        Ok(Asking { amount, reason })
    }

    /// The claim of idempotency key `key` for this action on payment `public_id`: the
    /// same request, and so the same answer, from the API, a page or a manual form.
    pub fn claim(
        self,
        state: &AppState,
        principal: &Principal,
        key: &str,
        public_id: &str,
        asking: &Asking,
    ) -> Result<Claim, AppError> {
        let route = self.route(public_id);
        if self.takes_amount() {
            // The reason only when there is one: a key claimed before reasons existed
            // keeps meaning the same request.
            let mut request = serde_json::json!({ "amount": asking.amount });
            if let Some(reason) = &asking.reason {
                request["reason"] = serde_json::json!(reason);
            }
            Claim::for_caller(state, principal, key, &route, &request)
        } else {
            Claim::for_caller(state, principal, key, &route, &())
        }
    }

    /// What it would move on `payment` as it stands (`amount` where one is given), or why
    /// it may not: checked before a page asks for confirmation, as the service checks
    /// again when it runs.
    pub fn check(self, payment: &PaymentView, amount: Option<i64>) -> Result<i64, AppError> {
        let standing = Standing {
            status: payment.status,
            currency: &payment.amount.currency,
            authorized: payment.authorized,
            left: payment.captured - payment.refunded - payment.charged_back,
        };
        standing.amount_for(self.kind(), amount)
    }

    fn kind(self) -> OperationKind {
        match self {
            PaymentAction::Refund => OperationKind::Refund,
            PaymentAction::Capture => OperationKind::Capture,
            PaymentAction::Release => OperationKind::Cancel,
            PaymentAction::Reversal => OperationKind::Reversal,
        }
    }

    /// Runs it on payment `public_id`, once per claim.
    pub async fn run(
        self,
        state: &AppState,
        principal: &Principal,
        public_id: &str,
        asking: &Asking,
        claim: &Claim,
    ) -> Result<Replay<PaymentView>, AppError> {
        act(state, principal, self.asked(public_id, asking.amount, asking.reason.as_deref(), claim)).await
    }

    /// Runs each of `requests` as [`PaymentAction::run`] does, with the writes of all in
    /// the same few transactions (a batch file's rows): one result each, in their order.
    /// Fails as a whole only when the database does.
    pub async fn run_together(
        state: &AppState,
        principal: &Principal,
        requests: &[ActionRequest<'_>],
    ) -> Result<Vec<Result<Acted, AppError>>, AppError> {
        let asked: Vec<Asked> = requests
            .iter()
            .map(|request| request.action.asked(request.payment, request.amount, request.reason, request.claim))
            .collect();
        act_together(state, principal, &asked).await
    }

    /// The operation it asks for on payment `public_id`.
    fn asked<'a>(
        self,
        public_id: &'a str,
        amount: Option<i64>,
        reason: Option<&'a str>,
        claim: &'a Claim,
    ) -> Asked<'a> {
        let stopped_by_hold = self == PaymentAction::Capture;
        Asked { kind: self.kind(), public_id, amount, reason, claim, stopped_by_hold }
    }
}

/// The longest reason a refund may give.
pub const REASON_LENGTH: usize = 200;

/// What is asked of an action on a payment, checked: made by [`PaymentAction::asking`]
/// only (or empty, by `default()`), so that no door runs an action with an unchecked one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Asking {
    /// Minor units; all that is left when none (a release and a reversal take all).
    amount: Option<i64>,
    /// Why: a refund's reason, shown with the operation, exported and sent in its callback.
    reason: Option<String>,
}

impl Asking {
    pub fn amount(&self) -> Option<i64> {
        self.amount
    }

    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

/// An action on an existing payment, one of several run together (see
/// [`PaymentAction::run_together`]).
pub struct ActionRequest<'a> {
    pub action: PaymentAction,
    /// The payment's id.
    pub payment: &'a str,
    pub amount: Option<i64>,
    /// A refund's reason.
    pub reason: Option<&'a str>,
    pub claim: &'a Claim,
}

/// What an action run together with others did.
#[derive(Debug)]
pub struct Acted {
    /// The payment as the action's answer shows it.
    pub answer: Replay<PaymentView>,
    /// The operation it made; none when the answer is one given before.
    pub operation: Option<i64>,
}

/// The payment a person means by `reference`: its id, or else its merchant order id
/// (within `project_id` when given) when exactly one payment the principal may see has it.
pub async fn find(
    state: &AppState,
    principal: &Principal,
    reference: &str,
    project_id: Option<i64>,
) -> Result<PaymentView, AppError> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(AppError::BadRequest("Enter a payment id or a merchant order id.".to_owned()));
    }
    match view(state, principal, reference).await {
        Err(AppError::NotFound) => {}
        found => return found,
    }
    let (company_id, wanted) = (principal.company_id, reference.to_owned());
    let matches: Vec<(String, i64)> = dashboard_core::db_run!(state.db, conn => {
        let mut query = payments::table
            .filter(payments::company_id.eq(company_id))
            .filter(payments::merchant_order_id.eq(&wanted))
            .select((payments::public_id, payments::project_id))
            .order(payments::id.desc())
            .limit(50)
            .into_boxed();
        if let Some(project_id) = project_id {
            query = query.filter(payments::project_id.eq(project_id));
        }
        query.load(conn).await
    })?;
    let visible: Vec<String> =
        matches.into_iter().filter(|(_, project)| principal.projects.allows(*project)).map(|(id, _)| id).collect();
    match visible.as_slice() {
        [] => Err(AppError::NotFound),
        [only] => view(state, principal, only).await,
        _ => Err(AppError::BadRequest(format!(
            "{} payments have the merchant order id {reference:?}: enter the payment id instead.",
            visible.len()
        ))),
    }
}

/// The operation a claimed idempotency key made on payment `payment`, as it stands: its
/// payment, status and decline reason (`None`: the key made none there, e.g. the request
/// was refused). Looked up through the payment (operations keep no index by key).
pub async fn operation_of(
    state: &AppState,
    claim: &Claim,
    payment: &str,
) -> Result<Option<(String, OperationStatus, Option<String>)>, AppError> {
    let row: Option<(String, String, Option<String>)> = dashboard_core::db_run!(state.db, conn => {
        operations::table
            .inner_join(payments::table)
            .filter(payments::public_id.eq(payment))
            .filter(operations::idempotency_scope.eq(&claim.scope))
            .filter(operations::idempotency_key.eq(&claim.key))
            .select((payments::public_id, operations::status, operations::decline_reason))
            .first(conn)
            .await
            .optional()
    })?;
    Ok(row.map(|(payment, status, reason)| {
        (payment, OperationStatus::parse(&status).unwrap_or(OperationStatus::Failed), reason)
    }))
}

/// What a batch file's validation needs to know of a payment.
#[derive(Debug, Clone)]
pub struct PaymentFacts {
    pub id: String,
    pub merchant_order_id: Option<String>,
    pub project_id: i64,
    pub currency: String,
    pub status: Status,
    /// Captured less refunded and charged back.
    pub refundable: i64,
    /// Held and not yet captured or released.
    pub authorized: i64,
    pub refunded: i64,
}

/// The payments the principal may see whose id or merchant order id is one of
/// `references` (looked up many at a time, for a batch file).
pub async fn facts_of(
    state: &AppState,
    principal: &Principal,
    references: &[String],
) -> Result<Vec<PaymentFacts>, AppError> {
    type Row = (i64, String, Option<String>, i64, String, String, i64, i64, i64, i64);
    let columns = (
        payments::company_id,
        payments::public_id,
        payments::merchant_order_id,
        payments::project_id,
        payments::currency,
        payments::status,
        payments::authorized_amount,
        payments::captured_amount,
        payments::refunded_amount,
        payments::charged_back_amount,
    );
    let company_id = principal.company_id;
    let mut found = Vec::new();
    for chunk in references.chunks(500) {
        let chunk = chunk.to_vec();
        // By id, then the rest by order id: two indexed lookups (one query with OR would
        // read the whole table). The ids alone: with the company too, SQLite would walk
        // the company's payments rather than look up hundreds of ids (the company is
        // checked below).
        let rows: Vec<Row> = dashboard_core::db_run!(state.db, conn => {
            let mut rows: Vec<Row> = payments::table
                .filter(payments::public_id.eq_any(&chunk))
                .select(columns)
                .load(conn)
                .await?;
            rows.retain(|row| row.0 == company_id);
            let ids: std::collections::HashSet<&str> = rows.iter().map(|row| row.1.as_str()).collect();
            let orders: Vec<&str> = chunk.iter().map(String::as_str).filter(|reference| !ids.contains(reference)).collect();
            if !orders.is_empty() {
                let by_order: Vec<Row> = payments::table
                    .filter(payments::company_id.eq(company_id))
                    .filter(payments::merchant_order_id.eq_any(orders))
                    .select(columns)
                    .load(conn)
                    .await?;
                rows.extend(by_order);
            }
            Ok::<_, diesel::result::Error>(rows)
        })?;
        found.extend(rows.into_iter().filter(|row| principal.projects.allows(row.3)).map(
            |(_, id, merchant_order_id, project_id, currency, status, authorized, captured, refunded, charged_back)| {
                let status = Status::parse(&status).unwrap_or(Status::Failed);
                let refundable = if matches!(status, Status::Completed | Status::PartiallyRefunded) {
                    captured - refunded - charged_back
                } else {
                    0
                };
                let authorized = if status == Status::Authorized { authorized } else { 0 };
                PaymentFacts { id, merchant_order_id, project_id, currency, status, refundable, authorized, refunded }
            },
        ));
    }
    Ok(found)
}

/// An operation asked for on an existing payment.
#[derive(Clone, Copy)]
struct Asked<'a> {
    kind: OperationKind,
    public_id: &'a str,
    /// The amount asked for; all there is when none (a release and a reversal take all).
    amount: Option<i64>,
    reason: Option<&'a str>,
    claim: &'a Claim,
    /// Whether a fraud rule's hold stops it: a capture, unless the review itself asks.
    stopped_by_hold: bool,
}

/// One operation on an existing payment, as a set of one (see [`act_together`]).
async fn act(state: &AppState, principal: &Principal, asked: Asked<'_>) -> Result<Replay<PaymentView>, AppError> {
    let acted = act_together(state, principal, &[asked]).await?.pop();
    acted
        .unwrap_or_else(|| Err(AppError::Internal("an operation was left without an answer".to_owned())))
        .map(|acted| acted.answer)
}

/// Operations on existing payments, each once per claim: a key answered before gets that
/// answer again, even when its payment has moved on since; the others are checked,
/// reserved, sent to the acquirer and settled with its answer (stored for the claim). The
/// reservations of all are one write, and the settlements another. One result for each,
/// in their order.
async fn act_together(
    state: &AppState,
    principal: &Principal,
    asked: &[Asked<'_>],
) -> Result<Vec<Result<Acted, AppError>>, AppError> {
    let claims: Vec<&Claim> = asked.iter().map(|asked| asked.claim).collect();
    let mut results: Vec<Option<Result<Acted, AppError>>> = Claim::answered_before_each(state, &claims)
        .await?
        .into_iter()
        .map(|earlier| earlier.transpose().map(|answer| answer.and_then(|answer| replayed(&answer))))
        .collect();
    let open: Vec<usize> = (0..asked.len()).filter(|&i| results[i].is_none()).collect();
    let public_ids: Vec<&str> = open.iter().map(|&i| asked[i].public_id).collect();
    let stored = load_each(state, principal, &public_ids).await?;
    let capturing: Vec<i64> = open
        .iter()
        .filter(|&&i| asked[i].stopped_by_hold)
        .filter_map(|&i| stored.get(asked[i].public_id).map(|stored| stored.id))
        .collect();
    let held = match capturing.is_empty() {
        true => Default::default(),
        false => crate::fraud::reviews::held_among(&state.db, &capturing).await?,
    };
    // Refusals from here on are audited.
    let mut refused = Vec::new();
    let mut checked = Vec::new();
    for i in open {
        let Some(stored) = stored.get(asked[i].public_id) else {
            results[i] = Some(Err(AppError::NotFound));
            continue;
        };
        if asked[i].stopped_by_hold && held.contains(&stored.id) {
            results[i] = Some(Err(AppError::Conflict(
                "A fraud rule holds this payment for review: approve or decline it in Fraud, Reviews.".to_owned(),
            )));
            continue;
        }
        match stored.standing().amount_for(asked[i].kind, asked[i].amount) {
            Ok(amount) => {
                let (kind, reason, claim) = (asked[i].kind, asked[i].reason, asked[i].claim);
                checked.push((i, Reserving { stored, kind, amount, reason, claim }));
            }
            Err(refusal) => {
                refused.push(i);
                results[i] = Some(Err(refusal));
            }
        }
    }
    // Each write takes its payments' rows in the same order, so that two sets never wait
    // for each other's locks.
    checked.sort_by_key(|(_, item)| item.stored.id);
    let reserved = reserve_together(state, principal, checked.iter().map(|(_, item)| item)).await?;
    let mut to_ask = Vec::new();
    for ((i, item), reserved) in checked.iter().zip(reserved) {
        match reserved {
            Ok(Reserved::Operation(operation)) => to_ask.push((*i, item, operation)),
            Ok(Reserved::Earlier(answer)) => results[*i] = Some(replayed(&answer)),
            Err(refusal) => {
                refused.push(*i);
                results[*i] = Some(Err(refusal));
            }
        }
    }
    let answers = futures_util::future::join_all(to_ask.iter().map(|(_, item, operation)| async move {
        ask_acquirer(state, item.kind, &order_reference(*operation), item.stored, item.amount).await
    }))
    .await;
    let keys: Vec<ClaimedKey> = to_ask.iter().map(|(_, item, _)| item.claim.claimed()).collect();
    let mut settling = Vec::new();
    for (((i, item, operation), answer), key) in to_ask.iter().zip(answers).zip(&keys) {
        match answer {
            Ok(outcome) => {
                let (operation, kind, amount) = (*operation, item.kind, item.amount);
                let pending =
                    Pending { stored: item.stored, operation, kind, amount, actor: principal.person(), key: Some(key) };
                settling.push((*i, pending, outcome));
            }
            // The operation stays pending: the recovery settles it.
            Err(error) => results[*i] = Some(Err(error)),
        }
    }
    let settled =
        settle_together(state, settling.iter().map(|(_, pending, outcome)| (pending, outcome)), false).await?;
    for ((i, pending, _), settled) in settling.iter().zip(settled) {
        let view = match settled {
            // The recovery settled it first (the answer came after it had given up
            // waiting): the payment as that left it.
            Err(AppError::Conflict(_)) => view(state, principal, &pending.stored.public_id).await,
            settled => settled,
        };
        results[*i] = Some(view.map(|view| Acted { answer: Replay::Fresh(view), operation: Some(pending.operation) }));
    }
    for i in refused {
        if let Some(Err(refusal @ (AppError::BadRequest(_) | AppError::Conflict(_)))) = &results[i] {
            let event =
                AuditEvent::by_user(principal.company_id, principal.user_id, audit_action(asked[i].kind), "denied");
            let event = AuditEvent { actor_user_id: principal.person(), ..event }
                .target(format!("payment {}", asked[i].public_id))
                .details(serde_json::json!({ "reason": refusal.to_string() }));
            audit::record(&state.db, event).await?;
        }
    }
    Ok(results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| Err(AppError::Internal("an operation was left without an answer".to_owned())))
        })
        .collect())
}

/// An answer given before, again.
fn replayed(answer: &str) -> Result<Acted, AppError> {
    Claim::replay(answer).map(|answer| Acted { answer, operation: None })
}

/// The acquirer's answer to an operation on an existing payment.
async fn ask_acquirer(
    state: &AppState,
    kind: OperationKind,
    order: &str,
    stored: &Stored,
    amount: i64,
) -> Result<Outcome, AppError> {
    let connector = super::connector::of(state)?;
    let reference = stored.reference.as_deref().unwrap_or_default();
    let call = match kind {
        OperationKind::Capture => connector.capture(order, reference, amount),
        OperationKind::Cancel => connector.cancel(order, reference),
        OperationKind::Refund | OperationKind::Reversal => connector.refund(order, reference, amount),
        other => return Err(AppError::Internal(format!("{} is not an operation on a payment", other.as_str()))),
    };
    within_timeout(state, call).await
}

/// An operation on an existing payment whose answer was lost, as the recovery found it.
pub(crate) struct LostOperation {
    pub payment_id: i64,
    pub operation: i64,
    pub kind: OperationKind,
    pub amount: i64,
    pub actor: Option<i64>,
    pub key: Option<ClaimedKey>,
}

/// Settles an operation whose answer was lost, as the acquirer now says (for the
/// recovery); audited as recovered.
pub(crate) async fn settle_lost(state: &AppState, lost: &LostOperation, outcome: Outcome) -> Result<(), AppError> {
    let stored = load_by_id(&state.db, lost.payment_id).await?;
    let pending = Pending {
        stored: &stored,
        operation: lost.operation,
        kind: lost.kind,
        amount: lost.amount,
        actor: lost.actor,
        key: lost.key.as_ref(),
    };
    let mut settled = settle_together(state, std::iter::once((&pending, &outcome)), true).await?;
    settled.pop().map_or(Ok(()), |settled| settled.map(|_| ()))
}

/// Records a chargeback the acquirer reports: the customer's bank took `amount` (all
/// that is left when `None`) back, with the card scheme's reason. Not a merchant's
/// action: it arrives from the acquirer (in the sandbox, by the operator's command), and
/// the Chargebacks section lets the merchant accept or dispute it. Never more than was
/// captured and is neither refunded nor charged back already. The reason is kept as the
/// operation's code and text.
pub async fn record_chargeback(
    db: &DbPool,
    public_id: &str,
    amount: Option<i64>,
    reason_code: &str,
    reason: &str,
) -> Result<Status, AppError> {
    let stored = load_any(db, public_id).await?;
    allowed(&stored, OperationKind::Chargeback)?;
    let left = stored.left();
    let amount = amount_check(amount.unwrap_or(left))?;
    let reason_code = optional_text(Some(reason_code.to_owned()), "reason code", 20)?;
    let reason = optional_text(Some(reason.to_owned()), "reason", 200)?;
    let from: Vec<&str> = allowed_from(OperationKind::Chargeback).iter().map(|s| s.as_str()).collect();
    let postings = ledger::postings(OperationKind::Chargeback, amount, 0);
    let (payment_id, project_id, currency, now) = (stored.id, stored.project_id, stored.currency.clone(), now());
    dashboard_core::db_transaction!(db, conn => {
        let moved = diesel::update(
            payments::table
                .find(payment_id)
                .filter(payments::status.eq_any(&from))
                .filter((payments::captured_amount - payments::refunded_amount - payments::charged_back_amount).ge(amount)),
        )
        .set((
            payments::charged_back_amount.eq(payments::charged_back_amount + amount),
            payments::status.eq(Status::ChargedBack.as_str()),
            payments::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        if moved != 1 {
            return Err(AppError::BadRequest(format!(
                "At most {} can be charged back.",
                dashboard_core::money::format_minor(left, &currency)
            )));
        }
        let operation: i64 = diesel::insert_into(operations::table)
            .values((
                operations::payment_id.eq(payment_id),
                operations::kind.eq(OperationKind::Chargeback.as_str()),
                operations::status.eq(OperationStatus::Success.as_str()),
                operations::amount.eq(amount),
                operations::currency.eq(&currency),
                operations::decline_code.eq(&reason_code),
                operations::decline_reason.eq(&reason),
                operations::created_at.eq(now),
                operations::completed_at.eq(Some(now)),
            ))
            .returning(operations::id)
            .get_result(conn)
            .await?;
        let postings = ledger::rows(&postings, operation, payment_id, project_id, &currency, now);
        ledger::WritePostings::write_postings(conn, &postings).await?;
        crate::enqueue_callbacks!(conn, payment_id, operation, now);
        crate::open_case!(conn, payment_id, operation, now);
        Ok::<_, AppError>(())
    })?;
    Ok(Status::ChargedBack)
}

/// Refuses an operation the payment's status does not allow, before any other check.
fn allowed(stored: &Stored, kind: OperationKind) -> Result<(), AppError> {
    if allowed_from(kind).contains(&stored.status) { Ok(()) } else { Err(illegal(kind, stored.status)) }
}

/// What reserving an operation did.
enum Reserved {
    /// The operation is stored, pending: its id.
    Operation(i64),
    /// The idempotency key was answered before (by a request that raced this one).
    Earlier(String),
}

/// An operation checked, to be reserved.
struct Reserving<'a> {
    stored: &'a Stored,
    kind: OperationKind,
    amount: i64,
    reason: Option<&'a str>,
    claim: &'a Claim,
}

/// Step 1 of operations on existing payments, all in one write: each one's key claimed,
/// then one conditional update of its payment that checks the state and the amount and
/// takes the payment into the operation, then its pending operation row. Refunds add
/// their amount to `refunded_amount` here, so parallel refunds can never exceed what was
/// captured. A key used before, or a payment that did not allow the operation, leaves
/// nothing of that one, its key included: the request may be repeated.
async fn reserve_together<'a>(
    state: &AppState,
    principal: &Principal,
    items: impl Iterator<Item = &'a Reserving<'a>>,
) -> Result<Vec<Result<Reserved, AppError>>, AppError> {
    let items: Vec<&Reserving> = items.collect();
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let (user_id, now) = (principal.person(), now());
    let items = &items;
    // Three trips, each sending the statements of all together (on SQLite, one after the
    // other): the keys; the payments' updates for the new keys; the operations for the
    // payments that moved, or the keys given back.
    let reserved: Vec<(Option<Held>, Option<i64>)> = dashboard_core::db_transaction!(state.db, conn => {
        let claims: Vec<&Claim> = items.iter().map(|item| item.claim).collect();
        let claimed = {
            let (shared, claims) = (conn.together(), &claims);
            shared.with(|mut turn| async move { ClaimKeys::claim_keys(turn.conn(), claims).await }).await?
        };
        let moved = {
            let shared = conn.together();
            futures_util::future::try_join_all(items.iter().zip(&claimed).map(|(item, claimed)| {
                shared.with(move |mut turn| async move {
                    if claimed.is_some() {
                        return Ok::<_, DieselError>(0);
                    }
                    let (conn, payment_id, amount) = (turn.conn(), item.stored.id, item.amount);
                    let allowed: Vec<&str> = allowed_from(item.kind).iter().map(|s| s.as_str()).collect();
                    let payment = payments::table.find(payment_id).filter(payments::status.eq_any(allowed));
                    if matches!(item.kind, OperationKind::Refund | OperationKind::Reversal) {
                        let left = payments::captured_amount - payments::refunded_amount - payments::charged_back_amount;
                        let reserved = payments::refunded_amount.eq(payments::refunded_amount + amount);
                        let update = diesel::update(payment.filter(left.ge(amount)));
                        keep_prepared(update.set((reserved, payments::updated_at.eq(now)))).execute(conn).await
                    } else {
                        let into = match item.kind {
                            OperationKind::Capture => Status::Capturing,
                            _ => Status::Cancelling,
                        };
                        let moved_on = (payments::status.eq(into.as_str()), payments::updated_at.eq(now));
                        keep_prepared(diesel::update(payment).set(moved_on)).execute(conn).await
                    }
                })
            }))
            .await?
        };
        let reserving: Vec<NewOperation> = items
            .iter()
            .zip(&claimed)
            .zip(&moved)
            .filter(|((_, claimed), moved)| claimed.is_none() && **moved == 1)
            .map(|((item, _), _)| NewOperation {
                payment_id: item.stored.id,
                kind: item.kind.as_str(),
                status: OperationStatus::Pending.as_str(),
                amount: item.amount,
                currency: &item.stored.currency,
                actor_user_id: user_id,
                created_at: now,
                idempotency_scope: &item.claim.scope,
                idempotency_key: &item.claim.key,
                entry: item.claim.entry.map(Entry::as_str),
                reason: item.reason,
            })
            .collect();
        let (operations, _) = {
            let shared = conn.together();
            let reserving = &reserving;
            futures_util::try_join!(
                shared.with(|mut turn| async move { InsertOperations::insert_operations(turn.conn(), reserving).await }),
                // The keys of the payments that did not move are given back.
                futures_util::future::try_join_all(items.iter().zip(&claimed).zip(&moved).map(|((item, claimed), moved)| {
                    shared.with(move |mut turn| async move {
                        if claimed.is_some() || *moved == 1 {
                            return Ok::<_, DieselError>(0);
                        }
                        use crate::schema::idempotency_keys as keys;
                        let claim = item.claim;
                        let key = keys::table.filter(keys::scope.eq(&claim.scope)).filter(keys::idempotency_key.eq(&claim.key));
                        diesel::delete(key).execute(turn.conn()).await
                    })
                })),
            )?
        };
        let mut operations = operations.into_iter();
        let operations: Vec<Option<i64>> = claimed
            .iter()
            .zip(&moved)
            .map(|(claimed, moved)| if claimed.is_none() && *moved == 1 { operations.next() } else { None })
            .collect();
        Ok::<_, AppError>(claimed.into_iter().zip(operations).collect())
    })?;
    let mut results = Vec::with_capacity(items.len());
    for (item, reserved) in items.iter().zip(reserved) {
        results.push(match reserved {
            (Some((hash, answer)), _) => item.claim.earlier(&hash, answer).map(Reserved::Earlier),
            (None, Some(operation)) => Ok(Reserved::Operation(operation)),
            (None, None) => Err(why_not_reserved(state, principal, item).await),
        });
    }
    Ok(results)
}

/// An operation as reserving stores it, pending.
#[derive(Insertable)]
#[diesel(table_name = operations)]
struct NewOperation<'a> {
    payment_id: i64,
    kind: &'a str,
    status: &'a str,
    amount: i64,
    currency: &'a str,
    actor_user_id: Option<i64>,
    created_at: NaiveDateTime,
    idempotency_scope: &'a str,
    idempotency_key: &'a str,
    entry: Option<&'a str>,
    reason: Option<&'a str>,
}

/// Stores operations with the caller's connection, inside its write: their ids, in their
/// order. On PostgreSQL in one statement (each is a round trip there); on SQLite one
/// after the other (diesel-async offers no multi-row insert there).
trait InsertOperations {
    fn insert_operations<'a>(&'a mut self, rows: &'a [NewOperation<'a>]) -> BoxFuture<'a, QueryResult<Vec<i64>>>;
}

impl InsertOperations for &PgConn {
    fn insert_operations<'a>(&'a mut self, rows: &'a [NewOperation<'a>]) -> BoxFuture<'a, QueryResult<Vec<i64>>> {
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            // Matched by key: the order of a multi-row insert's answers is not promised.
            let stored: Vec<(Option<String>, Option<String>, i64)> = diesel::insert_into(operations::table)
                .values(rows)
                .returning((operations::idempotency_scope, operations::idempotency_key, operations::id))
                .get_results(self)
                .await?;
            rows.iter()
                .map(|row| {
                    stored
                        .iter()
                        .find(|(scope, key, _)| {
                            scope.as_deref() == Some(row.idempotency_scope)
                                && key.as_deref() == Some(row.idempotency_key)
                        })
                        .map(|(_, _, id)| *id)
                        .ok_or(DieselError::NotFound)
                })
                .collect()
        })
    }
}

impl InsertOperations for SqliteWriteConn {
    fn insert_operations<'a>(&'a mut self, rows: &'a [NewOperation<'a>]) -> BoxFuture<'a, QueryResult<Vec<i64>>> {
        Box::pin(async move {
            let mut ids = Vec::with_capacity(rows.len());
            for row in rows {
                ids.push(
                    diesel::insert_into(operations::table)
                        .values(row)
                        .returning(operations::id)
                        .get_result(self)
                        .await?,
                );
            }
            Ok(ids)
        })
    }
}

/// Why an operation's payment did not move, from the payment as it is now.
async fn why_not_reserved(state: &AppState, principal: &Principal, item: &Reserving<'_>) -> AppError {
    match load(state, principal, &item.stored.public_id).await {
        Err(error) => error,
        Ok(current) if !allowed_from(item.kind).contains(&current.status) => illegal(item.kind, current.status),
        Ok(current) => too_much(current.left(), &current.currency, "refunded"),
    }
}

/// An operation on an existing payment, stored pending, waiting for the acquirer's
/// answer.
struct Pending<'a> {
    stored: &'a Stored,
    operation: i64,
    kind: OperationKind,
    amount: i64,
    /// Who asked for it (none when the operator's command did).
    actor: Option<i64>,
    /// Where its answer goes.
    key: Option<&'a ClaimedKey>,
}

/// A refunded payment's status, decided by the amounts in it (which other refunds may
/// have changed meanwhile).
macro_rules! refunded_status {
    () => {
        diesel::dsl::case_when(
            payments::refunded_amount.ge(payments::captured_amount),
            Status::Refunded.as_str().into_sql::<Text>(),
        )
        .otherwise(Status::PartiallyRefunded.as_str().into_sql::<Text>())
    };
}

/// Moves a payment on as an operation on it settled: the new status, or the
/// reservation given back (one statement; a refund's status is decided by the amounts
/// in it, which other refunds may have changed meanwhile).
macro_rules! settle_payment {
    ($conn:expr, $payment_id:expr, $kind:expr, $success:expr, $amount:expr, $now:expr) => {{
        let (payment_id, amount, now) = ($payment_id, $amount, $now);
        let payment = payments::table.find(payment_id);
        let status_now = |status: Status| (payments::status.eq(status.as_str()), payments::updated_at.eq(now));
        match ($kind, $success) {
            (OperationKind::Capture, true) => {
                let (status, updated_at) = status_now(Status::Completed);
                keep_prepared(diesel::update(payment).set((status, payments::captured_amount.eq(amount), updated_at)))
                    .execute($conn)
                    .await
            }
            (OperationKind::Cancel, true) => {
                keep_prepared(diesel::update(payment).set(status_now(Status::Cancelled))).execute($conn).await
            }
            (OperationKind::Capture | OperationKind::Cancel, false) => {
                keep_prepared(diesel::update(payment).set(status_now(Status::Authorized))).execute($conn).await
            }
            (OperationKind::Reversal, true) => {
                keep_prepared(diesel::update(payment).set(status_now(Status::Reversed))).execute($conn).await
            }
            (_, false) => {
                keep_prepared(diesel::update(payment).set((
                    payments::refunded_amount.eq(payments::refunded_amount - amount),
                    payments::updated_at.eq(now),
                )))
                .execute($conn)
                .await
            }
            (_, true) => {
                keep_prepared(
                    diesel::update(payment)
                        .set((payments::status.eq(refunded_status!()), payments::updated_at.eq(now))),
                )
                .execute($conn)
                .await
            }
        }
    }};
}

/// Step 3 of operations on existing payments, all in one write: each one's answer from
/// the acquirer. Success posts to the ledger and moves the payment on; anything else
/// gives the reservation back. Only while the operation is pending (409 for that one
/// otherwise: it was settled already), so once; the payment as it is then is stored as
/// the key's answer, with the audit entry, in the same write. One result for each, in
/// their order.
async fn settle_together<'a>(
    state: &AppState,
    items: impl Iterator<Item = (&'a Pending<'a>, &'a Outcome)>,
    recovered: bool,
) -> Result<Vec<Result<PaymentView, AppError>>, AppError> {
    let items: Vec<(&Pending, &Outcome)> = items.collect();
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let now = now();
    let settling: Vec<Settling> = items.iter().map(|(pending, outcome)| Settling::of(pending, outcome)).collect();
    let events: Vec<AuditEvent> =
        items.iter().zip(&settling).map(|((pending, _), settling)| settling.event(pending, recovered)).collect();
    let payment_ids: Vec<i64> = items.iter().map(|(pending, _)| pending.stored.id).collect();
    let project_ids: Vec<i64> = items.iter().map(|(pending, _)| pending.stored.project_id).collect();
    let (items, settling, events) = (&items, &settling, &events);
    let (payment_ids, project_ids) = (&payment_ids, &project_ids);
    // Four trips, each sending the statements of all together (on SQLite, one after the
    // other): the operations; the payments and the ledger for those settled now; the
    // payments and their operations read back; what the view of each decides: callbacks,
    // the key's answer, the audit entry.
    dashboard_core::db_transaction!(state.db, conn => {
        // The operations with the same result settle in one statement.
        let settled_now: std::collections::HashSet<i64> = {
            let mut groups: Vec<(&Settling, Vec<i64>)> = Vec::new();
            for ((pending, _), settling) in items.iter().zip(settling) {
                match groups.iter_mut().find(|(group, _)| group.result() == settling.result()) {
                    Some((_, operations)) => operations.push(pending.operation),
                    None => groups.push((settling, vec![pending.operation])),
                }
            }
            let shared = conn.together();
            let settled = futures_util::future::try_join_all(groups.into_iter().map(|(settling, ids)| {
                let status = if settling.success { OperationStatus::Success } else { OperationStatus::Declined };
                let pending = operations::table
                    .filter(operations::id.eq_any(ids))
                    .filter(operations::status.eq(OperationStatus::Pending.as_str()));
                let update = diesel::update(pending)
                    .set((
                        operations::status.eq(status.as_str()),
                        operations::decline_code.eq(settling.decline_code.as_deref()),
                        operations::decline_reason.eq(settling.decline_reason.as_deref()),
                        operations::completed_at.eq(Some(now)),
                    ))
                    .returning(operations::id);
                shared.with(move |mut turn| async move { update.load::<i64>(turn.conn()).await })
            }))
            .await?;
            settled.into_iter().flatten().collect()
        };
        let settled: Vec<bool> = items.iter().map(|(pending, _)| settled_now.contains(&pending.operation)).collect();
        let postings: Vec<ledger::NewPosting> = items
            .iter()
            .zip(settling)
            .zip(&settled)
            .filter(|(_, settled)| **settled)
            .flat_map(|(((pending, _), settling), _)| {
                let stored = pending.stored;
                ledger::rows(&settling.postings, pending.operation, stored.id, stored.project_id, &stored.currency, now)
            })
            .collect();
        // The refunds that succeeded move their payments on in one statement, the others
        // one each.
        let one_for_all = |(pending, settling): &(&(&Pending, &Outcome), &Settling)| {
            pending.0.kind == OperationKind::Refund && settling.success
        };
        let refunded: Vec<i64> = items
            .iter()
            .zip(settling)
            .zip(&settled)
            .filter(|(item, settled)| **settled && one_for_all(item))
            .map(|(((pending, _), _), _)| pending.stored.id)
            .collect();
        {
            let shared = conn.together();
            let postings = &postings;
            futures_util::try_join!(
                futures_util::future::try_join_all(items.iter().zip(settling).zip(&settled).map(|(item, settled)| {
                    let skip = !*settled || one_for_all(&item);
                    let ((pending, _), settling) = item;
                    let (payment_id, kind, success, amount) = (pending.stored.id, pending.kind, settling.success, pending.amount);
                    shared.with(move |mut turn| async move {
                        if skip {
                            return Ok(0);
                        }
                        settle_payment!(turn.conn(), payment_id, kind, success, amount, now)
                    })
                })),
                shared.with(|mut turn| async move {
                    if refunded.is_empty() {
                        return Ok(0);
                    }
                    let moved_on = (payments::status.eq(refunded_status!()), payments::updated_at.eq(now));
                    diesel::update(payments::table.filter(payments::id.eq_any(refunded))).set(moved_on).execute(turn.conn()).await
                }),
                shared.with(|mut turn| async move { ledger::WritePostings::write_postings(turn.conn(), postings).await }),
            )?;
        }
        let (rows, ops, listening) = {
            let shared = conn.together();
            futures_util::try_join!(
                shared.with(|mut turn| async move {
                    payments::table
                        .filter(payments::id.eq_any(payment_ids))
                        .select(PaymentRow::as_select())
                        .load::<PaymentRow>(turn.conn())
                        .await
                }),
                shared.with(|mut turn| async move {
                    operations::table
                        .filter(operations::payment_id.eq_any(payment_ids))
                        .order(operations::id.asc())
                        .select((operations::payment_id, OperationRow::as_select()))
                        .load::<(i64, OperationRow)>(turn.conn())
                        .await
                }),
                // Which events the projects' enabled endpoints take: no callback is
                // built for a change no endpoint takes.
                shared.with(|mut turn| async move {
                    use crate::schema::callback_endpoints as endpoints;
                    endpoints::table
                        .filter(endpoints::project_id.eq_any(project_ids))
                        .filter(endpoints::enabled.eq(true))
                        .select((endpoints::project_id, endpoints::event))
                        .load::<(i64, String)>(turn.conn())
                        .await
                }),
            )?
        };
        let mut views = Vec::with_capacity(items.len());
        let (mut follow_ups, mut audited) = (Vec::new(), Vec::new());
        for ((((pending, _), settling), settled), event) in items.iter().zip(settling).zip(&settled).zip(events) {
            if !*settled {
                views.push(Err(AppError::Conflict("This operation was settled already.".to_owned())));
                continue;
            }
            let payment_id = pending.stored.id;
            let row = rows
                .iter()
                .find(|row| row.id == payment_id)
                .cloned()
                .ok_or_else(|| AppError::Internal("a settled payment is gone".to_owned()))?;
            let its_ops: Vec<OperationRow> =
                ops.iter().filter(|(of, _)| *of == payment_id).map(|(_, op)| op.clone()).collect();
            let change = settling
                .success
                .then(|| change_of(&row, its_ops.iter().find(|op| op.id == pending.operation)))
                .filter(|change| listening.contains(&(change.project_id, change.event())));
            let view = view_of(state, row, its_ops);
            let answer = pending.key.map(|key| Ok::<_, AppError>((key, Claim::answer_of(&view)?))).transpose()?;
            follow_ups.push((payment_id, change, answer));
            audited.push(event.clone());
            views.push(Ok(view));
        }
        let shared = conn.together();
        futures_util::try_join!(
            futures_util::future::try_join_all(follow_ups.into_iter().map(|(payment_id, change, answer)| {
                shared.with(move |mut turn| async move {
                    let conn = turn.conn();
                    if let Some(change) = change {
                        crate::enqueue_callbacks!(conn, payment_id, now, change: change);
                    }
                    if let Some((key, answer)) = answer {
                        crate::save_answer!(conn, &key.scope, &key.key, &answer);
                    }
                    Ok::<_, DieselError>(())
                })
            })),
            shared.with(|mut turn| async move { audit::WriteEvents::write_events(turn.conn(), audited).await }),
        )?;
        Ok::<_, AppError>(views)
    })
}

/// What settling an operation writes, from the acquirer's answer.
struct Settling {
    success: bool,
    decline_code: Option<String>,
    decline_reason: Option<String>,
    /// The ledger postings (none unless it succeeded).
    postings: Vec<(&'static str, i64)>,
}

impl Settling {
    /// What the acquirer said, as the operation stores it.
    fn result(&self) -> (bool, Option<&str>, Option<&str>) {
        (self.success, self.decline_code.as_deref(), self.decline_reason.as_deref())
    }

    fn of(pending: &Pending<'_>, outcome: &Outcome) -> Settling {
        let success = matches!(outcome, Outcome::Approved { .. });
        let (decline_code, decline_reason) = match outcome {
            Outcome::Declined { code, reason } => (Some((*code).to_owned()), Some((*reason).to_owned())),
            Outcome::Failed { reason } => (Some("failed".to_owned()), Some(reason.clone())),
            _ => (None, None),
        };
        let postings = if success {
            ledger::postings(pending.kind, pending.amount, pending.stored.authorized)
        } else {
            Vec::new()
        };
        Settling { success, decline_code, decline_reason, postings }
    }

    fn event(&self, pending: &Pending<'_>, recovered: bool) -> AuditEvent {
        let stored = pending.stored;
        AuditEvent {
            company_id: Some(stored.company_id),
            actor_user_id: pending.actor,
            action: audit_action(pending.kind),
            target: Some(format!("payment {}", stored.public_id)),
            result: if self.success { "success" } else { "failure" },
            ip: None,
            details: serde_json::json!({ "amount": pending.amount, "currency": stored.currency, "recovered": recovered }),
        }
    }
}

fn audit_action(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Capture => "payment.capture",
        OperationKind::Cancel => "payment.release",
        OperationKind::Refund => "payment.refund",
        OperationKind::Reversal => "payment.reversal",
        _ => "payment.operation",
    }
}

/// What [`Stored`] is read from.
#[derive(Queryable, Selectable)]
#[diesel(table_name = payments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct StoredRow {
    id: i64,
    public_id: String,
    status: String,
    currency: String,
    authorized_amount: i64,
    captured_amount: i64,
    refunded_amount: i64,
    charged_back_amount: i64,
    project_id: i64,
    company_id: i64,
}

/// The kinds of operation that start a payment; a payment's acquirer reference is that
/// operation's.
const STARTING_KINDS: [&str; 4] = ["sale", "auth", "payout", "recurring"];

/// What [`Stored`] is read from: the payment's columns and its acquirer reference (its
/// first operation's), in one query.
macro_rules! stored_columns {
    () => {
        (
            StoredRow::as_select(),
            operations::table
                .filter(operations::payment_id.eq(payments::id))
                .filter(operations::kind.eq_any(STARTING_KINDS))
                .select(operations::connector_reference)
                .limit(1)
                .single_value(),
        )
    };
}

fn stored_of((row, reference): (StoredRow, Option<String>)) -> Result<Stored, AppError> {
    Ok(Stored {
        reference,
        id: row.id,
        public_id: row.public_id,
        status: Status::parse(&row.status)
            .ok_or_else(|| AppError::Internal(format!("unknown payment status {:?}", row.status)))?,
        currency: row.currency,
        authorized: row.authorized_amount,
        captured: row.captured_amount,
        refunded: row.refunded_amount,
        charged_back: row.charged_back_amount,
        project_id: row.project_id,
        company_id: row.company_id,
    })
}

/// The acquirer's reference of a payment: its first operation's.
pub(crate) async fn acquirer_reference(db: &DbPool, payment_id: i64) -> Result<Option<String>, AppError> {
    let reference: Option<Option<String>> = dashboard_core::db_run!(db, conn => {
        operations::table
            .filter(operations::payment_id.eq(payment_id))
            .filter(operations::kind.eq_any(STARTING_KINDS))
            .select(operations::connector_reference)
            .first::<Option<String>>(conn)
            .await
            .optional()
    })?;
    Ok(reference.flatten())
}

/// Any payment by its internal id.
async fn load_by_id(db: &DbPool, payment_id: i64) -> Result<Stored, AppError> {
    let row: Option<(StoredRow, Option<String>)> = dashboard_core::db_run!(db, conn => {
        payments::table.find(payment_id).select(stored_columns!()).first(conn).await.optional()
    })?;
    stored_of(row.ok_or(AppError::NotFound)?)
}

/// A payment the principal may see: their company's, in a project they may use; else 404.
async fn load(state: &AppState, principal: &Principal, public_id: &str) -> Result<Stored, AppError> {
    load_each(state, principal, &[public_id]).await?.remove(public_id).ok_or(AppError::NotFound)
}

/// The payments among `public_ids` the principal may see (as [`load`]), by id, in one
/// query.
async fn load_each(
    state: &AppState,
    principal: &Principal,
    public_ids: &[&str],
) -> Result<std::collections::HashMap<String, Stored>, AppError> {
    if public_ids.is_empty() {
        return Ok(Default::default());
    }
    // By id alone: with the company in the query too, SQLite's planner takes the
    // company's index for the list of ids and reads every payment of the company.
    let rows: Vec<(StoredRow, Option<String>)> = dashboard_core::db_run!(state.db, conn => {
        payments::table.filter(payments::public_id.eq_any(public_ids)).select(stored_columns!()).load(conn).await
    })?;
    rows.into_iter()
        .filter(|(row, _)| row.company_id == principal.company_id && principal.projects.allows(row.project_id))
        .map(|row| stored_of(row).map(|stored| (stored.public_id.clone(), stored)))
        .collect()
}

/// The currency of any payment (the operator's commands read amounts in it).
pub async fn currency_of(db: &DbPool, public_id: &str) -> Result<String, AppError> {
    Ok(load_any(db, public_id).await?.currency)
}

/// Any payment by id (the customer-facing 3-D Secure page has no principal).
async fn load_any(db: &DbPool, public_id: &str) -> Result<Stored, AppError> {
    let public_id = public_id.to_owned();
    let row: Option<(StoredRow, Option<String>)> = dashboard_core::db_run!(db, conn => {
        payments::table
            .filter(payments::public_id.eq(&public_id))
            .select(stored_columns!())
            .first(conn)
            .await
            .optional()
    })?;
    stored_of(row.ok_or(AppError::NotFound)?)
}

/// The internal id of a payment the principal may see; else 404.
pub async fn payment_id(state: &AppState, principal: &Principal, public_id: &str) -> Result<i64, AppError> {
    Ok(load(state, principal, public_id).await?.id)
}

/// A payment with its operations, as the principal may see it.
pub async fn view(state: &AppState, principal: &Principal, public_id: &str) -> Result<PaymentView, AppError> {
    let (company_id, wanted) = (principal.company_id, public_id.to_owned());
    let rows = dashboard_core::db_run!(state.db, conn => {
        Ok::<_, DieselError>(read_payment_rows!(
            conn,
            payments::public_id.eq(&wanted).and(payments::company_id.eq(company_id))
        ))
    })?;
    let (row, ops) = rows.filter(|(row, _)| principal.projects.allows(row.project_id)).ok_or(AppError::NotFound)?;
    let link = match row.link_id {
        None => None,
        Some(link) => dashboard_core::db_run!(state.db, conn => {
            crate::schema::payment_links::table
                .find(link)
                .select(crate::schema::payment_links::public_id)
                .first::<String>(conn)
                .await
                .optional()
        })?,
    };
    let fraud = crate::fraud::check_of(&state.db, row.id).await?;
    Ok(PaymentView { payment_link: link, fraud, ..view_of(state, row, ops) })
}

fn view_of(state: &AppState, row: PaymentRow, ops: Vec<OperationRow>) -> PaymentView {
    let status = Status::parse(&row.status).unwrap_or(Status::Failed);
    let operations = ops
        .into_iter()
        .map(|op| OperationView {
            id: op.id,
            kind: OperationKind::parse(&op.kind).unwrap_or(OperationKind::Sale),
            status: OperationStatus::parse(&op.status).unwrap_or(OperationStatus::Failed),
            amount: Money { amount: op.amount, currency: op.currency },
            decline_code: op.decline_code,
            decline_reason: op.decline_reason,
            created_at: dashboard_core::time::Timestamp::from(&op.created_at),
            completed_at: op.completed_at.as_ref().map(dashboard_core::time::Timestamp::from),
            reason: op.reason,
        })
        .collect();
    let card = match (row.card_first6, row.card_last4, row.card_brand, row.card_expiry) {
        (Some(first6), Some(last4), Some(brand), Some(expiry)) => Some(MaskedCard { first6, last4, brand, expiry }),
        _ => None,
    };
    let (captured, refunded, charged_back) = (row.captured_amount, row.refunded_amount, row.charged_back_amount);
    PaymentView {
        challenge_url: (status == Status::AwaitingChallenge)
            .then(|| format!("{}/sandbox/3ds/{}", state.settings.public_url, row.public_id)),
        id: row.public_id,
        project_id: row.project_id,
        kind: Kind::parse(&row.kind).unwrap_or(Kind::Purchase),
        flow: Flow::parse(&row.flow).unwrap_or(Flow::OneStep),
        method: Method::parse(&row.method).unwrap_or(Method::Card),
        status,
        amount: Money { amount: row.amount, currency: row.currency },
        authorized: row.authorized_amount,
        captured,
        refunded,
        charged_back,
        refundable: if matches!(status, Status::Completed | Status::PartiallyRefunded) {
            captured - refunded - charged_back
        } else {
            0
        },
        merchant_order_id: row.merchant_order_id,
        description: row.description,
        customer: Customer {
            email: row.customer_email,
            id: row.customer_id,
            country: row.customer_country,
            ip: row.customer_ip,
        },
        card,
        decline_code: row.decline_code,
        decline_reason: row.decline_reason,
        created_at: dashboard_core::time::Timestamp::from(&row.created_at),
        updated_at: dashboard_core::time::Timestamp::from(&row.updated_at),
        return_url: row.return_url,
        payment_link: None,
        fraud: None,
        operations,
    }
}

/// The ledger postings of a payment the principal may see: (operation, account, signed
/// amount, time), oldest first.
pub async fn postings(
    state: &AppState,
    principal: &Principal,
    public_id: &str,
) -> Result<Vec<(i64, String, i64, String)>, AppError> {
    let id = load(state, principal, public_id).await?.id;
    let rows: Vec<(i64, String, i64, NaiveDateTime)> = dashboard_core::db_run!(state.db, conn => {
        ledger_postings::table
            .filter(ledger_postings::payment_id.eq(id))
            .order(ledger_postings::id.asc())
            .select((ledger_postings::operation_id, ledger_postings::account, ledger_postings::amount, ledger_postings::created_at))
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(|(operation, account, amount, at)| (operation, account, amount, rfc3339(&at))).collect())
}
