//! The API twins of the Manual payments pages: the same service functions under the
//! section's own permission.

use crate::batch::{self, BatchFilter, BatchStatus, BatchView, Control, Kind};
use dashboard_core::auth::Principal;
use dashboard_core::export::attachment;
use dashboard_core::{ApiResult, AppState};
use dashboard_payments_domain::entered::{self, EnteredFilter, EnteredOperation};
use dashboard_payments_domain::idempotency::{Claim, Entry};
use dashboard_payments_domain::moto;
use dashboard_payments_domain::payouts::{self, CodeRequested, PayoutRequest};
use dashboard_payments_domain::service::{self, PaymentAction, PaymentView, PurchaseRequest};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

/// A refund, capture, release or reversal entered by hand.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ActionRequest {
    pub action: PaymentAction,
    /// The payment's id, or the merchant's order id when exactly one payment has it.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub payment: String,
    /// Where to look for a merchant order id (default: every project the caller sees).
    pub project_id: Option<i64>,
    /// Minor units of the payment's currency, for part of a refund or a capture; omit for
    /// all. A release or a reversal always takes all.
    pub amount: Option<i64>,
    /// Why, for a refund: shown with it, in exports and in its callback. No card numbers.
    #[oai(validator(max_length = 200))]
    pub reason: Option<String>,
}

/// A page of manual operations, newest first; pass `next` as `before` for the following
/// page.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EnteredPage {
    pub items: Vec<EnteredOperation>,
    pub next: Option<i64>,
}

#[derive(ApiResponse)]
enum CsvFile {
    /// A CSV file (times in the caller's time zone), streamed.
    #[oai(status = 200, content_type = "text/csv")]
    Csv(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
}

/// The format of a file to download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
enum FileFormat {
    Csv,
    Xlsx,
}

#[derive(ApiResponse)]
enum ResultsFile {
    /// A CSV file, streamed.
    #[oai(status = 200, content_type = "text/csv")]
    Csv(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
    /// An XLSX workbook: the row and the amount are numbers.
    #[oai(status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")]
    Xlsx(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
}

#[derive(ApiResponse)]
enum PaidOut {
    /// The payment (a payout or a card payment), as the acquirer's answer left it. A
    /// repeated Idempotency-Key answers the first result again, with
    /// `Idempotent-Replayed: true`.
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

#[derive(Default)]
pub struct ManualApi;

#[OpenApi(tag = "ManualTag::ManualPayments")]
impl ManualApi {
    /// Ask for the SMS code of a payout by hand
    ///
    /// Sends a code bound to exactly this payout (amount, currency, card, project) to the
    /// caller's phone, after the checks the payout will pass (balance, limits). For a
    /// person in a dashboard session.
    #[oai(path = "/manual/payouts/confirmations", method = "post", operation_id = "manual_payouts_request_code")]
    async fn request_code(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<PayoutRequest>,
    ) -> ApiResult<CodeRequested> {
        Ok(CodeRequested::Sent(Json(payouts::request_code(&state, principal, &body.0.payout()?).await?)))
    }

    /// Make a payout by hand
    ///
    /// With the SMS code of this payout in `confirmation_code`; within the project's
    /// balance and payout limits; once per Idempotency-Key.
    #[oai(path = "/manual/payouts", method = "post", operation_id = "manual_payouts_create")]
    async fn payout(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]([ -~]{0,253}[!-~])?$"))] key: Header<String>,
        body: Json<PayoutRequest>,
    ) -> ApiResult<PaidOut> {
        let claim = Claim::for_caller(&state, principal, &key, "POST /manual/payouts", &body.0)?.entered(Entry::Manual);
        let (view, replayed) =
            service::create_payout(&state, principal, body.0.payout()?, &claim).await?.with_replayed();
        Ok(PaidOut::Created(Json(view), replayed))
    }

    /// Take a card payment by hand (MO/TO)
    ///
    /// A sale or a hold of a card the customer gave by phone or mail, for a project that
    /// takes them (`PUT /projects/{id}/moto`); once per Idempotency-Key.
    #[oai(path = "/manual/purchases", method = "post", operation_id = "manual_purchases_create")]
    async fn purchase(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]([ -~]{0,253}[!-~])?$"))] key: Header<String>,
        body: Json<PurchaseRequest>,
    ) -> ApiResult<PaidOut> {
        let claim =
            Claim::for_caller(&state, principal, &key, "POST /manual/purchases", &body.0)?.entered(Entry::Manual);
        let (view, replayed) =
            moto::create_purchase(&state, principal, body.0.purchase()?, &claim).await?.with_replayed();
        Ok(PaidOut::Created(Json(view), replayed))
    }
}

#[OpenApi(tag = "ManualTag::ManualPayments")]
impl ManualOperationsApi {
    /// Refund, capture, release or reverse a payment by hand
    ///
    /// The payment is found by its id or merchant order id; the action is the gateway's
    /// (`POST /payments/{id}/refunds` and the others), listed among the manual
    /// operations. Once per Idempotency-Key.
    #[oai(path = "/manual/operations", method = "post", operation_id = "manual_operations_create")]
    async fn act(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]([ -~]{0,253}[!-~])?$"))] key: Header<String>,
        body: Json<ActionRequest>,
    ) -> ApiResult<Done> {
        let request = body.0;
        let asking = request.action.asking(request.amount, request.reason)?;
        let payment = service::find(&state, principal, &request.payment, request.project_id).await?;
        let claim = request.action.claim(&state, principal, &key, &payment.id, &asking)?.entered(Entry::Manual);
        let (view, replayed) =
            request.action.run(&state, principal, &payment.id, &asking, &claim).await?.with_replayed();
        Ok(Done::Done(Json(view), replayed))
    }

