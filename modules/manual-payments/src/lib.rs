//! Manual payments: operations a merchant's staff enter by hand: the virtual terminal
//! (`purchase.rs`), refunds, captures, releases and reversals of a payment found by its id
//! or order id (`actions.rs`), the registry of what was entered (`operations.rs`), and
//! here the payout to a card: the form, then a review that sends an SMS code bound to
//! exactly this payout (amount, currency, card, project: PSD2 dynamic linking), then the
//! payout with that code. Everything goes through the payments service's payout rules (the project's
//! balance and limits, the code, the audit entry), as the gateway API's `POST /payouts`
//! does; a repeated or parallel confirmation pays out once (the form's one-time key is
//! the idempotency key). The API twins (`api.rs`) call the same functions.

use std::time::Duration;

use dashboard_core::auth::random_token;
use dashboard_core::money::{CURRENCIES, format_grouped, parse_amount};
use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section, Template};
use dashboard_core::web::{HtmlForm, see_other};
use dashboard_core::{AppError, PageContext, directory, operation, page, register_section};
use dashboard_payments_domain::card::Card;
use dashboard_payments_domain::idempotency::{Claim, Entry};
use dashboard_payments_domain::payouts;
use dashboard_payments_domain::service::{self, Customer, NewPayout, PaymentView};
use poem::web::Html;
use poem::{IntoResponse, Response, handler};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod actions;
pub mod api;
pub mod batch;
mod operations;
mod purchase;
mod schema;

dashboard_core::register_migrations!(
    sqlite: "../../migrations/manual/sqlite",
    postgres: "../../migrations/manual/postgres",
);

const PAYOUT: &str = "manual.payout";
const PURCHASE: &str = "manual.purchase";
const ACT: &str = "manual.refund";
const VIEW: &str = "manual.view";
const BATCH: &str = "manual.batch";

register_section!(Section {
    id: "manual",
    title: "Manual payments",
    nav: Some(Nav { label: "Manual payments", path: "/manual", order: 150, icon: Some("send"), covers: &[] }),
    permissions: &[
        Permission {
            code: PAYOUT,
            label: "Make payouts by hand",
            description: "Send money to a card from a project's balance, confirmed with a code sent by SMS.",
            // PSD2: payouts need the second factor.
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Finance],
        },
        Permission {
            code: PURCHASE,
            label: "Take card payments by hand (MO/TO)",
            description: "Charge or hold a card whose details a customer gave by phone or mail (virtual terminal).",
            // PSD2: MO/TO purchases need the second factor.
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Operations],
        },
        Permission {
            code: ACT,
            label: "Refund, capture and release by hand",
            description: "Refund, capture, release or reverse a payment found by its id or order id.",
            // PRODUCT.md: issuing refunds and capturing or releasing held funds are exempt.
            second_factor_exempt: true,
            default_roles: &[BuiltinRole::Finance, BuiltinRole::Operations],
        },
        Permission {
            code: BATCH,
            label: "Run batch files",
            description: "Upload files of refunds, captures, releases and payouts, confirm and run them (each row also needs its own permission).",
            // The issue and PSD2: batch uploads need the second factor.
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Finance, BuiltinRole::Operations],
        },
        Permission {
            code: VIEW,
            label: "View manual operations",
            description: "See and export who entered which operation by hand, when, and its result.",
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Finance, BuiltinRole::Operations, BuiltinRole::Support],
        },
    ],
    pages: &[
        page!(GET "/manual" => index, Access::AnyOf(&[PAYOUT, PURCHASE, ACT, VIEW, BATCH])),
        page!(GET "/manual/batches" => batch::pages::register_page, Access::Permission(BATCH)),
        page!(POST "/manual/batches" => batch::pages::upload, Access::Permission(BATCH)),
        page!(GET "/manual/batches.csv" => batch::pages::register_csv, Access::Permission(BATCH)),
        page!(GET "/manual/batches/template.csv" => batch::pages::template, Access::Permission(BATCH)),
        page!(GET "/manual/batches/:id" => batch::pages::detail, Access::Permission(BATCH)),
        page!(POST "/manual/batches/:id/code" => batch::pages::send_code, Access::Permission(BATCH)),
        page!(POST "/manual/batches/:id/confirm" => batch::pages::confirm, Access::Permission(BATCH)),
        page!(POST "/manual/batches/:id/pause" => batch::pages::pause, Access::Permission(BATCH)),
        page!(POST "/manual/batches/:id/resume" => batch::pages::resume, Access::Permission(BATCH)),
        page!(POST "/manual/batches/:id/cancel" => batch::pages::cancel, Access::Permission(BATCH)),
        page!(GET "/manual/batches/:id/results.csv" => batch::pages::results_csv, Access::Permission(BATCH)),
        page!(GET "/manual/batches/:id/results.xlsx" => batch::pages::results_xlsx, Access::Permission(BATCH)),
        page!(GET "/manual/batches/:id/checked.csv" => batch::pages::annotated_csv, Access::Permission(BATCH)),
        page!(GET "/manual/actions" => actions::new_action, Access::Permission(ACT)),
        page!(POST "/manual/actions" => actions::submit_action, Access::Permission(ACT)),
        page!(GET "/manual/operations" => operations::registry, Access::Permission(VIEW)),
        page!(GET "/manual/operations.csv" => operations::export_csv, Access::Permission(VIEW)),
        page!(POST "/manual/payouts" => payout_submit, Access::Permission(PAYOUT)),
        page!(GET "/manual/purchase" => purchase::new_purchase, Access::Permission(PURCHASE)),
        page!(POST "/manual/purchase" => purchase::submit_purchase, Access::Permission(PURCHASE)),
    ],
    api: Some(Api::of::<(api::ManualApi, api::ManualOperationsApi, api::BatchApi)>(&[
        operation!(POST "/manual/payouts/confirmations", Access::Permission(PAYOUT)),
        operation!(POST "/manual/payouts", Access::Permission(PAYOUT)),
        operation!(POST "/manual/purchases", Access::Permission(PURCHASE)),
        operation!(POST "/manual/operations", Access::Permission(ACT)),
        operation!(GET "/manual/operations", Access::Permission(VIEW)),
        operation!(GET "/manual/operations/export", Access::Permission(VIEW)),
        operation!(POST "/manual/batches", Access::Permission(BATCH)),
        operation!(GET "/manual/batches", Access::Permission(BATCH)),
        operation!(GET "/manual/batches/{id}", Access::Permission(BATCH)),
        operation!(POST "/manual/batches/{id}/confirmations", Access::Permission(BATCH)),
        operation!(POST "/manual/batches/{id}/confirm", Access::Permission(BATCH)),
        operation!(POST "/manual/batches/{id}/pause", Access::Permission(BATCH)),
        operation!(POST "/manual/batches/{id}/resume", Access::Permission(BATCH)),
        operation!(POST "/manual/batches/{id}/cancel", Access::Permission(BATCH)),
        operation!(GET "/manual/batches/{id}/results", Access::Permission(BATCH)),
        operation!(GET "/manual/batches/{id}/checked", Access::Permission(BATCH)),
    ])),
    templates: &[
        Template { name: "manual/index", source: include_str!("../templates/index.hbs") },
        Template { name: "manual/review", source: include_str!("../templates/review.hbs") },
        Template { name: "manual/purchase", source: include_str!("../templates/purchase.hbs") },
        Template { name: "manual/purchase-review", source: include_str!("../templates/purchase-review.hbs") },
        Template { name: "manual/action", source: include_str!("../templates/action.hbs") },
        Template { name: "manual/action-review", source: include_str!("../templates/action-review.hbs") },
        Template { name: "manual/operations", source: include_str!("../templates/operations.hbs") },
        Template { name: "manual/batches", source: include_str!("../templates/batches.hbs") },
        Template { name: "manual/batch", source: include_str!("../templates/batch.hbs") },
    ],
});

