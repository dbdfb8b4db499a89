//! The virtual terminal: a card payment taken by hand (MO/TO: the customer gave the card
//! by phone or mail). The form, a review that says what will be charged, then the
//! purchase through the payments service, as the gateway's `POST /payments` makes one; the
//! review's one-time key is the idempotency key.

use dashboard_core::auth::random_token;
use dashboard_core::money::{CURRENCIES, format_grouped, parse_amount};
use dashboard_core::web::{HtmlForm, see_other};
use dashboard_core::{AppError, PageContext};
use dashboard_payments_domain::idempotency::{Claim, Entry};
use dashboard_payments_domain::model::Flow;
use dashboard_payments_domain::moto;
use dashboard_payments_domain::service::{Customer, NewPurchase};
use poem::web::Html;
use poem::{IntoResponse, Response, handler};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{bad, card_of, for_the_form, made_by_first, project_name, projects_of};

/// The purchase form as typed; the review carries it on with the one-time key.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(crate) struct PurchaseForm {
    #[serde(default)]
    project_id: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    currency: String,
    /// `one_step` (charge now) or `two_step` (hold, capture later).
    #[serde(default)]
    flow: String,
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    expiry_month: String,
    #[serde(default)]
    expiry_year: String,
    #[serde(default)]
    cvv: String,
    #[serde(default)]
    holder: String,
    #[serde(default)]
    merchant_order_id: String,
    #[serde(default)]
    customer_email: String,
    /// `review` or `confirm`.
    #[serde(default, skip_serializing)]
    step: String,
    #[serde(default, skip_serializing)]
    idempotency_key: String,
}

impl PurchaseForm {
    /// The purchase it describes, checked as the API checks one.
    fn purchase(&self) -> Result<NewPurchase, AppError> {
        let project_id = self.project_id.trim().parse().map_err(|_| bad("Choose a project."))?;
        let currency = self.currency.trim().to_ascii_uppercase();
        let amount = parse_amount(&self.amount, &currency)
            .ok_or_else(|| bad(&format!("Enter the amount in {currency}, such as 125.00.")))?;
        let flow = Flow::parse(self.flow.trim()).ok_or_else(|| bad("Choose to charge now or to hold."))?;
        let text = |value: &str| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
        Ok(NewPurchase {
            project_id,
            flow,
            amount,
            currency,
            card: card_of(&self.card_number, &self.expiry_month, &self.expiry_year, &self.cvv, &self.holder)?,
            merchant_order_id: text(&self.merchant_order_id),
            description: Some("Taken by hand (MO/TO)".to_owned()),
            customer: Customer { email: text(&self.customer_email), ..Customer::default() },
            return_url: None,
            link_id: None,
        })
    }
}

async fn form_html(page: &PageContext, form: &PurchaseForm, error: Option<&str>) -> Result<Html<String>, AppError> {
    let data = json!({
        "csrf_token": page.csrf_token,
        "projects": projects_of(page, &form.project_id).await?,
        "currencies": CURRENCIES,
        "form": PurchaseForm { cvv: String::new(), ..form.clone() },
        "hold": form.flow == Flow::TwoStep.as_str(),
        "error": error,
    });
    page.render("Take a card payment", "manual/purchase", &data)
}

#[handler]
pub(crate) async fn new_purchase(page: PageContext) -> Result<Html<String>, AppError> {
    let form = PurchaseForm { currency: "EUR".to_owned(), flow: "one_step".to_owned(), ..PurchaseForm::default() };
    form_html(&page, &form, None).await
}

#[handler]
pub(crate) async fn submit_purchase(
    page: PageContext,
    HtmlForm(form): HtmlForm<PurchaseForm>,
) -> Result<Response, AppError> {
    let purchase = match form.purchase() {
        Ok(purchase) => purchase,
        Err(error) => return refused(&page, &form, error).await,
    };
    if form.step != "confirm" {
        // Refused before the review too, not only when it is confirmed.
        if let Err(error) = moto::require_enabled(&page.state, purchase.project_id).await {
            return refused(&page, &form, error).await;
        }
        return Ok(review_html(&page, &form, &purchase).await?.into_response());
    }
    let principal = page.principal()?;
    let claim = Claim::for_caller(&page.state, principal, &form.idempotency_key, "POST /manual/purchase", &form)?
        .entered(Entry::Manual);
    let taken = |id: &str| see_other(&format!("/payments/{id}"));
    match moto::create_purchase(&page.state, principal, purchase, &claim).await {
        Ok(done) => Ok(taken(&done.into_inner().id)),
        // The same confirmation sent twice: the first one's result, once it is done.
        Err(error @ AppError::Conflict(_)) => match made_by_first(&page, &claim).await? {
            Some(id) => Ok(taken(&id)),
            None => refused(&page, &form, error).await,
        },
        Err(error) => refused(&page, &form, error).await,
    }
}

/// The form again with what was refused and why (other errors go to the error page).
async fn refused(page: &PageContext, form: &PurchaseForm, error: AppError) -> Result<Response, AppError> {
    if !for_the_form(&error) {
        return Err(error);
    }
    Ok((error.status(), form_html(page, form, Some(&error.to_string())).await?).into_response())
}

async fn review_html(
    page: &PageContext,
    form: &PurchaseForm,
    purchase: &NewPurchase,
) -> Result<Html<String>, AppError> {
    let project = project_name(page, purchase.project_id).await?;
    let data = json!({
        "csrf_token": page.csrf_token,
        "form": form,
        "idempotency_key": random_token(),
        "amount": format_grouped(purchase.amount, &purchase.currency),
        "verb": if purchase.flow == Flow::TwoStep { "Hold" } else { "Charge" },
        "card": dashboard_payments_domain::payouts::card_shown(&purchase.card),
        "project": project,
    });
    page.render("Confirm the card payment", "manual/purchase-review", &data)
}
