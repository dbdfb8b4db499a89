//! The hosted Payment Page: a payment link in its project's style, where a customer pays
//! without signing in. The card exists only in memory for the request: it is never
//! stored, logged or written back into a page (after an error the customer types it
//! again; only its last four digits are mentioned). Payments go through the payment
//! service like any purchase; attempts are limited per client address and per link.

use dashboard_core::money::{format_grouped, parse_amount};
use dashboard_core::session::ClientInfo;
use dashboard_core::throttle::PerMinute;
use dashboard_core::web::see_other;
use dashboard_core::{AppError, AppState, PageContext};
use dashboard_payments_domain::card::Card;
use dashboard_payments_domain::checkout;
use dashboard_payments_domain::links::{self, CardEntry, LinkPaymentResult, OpenLink};
use dashboard_payments_domain::model::Status;
use dashboard_payments_domain::page_styles::{self, Design, Language, Look};
use poem::http::{StatusCode, header};
use poem::web::{Form, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

/// The hosted page's policy: its own files only, no script inline, never framed.
const HOSTED_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                             form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Attempts to pay, per client address and per link.
pub struct PayThrottle {
    by_address: PerMinute,
    by_link: PerMinute,
}

impl PayThrottle {
    pub fn new(per_address: u32, per_link: u32) -> PayThrottle {
        PayThrottle { by_address: PerMinute::new(per_address), by_link: PerMinute::new(per_link) }
    }

    fn refused() -> AppError {
        AppError::TooManyRequests("Too many attempts. Wait a minute, then try again.".to_owned())
    }

    /// Counts an attempt from `address` (before anything is read).
    fn count_address(&self, address: Option<&str>) -> Result<(), AppError> {
        match address.map(address_key) {
            Some(key) if !self.by_address.allows(&key) => Err(PayThrottle::refused()),
            _ => Ok(()),
        }
    }

    /// Counts a payment attempt through `link` (once the form is read: a form that
    /// cannot pay does not spend the link's budget for its customers).
    fn count_link(&self, link: &str) -> Result<(), AppError> {
        if self.by_link.allows(link) { Ok(()) } else { Err(PayThrottle::refused()) }
    }

    pub fn forget_recovered(&self) {
        self.by_address.forget_recovered();
        self.by_link.forget_recovered();
    }
}

/// Whose budget an address spends: an IPv4 address, or an IPv6 address's /64 (what one
/// customer's line is given).
fn address_key(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
        _ => address.to_owned(),
    }
}

/// The page's fixed words in a language; English where a language has none of its own.
fn words(language: Option<Language>) -> Value {
    let (amount, number, expiry, cvv, holder, email, secure, again, paid, declined, back) = match language {
        Some(Language::De) => (
            "Betrag",
            "Kartennummer",
            "Gültig bis (MM/JJ)",
            "Prüfnummer",
            "Name auf der Karte",
            "E-Mail für die Quittung",
            "Sichere Zahlung. Ihre Kartendaten werden nicht gespeichert.",
            "Bitte geben Sie die Kartendaten erneut ein.",
            "Zahlung erfolgreich",
            "Zahlung abgelehnt",
            "Zurück zum Shop",
        ),
        Some(Language::Fr) => (
            "Montant",
            "Numéro de carte",
            "Expiration (MM/AA)",
            "Cryptogramme",
            "Nom sur la carte",
            "E-mail pour le reçu",
            "Paiement sécurisé. Vos données de carte ne sont pas conservées.",
            "Veuillez saisir à nouveau les données de la carte.",
            "Paiement réussi",
            "Paiement refusé",
            "Retour à la boutique",
        ),
        Some(Language::Es) => (
            "Importe",
            "Número de tarjeta",
            "Caducidad (MM/AA)",
            "Código de seguridad",
            "Nombre en la tarjeta",
            "Correo electrónico para el recibo",
            "Pago seguro. Los datos de su tarjeta no se guardan.",
            "Vuelva a introducir los datos de la tarjeta.",
            "Pago realizado",
            "Pago rechazado",
            "Volver a la tienda",
        ),
        _ => (
            "Amount",
            "Card number",
            "Expiry (MM/YY)",
            "Security code",
            "Name on the card",
            "E-mail for the receipt",
            "Secure payment. Your card details are not stored.",
            "Please enter the card details again.",
            "Payment successful",
            "Payment declined",
            "Back to the shop",
        ),
    };
    json!({
        "amount": amount, "number": number, "expiry": expiry, "cvv": cvv, "holder": holder, "email": email,
        "secure": secure, "again": again, "paid": paid, "declined": declined, "back": back,
    })
}

