//! The gateway API. Every call that moves money takes an `Idempotency-Key`.

use dashboard_core::auth::Principal;
use dashboard_core::{ApiResult, AppError, AppState, directory};
use dashboard_payments_domain::callbacks::{self, Delivery};
use dashboard_payments_domain::idempotency::Claim;
use dashboard_payments_domain::ledger::{self, Balance};
use dashboard_payments_domain::model::{Kind, Method, Status};
use dashboard_payments_domain::payouts::{self, CodeRequested, PayoutRequest};
use dashboard_payments_domain::search::{self, PaymentFilter, PaymentSummary, SortOrder};
use dashboard_payments_domain::service::{self, Asking, PaymentAction, PaymentView, PurchaseRequest};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Serialize;

use crate::columns;

/// The registry's columns of a user.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Columns {
    /// Shown, in the table's order.
    pub columns: Vec<String>,
    /// Every column that can be shown.
    pub available: Vec<String>,
}

impl Columns {
    fn of(columns: Vec<String>) -> Columns {
        Columns { columns, available: columns::COLUMNS.iter().map(|(key, _)| (*key).to_owned()).collect() }
    }
}

/// The columns to show.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ColumnChoice {
    pub columns: Vec<String>,
}

/// A capture: omit `amount` for all that was authorised.
#[derive(Object, Serialize, Default)]
#[oai(skip_serializing_if_is_none)]
pub struct AmountRequest {
    /// Minor units of the payment's currency.
    pub amount: Option<i64>,
}

/// A refund: omit `amount` for all that is left.
#[derive(Object, Serialize, Default)]
#[oai(skip_serializing_if_is_none)]
pub struct RefundRequest {
    /// Minor units of the payment's currency.
    pub amount: Option<i64>,
    /// Why, for the people who read it later: shown with the refund, in exports and in
    /// its callback. No card numbers.
    #[oai(validator(max_length = 200))]
    pub reason: Option<String>,
}

/// A page of payments; pass `next` as `after` for the following page.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PaymentPage {
    pub items: Vec<PaymentSummary>,
    pub next: Option<String>,
}

