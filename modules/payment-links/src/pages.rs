//! The section's pages: the list with its filters, pages, export and the form that
//! creates a link; a link's page with its payments, QR code and deactivation.

use dashboard_core::auth::Principal;
use dashboard_core::directory;
use dashboard_core::export::{csv_download, paged, safe_text};
use dashboard_core::money::{format_grouped, parse_amount};
use dashboard_core::pager::{PageOf, Trail};
use dashboard_core::web::{query_string, see_other};
use dashboard_core::{AppError, AppState, PageContext};
use dashboard_payments_domain::links::{self, LinkFilter, LinkRequest, LinkView};
use dashboard_payments_domain::model::LinkStatus;
use dashboard_payments_domain::page_styles;
use poem::web::{Form, Html, Path, Query};
use poem::{IntoResponse, Response, handler};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Links on a page of the list.
const PAGE_SIZE: i64 = 50;

/// The filter's part of a list address (empty values left out).
fn filter_query(filter: &LinkFilter) -> String {
    query_string(&[("status", &filter.status), ("project_id", &filter.project_id), ("q", &filter.q)])
}

/// What a link costs, as people read it.
pub(crate) fn price(link: &LinkView) -> String {
    let shown = |amount: i64| format_grouped(amount, &link.currency);
    match (link.amount, link.min_amount, link.max_amount) {
        (Some(amount), _, _) => shown(amount),
        (None, Some(min), Some(max)) => format!("{} to {}", shown(min), shown(max)),
        (None, Some(min), None) => format!("From {}", shown(min)),
        (None, None, Some(max)) => format!("Up to {}", shown(max)),
        (None, None, None) => format!("Any amount in {}", link.currency),
    }
}

/// How many payments a link takes, as people read it.
fn uses(link: &LinkView) -> String {
    match link.max_payments {
        Some(1) => "Single use".to_owned(),
        Some(most) => format!("{} of {most} payments", link.payments_made),
        None => format!("{} payments, no limit", link.payments_made),
    }
}

fn badge(status: LinkStatus) -> &'static str {
    match status {
        LinkStatus::Active => "badge-success",
        LinkStatus::Exhausted => "",
        LinkStatus::Expired | LinkStatus::Deactivated => "badge-muted",
    }
}

fn link_json(link: &LinkView, projects: &[directory::Project]) -> Value {
    let project = projects.iter().find(|p| p.id == link.project_id).map_or(String::new(), |p| p.name.clone());
    json!({
        "link": link,
        "project": project,
        "price": price(link),
        "uses": uses(link),
        "status": link.status.label(),
        "badge": badge(link.status),
        "active": link.status == LinkStatus::Active,
    })
}

/// The create form as typed (kept when it is shown again with an error).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct LinkForm {
    #[serde(default)]
    project_id: String,
    #[serde(default)]
    currency: String,
    /// `fixed` or `customer`.
    #[serde(default)]
    pricing: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    min_amount: String,
    #[serde(default)]
    max_amount: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    merchant_order_id: String,
    /// The last day it may be paid, in the user's time zone.
    #[serde(default)]
    expires_on: String,
    /// `once`, `limited` or `unlimited`.
    #[serde(default)]
    uses: String,
    #[serde(default)]
    max_payments: String,
    #[serde(default)]
    style_id: String,
}

impl LinkForm {
    /// The link it asks for, in the API's terms.
    fn request(&self, principal: &Principal) -> Result<LinkRequest, AppError> {
        let bad = |message: &str| AppError::BadRequest(message.to_owned());
        let currency = self.currency.trim().to_ascii_uppercase();
        let amount = |text: &str, what: &str| -> Result<Option<i64>, AppError> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            parse_amount(text, &currency)
                .map(Some)
                .ok_or_else(|| bad(&format!("Enter the {what} in {currency}, such as 25.00.")))
        };
        let fixed = self.pricing != "customer";
        let expires_at = match self.expires_on.trim() {
            "" => None,
            day => {
                let day = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                    .map_err(|_| bad("The last day must look like 2026-12-31."))?;
                let zone = principal.time_zone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::Tz::UTC);
                let end = day.succ_opt().ok_or_else(|| bad("The last day is too far away."))?;
                Some(dashboard_core::time::day_start(zone, end).and_utc())
            }
        };
        let max_payments = match self.uses.as_str() {
            "limited" => Some(
                self.max_payments
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| bad("Enter how many payments the link takes, such as 10."))?,
            ),
            _ => None,
        };
        Ok(LinkRequest {
            project_id: self.project_id.trim().parse().map_err(|_| bad("Choose a project."))?,
            currency: currency.clone(),
            amount: if fixed {
                Some(amount(&self.amount, "amount")?.ok_or_else(|| bad("Enter the amount."))?)
            } else {
                None
            },
            min_amount: if fixed { None } else { amount(&self.min_amount, "smallest amount")? },
            max_amount: if fixed { None } else { amount(&self.max_amount, "largest amount")? },
            description: self.description.clone(),
            merchant_order_id: Some(self.merchant_order_id.clone()),
            expires_at,
            max_payments,
            reusable: Some(self.uses == "unlimited"),
            style_id: match self.style_id.trim() {
                "" => None,
                id => Some(id.parse().map_err(|_| bad("Choose a style from the list."))?),
            },
        })
    }
}