/// What the page shows, beyond the look: the form, a result or why the link is closed.
pub(crate) enum Shown<'a> {
    Form {
        error: Option<String>,
        last4: Option<String>,
        amount: String,
        email: String,
    },
    Result {
        outcome: Outcome,
        status: Status,
        amount: String,
        refresh: Option<String>,
        retry: bool,
    },
    Closed(&'a str),
    /// The designer's preview: the form with test data, going nowhere.
    Preview,
}

/// What the page is about.
pub(crate) struct Subject<'a> {
    pub link_id: &'a str,
    /// Where "back to the shop" leads, if the project has such an address.
    pub return_url: Option<String>,
    pub merchant: &'a str,
    pub description: &'a str,
    /// The price shown; none when the customer enters it.
    pub price: Option<String>,
    pub currency: &'a str,
}

/// The hosted page's HTML.
pub(crate) fn render(
    state: &AppState,
    look: &Look,
    css_url: &str,
    accept_language: Option<&str>,
    subject: &Subject<'_>,
    shown: Shown<'_>,
    csrf_token: &str,
) -> Result<String, AppError> {
    let texts = look.design.texts_for(accept_language);
    let mut data = json!({
        "lang": texts.language,
        "words": words(texts.translated),
        "texts": texts,
        "css_url": css_url,
        "logo_url": look.logo_url,
        "merchant": subject.merchant,
        "description": subject.description,
        "price": subject.price,
        "currency": subject.currency,
        "link_id": subject.link_id,
        "return_url": subject.return_url,
        "csrf_token": csrf_token,
        // Every part's fields, empty unless the part below fills them (templates are strict).
        "form": false, "preview": false, "error": null, "last4": null, "entered_amount": "", "email": "",
        "form_key": "", "result": false, "paid": false, "pending": false, "status": "", "paid_amount": "",
        "refresh": null, "recheck": false, "retry": false, "closed": null,
    });
    let extra = match shown {
        Shown::Form { error, last4, amount, email } => json!({
            "form": true, "error": error, "last4": last4, "entered_amount": amount, "email": email,
            "form_key": &dashboard_core::auth::random_token()[..32],
        }),
        Shown::Preview => json!({ "form": true, "preview": true }),
        Shown::Result { outcome, status, amount, refresh, retry } => json!({
            "result": true,
            "paid": outcome == Outcome::Paid,
            "pending": outcome == Outcome::UnderWay,
            "status": status.label(),
            "paid_amount": amount,
            // A payment under way: the page asks again in a few seconds (no script needed).
            "refresh": refresh,
            "recheck": outcome == Outcome::UnderWay,
            "retry": retry,
        }),
        Shown::Closed(reason) => json!({ "closed": reason }),
    };
    if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
        data.extend(extra);
    }
    state.theme.render("payment_page/hosted", &data).map_err(|e| AppError::Internal(e.to_string()))
}

/// The page as a response, with its own security policy.
fn respond(status: StatusCode, html: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, HOSTED_POLICY)
        .body(html)
}