    /// List manual operations
    ///
    /// Operations entered by hand or from a batch file, newest first. `from` and `to` are
    /// days (`YYYY-MM-DD`, both included) in the caller's time zone.
    #[oai(path = "/manual/operations", method = "get", operation_id = "manual_operations_list")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        from: Query<Option<chrono::NaiveDate>>,
        to: Query<Option<chrono::NaiveDate>>,
        kind: Query<Option<dashboard_payments_domain::model::OperationKind>>,
        status: Query<Option<dashboard_payments_domain::model::OperationStatus>>,
        project_id: Query<Option<i64>>,
        user_id: Query<Option<i64>>,
        entry: Query<Option<Entry>>,
        /// A payment id or merchant order id.
        q: Query<Option<String>>,
        before: Query<Option<i64>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<i64>>,
    ) -> ApiResult<Json<EnteredPage>> {
        let filter = filter_of(
            from.0.map(|day| day.to_string()),
            to.0.map(|day| day.to_string()),
            kind.0,
            status.0,
            project_id.0,
            user_id.0,
            entry.0,
            q.0,
            before.0,
        );
        let (items, next) = entered::list(&state, principal, &filter, limit.0.unwrap_or(50)).await?;
        Ok(Json(EnteredPage { items, next }))
    }

    /// Export manual operations as CSV
    ///
    /// Every operation the filters match, streamed.
    #[oai(path = "/manual/operations/export", method = "get", operation_id = "manual_operations_export")]
    #[allow(clippy::too_many_arguments)]
    async fn export(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        from: Query<Option<chrono::NaiveDate>>,
        to: Query<Option<chrono::NaiveDate>>,
        kind: Query<Option<dashboard_payments_domain::model::OperationKind>>,
        status: Query<Option<dashboard_payments_domain::model::OperationStatus>>,
        project_id: Query<Option<i64>>,
        user_id: Query<Option<i64>>,
        entry: Query<Option<Entry>>,
        q: Query<Option<String>>,
    ) -> ApiResult<CsvFile> {
        let filter = filter_of(
            from.0.map(|day| day.to_string()),
            to.0.map(|day| day.to_string()),
            kind.0,
            status.0,
            project_id.0,
            user_id.0,
            entry.0,
            q.0,
            None,
        );
        let body = crate::operations::export(state.0.clone(), principal, filter).await?;
        Ok(CsvFile::Csv(Binary(body), attachment(crate::operations::EXPORT_FILE)))
    }
}

#[derive(Default)]
pub struct ManualOperationsApi;