#[derive(ApiResponse)]
enum ExportFile {
    #[oai(status = 200, content_type = "text/csv")]
    Csv(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
    #[oai(status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")]
    Xlsx(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
}

#[derive(ApiResponse)]
enum Resent {
    /// The delivery is due again now.
    #[oai(status = 202)]
    Queued,
}

#[derive(ApiResponse)]
enum Created {
    /// The payment, in whatever state the acquirer's answer left it (`declined` is a
    /// result, not an error). A repeated Idempotency-Key answers the first result again,
    /// with `Idempotent-Replayed: true`.
    #[oai(status = 201)]
    Created(Json<PaymentView>, #[oai(header = "Idempotent-Replayed")] Option<bool>),
}

#[derive(ApiResponse)]
enum Done {
    /// The payment after the operation. A repeated Idempotency-Key answers the first
    /// result again, with `Idempotent-Replayed: true`.
    #[oai(status = 200)]
    Done(Json<PaymentView>, #[oai(header = "Idempotent-Replayed")] Option<bool>),
}

/// An amount filter in minor units as the registry's filter takes it (in the currency's
/// units; the default currency's when none is chosen, as the filter reads it).
fn in_currency(minor: Option<i64>, currency: Option<&str>) -> Option<String> {
    let currency = currency.map_or_else(|| "EUR".to_owned(), str::to_ascii_uppercase);
    minor.map(|minor| dashboard_core::money::format_decimal(minor, &currency))
}

#[derive(Default)]
pub struct PaymentsApi;

#[OpenApi(tag = "PaymentsTag::Payments")]
impl PaymentsApi {
    /// Make a purchase
    ///
    /// One-step (sale) or two-step (authorisation, captured or released later). Test
    /// cards of the sandbox decide the outcome (see the README).
    #[oai(path = "/payments", method = "post", operation_id = "payments_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]([ -~]{0,253}[!-~])?$"))] key: Header<String>,
        body: Json<PurchaseRequest>,
    ) -> ApiResult<Created> {
        let claim = Claim::for_caller(&state, principal, &key, "POST /payments", &body.0)?;
        let (view, replayed) =
            service::create_purchase(&state, principal, body.0.purchase()?, &claim).await?.with_replayed();
        Ok(Created::Created(Json(view), replayed))
    }

    /// List payments
    ///
    /// The registry's filters, newest first by default; pass `next` as `after` for the
    /// following page. Never counts the whole set.
    #[oai(path = "/payments", method = "get", operation_id = "payments_list")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        /// First day, `YYYY-MM-DD` (UTC).
        from: Query<Option<chrono::NaiveDate>>,
        /// Last day, inclusive.
        to: Query<Option<chrono::NaiveDate>>,
        project_id: Query<Option<i64>>,
        status: Query<Option<Status>>,
        kind: Query<Option<Kind>>,
        method: Query<Option<Method>>,
        /// ISO 4217, e.g. `EUR`.
        #[oai(validator(pattern = "^[A-Za-z]{3}$"))]
        currency: Query<Option<String>>,
        /// Minor units (1050 is 10.50 EUR), as every amount of the API.
        #[oai(validator(minimum(value = "0")))]
        amount_min: Query<Option<i64>>,
        /// Minor units.
        #[oai(validator(minimum(value = "0")))]
        amount_max: Query<Option<i64>>,
        /// The customer's country, ISO 3166 alpha-2, e.g. `DE`.
        #[oai(validator(pattern = "^[A-Za-z]{2}$"))]
        country: Query<Option<String>>,
        /// Payment id, merchant order id, customer e-mail, card first 6 or last 4 digits.
        q: Query<Option<String>>,
        sort: Query<Option<SortOrder>>,
        after: Query<Option<String>>,
        /// 1 to 500, default 50.
        /// Items a page, 1 to 500 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<PaymentPage>> {
        let filter = PaymentFilter {
            from: from.0.map(|day| day.to_string()),
            to: to.0.map(|day| day.to_string()),
            project_id: project_id.0.map(|id| id.to_string()),
            status: status.0.map(|status| status.as_str().to_owned()),
            kind: kind.0.map(|kind| kind.as_str().to_owned()),
            method: method.0.map(|method| method.as_str().to_owned()),
            amount_min: in_currency(amount_min.0, currency.0.as_deref()),
            amount_max: in_currency(amount_max.0, currency.0.as_deref()),
            currency: currency.0,
            country: country.0,
            q: q.0,
            sort: sort.0.map(|sort| sort.as_str().to_owned()),
            after: after.0,
            size: None,
        };
        let limit = limit.0.unwrap_or(50);
        let (items, next) = search::search(&state, principal, &filter, limit).await?;
        Ok(Json(PaymentPage { items, next }))
    }

    /// Export payments
    ///
    /// Every payment matching the filters (the same as the list's), as CSV streamed
    /// row by row, or as XLSX. No row limit (XLSX holds up to 1,048,575 rows).
    #[oai(path = "/payments/export", method = "get", operation_id = "payments_export")]
    #[allow(clippy::too_many_arguments)]
    async fn export(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        /// `csv` (default) or `xlsx`.
        #[oai(validator(pattern = "^(csv|xlsx)$"))]
        format: Query<Option<String>>,
        /// First day, `YYYY-MM-DD` (UTC).
        from: Query<Option<chrono::NaiveDate>>,
        /// Last day, inclusive.
        to: Query<Option<chrono::NaiveDate>>,
        project_id: Query<Option<i64>>,
        status: Query<Option<Status>>,
        kind: Query<Option<Kind>>,
        method: Query<Option<Method>>,
        /// ISO 4217, e.g. `EUR`.
        #[oai(validator(pattern = "^[A-Za-z]{3}$"))]
        currency: Query<Option<String>>,
        /// Minor units (1050 is 10.50 EUR), as every amount of the API.
        #[oai(validator(minimum(value = "0")))]
        amount_min: Query<Option<i64>>,
        /// Minor units.
        #[oai(validator(minimum(value = "0")))]
        amount_max: Query<Option<i64>>,
        /// The customer's country, ISO 3166 alpha-2, e.g. `DE`.
        #[oai(validator(pattern = "^[A-Za-z]{2}$"))]
        country: Query<Option<String>>,
        /// Payment id, merchant order id, customer e-mail, card first 6 or last 4 digits.
        q: Query<Option<String>>,
        sort: Query<Option<SortOrder>>,
    ) -> ApiResult<ExportFile> {
        let xlsx = match format.0.as_deref() {
            None | Some("csv") => false,
            Some("xlsx") => true,
            Some(other) => return Err(AppError::BadRequest(format!("Unknown export format {other:?}.")).into()),
        };
        let filter = PaymentFilter {
            from: from.0.map(|day| day.to_string()),
            to: to.0.map(|day| day.to_string()),
            project_id: project_id.0.map(|id| id.to_string()),
            status: status.0.map(|status| status.as_str().to_owned()),
            kind: kind.0.map(|kind| kind.as_str().to_owned()),
            method: method.0.map(|method| method.as_str().to_owned()),
            amount_min: in_currency(amount_min.0, currency.0.as_deref()),
            amount_max: in_currency(amount_max.0, currency.0.as_deref()),
            currency: currency.0,
            country: country.0,
            q: q.0,
            sort: sort.0.map(|sort| sort.as_str().to_owned()),
            ..PaymentFilter::default()
        };
        let response = crate::export(state.0.clone(), principal.clone(), filter, xlsx).await?;
        let (body, disposition) = dashboard_core::export::body_and_disposition(response);
        Ok(if xlsx { ExportFile::Xlsx(Binary(body), disposition) } else { ExportFile::Csv(Binary(body), disposition) })
    }

    /// A payment with its operations
    #[oai(path = "/payments/:id", method = "get", operation_id = "payments_get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
    ) -> ApiResult<Json<PaymentView>> {
        Ok(Json(service::view(&state, principal, &id).await?))
    }

    /// Capture a held payment
    ///
    /// All of the authorised amount, or part of it; the rest is released. Once.
    #[oai(path = "/payments/:id/captures", method = "post", operation_id = "payments_capture")]
    async fn capture(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]([ -~]{0,253}[!-~])?$"))] key: Header<String>,
        body: Json<AmountRequest>,
    ) -> ApiResult<Done> {
        let action = PaymentAction::Capture;
        let asking = action.asking(body.amount, None)?;
        let claim = action.claim(&state, principal, &key, &id, &asking)?;
        let (view, replayed) = action.run(&state, principal, &id, &asking, &claim).await?.with_replayed();
        Ok(Done::Done(Json(view), replayed))
    }

