//! The rules every payout follows, wherever it comes from (the API, the dashboard's form,
//! a batch file): it never sends more than the project's available balance in its
//! currency, also when many run at once; it stays within the project's payout limits;
//! and a person in a session confirms it with an SMS code bound to exactly this payout
//! (PSD2 dynamic linking: amount, currency, payee and project). An API token pays out
//! without a code, as documented (a token carries no second factor), under the same
//! balance and limits.

use serde::{Deserialize, Serialize};

use crate::schema::payout_limits;
use crate::service::NewPayout;
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::money::format_grouped;
use dashboard_core::sms::{self, Confirmation};
use dashboard_core::time::now;
use dashboard_core::{AppError, AppState};

/// How far back the daily limit looks.
pub const DAY: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A project's payout limits in one currency, in its minor units (none: no limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PayoutLimit {
    /// ISO 4217, one the platform supports.
    #[oai(validator(
        pattern = "^(AED|AUD|BGN|BHD|BRL|CAD|CHF|CLP|CNY|CZK|DKK|EUR|GBP|HKD|HUF|IDR|ILS|INR|ISK|JOD|JPY|KRW|KWD|MXN|MYR|NOK|NZD|OMR|PHP|PLN|RON|SAR|SEK|SGD|THB|TND|TRY|UAH|USD|VND|ZAR)$"
    ))]
    pub currency: String,
    /// The most one payout may send.
    pub per_payout: Option<i64>,
    /// The most the payouts of the last 24 hours may send together.
    pub per_day: Option<i64>,
}

/// What a project may still pay out in one currency, as read in the write that starts a
/// payout ([`read_funds!`](crate::read_funds)) or, unlocked, before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Funds {
    /// The merchant's balance from the ledger.
    pub balance: i64,
    /// Payouts started and not yet answered by the acquirer.
    pub on_their_way: i64,
    /// Payouts of the last 24 hours, answered or not (declined ones excepted).
    pub sent_today: i64,
    pub per_payout: Option<i64>,
    pub per_day: Option<i64>,
}

impl Funds {
    /// What may be paid out now.
    pub fn available(&self) -> i64 {
        self.balance - self.on_their_way
    }

    /// Whether a payout of `amount` may be made; else why not, in words.
    pub fn allow(&self, amount: i64, currency: &str) -> Result<(), AppError> {
        let money = |minor: i64| format_grouped(minor, currency);
        if let Some(limit) = self.per_payout
            && amount > limit
        {
            return Err(AppError::Unprocessable(format!(
                "A payout from this project may send at most {} at once.",
                money(limit)
            )));
        }
        if let Some(limit) = self.per_day
            && self.sent_today + amount > limit
        {
            return Err(AppError::Unprocessable(format!(
                "This payout would take the project's payouts of the last 24 hours to {}, above its daily limit of {}.",
                money(self.sent_today + amount),
                money(limit)
            )));
        }
        if amount > self.available() {
            return Err(AppError::Unprocessable(format!(
                "The project's available balance is {} (payouts on their way counted): a payout of {} cannot be made.",
                money(self.available().max(0)),
                money(amount)
            )));
        }
        Ok(())
    }
}

/// Locks the payouts of project `$project_id` in `$currency` with `$conn` until the
/// caller's write ends: it writes the project's limits row (created without limits on
/// the first payout). The write that starts a payout holds it while it checks the funds,
/// and the write that settles one holds it too, so a check waits for the payouts before
/// it to be stored and sees each of them either on its way or posted to the ledger,
/// never between. Purchases and refunds are not held up.
#[macro_export]
macro_rules! lock_payouts {
    ($conn:ident, $project_id:expr, $currency:expr) => {{
        use $crate::schema::payout_limits as __limits;
        let (__project, __currency): (i64, &str) = ($project_id, $currency);
        diesel::insert_into(__limits::table)
            .values((__limits::project_id.eq(__project), __limits::currency.eq(__currency)))
            .on_conflict((__limits::project_id, __limits::currency))
            .do_update()
            .set(__limits::currency.eq(diesel::upsert::excluded(__limits::currency)))
            .execute($conn)
            .await?;
    }};
}