/// The payout form as typed; the review carries it on, with the one-time key and then
/// the code.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
struct PayoutForm {
    #[serde(default)]
    project_id: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    currency: String,
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
    description: String,
    /// `review` (send the code) or `confirm` (pay out with it).
    #[serde(default, skip_serializing)]
    step: String,
    #[serde(default, skip_serializing)]
    code: String,
    #[serde(default, skip_serializing)]
    idempotency_key: String,
}

impl PayoutForm {
    /// The payout it describes, checked as the API checks one.
    fn payout(&self) -> Result<NewPayout, AppError> {
        let project_id = self.project_id.trim().parse().map_err(|_| bad("Choose a project."))?;
        let currency = self.currency.trim().to_ascii_uppercase();
        let amount = parse_amount(&self.amount, &currency)
            .ok_or_else(|| bad(&format!("Enter the amount in {currency}, such as 125.00.")))?;
        let card = card_of(&self.card_number, &self.expiry_month, &self.expiry_year, &self.cvv, &self.holder)?;
        let text = |value: &str| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
        Ok(NewPayout {
            project_id,
            amount,
            currency,
            card,
            merchant_order_id: text(&self.merchant_order_id),
            description: text(&self.description),
            customer: Customer::default(),
            code: text(&self.code),
            batch: None,
        })
    }
}

/// The card typed into a form, checked as the API checks one.
fn card_of(number: &str, month: &str, year: &str, cvv: &str, holder: &str) -> Result<Card, AppError> {
    let whole = |text: &str, what: &str| text.trim().parse::<u32>().map_err(|_| bad(&format!("Enter the {what}.")));
    Card::parse(
        number,
        whole(month, "expiry month")?,
        whole(year, "four-digit expiry year")?,
        cvv.trim(),
        Some(holder.trim().to_owned()).filter(|holder| !holder.is_empty()),
    )
}

/// The projects to choose from, the one chosen marked.
async fn projects_of(page: &PageContext, chosen: &str) -> Result<Vec<serde_json::Value>, AppError> {
    Ok(directory::visible_projects(&page.state.db, page.principal()?)
        .await?
        .into_iter()
        .map(|project| json!({ "id": project.id, "name": project.name, "selected": project.id.to_string() == chosen }))
        .collect())
}

