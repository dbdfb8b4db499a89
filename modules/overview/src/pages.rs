//! The analytics pages: the overview (also the home page of those who may see it), one
//! chart on its own, downloads (SVG, CSV), boards.

use dashboard_core::auth::urlencode;
use dashboard_core::web::{HtmlForm, see_other};
use dashboard_core::{AppError, PageContext, directory};
use dashboard_payments_domain::model::Method;
use poem::http::{StatusCode, header};
use poem::web::Path;
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::boards::{self, NewBoard};
use crate::charts::{Chart, ChartView};
use crate::scope::{Filters, PERIODS};
use crate::view::{self, View};

/// The page's query: the filters (projects may repeat, as a form sends them) and the
/// board shown.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    period: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    projects: Vec<String>,
    method: Option<String>,
    currency: Option<String>,
    country: Option<String>,
    grain: Option<String>,
    show: Option<String>,
    board: Option<String>,
}

impl PageQuery {
    fn of(request: &Request) -> Result<PageQuery, AppError> {
        serde_html_form::from_str(request.uri().query().unwrap_or(""))
            .map_err(|e| AppError::BadRequest(format!("The address could not be read: {e}.")))
    }

    fn filters(&self) -> Filters {
        let projects: Vec<&str> = self.projects.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect();
        Filters {
            period: self.period.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            projects: (!projects.is_empty()).then(|| projects.join(",")),
            method: self.method.clone(),
            currency: self.currency.clone(),
            country: self.country.clone(),
            grain: self.grain.clone(),
            show: self.show.clone(),
        }
    }
}

/// `query` with `key` set to `value` (or left out).
fn with(query: &Filters, key: &str, value: Option<&str>) -> String {
    let mut changed = query.clone();
    let field = match key {
        "show" => &mut changed.show,
        "grain" => &mut changed.grain,
        _ => &mut changed.period,
    };
    *field = value.map(str::to_owned);
    changed.query()
}

fn chart_data(chart: &ChartView, query: &str, dark: bool) -> Value {
    let suffix = if query.is_empty() { String::new() } else { format!("?{query}") };
    json!({
        "key": chart.key,
        "title": chart.title,
        "description": chart.description,
        "columns": chart.columns,
        "rows": chart.display_rows(),
        "svg": chart.svg(false, dark),
        "open": format!("/analytics/charts/{}{suffix}", chart.key),
        "svg_url": format!("/analytics/charts/{}/chart.svg{suffix}", chart.key),
        "csv_url": format!("/analytics/charts/{}/data.csv{suffix}", chart.key),
    })
}

