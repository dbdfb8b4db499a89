//! The analytics API: the same figures as the pages, from the same service functions.

use chrono::NaiveDate;
use dashboard_core::auth::Principal;
use dashboard_core::{ApiResult, AppError, AppState};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::boards::{self, Board, NewBoard};
use crate::figures::Figures;
use crate::measures::Dimension;
use crate::scope::{Filters, Scope};
use crate::{labels, service};

/// The days a result covers.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AnalyticsPeriod {
    /// The time zone the days are of: the caller's, or UTC while the caller's is still
    /// being prepared (`zone_pending`).
    pub zone: String,
    pub zone_pending: bool,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The previous period of equal length, which `previous` figures cover.
    pub previous_from: NaiveDate,
    pub previous_to: NaiveDate,
    /// `day`, `week` or `month`.
    pub grain: String,
    pub projects: Vec<i64>,
}

impl AnalyticsPeriod {
    fn of(scope: &Scope) -> AnalyticsPeriod {
        AnalyticsPeriod {
            zone: scope.zone_name.clone(),
            zone_pending: scope.zone_pending,
            from: scope.from,
            to: scope.to,
            previous_from: scope.previous_from,
            previous_to: scope.previous_to,
            grain: scope.grain.key().to_owned(),
            projects: scope.projects.clone(),
        }
    }
}

/// One bucket of a time series.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SeriesPoint {
    /// The bucket's first day.
    pub start: NaiveDate,
    pub figures: Figures,
}

/// KPIs of a period against the previous one, and their time series.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AnalyticsOverview {
    pub period: AnalyticsPeriod,
    pub current: Figures,
    pub previous: Figures,
    pub series: Vec<SeriesPoint>,
}

/// One value of a breakdown.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BreakdownRow {
    /// As stored (a project id, a method, a country code…; empty when unknown).
    pub value: String,
    /// For people.
    pub label: String,
    pub figures: Figures,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Breakdown {
    pub period: AnalyticsPeriod,
    pub dimension: Dimension,
    /// Most payments first. Status and decline reason count payments only.
    pub rows: Vec<BreakdownRow>,
}

/// The query parameters every analytics call takes (see `Filters`).
#[allow(clippy::too_many_arguments)]
fn filters(
    period: Query<Option<String>>,
    from: Query<Option<chrono::NaiveDate>>,
    to: Query<Option<chrono::NaiveDate>>,
    projects: Query<Option<String>>,
    method: Query<Option<String>>,
    currency: Query<Option<String>>,
    country: Query<Option<String>>,
    grain: Query<Option<String>>,
) -> Filters {
    Filters {
        period: period.0,
        from: from.0.map(|day| day.to_string()),
        to: to.0.map(|day| day.to_string()),
        projects: projects.0,
        method: method.0,
        currency: currency.0,
        country: country.0,
        grain: grain.0,
        show: None,
    }
}

/// The overview's figures for `filters`.
pub async fn overview(
    state: &AppState,
    principal: &Principal,
    filters: &Filters,
) -> Result<AnalyticsOverview, AppError> {
    let scope = Scope::resolve(&state.db, principal, filters).await?;
    let totals = service::totals(&state.db, &scope).await?;
    Ok(AnalyticsOverview {
        period: AnalyticsPeriod::of(&scope),
        current: Figures::of(&totals.current),
        previous: Figures::of(&totals.previous),
        series: totals
            .series
            .iter()
            .map(|(start, sums)| SeriesPoint { start: *start, figures: Figures::of(sums) })
            .collect(),
    })
}

/// A breakdown's figures for `filters`.
pub async fn breakdown(
    state: &AppState,
    principal: &Principal,
    filters: &Filters,
    dimension: Dimension,
) -> Result<Breakdown, AppError> {
    let scope = Scope::resolve(&state.db, principal, filters).await?;
    let names = labels::project_names(state, principal).await?;
    let rows = service::breakdown(&state.db, &scope, dimension).await?;
    Ok(Breakdown {
        period: AnalyticsPeriod::of(&scope),
        dimension,
        rows: rows
            .iter()
            .map(|(value, sums)| BreakdownRow {
                value: value.clone(),
                label: labels::label(dimension, value, &names),
                figures: Figures::of(sums),
            })
            .collect(),
    })
}

#[derive(Default)]
pub struct AnalyticsApi;