/// Reads the [`Funds`](crate::payouts::Funds) of project `$project_id` in `$currency`
/// at `$now` with `$conn`.
#[macro_export]
macro_rules! read_funds {
    ($conn:ident, $project_id:expr, $currency:expr, $now:expr) => {{
        use $crate::schema::{ledger_postings as __postings, payments as __payments, payout_limits as __limits};
        let (__project, __currency, __now): (i64, &str, chrono::NaiveDateTime) = ($project_id, $currency, $now);
        let __merchant: Option<i64> = __postings::table
            .filter(__postings::project_id.eq(__project))
            .filter(__postings::currency.eq(__currency))
            .filter(__postings::account.eq($crate::ledger::MERCHANT))
            .select($crate::__private::core::db::sum_i64("ledger_postings.amount"))
            .first($conn)
            .await?;
        let __payouts = __payments::table
            .filter(__payments::project_id.eq(__project))
            .filter(__payments::currency.eq(__currency))
            .filter(__payments::kind.eq($crate::model::Kind::Payout.as_str()));
        let __waiting: Option<i64> = __payouts
            .filter(__payments::status.eq($crate::model::Status::Processing.as_str()))
            .select($crate::__private::core::db::sum_i64("payments.amount"))
            .first($conn)
            .await?;
        let __today: Option<i64> = __payouts
            .filter(
                __payments::status
                    .eq_any([$crate::model::Status::Processing.as_str(), $crate::model::Status::PaidOut.as_str()]),
            )
            .filter(__payments::created_at.ge(__now - $crate::payouts::DAY))
            .select($crate::__private::core::db::sum_i64("payments.amount"))
            .first($conn)
            .await?;
        let __limit: Option<(Option<i64>, Option<i64>)> = __limits::table
            .find((__project, __currency))
            .select((__limits::per_payout, __limits::per_day))
            .first($conn)
            .await
            .optional()?;
        let (__per_payout, __per_day) = __limit.unwrap_or((None, None));
        $crate::payouts::Funds {
            // The merchant's account is credit-normal: its balance is minus its sum.
            balance: -__merchant.unwrap_or(0),
            on_their_way: __waiting.unwrap_or(0),
            sent_today: __today.unwrap_or(0),
            per_payout: __per_payout,
            per_day: __per_day,
        }
    }};
}

/// The funds of a project in a currency now, unlocked: for a check before anything is
/// written (the write that starts a payout checks again, locked).
pub async fn funds(state: &AppState, project_id: i64, currency: &str) -> Result<Funds, AppError> {
    let now = now();
    dashboard_core::db_run!(state.db, conn => {
        Ok::<_, AppError>(crate::read_funds!(conn, project_id, currency, now))
    })
}

/// The payee as the code's message and the audit log show it: `card 4242…4242`.
pub(crate) fn payee_shown(first6: &str, last4: &str) -> String {
    format!("card {}…{last4}", first6.get(..4).unwrap_or_default())
}

/// A card as people read it: `card 4242…4242`.
pub fn card_shown(card: &crate::card::Card) -> String {
    payee_shown(card.number.first_digits(), card.number.last4())
}

/// What the code of `payout` is bound to, and what its message says.
async fn confirmation(state: &AppState, principal: &Principal, payout: &NewPayout) -> Result<Confirmation, AppError> {
    let project = dashboard_core::directory::visible_projects(&state.db, principal)
        .await?
        .into_iter()
        .find(|project| project.id == payout.project_id)
        .ok_or_else(|| AppError::BadRequest(format!("There is no project {} you may use.", payout.project_id)))?;
    Ok(Confirmation::Payout {
        amount_minor: payout.amount,
        currency: payout.currency.to_ascii_uppercase(),
        payee: card_shown(&payout.card),
        payee_key: payout.card.fingerprint(&state.secrets),
        project_id: project.id,
        project: project.name,
    })
}

