//! The section's pages: rules (with a builder and the language's reference), the lists,
//! the review queue and backtests.

use dashboard_core::auth::Principal;
use dashboard_core::directory;
use dashboard_core::export::{csv_download, paged, safe_text};
use dashboard_core::pager::{PageOf, Trail};
use dashboard_core::web::{query_string, see_other};
use dashboard_core::{AppError, AppState, PageContext};
use dashboard_payments_domain::fraud::backtest::{self, BacktestRequest, BacktestView};
use dashboard_payments_domain::fraud::language::{List, ListKind};
use dashboard_payments_domain::fraud::lists::{self, EntryFilter, EntryRequest, EntryView};
use dashboard_payments_domain::fraud::reviews::{self, Decision, ReviewFilter, ReviewView};
use dashboard_payments_domain::fraud::rules::{self, RuleRequest, RuleView};
use dashboard_payments_domain::fraud::{Action, ReviewStatus, RuleStatus};
use dashboard_payments_domain::service::Money;
use poem::web::{Form, Html, Multipart, Path, Query};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

/// Rows on a page of the lists and of the queue.
const PAGE_SIZE: i64 = 50;

fn money(amount: &Money) -> String {
    dashboard_core::money::format_grouped(amount.amount, &amount.currency)
}

fn amounts(amounts: &[Money]) -> String {
    if amounts.is_empty() { "—".to_owned() } else { amounts.iter().map(money).collect::<Vec<_>>().join(", ") }
}

/// `(value, label, selected)` choices of a text enum for a select.
fn choices<T: Copy>(all: &[T], text: impl Fn(T) -> (&'static str, &'static str), chosen: Option<&str>) -> Vec<Value> {
    all.iter()
        .map(|item| {
            let (value, label) = text(*item);
            json!({ "value": value, "label": label, "selected": chosen == Some(value) })
        })
        .collect()
}

fn action_badge(action: Action) -> &'static str {
    match action {
        Action::Decline => "badge-danger",
        Action::Review | Action::Challenge => "badge-warning",
        Action::Allow => "badge-success",
    }
}

/// `path` with the non-empty parts of a query.
fn address(path: &str, parts: &[&str]) -> String {
    let query: Vec<&str> = parts.iter().copied().filter(|part| !part.is_empty()).collect();
    if query.is_empty() { path.to_owned() } else { format!("{path}?{}", query.join("&")) }
}

// ------------------------------------------------------------------------------------
// Rules

#[derive(Debug, Default, Deserialize)]
pub struct RuleFilter {
    status: Option<String>,
    action: Option<String>,
    notice: Option<String>,
}

fn rule_json(rule: &RuleView) -> Value {
    json!({
        "rule": rule,
        "action": rule.action.label(),
        "action_badge": action_badge(rule.action),
        "status": rule.status.label(),
        "enabled": rule.status == RuleStatus::Enabled,
    })
}

fn filtered_rules(all: Vec<RuleView>, filter: &RuleFilter) -> Vec<RuleView> {
    let wanted = |value: &Option<String>| value.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
    let (status, action) = (wanted(&filter.status), wanted(&filter.action));
    all.into_iter()
        .filter(|rule| status.as_deref().is_none_or(|s| rule.status.as_str() == s))
        .filter(|rule| action.as_deref().is_none_or(|a| rule.action.as_str() == a))
        .collect()
}

#[handler]
pub async fn rules_page(page: PageContext, Query(filter): Query<RuleFilter>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let shown = filtered_rules(rules::list(&page.state, principal).await?, &filter);
    let query = query_string(&[("status", &filter.status), ("action", &filter.action)]);
    let notice = match filter.notice.as_deref() {
        Some("deleted") => Some("Rule deleted. Payments it decided still name it."),
        _ => None,
    };
    let data = json!({
        "tab": "rules",
        "rules": shown.iter().map(rule_json).collect::<Vec<_>>(),
        "statuses": choices(RuleStatus::ALL, |s| (s.as_str(), s.label()), filter.status.as_deref()),
        "actions": choices(Action::ALL, |a| (a.as_str(), a.label()), filter.action.as_deref()),
        "filtered": !query.is_empty(),
        "export_url": address("/fraud/rules/export", &[&query]),
        "can_manage": principal.has_permission(crate::MANAGE),
        "notice": notice,
    });
    let html: Html<String> = page.render("Fraud rules", "fraud/rules", &data)?;
    Ok(html.into_response())
}