/// The name of a project the principal may use (empty for another).
async fn project_name(page: &PageContext, project_id: i64) -> Result<String, AppError> {
    Ok(directory::visible_projects(&page.state.db, page.principal()?)
        .await?
        .into_iter()
        .find(|project| project.id == project_id)
        .map(|project| project.name)
        .unwrap_or_default())
}

fn bad(message: &str) -> AppError {
    AppError::BadRequest(message.to_owned())
}

async fn form_html(page: &PageContext, form: &PayoutForm, error: Option<&str>) -> Result<Html<String>, AppError> {
    let principal = page.principal()?;
    let data = json!({
        "csrf_token": page.csrf_token,
        "projects": projects_of(page, &form.project_id).await?,
        "currencies": CURRENCIES,
        // Never shown again: the security code is typed each time.
        "form": PayoutForm { cvv: String::new(), ..form.clone() },
        "error": error,
        "can_payout": principal.has_permission(PAYOUT),
        "can_purchase": principal.has_permission(PURCHASE),
        "can_act": principal.has_permission(ACT),
        "can_view": principal.has_permission(VIEW),
        "can_batch": principal.has_permission(BATCH),
    });
    page.render("Manual payments", "manual/index", &data)
}

#[handler]
async fn index(page: PageContext) -> Result<Html<String>, AppError> {
    let form = PayoutForm { currency: "EUR".to_owned(), ..PayoutForm::default() };
    form_html(&page, &form, None).await
}

#[handler]
async fn payout_submit(page: PageContext, HtmlForm(form): HtmlForm<PayoutForm>) -> Result<Response, AppError> {
    let payout = match form.payout() {
        Ok(payout) => payout,
        Err(error) => return refused(&page, &form, error).await,
    };
    let principal = page.principal()?;
    if form.step != "confirm" {
        return match payouts::request_code(&page.state, principal, &payout).await {
            Ok(sent) => Ok(review_html(&page, &form, &payout, &sent.sent_to, None).await?.into_response()),
            Err(error) => refused(&page, &form, error).await,
        };
    }
    let claim = Claim::for_caller(&page.state, principal, &form.idempotency_key, "POST /manual/payouts", &form)?
        .entered(Entry::Manual);
    let paid = |id: &str| see_other(&format!("/payments/{id}?notice=paid_out"));
    match service::create_payout(&page.state, principal, payout, &claim).await {
        Ok(done) => Ok(paid(&done.into_inner().id)),
        // The same confirmation sent twice: the first one's result, once it is done.
        Err(error @ AppError::Conflict(_)) => match made_by_first(&page, &claim).await? {
            Some(id) => Ok(paid(&id)),
            None => refused(&page, &form, error).await,
        },
        // A wrong code: the review again, to type it again.
        Err(error @ AppError::Refused(_)) => {
            let html = review_html(&page, &form, &form.payout()?, "your phone", Some(&error.to_string())).await?;
            Ok((error.status(), html).into_response())
        }
        Err(error) => refused(&page, &form, error).await,
    }
}

/// The form again with what was refused and why (other errors go to the error page).
async fn refused(page: &PageContext, form: &PayoutForm, error: AppError) -> Result<Response, AppError> {
    if !for_the_form(&error) {
        return Err(error);
    }
    Ok((error.status(), form_html(page, form, Some(&error.to_string())).await?).into_response())
}

/// Whether the person can fix what was refused on the form (else the error page).
fn for_the_form(error: &AppError) -> bool {
    matches!(error, AppError::BadRequest(_) | AppError::Unprocessable(_) | AppError::Refused(_) | AppError::Conflict(_))
}

/// The payment a confirmation sent again made the first time, once that one is done
/// (waiting 10 s at most): a double click or a resubmitted page shows it. `None` when
/// no earlier request holds the key (the refusal was this request's own).
async fn made_by_first(page: &PageContext, claim: &Claim) -> Result<Option<String>, AppError> {
    let answer = match claim.answered_before(&page.state).await {
        Ok(answer) => answer,
        Err(AppError::Conflict(_)) => claim.answer_within(&page.state, Duration::from_secs(10)).await?,
        Err(_) => None,
    };
    answer.map(|answer| Ok(Claim::replay::<PaymentView>(&answer)?.into_inner().id)).transpose()
}

/// The review: what the code confirms, the code's field, and the form carried on.
async fn review_html(
    page: &PageContext,
    form: &PayoutForm,
    payout: &NewPayout,
    sent_to: &str,
    error: Option<&str>,
) -> Result<Html<String>, AppError> {
    let project = project_name(page, payout.project_id).await?;
    let key = if form.idempotency_key.is_empty() { random_token() } else { form.idempotency_key.clone() };
    let data = json!({
        "csrf_token": page.csrf_token,
        "form": form,
        "idempotency_key": key,
        "amount": format_grouped(payout.amount, &payout.currency),
        "payee": payouts::card_shown(&payout.card),
        "project": project,
        "sent_to": sent_to,
        "error": error,
    });
    page.render("Confirm the payout", "manual/review", &data)
}