fn accept_language(req: &Request) -> Option<String> {
    req.headers().get(header::ACCEPT_LANGUAGE).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

async fn merchant_name(state: &AppState, link: &OpenLink) -> Result<String, AppError> {
    let projects = dashboard_core::directory::company_projects(&state.db, link.company_id).await?;
    Ok(projects.into_iter().find(|project| project.id == link.project_id).map_or_else(String::new, |p| p.name))
}

/// Shows `link`'s page: the form while it takes payments, else why not.
async fn show(
    page: &PageContext,
    req: &Request,
    link: &OpenLink,
    shown: Option<Shown<'_>>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let state = &page.state;
    let look = page_styles::look_for(&state.db, link.project_id, link.style_id).await?;
    let merchant = merchant_name(state, link).await?;
    let subject = Subject {
        link_id: &link.public_id,
        return_url: checkout::redirects_of(&state.db, link.project_id).await?.return_url,
        merchant: &merchant,
        description: &link.description,
        price: link.amount.map(|amount| format_grouped(amount, &link.currency)),
        currency: &link.currency,
    };
    let shown = match (links::refusal(link.status), shown) {
        (_, Some(shown @ Shown::Result { .. })) => shown,
        (Some(reason), _) => Shown::Closed(reason),
        (None, Some(shown)) => shown,
        (None, None) => Shown::Form { error: None, last4: None, amount: String::new(), email: String::new() },
    };
    let language = accept_language(req);
    let html = render(state, &look, &look.css_url, language.as_deref(), &subject, shown, &page.csrf_token)?;
    Ok(respond(status, html))
}

/// A link that does not exist gets the page in the default look, saying so.
async fn not_found(page: &PageContext) -> Result<Response, AppError> {
    let look = Look {
        design: Design::default(),
        logo_url: None,
        background_url: None,
        css_url: "/pay/looks/default.css".to_owned(),
    };
    let subject = Subject { link_id: "", return_url: None, merchant: "", description: "", price: None, currency: "" };
    let shown = Shown::Closed("This payment link does not exist. Check the address you were given.");
    let html = render(&page.state, &look, &look.css_url, None, &subject, shown, &page.csrf_token)?;
    Ok(respond(StatusCode::NOT_FOUND, html))
}

#[handler]
pub async fn link_page(req: &Request, page: PageContext, Path(link): Path<String>) -> Result<Response, AppError> {
    match opened(&page, &link).await? {
        Ok(link) => show(&page, req, &link, None, StatusCode::OK).await,
        Err(missing) => Ok(missing),
    }
}

/// The link `public_id`, or the page saying there is no such link.
async fn opened(page: &PageContext, public_id: &str) -> Result<Result<OpenLink, Response>, AppError> {
    match links::open(&page.state.db, public_id).await {
        Ok(link) => Ok(Ok(link)),
        Err(AppError::NotFound) => not_found(page).await.map(Err),
        Err(error) => Err(error),
    }
}

/// The form as the customer sent it.
#[derive(Deserialize)]
pub struct PayForm {
    /// One per page shown: a resubmitted form pays once.
    #[serde(default)]
    form_key: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    card_number: String,
    /// `MM/YY`.
    #[serde(default)]
    expiry: String,
    #[serde(default)]
    cvv: String,
    #[serde(default)]
    holder: String,
    #[serde(default)]
    email: String,
}

impl PayForm {
    fn card(&self) -> Result<Card, AppError> {
        let bad = || AppError::BadRequest("Enter the expiry as on the card, such as 09/29.".to_owned());
        let (month, year) = self.expiry.split_once('/').ok_or_else(bad)?;
        let month: u32 = month.trim().parse().map_err(|_| bad())?;
        let year: u32 = year.trim().parse().map_err(|_| bad())?;
        let year = if year < 100 { 2000 + year } else { year };
        let holder = Some(self.holder.trim().to_owned()).filter(|holder| !holder.is_empty());
        Card::parse(&self.card_number, month, year, self.cvv.trim(), holder)
    }

    fn email(&self) -> Result<Option<String>, AppError> {
        let email = self.email.trim();
        if email.is_empty() {
            return Ok(None);
        }
        if email.len() > 254 || !email.contains('@') || email.contains(char::is_whitespace) {
            return Err(AppError::BadRequest("Enter an e-mail address such as name@example.com.".to_owned()));
        }
        Ok(Some(email.to_owned()))
    }

    /// The last four digits typed, to say which card to type again.
    fn last4(&self) -> Option<String> {
        let digits: String = self.card_number.chars().filter(char::is_ascii_digit).collect();
        (digits.len() >= 12).then(|| digits[digits.len() - 4..].to_owned())
    }
}

#[handler]
pub async fn pay(
    req: &Request,
    page: PageContext,
    Path(link): Path<String>,
    Form(form): Form<PayForm>,
) -> Result<Response, AppError> {
    let state = &page.state;
    let link = match opened(&page, &link).await? {
        Ok(link) => link,
        Err(missing) => return Ok(missing),
    };
    let client = ClientInfo::from_request(req);
    let paid = async {
        let throttle = state.extension::<std::sync::Arc<PayThrottle>>()?;
        throttle.count_address(client.ip.as_deref())?;
        let amount = match form.amount.trim() {
            "" => None,
            text => Some(parse_amount(text, &link.currency).ok_or_else(|| {
                AppError::BadRequest(format!("Enter the amount in {}, such as 25.00.", link.currency))
            })?),
        };
        let entry = CardEntry { amount, card: form.card()?, email: form.email()?, ip: client.ip.clone() };
        throttle.count_link(&link.public_id)?;
        link.pay(state, entry, &form.form_key).await
    };
    match paid.await {
        Ok(payment) => {
            let payment = payment.into_inner();
            // The challenge is on this site: its path, whatever address the site is given.
            let challenge = payment.challenge_url.as_deref().and_then(|url| url::Url::parse(url).ok());
            match challenge {
                Some(url) if payment.status == Status::AwaitingChallenge => Ok(see_other(url.path())),
                _ => Ok(see_other(&format!("/pay/{}/done?payment_id={}", link.public_id, payment.id))),
            }
        }
        Err(error) => {
            let status = error.status();
            let shown_error = match &error {
                AppError::BadRequest(_)
                | AppError::Unprocessable(_)
                | AppError::Conflict(_)
                | AppError::TooManyRequests(_) => error.to_string(),
                _ => return Err(error),
            };
            // The link may have closed meanwhile (paid by someone else): say so.
            let link = links::open(&state.db, &link.public_id).await?;
            let shown = Shown::Form {
                error: Some(shown_error),
                last4: form.last4(),
                amount: form.amount.clone(),
                email: form.email.clone(),
            };
            show(&page, req, &link, Some(shown), status).await
        }
    }
}

#[derive(Deserialize)]
pub struct Done {
    #[serde(default)]
    payment_id: String,
}

/// `url` with the payment's id, status, amount and order id added to its own query, and
/// a signature of that whole query made with the project's callback key:
/// `signature=t=<time>,v1=<HMAC-SHA256 hex of "<time>.<the query before &signature=>">`,
/// as callbacks are signed. The time is when the payment settled, so an old result cannot
/// be passed off as a fresh one.
async fn signed_redirect(
    state: &AppState,
    url: &str,
    link: &OpenLink,
    payment_id: &str,
    result: &LinkPaymentResult,
) -> Result<String, AppError> {
    let mut url = url::Url::parse(url).map_err(|e| AppError::Internal(e.to_string()))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("payment_id", payment_id)
            .append_pair("status", result.status.as_str())
            .append_pair("amount", &result.amount.amount.to_string())
            .append_pair("currency", &result.amount.currency)
            .append_pair("link_id", &link.public_id);
        if let Some(order) = &link.merchant_order_id {
            query.append_pair("merchant_order_id", order);
        }
    }
    let signed = url.query().unwrap_or_default().to_owned();
    let keys = dashboard_payments_domain::callbacks::signing_keys(state, link.project_id).await?;
    let at = result.changed_at.and_utc().timestamp();
    let signature = dashboard_payments_domain::callbacks::signature(&keys.all(), at, &signed);
    url.query_pairs_mut().append_pair("signature", &signature);
    Ok(url.to_string())
}

