//! One analytics view as the pages show it: scope, KPI cards and charts, built from one
//! read of the filters' cells and one per extra breakdown.

use dashboard_core::auth::Principal;
use dashboard_core::{AppError, AppState};

use crate::charts::{self, Chart, ChartView};
use crate::figures::{self, Kpi};
use crate::labels;
use crate::measures::Dimension;
use crate::scope::{Filters, Scope};
use crate::service::{self, ByCurrency, Totals, total};

pub struct View {
    pub scope: Scope,
    /// The currencies money moved in, most turnover first.
    pub currencies: Vec<String>,
    /// The currency money figures are shown in.
    pub currency: String,
    pub kpis: Vec<Kpi>,
    pub charts: Vec<ChartView>,
}

/// The currencies of the period, most turnover first (all of them when nothing moved).
fn currencies(totals: &Totals) -> Vec<String> {
    let mut moved: Vec<(&String, i64, i64)> =
        totals.current.iter().map(|(currency, m)| (currency, m.turnover(), m.payments)).collect();
    moved.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(b.0)));
    moved.into_iter().map(|(currency, _, _)| currency.clone()).collect()
}

pub async fn build(
    state: &AppState,
    principal: &Principal,
    filters: &Filters,
    wanted: &[Chart],
) -> Result<View, AppError> {
    let scope = Scope::resolve(&state.db, principal, filters).await?;
    let totals = service::totals(&state.db, &scope).await?;
    let currencies = currencies(&totals);
    let currency = scope
        .show
        .clone()
        .or_else(|| scope.currency.clone())
        .or_else(|| currencies.first().cloned())
        .unwrap_or_else(|| "EUR".to_owned());
    let in_currency = |sums: &ByCurrency| sums.get(&currency).copied().unwrap_or_default();
    let kpis = figures::kpis(
        &in_currency(&totals.current),
        &in_currency(&totals.previous),
        &total(&totals.current),
        &total(&totals.previous),
        &currency,
        scope.currency.as_deref(),
    );
    let names = labels::project_names(state, principal).await?;
    let mut charts = Vec::new();
    for chart in wanted {
        charts.push(match chart.dimension() {
            None => charts::over_time(*chart, &scope, &totals.series, &currency),
            Some(dimension) => {
                let rows = service::breakdown(&state.db, &scope, dimension).await?;
                let labelled: Vec<(String, ByCurrency)> = rows
                    .into_iter()
                    // The chart of decline reasons is about the declined payments.
                    .filter(|(value, _)| dimension != Dimension::Decline || !value.is_empty())
                    .map(|(value, sums)| (labels::label(dimension, &value, &names), sums))
                    .collect();
                charts::by(dimension, &labelled, &currency)
            }
        });
    }
    Ok(View { scope, currencies, currency, kpis, charts })
}