const RULE_COLUMNS: &[&str] = &["Priority", "Name", "Condition", "Action", "Status", "Updated (UTC)"];

#[handler]
pub async fn export_rules(page: PageContext, Query(filter): Query<RuleFilter>) -> Result<Response, AppError> {
    rules_csv(&page.state, page.principal()?, &filter).await
}

/// The rules matching `filter` as CSV (the page's export and the API's).
pub(crate) async fn rules_csv(
    state: &AppState,
    principal: &Principal,
    filter: &RuleFilter,
) -> Result<Response, AppError> {
    let shown = filtered_rules(rules::list(state, principal).await?, filter);
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|rule| {
            vec![
                rule.priority.to_string(),
                safe_text(rule.name.clone()),
                safe_text(rule.condition.clone()),
                rule.action.label().to_owned(),
                rule.status.label().to_owned(),
                rule.updated_at.0.clone(),
            ]
        })
        .collect();
    let (sender, receiver) = dashboard_core::export::rows_channel();
    // The rules are few (at most 500): one batch.
    let _ = sender.try_send(Ok(rows));
    Ok(csv_download("fraud-rules.csv", RULE_COLUMNS, receiver))
}

impl RuleFilter {
    pub(crate) fn of(status: Option<RuleStatus>, action: Option<Action>) -> RuleFilter {
        RuleFilter {
            status: status.map(|s| s.as_str().to_owned()),
            action: action.map(|a| a.as_str().to_owned()),
            notice: None,
        }
    }
}

/// The rule form as typed, with the builder's clause.
#[derive(Debug, Default, Deserialize)]
pub struct RuleForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    condition: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    status: String,
    /// `add` when the builder's button was pressed: the clause is added, nothing saved.
    #[serde(default)]
    intent: String,
    #[serde(default)]
    join: String,
    #[serde(default)]
    field: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    value: String,
}

/// What the builder offers: `(what people read, the language's text, whether it is a
/// number, whether it takes a text)`.
const BUILDER_FIELDS: &[(&str, &str)] = &[
    ("Amount (minor units, or e.g. 500.00 EUR)", "amount"),
    ("Currency", "currency"),
    ("Project id", "project"),
    ("Card brand", "card.brand"),
    ("Card BIN", "card.bin"),
    ("Card's country", "card.country"),
    ("Customer's country", "customer.country"),
    ("Address's country", "ip.country"),
    ("E-mail domain", "email.domain"),
    ("Kind (purchase, payout, payment_link)", "kind"),
    ("Payments of the card, 10 minutes", "count(card, 10m)"),
    ("Payments of the card, 1 hour", "count(card, 1h)"),
    ("Payments of the card, 24 hours", "count(card, 24h)"),
    ("Payments of the e-mail, 24 hours", "count(email, 24h)"),
    ("Payments from the address, 1 hour", "count(ip, 1h)"),
    ("Sum of the card, 24 hours", "sum(card, 24h)"),
    ("Sum of the e-mail, 24 hours", "sum(email, 24h)"),
    ("Card on the block list", "card in blocklist"),
    ("E-mail on the block list", "email in blocklist"),
    ("Address on the block list", "ip in blocklist"),
    ("Country on the block list", "country in blocklist"),
    ("BIN on the block list", "bin in blocklist"),
    ("Card on the allow list", "card in allowlist"),
    ("E-mail on the allow list", "email in allowlist"),
];

const BUILDER_OPS: &[(&str, &str)] =
    &[("is", "="), ("is not", "!="), ("is above", ">"), ("is at least", ">="), ("is below", "<"), ("is at most", "<=")];

impl RuleForm {
    fn request(&self) -> Result<RuleRequest, AppError> {
        let action = Action::parse(&self.action).ok_or_else(|| AppError::BadRequest("Choose an action.".to_owned()))?;
        let status = RuleStatus::parse(&self.status)
            .ok_or_else(|| AppError::BadRequest("Choose draft or enabled.".to_owned()))?;
        let priority = self
            .priority
            .trim()
            .parse::<i32>()
            .map_err(|_| AppError::BadRequest("The priority is a number from 1 to 10,000.".to_owned()))?;
        Ok(RuleRequest { name: self.name.clone(), condition: self.condition.clone(), action, priority, status })
    }