async fn list_page(
    page: &PageContext,
    filter: &LinkFilter,
    trail: &Trail,
    form: &LinkForm,
    form_error: Option<String>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let (items, next, error) = match links::list(&page.state, principal, filter, PAGE_SIZE).await {
        Ok((items, next)) => (items, next, None),
        Err(error @ AppError::BadRequest(_)) => (Vec::new(), None, Some(error.to_string())),
        Err(error) => return Err(error),
    };
    let projects = directory::visible_projects(&page.state.db, principal).await?;
    let styles = page_styles::choices(&page.state.db, projects.iter().map(|p| p.id).collect()).await?;
    let base = filter_query(filter);
    let statuses: Vec<Value> = LinkStatus::ALL
        .iter()
        .map(|s| json!({ "value": s.as_str(), "label": s.label(), "selected": filter.status.as_deref() == Some(s.as_str()) }))
        .collect();
    let project_choices = |chosen: Option<&str>| -> Vec<Value> {
        projects
            .iter()
            .map(|p| json!({ "value": p.id, "label": p.name, "selected": chosen == Some(p.id.to_string().as_str()) }))
            .collect()
    };
    let style_choices: Vec<Value> = styles
        .iter()
        .map(|(id, project_id, name)| {
            let project = projects.iter().find(|p| p.id == *project_id).map_or("", |p| p.name.as_str());
            json!({ "value": id, "label": format!("{name} ({project})"), "selected": form.style_id == id.to_string() })
        })
        .collect();
    let data = json!({
        "links": items.iter().map(|link| link_json(link, &projects)).collect::<Vec<_>>(),
        "error": error,
        "form_error": form_error,
        "form": form,
        "customer_pricing": form.pricing == "customer",
        "uses_limited": form.uses == "limited",
        "uses_unlimited": form.uses == "unlimited",
        "filter": { "q": filter.q },
        "statuses": statuses,
        "projects": project_choices(filter.project_id.as_deref()),
        "form_projects": project_choices(Some(form.project_id.as_str())),
        "styles": style_choices,
        "currency": if form.currency.is_empty() { "EUR" } else { form.currency.as_str() },
        "can_create": principal.has_permission(crate::MANAGE),
        "csrf_token": page.csrf_token,
        "filtered": !base.is_empty(),
        "export_url": if base.is_empty() { "/payment-links/export".to_owned() } else { format!("/payment-links/export?{base}") },
        "pager": trail.pager(&PageOf {
            base: &format!("/payment-links?{base}"),
            cursor: "after",
            current: filter.after.as_deref(),
            next: next.as_deref(),
            shown: items.len(),
            size: PAGE_SIZE as usize,
        }),
        "open_form": form_error.is_some(),
    });
    let html: Html<String> = page.render("Payment links", "payment_links/list", &data)?;
    Ok(html.into_response())
}

#[handler]
pub async fn list(
    page: PageContext,
    Query(filter): Query<LinkFilter>,
    Query(trail): Query<Trail>,
) -> Result<Response, AppError> {
    list_page(&page, &filter, &trail, &LinkForm::default(), None).await
}

#[handler]
pub async fn create(page: PageContext, Form(form): Form<LinkForm>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let created = match form.request(principal) {
        Ok(request) => links::create(&page.state, principal, request).await,
        Err(error) => Err(error),
    };
    match created {
        Ok(link) => Ok(see_other(&format!("/payment-links/{}?notice=created", link.id))),
        Err(error @ (AppError::BadRequest(_) | AppError::Conflict(_) | AppError::Unprocessable(_))) => {
            list_page(&page, &LinkFilter::default(), &Trail::default(), &form, Some(error.to_string())).await
        }
        Err(error) => Err(error),
    }
}