/// A payout as the API takes it (the gateway's `POST /payouts` and the Manual payments
/// section's).
#[derive(poem_openapi::Object, Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct PayoutRequest {
    pub project_id: i64,
    pub amount: crate::service::Money,
    /// The card that receives the money.
    pub card: crate::card::CardInput,
    pub merchant_order_id: Option<String>,
    pub description: Option<String>,
    pub customer: Option<crate::service::Customer>,
    /// The code sent by SMS for exactly this payout (`POST /payouts/confirmations`): needed
    /// when a person pays out in a dashboard session, not with an API token. Not part of
    /// the request an Idempotency-Key is bound to.
    #[serde(skip)]
    pub confirmation_code: Option<String>,
}

impl PayoutRequest {
    /// The payout it asks for, checked.
    pub fn payout(self) -> Result<NewPayout, AppError> {
        crate::model::currency(&self.amount.currency)?;
        Ok(NewPayout {
            project_id: self.project_id,
            card: self.card.card()?,
            amount: self.amount.amount,
            currency: self.amount.currency,
            merchant_order_id: self.merchant_order_id,
            description: self.description,
            customer: self.customer.unwrap_or_default(),
            code: self.confirmation_code,
            batch: None,
        })
    }
}

/// The answer to a code request.
#[derive(poem_openapi::ApiResponse)]
pub enum CodeRequested {
    /// The code is on its way to the caller's phone.
    #[oai(status = 202)]
    Sent(poem_openapi::payload::Json<CodeSent>),
}

/// Where a code was sent.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CodeSent {
    /// The phone number's last digits.
    pub sent_to: String,
    /// How long the code is valid.
    pub expires_in_seconds: u32,
}

/// Sends the SMS code that confirms exactly `payout` to the principal's phone, after the
/// checks the payout itself will pass (so that no code is sent for a payout that cannot
/// be made).
pub async fn request_code(state: &AppState, principal: &Principal, payout: &NewPayout) -> Result<CodeSent, AppError> {
    if principal.via_api_token {
        return Err(AppError::BadRequest("Payouts made with an API token need no SMS code.".to_owned()));
    }
    let currency = crate::model::currency(&payout.currency)?;
    crate::service::amount_check(payout.amount)?;
    let confirmation = confirmation(state, principal, payout).await?;
    funds(state, payout.project_id, &currency).await?.allow(payout.amount, &currency)?;
    let phone = dashboard_core::directory::profile_phone(&state.db, principal.user_id).await?.ok_or_else(|| {
        AppError::Refused("Payouts are confirmed with a code sent by SMS: add a phone number in My profile.".to_owned())
    })?;
    sms::request_confirmation(state, principal.user_id, &phone, &confirmation).await?;
    let last = phone.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect::<String>();
    Ok(CodeSent { sent_to: format!("…{last}"), expires_in_seconds: 300 })
}

/// A person's payout needs the SMS code sent for exactly it: its id, which the write that
/// starts the payout uses up (with the idempotency key, so a repeated confirmation gets
/// the first one's answer); a token's needs none.
pub(crate) async fn confirm(
    state: &AppState,
    principal: &Principal,
    payout: &NewPayout,
) -> Result<Option<i64>, AppError> {
    if principal.via_api_token || payout.batch.is_some() {
        return Ok(None);
    }
    let Some(code) = payout.code.as_deref().map(str::trim).filter(|code| !code.is_empty()) else {
        return Err(AppError::Refused(
            "A payout needs the code sent by SMS for it: ask for one (POST /api/v1/payouts/confirmations), then \
             send it as confirmation_code."
                .to_owned(),
        ));
    };
    let confirmation = confirmation(state, principal, payout).await?;
    match sms::confirming_code(state, principal.user_id, &confirmation, code).await? {
        Some(id) => Ok(Some(id)),
        None => Err(code_refused()),
    }
}

