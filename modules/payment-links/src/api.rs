//! The section's API: the same service functions as its pages.

use dashboard_core::auth::Principal;
use dashboard_core::{ApiResult, AppState};
use dashboard_payments_domain::links::{self, LinkFilter, LinkPayment, LinkRequest, LinkView};
use dashboard_payments_domain::model::LinkStatus;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

/// A page of payment links.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LinkPage {
    pub items: Vec<LinkView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[derive(ApiResponse)]
enum ExportFile {
    #[oai(status = 200, content_type = "text/csv")]
    Csv(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
}

#[derive(ApiResponse)]
enum QrFile {
    /// The QR code of the link's address.
    #[oai(status = 200, content_type = "image/svg+xml")]
    Svg(Binary<Vec<u8>>),
}

fn filter_of(
    status: Query<Option<LinkStatus>>,
    project_id: Query<Option<i64>>,
    q: Query<Option<String>>,
    after: Option<String>,
) -> LinkFilter {
    LinkFilter {
        status: status.0.map(|s| s.as_str().to_owned()),
        project_id: project_id.0.map(|p| p.to_string()),
        q: q.0,
        after,
    }
}

fn default_limit() -> i64 {
    50
}

#[derive(Default)]
pub struct LinksApi;

#[OpenApi(tag = "LinksTag::PaymentLinks")]
impl LinksApi {
    /// Payment links, newest first
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/payment-links", method = "get", operation_id = "payment_links_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        /// Only links in this status.
        status: Query<Option<LinkStatus>>,
        project_id: Query<Option<i64>>,
        /// A link id or merchant order id, or words of the description.
        q: Query<Option<String>>,
        /// The `next` of the previous page.
        #[oai(validator(pattern = "^([A-Za-z0-9_-]{10}[AEIMQUYcgkosw048])?$"))]
        after: Query<Option<String>>,
        /// 1 to 500.
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<i64>,
    ) -> ApiResult<Json<LinkPage>> {
        let filter = filter_of(status, project_id, q, after.0);
        let (items, next) = links::list(&state, principal, &filter, limit.0).await?;
        Ok(Json(LinkPage { items, next }))
    }

    /// Create a payment link
    #[oai(path = "/payment-links", method = "post", operation_id = "payment_links_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<LinkRequest>,
    ) -> ApiResult<Json<LinkView>> {
        Ok(Json(links::create(&state, principal, body.0).await?))
    }

    /// The payment links matching the same filters as the list, as CSV
    #[oai(path = "/payment-links/export", method = "get", operation_id = "payment_links_export")]
    async fn export(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        status: Query<Option<LinkStatus>>,
        project_id: Query<Option<i64>>,
        q: Query<Option<String>>,
    ) -> ApiResult<ExportFile> {
        let mut filter = filter_of(status, project_id, q, None);
        let download = crate::pages::export_csv(&state, principal, &mut filter).await?;
        let (body, disposition) = dashboard_core::export::body_and_disposition(download);
        Ok(ExportFile::Csv(Binary(body), disposition))
    }

    /// A payment link
    #[oai(path = "/payment-links/:id", method = "get", operation_id = "payment_links_get")]
    async fn get(&self, state: Data<&AppState>, principal: &Principal, id: Path<String>) -> ApiResult<Json<LinkView>> {
        Ok(Json(links::view(&state, principal, &id).await?))
    }

    /// The payments made through a payment link, newest first (at most 500)
    #[oai(path = "/payment-links/:id/payments", method = "get", operation_id = "payment_links_payments")]
    async fn payments(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
    ) -> ApiResult<Json<Vec<LinkPayment>>> {
        Ok(Json(links::payments_of(&state, principal, &id).await?))
    }

    /// The QR code of a payment link's address, as SVG
    #[oai(path = "/payment-links/:id/qr.svg", method = "get", operation_id = "payment_links_qr")]
    async fn qr(&self, state: Data<&AppState>, principal: &Principal, id: Path<String>) -> ApiResult<QrFile> {
        let link = links::view(&state, principal, &id).await?;
        Ok(QrFile::Svg(Binary(crate::qr::svg(&link.url, "QR code of the link's address").into_bytes())))
    }

    /// Deactivate a payment link at once: it takes no more payments
    #[oai(path = "/payment-links/:id/deactivation", method = "post", operation_id = "payment_links_deactivate")]
    async fn deactivate(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<String>,
    ) -> ApiResult<Json<LinkView>> {
        Ok(Json(links::deactivate(&state, principal, &id).await?))
    }
}

#[derive(poem_openapi::Tags)]
enum LinksTag {
    /// Payment links customers pay on the hosted Payment Page.
    PaymentLinks,
}