/// The export's columns.
const COLUMNS: &[&str] = &[
    "Link",
    "Address",
    "Project",
    "Description",
    "Merchant order",
    "Currency",
    "Amount",
    "Smallest amount",
    "Largest amount",
    "Payments made",
    "Payments allowed",
    "Status",
    "Expires (UTC)",
    "Created (UTC)",
];

#[handler]
pub async fn export(page: PageContext, Query(mut filter): Query<LinkFilter>) -> Result<Response, AppError> {
    export_csv(&page.state, page.principal()?, &mut filter).await
}

/// The links matching `filter`, every page, as CSV (the page's and the API's export).
pub(crate) async fn export_csv(
    state: &AppState,
    principal: &Principal,
    filter: &mut LinkFilter,
) -> Result<Response, AppError> {
    let principal = principal.clone();
    filter.after = None;
    // A bad filter is told before the download starts.
    links::list(state, &principal, filter, 1).await?;
    let projects = std::sync::Arc::new(directory::visible_projects(&state.db, &principal).await?);
    let (state, filter) = (state.clone(), filter.clone());
    let rows = paged(move |after: Option<String>| {
        let (state, principal, projects, mut filter) =
            (state.clone(), principal.clone(), projects.clone(), filter.clone());
        async move {
            filter.after = after;
            let (items, next) = links::list(&state, &principal, &filter, 500).await?;
            Ok((items.iter().map(|link| csv_row(link, &projects)).collect(), next))
        }
    });
    Ok(csv_download("payment-links.csv", COLUMNS, rows))
}

fn csv_row(link: &LinkView, projects: &[directory::Project]) -> Vec<String> {
    let project = projects.iter().find(|p| p.id == link.project_id).map_or(String::new(), |p| p.name.clone());
    let decimal = |amount: Option<i64>| {
        amount.map_or(String::new(), |amount| dashboard_core::money::format_decimal(amount, &link.currency))
    };
    vec![
        link.id.clone(),
        link.url.clone(),
        safe_text(project),
        safe_text(link.description.clone()),
        safe_text(link.merchant_order_id.clone().unwrap_or_default()),
        link.currency.clone(),
        decimal(link.amount),
        decimal(link.min_amount),
        decimal(link.max_amount),
        link.payments_made.to_string(),
        link.max_payments.map_or("No limit".to_owned(), |most| most.to_string()),
        link.status.label().to_owned(),
        link.expires_at.as_ref().map_or(String::new(), |at| at.0.clone()),
        link.created_at.0.clone(),
    ]
}

#[derive(Debug, Deserialize)]
pub struct Notice {
    #[serde(default)]
    notice: Option<String>,
}

#[handler]
pub async fn detail(
    page: PageContext,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let link = links::view(&page.state, principal, &id).await?;
    let payments = links::payments_of(&page.state, principal, &id).await?;
    let projects = directory::visible_projects(&page.state.db, principal).await?;
    let payments: Vec<Value> = payments
        .iter()
        .map(|payment| json!({ "payment": payment, "amount": format_grouped(payment.amount.amount, &payment.amount.currency) }))
        .collect();
    let notice = match notice.notice.as_deref() {
        Some("created") => Some("The link is ready: send its address or show its QR code to the customer."),
        Some("deactivated") => Some("The link is deactivated: it takes no more payments."),
        _ => None,
    };
    let data = json!({
        "item": link_json(&link, &projects),
        "qr": crate::qr::svg(&link.url, "QR code of the link's address"),
        "payments": payments,
        "notice": notice,
        "can_manage": principal.has_permission(crate::MANAGE),
        "csrf_token": page.csrf_token,
    });
    let html: Html<String> = page.render(&format!("Payment link {id}"), "payment_links/detail", &data)?;
    Ok(html.into_response())
}

/// The QR code alone, to download and print.
#[handler]
pub async fn qr_code(page: PageContext, Path(id): Path<String>) -> Result<Response, AppError> {
    let link = links::view(&page.state, page.principal()?, &id).await?;
    Ok(svg_download(&link))
}

fn svg_download(link: &LinkView) -> Response {
    Response::builder()
        .content_type("image/svg+xml")
        .header("Content-Disposition", dashboard_core::export::attachment(&format!("{}.svg", link.id)))
        .body(crate::qr::svg(&link.url, "QR code of the link's address"))
}

#[handler]
pub async fn deactivate(page: PageContext, Path(id): Path<String>) -> Result<Response, AppError> {
    links::deactivate(&page.state, page.principal()?, &id).await?;
    Ok(see_other(&format!("/payment-links/{id}?notice=deactivated")))
}