    /// Release a held payment
    #[oai(path = "/payments/:id/cancellations", method = "post", operation_id = "payments_cancel")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]([ -~]{0,253}[!-~])?$"))] key: Header<String>,
    ) -> ApiResult<Done> {
        let action = PaymentAction::Release;
        let asking = Asking::default();
        let claim = action.claim(&state, principal, &key, &id, &asking)?;
        let (view, replayed) = action.run(&state, principal, &id, &asking, &claim).await?.with_replayed();
        Ok(Done::Done(Json(view), replayed))
    }

    /// Reverse a completed sale
    ///
    /// The whole amount goes back to the customer, once; only a completed sale with
    /// nothing refunded yet can be reversed.
    #[oai(path = "/payments/:id/reversals", method = "post", operation_id = "payments_reverse")]
    async fn reverse(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]([ -~]{0,253}[!-~])?$"))] key: Header<String>,
    ) -> ApiResult<Done> {
        let action = PaymentAction::Reversal;
        let asking = Asking::default();
        let claim = action.claim(&state, principal, &key, &id, &asking)?;
        let (view, replayed) = action.run(&state, principal, &id, &asking, &claim).await?.with_replayed();
        Ok(Done::Done(Json(view), replayed))
    }

    /// Refund a payment
    ///
    /// All that is left, or part of it; several partial refunds are fine, never more
    /// than was captured. A reason, when given, stays with the refund.
    #[oai(path = "/payments/:id/refunds", method = "post", operation_id = "payments_refund")]
    async fn refund(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]([ -~]{0,253}[!-~])?$"))] key: Header<String>,
        body: Json<RefundRequest>,
    ) -> ApiResult<Done> {
        let action = PaymentAction::Refund;
        let asking = action.asking(body.0.amount, body.0.reason)?;
        let claim = action.claim(&state, principal, &key, &id, &asking)?;
        let (view, replayed) = action.run(&state, principal, &id, &asking, &claim).await?.with_replayed();
        Ok(Done::Done(Json(view), replayed))
    }

    /// Send money to a card
    ///
    /// Never more than the project's available balance in the currency (payouts on their
    /// way counted), within the project's payout limits. With an API token, authorised by
    /// the token; a person in a dashboard session also sends the SMS code of this payout
    /// (`confirmation_code`).
    #[oai(path = "/payouts", method = "post", operation_id = "payouts_create")]
    async fn payout(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]([ -~]{0,253}[!-~])?$"))] key: Header<String>,
        body: Json<PayoutRequest>,
    ) -> ApiResult<Created> {
        let claim = Claim::for_caller(&state, principal, &key, "POST /payouts", &body.0)?;
        let (view, replayed) =
            service::create_payout(&state, principal, body.0.payout()?, &claim).await?.with_replayed();
        Ok(Created::Created(Json(view), replayed))
    }

    /// Ask for the SMS code of a payout
    ///
    /// For a person in a dashboard session: sends a code bound to exactly this payout
    /// (amount, currency, card and project) to their phone; the message says what it
    /// confirms. Valid for 5 minutes, once. Checked against the project's balance and
    /// limits first. API tokens pay out without a code.
    #[oai(path = "/payouts/confirmations", method = "post", operation_id = "payouts_request_code")]
    async fn payout_code(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<PayoutRequest>,
    ) -> ApiResult<CodeRequested> {
        let sent = payouts::request_code(&state, principal, &body.0.payout()?).await?;
        Ok(CodeRequested::Sent(Json(sent)))
    }

    /// The callback deliveries of a payment
    #[oai(path = "/payments/:id/callbacks", method = "get", operation_id = "payments_callbacks")]
    async fn callbacks(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
    ) -> ApiResult<Json<Vec<Delivery>>> {
        Ok(Json(callbacks::deliveries(&state, principal, &id).await?))
    }

    /// Send a callback again
    #[oai(
        path = "/payments/:id/callbacks/:delivery/resend",
        method = "post",
        operation_id = "payments_callbacks_resend"
    )]
    async fn resend(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
        delivery: Path<i64>,
    ) -> ApiResult<Resent> {
        callbacks::resend(&state, principal, &id, delivery.0).await?;
        Ok(Resent::Queued)
    }

    /// The registry's columns the caller has chosen
    ///
    /// The payment id is always shown; `available` lists every column that can be.
    #[oai(path = "/payments/columns", method = "get", operation_id = "payments_columns_get")]
    async fn columns(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<Columns>> {
        Ok(Json(Columns::of(columns::chosen(&state, principal).await?)))
    }

    /// Choose the registry's columns
    ///
    /// Saved for the caller (the user the token belongs to) and used by the Payments page.
    #[oai(path = "/payments/columns", method = "put", operation_id = "payments_columns_set")]
    async fn set_columns(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<ColumnChoice>,
    ) -> ApiResult<Json<Columns>> {
        Ok(Json(Columns::of(columns::choose(&state, principal, &body.columns).await?)))
    }

    /// Balances of the caller's projects, per currency
    ///
    /// Derived from the ledger: `available` is the merchant's money, `held` what is
    /// authorised and not yet captured or released.
    #[oai(path = "/balances", method = "get", operation_id = "balances_list")]
    async fn balances(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<Vec<Balance>>> {
        let projects: Vec<i64> =
            directory::visible_projects(&state.db, principal).await?.into_iter().map(|p| p.id).collect();
        Ok(Json(ledger::balances(&state.db, &projects).await?))
    }
}

#[derive(poem_openapi::Tags)]
enum PaymentsTag {
    /// The payment gateway: purchases, captures, releases, refunds and payouts.
    Payments,
}