    /// The condition with the builder's clause added (`and` or `or` the rest).
    fn with_clause(&self) -> Result<String, AppError> {
        let field = BUILDER_FIELDS
            .iter()
            .find(|(_, text)| *text == self.field)
            .map(|(_, text)| *text)
            .ok_or_else(|| AppError::BadRequest("Choose what the condition reads.".to_owned()))?;
        let clause = if field.ends_with("list") {
            field.to_owned()
        } else {
            let op = BUILDER_OPS
                .iter()
                .find(|(_, text)| *text == self.op)
                .map(|(_, text)| *text)
                .ok_or_else(|| AppError::BadRequest("Choose a comparison.".to_owned()))?;
            let value = self.value.trim();
            if value.is_empty() {
                return Err(AppError::BadRequest("Give the value to compare with.".to_owned()));
            }
            let numeric = value.starts_with(|c: char| c.is_ascii_digit());
            let value = if numeric { value.to_owned() } else { format!("\"{}\"", value.replace('"', "")) };
            format!("{field} {op} {value}")
        };
        let current = self.condition.trim();
        Ok(if current.is_empty() {
            clause
        } else {
            let join = if self.join == "or" { "or" } else { "and" };
            format!("{current}\n{join} {clause}")
        })
    }
}

/// Where a mistake in the condition is: its line, and a caret under its column.
fn mistake_at(condition: &str, message: &str) -> Option<Value> {
    // "Line L, column C: …" as the language words it.
    let rest = message.strip_prefix("Line ")?;
    let (line, rest) = rest.split_once(", column ")?;
    let (column, _) = rest.split_once(':')?;
    let (line, column) = (line.parse::<usize>().ok()?, column.parse::<usize>().ok()?);
    let text = condition.lines().nth(line.checked_sub(1)?).unwrap_or("");
    Some(json!({ "line": line, "text": text, "caret": format!("{}^", " ".repeat(column.saturating_sub(1))) }))
}

async fn render_rule_form(
    page: &PageContext,
    id: Option<i64>,
    form: &RuleForm,
    error: Option<String>,
    notice: Option<&str>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let mistake = error.as_deref().and_then(|error| mistake_at(&form.condition, error));
    let today = chrono::Utc::now().date_naive();
    let data = json!({
        "tab": "rules",
        "id": id,
        "form": {
            "name": form.name, "condition": form.condition, "priority": form.priority,
        },
        "actions": choices(Action::ALL, |a| (a.as_str(), a.label()), Some(form.action.as_str())),
        "statuses": choices(RuleStatus::ALL, |s| (s.as_str(), s.label()), Some(form.status.as_str())),
        "fields": BUILDER_FIELDS.iter().map(|(label, text)| json!({ "value": text, "label": label, "selected": form.field == *text })).collect::<Vec<_>>(),
        "ops": BUILDER_OPS.iter().map(|(label, text)| json!({ "value": text, "label": label, "selected": form.op == *text })).collect::<Vec<_>>(),
        "or_selected": form.join == "or",
        "error": error,
        "mistake": mistake,
        "notice": notice,
        "can_manage": principal.has_permission(crate::MANAGE),
        "csrf_token": page.csrf_token,
        "backtest_from": (today - chrono::TimeDelta::days(30)).to_string(),
        "backtest_to": today.to_string(),
    });
    let title = if id.is_some() { format!("Rule {}", form.name) } else { "New fraud rule".to_owned() };
    let html: Html<String> = page.render(&title, "fraud/rule", &data)?;
    Ok(html.into_response())
}

#[handler]
pub async fn new_rule(page: PageContext) -> Result<Response, AppError> {
    let form = RuleForm {
        action: Action::Decline.as_str().to_owned(),
        status: RuleStatus::Draft.as_str().to_owned(),
        priority: "100".to_owned(),
        ..RuleForm::default()
    };
    render_rule_form(&page, None, &form, None, None).await
}