/// The list's filter from the API's typed query.
#[allow(clippy::too_many_arguments)]
fn filter_of(
    from: Option<String>,
    to: Option<String>,
    kind: Option<dashboard_payments_domain::model::OperationKind>,
    status: Option<dashboard_payments_domain::model::OperationStatus>,
    project_id: Option<i64>,
    user_id: Option<i64>,
    entry: Option<Entry>,
    q: Option<String>,
    before: Option<i64>,
) -> EnteredFilter {
    EnteredFilter {
        from,
        to,
        kind: kind.map(|kind| kind.as_str().to_owned()),
        status: status.map(|status| status.as_str().to_owned()),
        project_id: project_id.map(|id| id.to_string()),
        user_id: user_id.map(|id| id.to_string()),
        entry: entry.map(|entry| entry.as_str().to_owned()),
        q,
        before,
    }
}

#[derive(poem_openapi::Tags)]
enum ManualTag {
    /// Operations entered by hand.
    ManualPayments,
}

/// A batch file, as uploaded: a header row naming its columns, then one row per
/// operation.
#[derive(poem_openapi::ApiRequest)]
enum BatchFile {
    #[oai(content_type = "text/csv")]
    Csv(Binary<Vec<u8>>),
    /// The workbook's first sheet.
    #[oai(content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")]
    Xlsx(Binary<Vec<u8>>),
    /// Either, told by its content (for clients that send files only as bytes).
    #[oai(content_type = "application/octet-stream")]
    Bytes(Binary<Vec<u8>>),
}

/// A page of batches, newest first; pass `next` as `before` for the following page.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BatchPage {
    pub items: Vec<BatchView>,
    pub next: Option<i64>,
}

/// The confirmation of a batch: the SMS code sent for it when it pays out and a person
/// confirms it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BatchConfirmation {
    #[oai(validator(max_length = 12))]
    pub code: Option<String>,
}

/// Where the code went.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BatchCodeSent {
    /// The phone's last digits.
    pub sent_to: String,
}

#[derive(ApiResponse)]
enum BatchCreated {
    /// The file was read and stored with each row's problems: `invalid` when any row has
    /// one (nothing will run), else `awaiting_confirmation`.
    #[oai(status = 201)]
    Created(Json<BatchView>),
}

#[derive(ApiResponse)]
enum BatchCodeRequested {
    #[oai(status = 202)]
    Sent(Json<BatchCodeSent>),
}

#[derive(Default)]
pub struct BatchApi;

#[OpenApi(tag = "ManualTag::ManualPayments")]
impl BatchApi {
    /// Upload a batch file
    ///
    /// A CSV file or XLSX workbook of refunds, captures, releases, reversals or payouts (a
    /// `type` column, or `kind` for every row), checked row by row before anything runs.
    #[oai(path = "/manual/batches", method = "post", operation_id = "manual_batches_upload")]
    async fn upload(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        /// The file's name, as the register shows it.
        #[oai(validator(max_length = 255))]
        file_name: Query<Option<String>>,
        kind: Query<Option<BatchKind>>,
        body: BatchFile,
    ) -> ApiResult<BatchCreated> {
        let (BatchFile::Csv(bytes) | BatchFile::Xlsx(bytes) | BatchFile::Bytes(bytes)) = body;
        let name = file_name.0.unwrap_or_else(|| "batch.csv".to_owned());
        let kind = kind.0.map(BatchKind::kind);
        Ok(BatchCreated::Created(Json(batch::upload(&state, principal, &name, bytes.0, kind).await?)))
    }

