//! The section's API: the same service functions as its pages.

use dashboard_core::auth::Principal;
use dashboard_core::{ApiResult, AppState};
use dashboard_payments_domain::chargebacks::{self, ChargebackFilter, ChargebackSummary, ChargebackView, Evidence};
use dashboard_payments_domain::model::ChargebackStatus;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Attachment, Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

/// A page of chargebacks.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChargebackPage {
    pub items: Vec<ChargebackSummary>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A dispute's explanation.
#[derive(Debug, Object)]
pub struct Dispute {
    /// Why the chargeback is wrong, for the acquirer (1 to 5000 characters).
    #[oai(validator(min_length = 1, max_length = 5000))]
    pub text: String,
}

#[derive(ApiResponse)]
enum ExportFile {
    #[oai(status = 200, content_type = "text/csv")]
    Csv(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
}

/// The list's and the export's filter, from the API's typed parameters.
fn filter_of(
    status: Query<Option<ChargebackStatus>>,
    reason_code: Query<Option<String>>,
    project_id: Query<Option<i64>>,
    due_by: Query<Option<chrono::NaiveDate>>,
    (amount_min, amount_max): (Query<Option<i64>>, Query<Option<i64>>),
    q: Query<Option<String>>,
    after: Option<String>,
) -> ChargebackFilter {
    ChargebackFilter {
        status: status.0.map(|s| s.as_str().to_owned()),
        reason_code: reason_code.0,
        project_id: project_id.0.map(|p| p.to_string()),
        due_by: due_by.0.map(|day| day.to_string()),
        amount_min: amount_min.0.map(|a| a.to_string()),
        amount_max: amount_max.0.map(|a| a.to_string()),
        q: q.0,
        after,
    }
}

fn default_limit() -> i64 {
    50
}

#[derive(Default)]
pub struct ChargebacksApi;

#[OpenApi(tag = "ChargebacksTag::Chargebacks")]
impl ChargebacksApi {
    /// Chargeback cases, the nearest deadline first
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/chargebacks", method = "get", operation_id = "chargebacks_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        /// Only cases in this status.
        status: Query<Option<ChargebackStatus>>,
        /// Only this card scheme reason code, e.g. `10.4`.
        reason_code: Query<Option<String>>,
        project_id: Query<Option<i64>>,
        /// Only cases due on or before this day (`YYYY-MM-DD`, in the token owner's time zone).
        due_by: Query<Option<chrono::NaiveDate>>,
        /// Minor units.
        amount_min: Query<Option<i64>>,
        /// Minor units.
        amount_max: Query<Option<i64>>,
        /// A chargeback id, payment id, merchant order id or reason code.
        q: Query<Option<String>>,
        /// The `next` of the previous page.
        after: Query<Option<String>>,
        /// 1 to 500.
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<i64>,
    ) -> ApiResult<Json<ChargebackPage>> {
        let filter = filter_of(status, reason_code, project_id, due_by, (amount_min, amount_max), q, after.0);
        let (items, next) = chargebacks::list(&state, principal, &filter, limit.0).await?;
        Ok(Json(ChargebackPage { items, next }))
    }

    /// The chargebacks matching the same filters as the list, as CSV
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/chargebacks/export", method = "get", operation_id = "chargebacks_export")]
    async fn export(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        status: Query<Option<ChargebackStatus>>,
        reason_code: Query<Option<String>>,
        project_id: Query<Option<i64>>,
        due_by: Query<Option<chrono::NaiveDate>>,
        amount_min: Query<Option<i64>>,
        amount_max: Query<Option<i64>>,
        q: Query<Option<String>>,
    ) -> ApiResult<ExportFile> {
        let mut filter = filter_of(status, reason_code, project_id, due_by, (amount_min, amount_max), q, None);
        let download = crate::pages::export_csv(&state, principal, &mut filter).await?;
        let (body, disposition) = dashboard_core::export::body_and_disposition(download);
        Ok(ExportFile::Csv(Binary(body), disposition))
    }

    /// A chargeback case with its timeline and evidence
    #[oai(path = "/chargebacks/:id", method = "get", operation_id = "chargebacks_get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
    ) -> ApiResult<Json<ChargebackView>> {
        Ok(Json(chargebacks::view(&state, principal, &id).await?))
    }

    /// Accept a chargeback: the money stays with the customer
    #[oai(path = "/chargebacks/:id/acceptance", method = "post", operation_id = "chargebacks_accept")]
    async fn accept(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
    ) -> ApiResult<Json<ChargebackView>> {
        Ok(Json(chargebacks::accept(&state, principal, &id).await?))
    }

    /// Add an evidence file to a chargeback not answered yet
    ///
    /// The body is the file itself: PDF, PNG or JPEG (told by its content), up to 10 MB; at
    /// most 10 files a case.
    #[oai(path = "/chargebacks/:id/evidence", method = "post", operation_id = "chargebacks_add_evidence")]
    async fn add_evidence(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
        /// The file's name as the acquirer and your colleagues will see it.
        file_name: Query<String>,
        body: Binary<Vec<u8>>,
    ) -> ApiResult<Json<Evidence>> {
        Ok(Json(chargebacks::add_evidence(&state, principal, &id, &file_name, &body).await?))
    }

    /// An evidence file of a chargeback
    #[oai(path = "/chargebacks/:id/evidence/:evidence_id", method = "get", operation_id = "chargebacks_evidence_file")]
    async fn evidence_file(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
        evidence_id: Path<i64>,
    ) -> ApiResult<Attachment<Vec<u8>>> {
        let (name, _, bytes) = chargebacks::evidence_file(&state, principal, &id, evidence_id.0).await?;
        Ok(Attachment::new(bytes).filename(crate::pages::download_name(&name)))
    }

    /// Dispute a chargeback with the evidence given and an explanation
    #[oai(path = "/chargebacks/:id/dispute", method = "post", operation_id = "chargebacks_dispute")]
    async fn dispute(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
        body: Json<Dispute>,
    ) -> ApiResult<Json<ChargebackView>> {
        Ok(Json(chargebacks::dispute(&state, principal, &id, &body.text).await?))
    }
}

#[derive(poem_openapi::Tags)]
enum ChargebacksTag {
    /// Chargeback cases: deadlines, answers and evidence.
    Chargebacks,
}
