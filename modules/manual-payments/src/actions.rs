//! A refund, capture, release or reversal entered by hand: the payment is found by its id
//! or the merchant's order id, the review says what will happen to which payment, and the
//! confirmation runs the payments service's action once (the review's one-time key is
//! the idempotency key, the same request as the gateway API's for that payment).

use dashboard_core::auth::random_token;
use dashboard_core::money::{format_grouped, parse_amount};
use dashboard_core::web::{HtmlForm, see_other};
use dashboard_core::{AppError, PageContext};
use dashboard_payments_domain::idempotency::{Entry, Replay};
use dashboard_payments_domain::service::{self, Asking, MaskedCard, PaymentAction, PaymentView};
use poem::web::Html;
use poem::{IntoResponse, Response, handler};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{bad, for_the_form, made_by_first, project_name, projects_of};

/// The form as typed; the review carries it on with the one-time key.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    action: String,
    /// A payment id or a merchant order id.
    #[serde(default)]
    reference: String,
    /// Where to look for a merchant order id (empty: every project).
    #[serde(default)]
    project_id: String,
    /// Empty for all (a refund or a capture may take a part).
    #[serde(default)]
    amount: String,
    /// A refund's reason (empty: none).
    #[serde(default)]
    reason: String,
    /// `review` or `confirm`.
    #[serde(default, skip_serializing)]
    step: String,
    /// The payment the review showed: the confirmation acts on that one.
    #[serde(default, skip_serializing)]
    payment_id: String,
    #[serde(default, skip_serializing)]
    idempotency_key: String,
}

impl ActionForm {
    fn action(&self) -> Result<PaymentAction, AppError> {
        PaymentAction::parse(&self.action).ok_or_else(|| bad("Choose what to do with the payment."))
    }

    fn project(&self) -> Result<Option<i64>, AppError> {
        match self.project_id.trim() {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(|_| bad("Choose a project from the list.")),
        }
    }

    /// What the form asks: the amount typed, in the payment's currency (`None`: all),
    /// and the reason.
    fn asking(&self, action: PaymentAction, currency: &str) -> Result<Asking, AppError> {
        let amount = match self.amount.trim() {
            "" => None,
            text => Some(
                parse_amount(text, currency)
                    .ok_or_else(|| bad(&format!("Enter the amount in {currency}, such as 25.00.")))?,
            ),
        };
        let reason = Some(self.reason.trim().to_owned()).filter(|reason| !reason.is_empty());
        action.asking(amount, reason)
    }
}

async fn form_html(page: &PageContext, form: &ActionForm, error: Option<&str>) -> Result<Html<String>, AppError> {
    let actions: Vec<_> = PaymentAction::ALL
        .iter()
        .map(|action| json!({ "value": action.as_str(), "label": action.verb(), "selected": action.as_str() == form.action }))
        .collect();
    let data = json!({
        "csrf_token": page.csrf_token,
        "projects": projects_of(page, &form.project_id).await?,
        "actions": actions,
        "form": form,
        "error": error,
    });
    page.render("Refund, capture or release", "manual/action", &data)
}

#[handler]
pub(crate) async fn new_action(page: PageContext) -> Result<Html<String>, AppError> {
    let form = ActionForm { action: PaymentAction::Refund.as_str().to_owned(), ..ActionForm::default() };
    form_html(&page, &form, None).await
}

#[handler]
pub(crate) async fn submit_action(
    page: PageContext,
    HtmlForm(form): HtmlForm<ActionForm>,
) -> Result<Response, AppError> {
    let message = match act(&page, &form).await {
        Ok(response) => return Ok(response),
        Err(AppError::NotFound) => {
            format!("No payment you may see has the id or merchant order id {:?}.", form.reference.trim())
        }
        Err(error) if for_the_form(&error) => error.to_string(),
        Err(error) => return Err(error),
    };
    Ok((poem::http::StatusCode::BAD_REQUEST, form_html(&page, &form, Some(&message)).await?).into_response())
}

/// The review, or the action once the review is confirmed.
async fn act(page: &PageContext, form: &ActionForm) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let action = form.action()?;
    let payment = if form.step == "confirm" {
        service::view(&page.state, principal, form.payment_id.trim()).await?
    } else {
        service::find(&page.state, principal, &form.reference, form.project()?).await?
    };
    let asking = form.asking(action, &payment.amount.currency)?;
    if form.step != "confirm" {
        // What cannot be done is said on the form, not after "Yes".
        let moves = action.check(&payment, asking.amount())?;
        return Ok(review_html(page, form, action, &payment, moves).await?.into_response());
    }
    let claim =
        action.claim(&page.state, principal, &form.idempotency_key, &payment.id, &asking)?.entered(Entry::Manual);
    let done = |id: &str| see_other(&format!("/payments/{id}?notice={}", action.as_str()));
    match action.run(&page.state, principal, &payment.id, &asking, &claim).await.map(Replay::into_inner) {
        Ok(after) => Ok(done(&after.id)),
        // The same confirmation sent twice: the first one's result, once it is done.
        Err(error @ AppError::Conflict(_)) => match made_by_first(page, &claim).await? {
            Some(id) => Ok(done(&id)),
            None => Err(error),
        },
        Err(error) => Err(error),
    }
}

/// What the confirmation will do, to which payment.
async fn review_html(
    page: &PageContext,
    form: &ActionForm,
    action: PaymentAction,
    payment: &PaymentView,
    moves: i64,
) -> Result<Html<String>, AppError> {
    let currency = &payment.amount.currency;
    let data = json!({
        "csrf_token": page.csrf_token,
        "form": form,
        "verb": action.verb(),
        "moves": format_grouped(moves, currency),
        "payment": payment,
        "payment_amount": format_grouped(payment.amount.amount, currency),
        "status": payment.status.label(),
        "project": project_name(page, payment.project_id).await?,
        "card": payment.card.as_ref().map(MaskedCard::shown),
        "idempotency_key": random_token(),
    });
    page.render(&format!("{} payment", action.verb()), "manual/action-review", &data)
}