/// What the analytics templates show of a view.
async fn page_data(
    page: &PageContext,
    query: &PageQuery,
    view: &View,
    board: Option<&boards::Board>,
) -> Result<Value, AppError> {
    let principal = page.principal()?;
    let filters = query.filters();
    let shared = filters.query();
    let scope = &view.scope;
    let projects: Vec<Value> = directory::visible_projects(&page.state.db, principal)
        .await?
        .into_iter()
        .map(|p| json!({ "id": p.id, "name": p.name, "selected": query.projects.iter().any(|q| q == &p.id.to_string()) }))
        .collect();
    let option =
        |value: &str, label: &str, selected: bool| json!({ "value": value, "label": label, "selected": selected });
    let periods: Vec<Value> =
        PERIODS.iter().map(|(value, label)| option(value, label, scope.period == *value)).collect();
    let methods: Vec<Value> = Method::ALL
        .iter()
        .map(|m| option(m.as_str(), m.label(), scope.method.as_deref() == Some(m.as_str())))
        .collect();
    let currencies: Vec<Value> =
        ["EUR", "USD", "GBP", "JPY"].iter().map(|c| option(c, c, scope.currency.as_deref() == Some(*c))).collect();
    let grains: Vec<Value> = ["day", "week", "month"].iter().map(|g| option(g, g, scope.grain.key() == *g)).collect();
    let switch: Vec<Value> = view
        .currencies
        .iter()
        .map(|c| json!({ "currency": c, "url": format!("?{}", with(&filters, "show", Some(c))), "current": *c == view.currency }))
        .collect();
    let boards = boards::list(&page.state, principal).await?;
    let chosen: Vec<String> = view.charts.iter().map(|c| c.key.clone()).collect();
    let all_charts: Vec<Value> = Chart::ALL
        .iter()
        .map(|chart| json!({ "key": chart.key(), "title": chart.title(&view.currency), "checked": chosen.contains(&chart.key()) }))
        .collect();
    Ok(json!({
        "csrf_token": page.csrf_token,
        "period_text": dashboard_core::time::days_shown(scope.from, scope.to),
        "previous_text": dashboard_core::time::days_shown(scope.previous_from, scope.previous_to),
        "zone": scope.zone_name,
        "zone_pending": scope.zone_pending,
        "user_zone": principal.time_zone,
        "filters": {
            "from": scope.from.to_string(),
            "to": scope.to.to_string(),
            "country": scope.country,
            "custom": scope.period == "custom",
        },
        "periods": periods,
        "projects": projects,
        "methods": methods,
        "currencies": currencies,
        "grains": grains,
        "switch": switch,
        "show_switch": view.currencies.len() > 1,
        "currency": view.currency,
        "kpis": view.kpis,
        "charts": view.charts.iter().map(|c| chart_data(c, &shared, page.state.theme.name() == "dark")).collect::<Vec<_>>(),
        "query": shared,
        "kpis_csv": format!("/analytics/kpis.csv{}", if shared.is_empty() { String::new() } else { format!("?{shared}") }),
        "board": board.map(|b| json!({ "id": b.id, "name": b.name })),
        "boards": boards.iter().map(|b| json!({ "id": b.id, "name": b.name, "current": board.is_some_and(|c| c.id == b.id) })).collect::<Vec<_>>(),
        "all_charts": all_charts,
    }))
}

/// The board named in the query, if it is one of the caller's.
async fn board_of(page: &PageContext, query: &PageQuery) -> Result<Option<boards::Board>, AppError> {
    match query.board.as_deref().map(str::parse::<i64>) {
        Some(Ok(id)) => Ok(Some(boards::get(&page.state, page.principal()?, id).await?)),
        Some(Err(_)) => Err(AppError::NotFound),
        None => Ok(None),
    }
}

/// The overview of the analytics (also the home page of those who may see them).
pub async fn overview(page: &PageContext, request: &Request) -> Result<Response, AppError> {
    let query = PageQuery::of(request)?;
    let board = board_of(page, &query).await?;
    let charts: Vec<Chart> = match &board {
        Some(board) => board.charts.iter().filter_map(|key| Chart::parse(key)).collect(),
        None => Chart::OVERVIEW.to_vec(),
    };
    let title = board.as_ref().map_or_else(|| "Analytics".to_owned(), |b| b.name.clone());
    match view::build(&page.state, page.principal()?, &query.filters(), &charts).await {
        Ok(view) => {
            let data = page_data(page, &query, &view, board.as_ref()).await?;
            Ok(page.render(&title, "analytics/overview", &data)?.into_response())
        }
        Err(AppError::BadRequest(message)) => {
            let html = page.render(&title, "analytics/invalid", &json!({ "error": message }))?;
            Ok((StatusCode::BAD_REQUEST, html).into_response())
        }
        Err(error) => Err(error),
    }
}

#[handler]
pub async fn analytics(page: PageContext, request: &Request) -> Result<Response, AppError> {
    overview(&page, request).await
}

fn chart_named(key: &str) -> Result<Chart, AppError> {
    Chart::parse(key).ok_or(AppError::NotFound)
}

async fn one_chart(page: &PageContext, request: &Request, key: &str) -> Result<(View, PageQuery), AppError> {
    let chart = chart_named(key)?;
    let query = PageQuery::of(request)?;
    let view = view::build(&page.state, page.principal()?, &query.filters(), &[chart]).await?;
    Ok((view, query))
}