/// Where a payment through a link ended: the shop's success or failure page when the
/// project has one (by a page that moves on at once: a form's redirects may not leave the
/// site), else the result here; a payment still under way, this page again in a moment.
#[handler]
pub async fn done(
    req: &Request,
    page: PageContext,
    Path(link): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, AppError> {
    let state = &page.state;
    let link = match opened(&page, &link).await? {
        Ok(link) => link,
        Err(missing) => return Ok(missing),
    };
    let result = links::payment_of_link(&state.db, link.id, &done.payment_id).await?;
    let redirects = checkout::redirects_of(&state.db, link.project_id).await?;
    let outcome = Outcome::of(result.status);
    let target = match outcome {
        Outcome::Paid => redirects.success_url,
        Outcome::NotPaid => redirects.failure_url,
        Outcome::UnderWay => None,
    };
    let refresh = match target {
        Some(url) => Some(signed_redirect(state, &url, &link, &done.payment_id, &result).await?),
        None => None,
    };
    let shown = Shown::Result {
        outcome,
        status: result.status,
        amount: format_grouped(result.amount.amount, &result.amount.currency),
        refresh,
        retry: outcome == Outcome::NotPaid && links::refusal(link.status).is_none(),
    };
    show(&page, req, &link, Some(shown), StatusCode::OK).await
}

/// How a payment through a link ended, for its customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The money was taken (whatever happened to it later: a refund is not a decline).
    Paid,
    NotPaid,
    /// Waiting for the acquirer or for 3-D Secure.
    UnderWay,
}