pub(crate) fn code_refused() -> AppError {
    AppError::Refused(
        "The SMS code does not confirm this payout: it is wrong, used or expired, or it was sent for another \
         amount, payee or project. Ask for a new code."
            .to_owned(),
    )
}

/// Records a payout that was refused (limits, balance, code), with the reason.
pub(crate) async fn audit_refused(
    state: &AppState,
    principal: &Principal,
    payout: &NewPayout,
    error: &AppError,
) -> Result<(), AppError> {
    let event = AuditEvent::by_user(principal.company_id, principal.user_id, "payout.create", "denied").details(
        serde_json::json!({
            "project_id": payout.project_id,
            "amount": payout.amount,
            "currency": payout.currency.to_ascii_uppercase(),
            "payee": card_shown(&payout.card),
            "reason": error.to_string(),
        }),
    );
    dashboard_core::audit::record(&state.db, event).await
}

/// The payout limits of a project the principal may use, per currency.
pub async fn limits(state: &AppState, principal: &Principal, project_id: i64) -> Result<Vec<PayoutLimit>, AppError> {
    visible(state, principal, project_id).await?;
    let rows: Vec<(String, Option<i64>, Option<i64>)> = dashboard_core::db_run!(state.db, conn => {
        payout_limits::table
            .filter(payout_limits::project_id.eq(project_id))
            .filter(payout_limits::per_payout.is_not_null().or(payout_limits::per_day.is_not_null()))
            .order(payout_limits::currency.asc())
            .select((payout_limits::currency, payout_limits::per_payout, payout_limits::per_day))
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(|(currency, per_payout, per_day)| PayoutLimit { currency, per_payout, per_day }).collect())
}

/// Sets (or, with neither amount, removes) a project's payout limits in one currency;
/// audited in the same write.
pub async fn set_limit(
    state: &AppState,
    principal: &Principal,
    project_id: i64,
    limit: PayoutLimit,
) -> Result<PayoutLimit, AppError> {
    visible(state, principal, project_id).await?;
    let currency = crate::model::currency(&limit.currency)?;
    for amount in [limit.per_payout, limit.per_day].into_iter().flatten() {
        crate::service::amount_check(amount)?;
    }
    if let (Some(once), Some(day)) = (limit.per_payout, limit.per_day)
        && once > day
    {
        return Err(AppError::BadRequest("The limit per payout cannot be above the daily limit.".to_owned()));
    }
    let limit = PayoutLimit { currency, ..limit };
    let event = AuditEvent::success(principal, "project.payout_limits")
        .target(format!("project {project_id}"))
        .details(serde_json::to_value(&limit).map_err(|e| AppError::Internal(e.to_string()))?);
    let (user_id, now, row) = (principal.user_id, now(), limit.clone());
    dashboard_core::db_transaction!(state.db, conn => {
        diesel::insert_into(payout_limits::table)
            .values((
                payout_limits::project_id.eq(project_id),
                payout_limits::currency.eq(&row.currency),
                payout_limits::per_payout.eq(row.per_payout),
                payout_limits::per_day.eq(row.per_day),
                payout_limits::updated_at.eq(Some(now)),
                payout_limits::updated_by.eq(Some(user_id)),
            ))
            .on_conflict((payout_limits::project_id, payout_limits::currency))
            .do_update()
            .set((
                payout_limits::per_payout.eq(row.per_payout),
                payout_limits::per_day.eq(row.per_day),
                payout_limits::updated_at.eq(Some(now)),
                payout_limits::updated_by.eq(Some(user_id)),
            ))
            .execute(conn)
            .await?;
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, AppError>(())
    })?;
    Ok(limit)
}

/// Refuses a project the principal may not use (404).
async fn visible(state: &AppState, principal: &Principal, project_id: i64) -> Result<(), AppError> {
    dashboard_core::directory::visible_project(&state.db, principal, project_id).await.map(|_| ())
}