/// One chart with its whole data table.
#[handler]
pub async fn chart_page(page: PageContext, request: &Request, Path(key): Path<String>) -> Result<Response, AppError> {
    let (view, query) = one_chart(&page, request, &key).await?;
    let mut data = page_data(&page, &query, &view, None).await?;
    data["chart"] = data["charts"][0].clone();
    data["back"] = json!(format!("/analytics?{}", query.filters().query()));
    Ok(page.render(&view.charts[0].title, "analytics/chart", &data)?.into_response())
}

fn download(body: String, content_type: &str, filename: &str) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\""))
        .body(body)
}

fn file_name(view: &View, key: &str, extension: &str) -> String {
    format!("{key}-{}-{}.{extension}", view.scope.from, view.scope.to)
}

#[handler]
pub async fn chart_svg(page: PageContext, request: &Request, Path(key): Path<String>) -> Result<Response, AppError> {
    let (view, _) = one_chart(&page, request, &key).await?;
    Ok(download(view.charts[0].svg(true, false), "image/svg+xml", &file_name(&view, &key, "svg")))
}

#[handler]
pub async fn chart_csv(page: PageContext, request: &Request, Path(key): Path<String>) -> Result<Response, AppError> {
    let (view, _) = one_chart(&page, request, &key).await?;
    audit_export(&page, &view, &key).await?;
    Ok(download(view.charts[0].csv(), "text/csv; charset=utf-8", &file_name(&view, &key, "csv")))
}

/// Records an analytics download with what it holds, before it is sent.
async fn audit_export(page: &PageContext, view: &View, what: &str) -> Result<(), AppError> {
    let details = serde_json::json!({
        "data": what,
        "from": view.scope.from.to_string(),
        "to": view.scope.to.to_string(),
        "time_zone": view.scope.zone_name,
        "currency": view.currency,
    });
    dashboard_core::audit::export(&page.state.db, page.principal()?, "analytics.export", &details).await
}

/// The KPI cards as a CSV file.
#[handler]
pub async fn kpis_csv(page: PageContext, request: &Request) -> Result<Response, AppError> {
    let query = PageQuery::of(request)?;
    let view = view::build(&page.state, page.principal()?, &query.filters(), &[]).await?;
    audit_export(&page, &view, "kpis").await?;
    // The values as plain numbers (money in its currency's decimals), their unit beside.
    let mut csv = format!(
        "kpi,value,previous,unit,change,note\r\n{}",
        view.kpis
            .iter()
            .map(|k| {
                let [now, before] = &k.figures;
                let (now, before) = (now.plain(), before.plain());
                [k.label, &now, &before, k.figures[0].unit(), &k.change, &k.note].map(csv_field).join(",") + "\r\n"
            })
            .collect::<String>()
    );
    csv.insert_str(
        0,
        &format!(
            "# {} to {} ({}), money in {}\r\n",
            view.scope.from, view.scope.to, view.scope.zone_name, view.currency
        ),
    );
    Ok(download(csv, "text/csv; charset=utf-8", &file_name(&view, "kpis", "csv")))
}

fn csv_field(text: &str) -> String {
    let text = dashboard_core::export::safe_text(text.to_owned());
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

#[derive(Deserialize)]
pub struct BoardForm {
    name: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    charts: Vec<String>,
}

#[handler]
pub async fn save_board(page: PageContext, HtmlForm(form): HtmlForm<BoardForm>) -> Result<Response, AppError> {
    let board = NewBoard { name: form.name, query: form.query, charts: form.charts };
    let saved = boards::save(&page.state, page.principal()?, &board).await?;
    Ok(see_other(&format!("/analytics/boards/{}", saved.id)))
}

/// A board: the analytics with its filters and charts.
#[handler]
pub async fn open_board(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let board = boards::get(&page.state, page.principal()?, id).await?;
    let joiner = if board.query.is_empty() { "" } else { "&" };
    Ok(see_other(&format!("/analytics?{}{joiner}board={}", board.query, urlencode(&id.to_string()))))
}

#[handler]
pub async fn delete_board(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    boards::delete(&page.state, page.principal()?, id).await?;
    Ok(see_other("/analytics"))
}