impl Outcome {
    fn of(status: Status) -> Outcome {
        match status {
            Status::Declined | Status::Failed | Status::Cancelled => Outcome::NotPaid,
            Status::Processing | Status::AwaitingChallenge => Outcome::UnderWay,
            _ => Outcome::Paid,
        }
    }
}

/// The page's own style sheet and script.
#[handler]
pub fn asset(Path(file): Path<String>) -> Result<Response, AppError> {
    let (body, content_type) = match file.as_str() {
        "checkout.css" => (include_str!("../assets/checkout.css"), "text/css; charset=utf-8"),
        "checkout.js" => (include_str!("../assets/checkout.js"), "text/javascript; charset=utf-8"),
        _ => return Err(AppError::NotFound),
    };
    Ok(Response::builder().content_type(content_type).header(header::CACHE_CONTROL, "public, max-age=3600").body(body))
}

/// A published version's style sheet (`<version>.css`, or `default.css`): a version never
/// changes, so browsers keep it.
#[handler]
pub async fn look_css(page: PageContext, Path(file): Path<String>) -> Result<Response, AppError> {
    let version = file.strip_suffix(".css").ok_or(AppError::NotFound)?;
    let css = page_styles::version_css(&page.state.db, version).await?.ok_or(AppError::NotFound)?;
    Ok(Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .body(css))
}

/// A logo or background image, as it was stored.
#[handler]
pub async fn image(page: PageContext, Path(address): Path<String>) -> Result<Response, AppError> {
    let image = page_styles::image(&page.state.db, &address).await?;
    Ok(Response::builder()
        .content_type(image.content_type)
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .body(image.bytes))
}

#[cfg(test)]
mod tests {
    use super::address_key;

    #[test]
    fn an_ipv6_customer_spends_one_budget_for_its_whole_network() {
        assert_eq!(address_key("2001:db8:1:2:aaaa::1"), address_key("2001:db8:1:2:ffff::9"));
        assert_ne!(address_key("2001:db8:1:2::1"), address_key("2001:db8:1:3::1"));
        assert_eq!(address_key("203.0.113.7"), "203.0.113.7");
    }
}