#[OpenApi(tag = "AnalyticsTag::Analytics")]
impl AnalyticsApi {
    /// KPIs and time series
    ///
    /// The figures of a period (by default the last 30 days, in the caller's time zone)
    /// and of the previous period of equal length, with the series per day, week or
    /// month. Payments count on the day they were created, money on the day it moved.
    #[oai(path = "/analytics/overview", method = "get", operation_id = "analytics_overview")]
    #[allow(clippy::too_many_arguments)]
    async fn overview(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        /// `today`, `7d`, `30d` (the default), `this_month`, `previous_month`, or `custom` with
        /// `from` and `to`.
        #[oai(validator(pattern = "^(today|7d|30d|this_month|previous_month|custom)$"))]
        period: Query<Option<String>>,
        from: Query<Option<chrono::NaiveDate>>,
        to: Query<Option<chrono::NaiveDate>>,
        /// Project ids, comma-separated: `1,2`.
        #[oai(validator(pattern = "^[0-9]{1,18}(,[0-9]{1,18})*$"))]
        projects: Query<Option<String>>,
        #[oai(validator(pattern = "^(card|bank_transfer|wallet)$"))] method: Query<Option<String>>,
        /// ISO 4217, e.g. `EUR`.
        #[oai(validator(pattern = "^[A-Za-z]{3}$"))]
        currency: Query<Option<String>>,
        /// The customer's country, ISO 3166 alpha-2.
        #[oai(validator(pattern = "^[A-Za-z]{2}$"))]
        country: Query<Option<String>>,
        #[oai(validator(pattern = "^(day|week|month)$"))] grain: Query<Option<String>>,
    ) -> ApiResult<Json<AnalyticsOverview>> {
        let filters = filters(period, from, to, projects, method, currency, country, grain);
        Ok(Json(overview(&state, principal, &filters).await?))
    }

    /// A breakdown
    ///
    /// The period's figures per project, payment method, card brand, country, currency,
    /// status or decline reason.
    #[oai(path = "/analytics/breakdowns/:dimension", method = "get", operation_id = "analytics_breakdown")]
    #[allow(clippy::too_many_arguments)]
    async fn breakdown(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        dimension: Path<Dimension>,
        /// `today`, `7d`, `30d` (the default), `this_month`, `previous_month`, or `custom` with
        /// `from` and `to`.
        #[oai(validator(pattern = "^(today|7d|30d|this_month|previous_month|custom)$"))]
        period: Query<Option<String>>,
        from: Query<Option<chrono::NaiveDate>>,
        to: Query<Option<chrono::NaiveDate>>,
        /// Project ids, comma-separated: `1,2`.
        #[oai(validator(pattern = "^[0-9]{1,18}(,[0-9]{1,18})*$"))]
        projects: Query<Option<String>>,
        #[oai(validator(pattern = "^(card|bank_transfer|wallet)$"))] method: Query<Option<String>>,
        /// ISO 4217, e.g. `EUR`.
        #[oai(validator(pattern = "^[A-Za-z]{3}$"))]
        currency: Query<Option<String>>,
        /// The customer's country, ISO 3166 alpha-2.
        #[oai(validator(pattern = "^[A-Za-z]{2}$"))]
        country: Query<Option<String>>,
        #[oai(validator(pattern = "^(day|week|month)$"))] grain: Query<Option<String>>,
    ) -> ApiResult<Json<Breakdown>> {
        let filters = filters(period, from, to, projects, method, currency, country, grain);
        Ok(Json(breakdown(&state, principal, &filters, dimension.0).await?))
    }

    /// The caller's saved boards
    #[oai(path = "/analytics/boards", method = "get", operation_id = "analytics_boards_list")]
    async fn boards(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<Vec<Board>>> {
        Ok(Json(boards::list(&state, principal).await?))
    }

    /// Save a board
    ///
    /// A named set of filters (as the analytics page's query string) and charts. A board
    /// of the same name is replaced.
    #[oai(path = "/analytics/boards", method = "post", operation_id = "analytics_boards_save")]
    async fn save_board(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<NewBoard>,
    ) -> ApiResult<Json<Board>> {
        Ok(Json(boards::save(&state, principal, &body.0).await?))
    }

    /// Delete a board
    #[oai(path = "/analytics/boards/:id", method = "delete", operation_id = "analytics_boards_delete")]
    async fn delete_board(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<Vec<Board>>> {
        boards::delete(&state, principal, id.0).await?;
        Ok(Json(boards::list(&state, principal).await?))
    }
}

#[derive(poem_openapi::Tags)]
enum AnalyticsTag {
    /// KPIs, time series and breakdowns of payments and money; saved boards.
    Analytics,
}
