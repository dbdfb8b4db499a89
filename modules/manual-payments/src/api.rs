//! The API twins of the Manual payments pages: the same service functions under the
//! section's own permission.

use dashboard_core::auth::Principal;
use dashboard_core::{ApiResult, AppState};
use dashboard_payments_domain::idempotency::Claim;
use dashboard_payments_domain::moto;
use dashboard_payments_domain::payouts::{self, CodeRequested, PayoutRequest};
use dashboard_payments_domain::service::{self, PaymentView, PurchaseRequest};
use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

#[derive(ApiResponse)]
enum PaidOut {
    /// The payment (a payout or a card payment), as the acquirer's answer left it. A
    /// repeated Idempotency-Key answers the first result again.
    #[oai(status = 201)]
    Created(Json<PaymentView>),
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
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        body: Json<PayoutRequest>,
    ) -> ApiResult<PaidOut> {
        let claim = Claim::for_caller(&state, principal, &key, "POST /manual/payouts", &body.0)?;
        let view = service::create_payout(&state, principal, body.0.payout()?, &claim).await?.into_inner();
        Ok(PaidOut::Created(Json(view)))
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
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        body: Json<PurchaseRequest>,
    ) -> ApiResult<PaidOut> {
        let claim = Claim::for_caller(&state, principal, &key, "POST /manual/purchases", &body.0)?;
        let view = moto::create_purchase(&state, principal, body.0.purchase()?, &claim).await?.into_inner();
        Ok(PaidOut::Created(Json(view)))
    }
}

#[derive(poem_openapi::Tags)]
enum ManualTag {
    /// Operations entered by hand.
    ManualPayments,
}