/// Saves the form, or adds the builder's clause and shows the form again.
async fn save_rule(page: &PageContext, id: Option<i64>, mut form: RuleForm) -> Result<Response, AppError> {
    if form.intent == "add" {
        return match form.with_clause() {
            Ok(condition) => {
                form.condition = condition;
                form.value.clear();
                render_rule_form(page, id, &form, None, None).await
            }
            Err(error) => render_rule_form(page, id, &form, Some(error.to_string()), None).await,
        };
    }
    let principal = page.principal()?;
    let saved = match form.request() {
        Ok(request) => match id {
            None => rules::create(&page.state, principal, request).await,
            Some(id) => rules::update(&page.state, principal, id, request).await,
        },
        Err(error) => Err(error),
    };
    match saved {
        Ok(rule) => Ok(see_other(&format!("/fraud/rules/{}?notice=saved", rule.id))),
        Err(error @ (AppError::BadRequest(_) | AppError::Conflict(_))) => {
            render_rule_form(page, id, &form, Some(error.to_string()), None).await
        }
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn create_rule(page: PageContext, Form(form): Form<RuleForm>) -> Result<Response, AppError> {
    save_rule(&page, None, form).await
}

#[handler]
pub async fn update_rule(
    page: PageContext,
    Path(id): Path<i64>,
    Form(form): Form<RuleForm>,
) -> Result<Response, AppError> {
    save_rule(&page, Some(id), form).await
}

#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

#[handler]
pub async fn rule_page(
    page: PageContext,
    Path(id): Path<i64>,
    Query(notice): Query<Notice>,
) -> Result<Response, AppError> {
    let rule = rules::view(&page.state, page.principal()?, id).await?;
    let form = RuleForm {
        name: rule.name,
        condition: rule.condition,
        action: rule.action.as_str().to_owned(),
        priority: rule.priority.to_string(),
        status: rule.status.as_str().to_owned(),
        ..RuleForm::default()
    };
    let notice = match notice.notice.as_deref() {
        Some("saved") => Some("Rule saved. An enabled rule screens every new payment at once."),
        _ => None,
    };
    render_rule_form(&page, Some(id), &form, None, notice).await
}

#[handler]
pub async fn delete_rule(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    rules::delete(&page.state, page.principal()?, id).await?;
    Ok(see_other("/fraud?notice=deleted"))
}

// ------------------------------------------------------------------------------------
// Lists

fn entry_json(entry: &EntryView) -> Value {
    json!({
        "entry": entry,
        "list": entry.list.label(),
        "list_badge": if entry.list == List::Block { "badge-danger" } else { "badge-success" },
        "kind": entry.kind.label(),
        "fingerprint": entry.kind == ListKind::Card,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct ListsQuery {
    #[serde(flatten)]
    filter: EntryFilter,
    notice: Option<String>,
}

fn entry_filter_query(filter: &EntryFilter) -> String {
    query_string(&[("list", &filter.list), ("kind", &filter.kind), ("q", &filter.q)])
}

async fn render_lists(
    page: &PageContext,
    filter: &EntryFilter,
    trail: &Trail,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let (entries, next, error) = match lists::list(&page.state, principal, filter, PAGE_SIZE).await {
        Ok((entries, next)) => (entries, next, error),
        Err(error @ AppError::BadRequest(_)) => (Vec::new(), None, Some(error.to_string())),
        Err(error) => return Err(error),
    };
    let base = entry_filter_query(filter);
    let data = json!({
        "tab": "lists",
        "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
        "lists": choices(List::ALL, |l| (l.as_str(), l.label()), filter.list.as_deref()),
        "kinds": choices(ListKind::ALL, |k| (k.as_str(), k.label()), filter.kind.as_deref()),
        "q": filter.q,
        "filtered": !base.is_empty(),
        "export_url": address("/fraud/lists/export", &[&base]),
        "pager": trail.pager(&PageOf {
            base: &address("/fraud/lists", &[&base]),
            cursor: "after",
            current: filter.after.as_deref(),
            next: next.as_deref(),
            shown: entries.len(),
            size: PAGE_SIZE as usize,
        }),
        "can_manage": principal.has_permission(crate::MANAGE),
        "csrf_token": page.csrf_token,
        "notice": notice,
        "error": error,
        "most_imported": lists::MOST_IMPORTED,
    });
    let html: Html<String> = page.render("Block and allow lists", "fraud/lists", &data)?;
    Ok(html.into_response())
}

#[handler]
pub async fn lists_page(
    page: PageContext,
    Query(query): Query<ListsQuery>,
    Query(trail): Query<Trail>,
) -> Result<Response, AppError> {
    let notice = match query.notice.as_deref() {
        Some("added") => Some("Added. Rules that read the list see it on the next payment.".to_owned()),
        Some("removed") => Some("Removed from the list.".to_owned()),
        Some(imported) if imported.starts_with("imported-") => {
            let counts: Vec<&str> = imported.trim_start_matches("imported-").split('-').collect();
            Some(format!(
                "Imported: {} added, {} already listed.",
                counts.first().unwrap_or(&"0"),
                counts.get(1).unwrap_or(&"0")
            ))
        }
        _ => None,
    };
    render_lists(&page, &query.filter, &trail, notice, None).await
}

const LIST_COLUMNS: &[&str] = &["list", "kind", "value", "reason", "expires_at"];

#[handler]
pub async fn export_lists(page: PageContext, Query(filter): Query<EntryFilter>) -> Result<Response, AppError> {
    lists_csv(&page.state, page.principal()?, filter).await
}

/// The entries matching `filter` as CSV, in the form [`lists::import`] reads (the page's
/// export and the API's).
pub(crate) async fn lists_csv(
    state: &AppState,
    principal: &Principal,
    mut filter: EntryFilter,
) -> Result<Response, AppError> {
    filter.after = None;
    // A bad filter is told before the download starts.
    lists::list(state, principal, &filter, 1).await?;
    let (state, principal) = (state.clone(), principal.clone());
    let rows = paged(move |after: Option<String>| {
        let (state, principal, mut filter) = (state.clone(), principal.clone(), filter.clone());
        async move {
            filter.after = after;
            let (entries, next) = lists::list(&state, &principal, &filter, 1000).await?;
            Ok((entries.iter().map(lists::file_row).collect(), next))
        }
    });
    Ok(csv_download("fraud-lists.csv", LIST_COLUMNS, rows))
}

/// The add form as typed.
#[derive(Debug, Deserialize)]
pub struct EntryForm {
    #[serde(default)]
    list: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    reason: String,
    /// `YYYY-MM-DD`: the entry counts until that day ends, in the user's time zone.
    #[serde(default)]
    expires_on: String,
}

fn entry_request(principal: &Principal, form: &EntryForm) -> Result<EntryRequest, AppError> {
    let list = List::parse(&form.list).ok_or_else(|| AppError::BadRequest("Choose the list.".to_owned()))?;
    let kind = ListKind::parse(&form.kind).ok_or_else(|| AppError::BadRequest("Choose what to list.".to_owned()))?;
    let (_, expires) = dashboard_core::time::local_days(None, Some(&form.expires_on), &principal.time_zone)?;
    let value = form.value.trim();
    // A payment's id lists that payment's card, e-mail, address, country or BIN.
    let (value, payment_id) =
        if value.starts_with("pay_") { (None, Some(value.to_owned())) } else { (Some(value.to_owned()), None) };
    Ok(EntryRequest {
        list,
        kind,
        value,
        payment_id,
        reason: Some(form.reason.clone()),
        expires_at: expires.map(|at| at.and_utc()),
    })
}

#[handler]
pub async fn add_entry(page: PageContext, Form(form): Form<EntryForm>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let added = match entry_request(principal, &form) {
        Ok(request) => lists::add(&page.state, principal, &request).await,
        Err(error) => Err(error),
    };
    match added {
        Ok(_) => Ok(see_other("/fraud/lists?notice=added")),
        Err(error @ (AppError::BadRequest(_) | AppError::Conflict(_) | AppError::NotFound)) => {
            let error = if matches!(error, AppError::NotFound) {
                "There is no such payment you may see.".to_owned()
            } else {
                error.to_string()
            };
            render_lists(&page, &EntryFilter::default(), &Trail::default(), None, Some(error)).await
        }
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn import_entries(page: PageContext, mut form: Multipart) -> Result<Response, AppError> {
    let mut file = None;
    while let Some(field) =
        form.next_field().await.map_err(|e| AppError::BadRequest(format!("The upload could not be read: {e}")))?
    {
        if field.name() == Some("file") {
            file = Some(
                field.bytes().await.map_err(|e| AppError::BadRequest(format!("The file could not be read: {e}")))?,
            );
        }
    }
    let imported = match file.filter(|bytes| !bytes.is_empty()) {
        Some(bytes) => lists::import(&page.state, page.principal()?, &bytes).await,
        None => Err(AppError::BadRequest("Choose a CSV file to import.".to_owned())),
    };
    match imported {
        Ok(result) => {
            Ok(see_other(&format!("/fraud/lists?notice=imported-{}-{}", result.added, result.already_listed)))
        }
        Err(error @ AppError::BadRequest(_)) => {
            render_lists(&page, &EntryFilter::default(), &Trail::default(), None, Some(error.to_string())).await
        }
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn remove_entry(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    lists::remove(&page.state, page.principal()?, id).await?;
    Ok(see_other("/fraud/lists?notice=removed"))
}

// ------------------------------------------------------------------------------------
// Reviews

/// The queue shows the cases waiting for a decision unless another status is asked for
/// (`any`: all of them).
fn review_filter(filter: &ReviewFilter) -> ReviewFilter {
    let status = match filter.status.as_deref() {
        None | Some("") => Some(ReviewStatus::Open.as_str().to_owned()),
        Some("any") => None,
        Some(status) => Some(status.to_owned()),
    };
    ReviewFilter { status, ..filter.clone() }
}

fn review_json(case: &ReviewView, projects: &[directory::Project], can_decide: bool) -> Value {
    let project = projects.iter().find(|p| p.id == case.project_id).map_or(String::new(), |p| p.name.clone());
    let open = case.status == ReviewStatus::Open;
    json!({
        "case": case,
        "project": project,
        "amount": money(&case.amount),
        "status": case.status.label(),
        "payment_status": case.payment_status.label(),
        "open": open,
        "decidable": open && can_decide && case.payment_status == dashboard_payments_domain::model::Status::Authorized,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct ReviewsQuery {
    #[serde(flatten)]
    filter: ReviewFilter,
    notice: Option<String>,
}

async fn render_reviews(
    page: &PageContext,
    typed: &ReviewFilter,
    trail: &Trail,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let filter = review_filter(typed);
    let (cases, next, error) = match reviews::list(&page.state, principal, &filter, PAGE_SIZE).await {
        Ok((cases, next)) => (cases, next, error),
        Err(error @ AppError::BadRequest(_)) => (Vec::new(), None, Some(error.to_string())),
        Err(error) => return Err(error),
    };
    let projects = directory::visible_projects(&page.state.db, principal).await?;
    let base = query_string(&[("status", &typed.status), ("project_id", &typed.project_id)]);
    let chosen = typed.status.as_deref().filter(|s| !s.is_empty()).unwrap_or("open");
    let mut statuses = choices(ReviewStatus::ALL, |s| (s.as_str(), s.label()), Some(chosen));
    statuses.push(json!({ "value": "any", "label": "Any", "selected": chosen == "any" }));
    let can_decide = principal.has_permission(crate::REVIEW);
    let data = json!({
        "tab": "reviews",
        "cases": cases.iter().map(|case| review_json(case, &projects, can_decide)).collect::<Vec<_>>(),
        "statuses": statuses,
        "projects": projects.iter().map(|p| json!({ "value": p.id, "label": p.name, "selected": typed.project_id.as_deref() == Some(&p.id.to_string()) })).collect::<Vec<_>>(),
        "filtered": !base.is_empty(),
        "export_url": address("/fraud/reviews/export", &[&base]),
        "pager": trail.pager(&PageOf {
            base: &address("/fraud/reviews", &[&base]),
            cursor: "after",
            current: typed.after.as_deref(),
            next: next.as_deref(),
            shown: cases.len(),
            size: PAGE_SIZE as usize,
        }),
        "csrf_token": page.csrf_token,
        "notice": notice,
        "error": error,
    });
    let html: Html<String> = page.render("Payments held for review", "fraud/reviews", &data)?;
    Ok(html.into_response())
}

#[handler]
pub async fn reviews_page(
    page: PageContext,
    Query(query): Query<ReviewsQuery>,
    Query(trail): Query<Trail>,
) -> Result<Response, AppError> {
    let notice = match query.notice.as_deref() {
        Some("approved") => Some("Approved: the payment was captured.".to_owned()),
        Some("declined") => Some("Declined: the payment was released to the customer.".to_owned()),
        _ => None,
    };
    render_reviews(&page, &query.filter, &trail, notice, None).await
}

const REVIEW_COLUMNS: &[&str] = &[
    "Case",
    "Payment",
    "Merchant order",
    "Project",
    "Amount",
    "Currency",
    "Held by",
    "Status",
    "Payment status",
    "Held (UTC)",
    "Release by (UTC)",
    "Decided (UTC)",
    "Note",
];

#[handler]
pub async fn export_reviews(page: PageContext, Query(filter): Query<ReviewFilter>) -> Result<Response, AppError> {
    reviews_csv(&page.state, page.principal()?, review_filter(&filter)).await
}

/// The cases matching `filter` as CSV (the page's export and the API's).
pub(crate) async fn reviews_csv(
    state: &AppState,
    principal: &Principal,
    mut filter: ReviewFilter,
) -> Result<Response, AppError> {
    filter.after = None;
    reviews::list(state, principal, &filter, 1).await?;
    let projects = std::sync::Arc::new(directory::visible_projects(&state.db, principal).await?);
    let (state, principal) = (state.clone(), principal.clone());
    let rows = paged(move |after: Option<String>| {
        let (state, principal, projects, mut filter) =
            (state.clone(), principal.clone(), projects.clone(), filter.clone());
        async move {
            filter.after = after;
            let (cases, next) = reviews::list(&state, &principal, &filter, 500).await?;
            let rows = cases
                .iter()
                .map(|case| {
                    let project =
                        projects.iter().find(|p| p.id == case.project_id).map_or(String::new(), |p| p.name.clone());
                    vec![
                        case.id.to_string(),
                        case.payment_id.clone(),
                        safe_text(case.merchant_order_id.clone().unwrap_or_default()),
                        safe_text(project),
                        dashboard_core::money::format_decimal(case.amount.amount, &case.amount.currency),
                        case.amount.currency.clone(),
                        safe_text(case.reasons.clone()),
                        case.status.label().to_owned(),
                        case.payment_status.label().to_owned(),
                        case.created_at.0.clone(),
                        case.due_at.0.clone(),
                        case.decided_at.as_ref().map_or(String::new(), |at| at.0.clone()),
                        safe_text(case.note.clone().unwrap_or_default()),
                    ]
                })
                .collect();
            Ok((rows, next))
        }
    });
    Ok(csv_download("fraud-reviews.csv", REVIEW_COLUMNS, rows))
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    note: String,
}

#[handler]
pub async fn decide(
    page: PageContext,
    Path(id): Path<i64>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, AppError> {
    let decision = match form.decision.as_str() {
        "approve" => Decision::Approve,
        "decline" => Decision::Decline,
        _ => return Err(AppError::BadRequest("Approve or decline.".to_owned())),
    };
    match reviews::decide(&page.state, page.principal()?, id, decision, Some(&form.note)).await {
        Ok(_) => {
            let notice = if decision == Decision::Approve { "approved" } else { "declined" };
            Ok(see_other(&format!("/fraud/reviews?notice={notice}")))
        }
        Err(error @ (AppError::BadRequest(_) | AppError::Conflict(_) | AppError::Refused(_))) => {
            render_reviews(&page, &ReviewFilter::default(), &Trail::default(), None, Some(error.to_string())).await
        }
        Err(error) => Err(error),
    }
}

// ------------------------------------------------------------------------------------
// Backtests

fn backtest_json(run: &BacktestView, time_zone: &str) -> Value {
    let result = run.result.as_ref();
    let percent = if run.total > 0 { run.scanned * 100 / run.total } else { 100 };
    let rate = |part: i64, whole: i64| {
        if whole > 0 { format!("{:.1} %", part as f64 * 100.0 / whole as f64) } else { "—".to_owned() }
    };
    let period_to = chrono::DateTime::parse_from_rfc3339(&run.period_to.0)
        .map(|at| at.naive_utc() - chrono::TimeDelta::seconds(1))
        .ok();
    let day = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text).ok().map(|at| {
            let zone = time_zone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::Tz::UTC);
            at.with_timezone(&zone).date_naive().to_string()
        })
    };
    json!({
        "run": run,
        "action": run.action.label(),
        "status": run.status.label(),
        "running": run.status == dashboard_payments_domain::fraud::BacktestStatus::Running,
        "percent": percent,
        "from_day": day(&run.period_from.0),
        "to_day": period_to.map(|at| dashboard_core::time::Timestamp::from(&at)).and_then(|at| day(&at.0)),
        "matched_amounts": result.map(|r| amounts(&r.matched_amounts)),
        "match_rate": result.map(|r| rate(r.matched, r.payments)),
        "days": result.map(|r| r.days.iter().map(|d| json!({
            "day": d.day, "payments": d.payments, "matched": d.matched, "amounts": amounts(&d.matched_amounts),
            "charged_back": d.matched_charged_back, "declined": d.matched_declined,
        })).collect::<Vec<_>>()),
        "seconds": result.map(|r| format!("{:.1}", r.seconds)),
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct BacktestForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    condition: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    project_id: String,
}

async fn render_backtests(
    page: &PageContext,
    form: &BacktestForm,
    error: Option<String>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let runs = backtest::list(&page.state, principal, 50).await?;
    let projects = directory::visible_projects(&page.state.db, principal).await?;
    let mistake = error.as_deref().and_then(|error| mistake_at(&form.condition, error));
    let data = json!({
        "tab": "backtests",
        "runs": runs.iter().map(|run| backtest_json(run, &principal.time_zone)).collect::<Vec<_>>(),
        "form": { "name": form.name, "condition": form.condition, "from": form.from, "to": form.to },
        "actions": choices(Action::ALL, |a| (a.as_str(), a.label()), Some(form.action.as_str())),
        "projects": projects.iter().map(|p| json!({ "value": p.id, "label": p.name, "selected": form.project_id == p.id.to_string() })).collect::<Vec<_>>(),
        "can_manage": principal.has_permission(crate::MANAGE),
        "csrf_token": page.csrf_token,
        "error": error,
        "mistake": mistake,
    });
    let html: Html<String> = page.render("Backtests", "fraud/backtests", &data)?;
    Ok(html.into_response())
}

#[handler]
pub async fn backtests(page: PageContext) -> Result<Response, AppError> {
    let today = chrono::Utc::now().date_naive();
    let form = BacktestForm {
        action: Action::Decline.as_str().to_owned(),
        from: (today - chrono::TimeDelta::days(30)).to_string(),
        to: today.to_string(),
        ..BacktestForm::default()
    };
    render_backtests(&page, &form, None).await
}

#[handler]
pub async fn start_backtest(page: PageContext, Form(form): Form<BacktestForm>) -> Result<Response, AppError> {
    let request = Action::parse(&form.action)
        .ok_or_else(|| AppError::BadRequest("Choose the action the rule would take.".to_owned()))
        .and_then(|action| {
            let project_id = match form.project_id.trim() {
                "" => None,
                id => Some(
                    id.parse::<i64>()
                        .map_err(|_| AppError::BadRequest("Choose a project from the list.".to_owned()))?,
                ),
            };
            Ok(BacktestRequest {
                name: Some(form.name.clone()),
                condition: form.condition.clone(),
                action,
                from: form.from.clone(),
                to: form.to.clone(),
                project_id,
            })
        });
    let started = match request {
        Ok(request) => backtest::start(&page.state, page.principal()?, request).await,
        Err(error) => Err(error),
    };
    match started {
        Ok(run) => Ok(see_other(&format!("/fraud/backtests/{}", run.id))),
        Err(error @ AppError::BadRequest(_)) => render_backtests(&page, &form, Some(error.to_string())).await,
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn backtest_page(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let run = backtest::view(&page.state, principal, id).await?;
    let data = json!({
        "tab": "backtests",
        "b": backtest_json(&run, &principal.time_zone),
        "can_manage": principal.has_permission(crate::MANAGE),
    });
    let html: Html<String> = page.render(&format!("Backtest {}", run.name), "fraud/backtest", &data)?;
    Ok(html.into_response())
}