    /// List batch files
    #[oai(path = "/manual/batches", method = "get", operation_id = "manual_batches_list")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        status: Query<Option<BatchStatus>>,
        kind: Query<Option<BatchKind>>,
        project_id: Query<Option<i64>>,
        from: Query<Option<chrono::NaiveDate>>,
        to: Query<Option<chrono::NaiveDate>>,
        before: Query<Option<i64>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<i64>>,
    ) -> ApiResult<Json<BatchPage>> {
        let filter = BatchFilter {
            status: status.0.map(|status| status.as_str().to_owned()),
            kind: kind.0.map(|kind| kind.kind().as_str().to_owned()),
            project_id: project_id.0.map(|id| id.to_string()),
            from: from.0.map(|day| day.to_string()),
            to: to.0.map(|day| day.to_string()),
            before: before.0,
        };
        let (items, next) = batch::list(&state, principal, &filter, limit.0.unwrap_or(50)).await?;
        Ok(Json(BatchPage { items, next }))
    }

    /// A batch file's status and progress
    #[oai(path = "/manual/batches/:id", method = "get", operation_id = "manual_batches_get")]
    async fn get(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Json<BatchView>> {
        Ok(Json(batch::view(&state, principal, id.0).await?))
    }

    /// Ask for the SMS code of a batch with payouts
    ///
    /// Bound to the file's hash, its rows and totals; the message says them.
    #[oai(path = "/manual/batches/:id/confirmations", method = "post", operation_id = "manual_batches_request_code")]
    async fn request_code(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<BatchCodeRequested> {
        let sent_to = batch::request_code(&state, principal, id.0).await?;
        Ok(BatchCodeRequested::Sent(Json(BatchCodeSent { sent_to })))
    }

    /// Confirm a batch file: it runs
    ///
    /// Once; a batch with payouts confirmed by a person needs its SMS code.
    #[oai(path = "/manual/batches/:id/confirm", method = "post", operation_id = "manual_batches_confirm")]
    async fn confirm(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
        body: Json<BatchConfirmation>,
    ) -> ApiResult<Json<BatchView>> {
        Ok(Json(batch::confirm(&state, principal, id.0, body.0.code.as_deref()).await?))
    }

    /// Pause a running batch
    #[oai(path = "/manual/batches/:id/pause", method = "post", operation_id = "manual_batches_pause")]
    async fn pause(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Json<BatchView>> {
        Ok(Json(batch::control(&state, principal, id.0, Control::Pause).await?))
    }

    /// Resume a paused batch
    #[oai(path = "/manual/batches/:id/resume", method = "post", operation_id = "manual_batches_resume")]
    async fn resume(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Json<BatchView>> {
        Ok(Json(batch::control(&state, principal, id.0, Control::Resume).await?))
    }

    /// Cancel a batch: the rows not yet run will not run
    #[oai(path = "/manual/batches/:id/cancel", method = "post", operation_id = "manual_batches_cancel")]
    async fn cancel(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Json<BatchView>> {
        Ok(Json(batch::control(&state, principal, id.0, Control::Cancel).await?))
    }

    /// A batch's results as CSV or XLSX
    ///
    /// Every row with its status, the payment and what went wrong.
    #[oai(path = "/manual/batches/:id/results", method = "get", operation_id = "manual_batches_results")]
    async fn results(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
        /// `csv` (the default) or `xlsx`.
        format: Query<Option<FileFormat>>,
    ) -> ApiResult<ResultsFile> {
        let xlsx = format.0 == Some(FileFormat::Xlsx);
        let file = crate::batch::pages::results(state.0.clone(), principal, id.0, xlsx).await?;
        let (body, disposition) = dashboard_core::export::body_and_disposition(file);
        Ok(if xlsx {
            ResultsFile::Xlsx(Binary(body), disposition)
        } else {
            ResultsFile::Csv(Binary(body), disposition)
        })
    }

    /// A batch's file with its problems as CSV
    ///
    /// The rows as uploaded (card numbers masked) and a last column with each row's problems.
    #[oai(path = "/manual/batches/:id/checked", method = "get", operation_id = "manual_batches_checked")]
    async fn checked(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<CsvFile> {
        let body = crate::batch::pages::annotated(state.0.clone(), principal, id.0).await?;
        Ok(CsvFile::Csv(Binary(body), attachment(&format!("batch-{}-checked.csv", id.0))))
    }
}

/// What every row of a file without a `type` column is.
#[derive(Debug, Clone, Copy, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum BatchKind {
    Refund,
    Capture,
    Release,
    Reversal,
    Payout,
}

impl BatchKind {
    fn kind(self) -> Kind {
        match self {
            BatchKind::Refund => Kind::Action(PaymentAction::Refund),
            BatchKind::Capture => Kind::Action(PaymentAction::Capture),
            BatchKind::Release => Kind::Action(PaymentAction::Release),
            BatchKind::Reversal => Kind::Action(PaymentAction::Reversal),
            BatchKind::Payout => Kind::Payout,
        }
    }
}
