//! The charts: what each one shows, its data table (also its CSV) and its SVG, drawn on
//! the server with charts-rs so that it works without JavaScript.

use chrono::NaiveDate;
use dashboard_core::money::{exponent, format_decimal, group_thousands};
use serde::Serialize;
use serde_json::{Value, json};

use crate::measures::{Dimension, Measures};
use crate::scope::{Grain, Scope};
use crate::service::{ByCurrency, total};

/// How many values a breakdown chart draws (its table lists them all).
const BARS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    Turnover,
    Payments,
    ApprovalRate,
    By(Dimension),
}

impl Chart {
    pub const ALL: [Chart; 10] = [
        Chart::Turnover,
        Chart::Payments,
        Chart::ApprovalRate,
        Chart::By(Dimension::Project),
        Chart::By(Dimension::Method),
        Chart::By(Dimension::Brand),
        Chart::By(Dimension::Country),
        Chart::By(Dimension::Currency),
        Chart::By(Dimension::Status),
        Chart::By(Dimension::Decline),
    ];

    /// The charts of the overview when no board says otherwise.
    pub const OVERVIEW: [Chart; 7] = [
        Chart::Turnover,
        Chart::Payments,
        Chart::ApprovalRate,
        Chart::By(Dimension::Project),
        Chart::By(Dimension::Method),
        Chart::By(Dimension::Currency),
        Chart::By(Dimension::Decline),
    ];

    pub fn key(self) -> String {
        match self {
            Chart::Turnover => "turnover".to_owned(),
            Chart::Payments => "payments".to_owned(),
            Chart::ApprovalRate => "approval_rate".to_owned(),
            Chart::By(dimension) => format!("by_{}", dimension.key()),
        }
    }

    pub fn parse(key: &str) -> Option<Chart> {
        Chart::ALL.into_iter().find(|chart| chart.key() == key)
    }

    /// The breakdown this chart needs, if any.
    pub fn dimension(self) -> Option<Dimension> {
        match self {
            Chart::By(dimension) => Some(dimension),
            _ => None,
        }
    }

    /// Charts of money show one currency.
    fn in_currency(self) -> bool {
        match self {
            Chart::Turnover => true,
            Chart::By(dimension) => dimension.counts_money() && dimension != Dimension::Currency,
            _ => false,
        }
    }

    pub fn title(self, currency: &str) -> String {
        let base = match self {
            Chart::Turnover => "Turnover over time".to_owned(),
            Chart::Payments => "Payments over time".to_owned(),
            Chart::ApprovalRate => "Approval rate over time".to_owned(),
            Chart::By(dimension) if self.in_currency() => format!("Turnover by {}", dimension.label()),
            Chart::By(dimension) => format!("Payments by {}", dimension.label()),
        };
        if self.in_currency() { format!("{base} ({currency})") } else { base }
    }
}

/// A value in a chart's table.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Datum {
    Text(String),
    Count(i64),
    /// Minor units of the currency.
    Money(i64, String),
    /// Percent, when there is anything to compare.
    Percent(Option<f64>),
    /// No figure (an average of nothing).
    Empty,
}

impl Datum {
    /// For people: thousands grouped, the currency after money.
    pub fn display(&self) -> String {
        match self {
            Datum::Text(text) => text.clone(),
            Datum::Count(n) => group_thousands(&n.to_string()),
            Datum::Money(amount, currency) => {
                format!("{} {currency}", group_thousands(&format_decimal(*amount, currency)))
            }
            Datum::Percent(Some(p)) => format!("{p:.1}%"),
            Datum::Percent(None) | Datum::Empty => "—".to_owned(),
        }
    }

    /// For a CSV file: plain numbers (money as a decimal of its currency).
    pub fn plain(&self) -> String {
        match self {
            Datum::Text(text) => dashboard_core::export::safe_text(text.clone()),
            Datum::Count(n) => n.to_string(),
            Datum::Money(amount, currency) => format_decimal(*amount, currency),
            Datum::Percent(Some(p)) => format!("{p:.2}"),
            Datum::Percent(None) | Datum::Empty => String::new(),
        }
    }

    /// What a plain number of it counts, for a file's reader: the currency, `%` or nothing.
    pub fn unit(&self) -> &str {
        match self {
            Datum::Money(_, currency) => currency,
            Datum::Percent(_) => "%",
            Datum::Text(_) | Datum::Count(_) | Datum::Empty => "",
        }
    }

    /// For plotting.
    fn number(&self) -> Option<f64> {
        match self {
            Datum::Text(_) | Datum::Empty => None,
            Datum::Count(n) => Some(*n as f64),
            Datum::Money(amount, currency) => Some(*amount as f64 / 10f64.powi(exponent(currency) as i32)),
            Datum::Percent(p) => *p,
        }
    }
}

/// How a chart is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Line,
    /// Stacked bars.
    Bars,
    HorizontalBars,
}

/// A chart ready to show: title, description, data table; drawn on demand.
#[derive(Debug, Clone)]
pub struct ChartView {
    pub key: String,
    pub title: String,
    pub description: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Datum>>,
    kind: Kind,
    /// The columns drawn.
    plotted: Vec<usize>,
}

impl ChartView {
    /// The chart as SVG; `titled` writes the title in it (for a file on its own), `dark`
    /// draws it for a dark page.
    pub fn svg(&self, titled: bool, dark: bool) -> String {
        let rows =
            if self.kind == Kind::HorizontalBars { &self.rows[..self.rows.len().min(BARS)] } else { &self.rows[..] };
        let look = Look { title: titled.then_some(self.title.as_str()), dark };
        draw(self.kind, look, &self.columns, rows, &self.plotted)
    }

    /// The table as CSV (header first).
    pub fn csv(&self) -> String {
        let line = |cells: Vec<String>| cells.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
        let mut out = line(self.columns.clone());
        out.push_str("\r\n");
        for row in &self.rows {
            out.push_str(&line(row.iter().map(Datum::plain).collect()));
            out.push_str("\r\n");
        }
        out
    }

    /// The table for a template: display texts.
    pub fn display_rows(&self) -> Vec<Vec<String>> {
        self.rows.iter().map(|row| row.iter().map(Datum::display).collect()).collect()
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

/// A bucket's label on the time axis.
fn bucket_label(grain: Grain, start: NaiveDate) -> String {
    match grain {
        Grain::Day => start.format("%-d %b").to_string(),
        Grain::Week => format!("Week of {}", start.format("%-d %b")),
        Grain::Month => start.format("%b %Y").to_string(),
    }
}

fn in_currency(sums: &ByCurrency, currency: &str) -> Measures {
    sums.get(currency).copied().unwrap_or_default()
}

/// The time charts, from the series.
pub fn over_time(chart: Chart, scope: &Scope, series: &[(NaiveDate, ByCurrency)], currency: &str) -> ChartView {
    let when = |start: &NaiveDate| Datum::Text(bucket_label(scope.grain, *start));
    let (columns, rows, plotted, description): ([&str; 4], Vec<Vec<Datum>>, Vec<usize>, String) = match chart {
        Chart::Payments => {
            let rows: Vec<Vec<Datum>> = series
                .iter()
                .map(|(start, sums)| {
                    let all = total(sums);
                    vec![
                        when(start),
                        Datum::Count(all.payments),
                        Datum::Count(all.approved),
                        Datum::Count(all.declined),
                    ]
                })
                .collect();
            let count: i64 = series.iter().map(|(_, sums)| total(sums).payments).sum();
            let busiest = peak(series, |sums| total(sums).payments as f64);
            let description = format!(
                "{} payments in the period, approved and declined per {}{}.",
                group_thousands(&count.to_string()),
                scope.grain.key(),
                busiest
                    .map(|(start, n)| format!("; most on {} ({n:.0})", bucket_label(scope.grain, start)))
                    .unwrap_or_default()
            );
            (["Period", "Payments", "Approved", "Declined"], rows, vec![2, 3], description)
        }
        Chart::ApprovalRate => {
            let rows: Vec<Vec<Datum>> = series
                .iter()
                .map(|(start, sums)| {
                    let all = total(sums);
                    vec![
                        when(start),
                        Datum::Percent(all.approval_rate()),
                        Datum::Count(all.approved),
                        Datum::Count(all.declined),
                    ]
                })
                .collect();
            let mut all = Measures::default();
            series.iter().for_each(|(_, sums)| all += total(sums));
            let lowest = series
                .iter()
                .filter_map(|(start, sums)| total(sums).approval_rate().map(|rate| (*start, rate)))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            let description = format!(
                "Approved among answered payments per {}: {} over the period{}.",
                scope.grain.key(),
                Datum::Percent(all.approval_rate()).display(),
                lowest
                    .map(|(start, rate)| format!(", lowest on {} ({rate:.1}%)", bucket_label(scope.grain, start)))
                    .unwrap_or_default()
            );
            (["Period", "Approval rate", "Approved", "Declined"], rows, vec![1], description)
        }
        _ => {
            let rows: Vec<Vec<Datum>> = series
                .iter()
                .map(|(start, sums)| {
                    let m = in_currency(sums, currency);
                    vec![
                        when(start),
                        Datum::Money(m.turnover(), currency.to_owned()),
                        Datum::Money(m.captured, currency.to_owned()),
                        Datum::Money(m.refunded, currency.to_owned()),
                    ]
                })
                .collect();
            let sum: i64 = series.iter().map(|(_, sums)| in_currency(sums, currency).turnover()).sum();
            let best = peak(series, |sums| in_currency(sums, currency).turnover() as f64);
            let description = format!(
                "Captured minus refunded in {currency} per {}: {} over the period{}.",
                scope.grain.key(),
                Datum::Money(sum, currency.to_owned()).display(),
                best.map(|(start, _)| format!("; highest on {}", bucket_label(scope.grain, start))).unwrap_or_default()
            );
            (["Period", "Turnover", "Captured", "Refunded"], rows, vec![1], description)
        }
    };
    ChartView {
        key: chart.key(),
        title: chart.title(currency),
        description,
        columns: columns.into_iter().map(str::to_owned).collect(),
        rows,
        kind: if chart == Chart::Payments { Kind::Bars } else { Kind::Line },
        plotted,
    }
}

/// The bucket with the largest `value`, when any is above zero.
fn peak(series: &[(NaiveDate, ByCurrency)], value: impl Fn(&ByCurrency) -> f64) -> Option<(NaiveDate, f64)> {
    series
        .iter()
        .map(|(start, sums)| (*start, value(sums)))
        .filter(|(_, v)| *v > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// A breakdown chart, from the breakdown's rows (`label`, figures), largest first.
pub fn by(dimension: Dimension, rows: &[(String, ByCurrency)], currency: &str) -> ChartView {
    let chart = Chart::By(dimension);
    let title = chart.title(currency);

    let noun = dimension.label();
    let (columns, table, description): (Vec<&str>, Vec<Vec<Datum>>, String) = if chart.in_currency() {
        let mut rows: Vec<(&String, Measures, Measures)> =
            rows.iter().map(|(label, sums)| (label, in_currency(sums, currency), total(sums))).collect();
        rows.sort_by(|a, b| b.1.turnover().cmp(&a.1.turnover()).then(b.2.payments.cmp(&a.2.payments)));
        let sum: i64 = rows.iter().map(|(_, m, _)| m.turnover()).sum();
        let table = rows
            .iter()
            .map(|(label, m, all)| {
                vec![
                    Datum::Text((*label).clone()),
                    Datum::Money(m.turnover(), currency.to_owned()),
                    Datum::Count(all.payments),
                    Datum::Percent(all.approval_rate()),
                    Datum::Money(m.refunded, currency.to_owned()),
                    Datum::Count(all.chargebacks),
                ]
            })
            .collect();
        let description = match rows.first() {
            Some((label, m, _)) if sum > 0 => format!(
                "{} {}. {label} brings the most {currency} turnover: {} ({:.0}% of {}).",
                rows.len(),
                if rows.len() == 1 { noun } else { dimension.plural() },
                Datum::Money(m.turnover(), currency.to_owned()).display(),
                m.turnover() as f64 * 100.0 / sum as f64,
                Datum::Money(sum, currency.to_owned()).display()
            ),
            _ => format!("No {currency} turnover in the period."),
        };
        (vec!["Turnover", "Payments", "Approval rate", "Refunded", "Chargebacks"], table, description)
    } else {
        let all: i64 = rows.iter().map(|(_, sums)| total(sums).payments).sum();
        let table = rows
            .iter()
            .map(|(label, sums)| {
                let m = total(sums);
                let share = (all > 0).then(|| m.payments as f64 * 100.0 / all as f64);
                vec![
                    Datum::Text(label.clone()),
                    Datum::Count(m.payments),
                    Datum::Percent(share),
                    Datum::Percent(m.approval_rate()),
                ]
            })
            .collect();
        let description = match rows.first() {
            Some((label, sums)) if all > 0 => format!(
                "{} payments over {} {}; the most are {label}: {} ({:.0}%).",
                group_thousands(&all.to_string()),
                rows.len(),
                if rows.len() == 1 { noun } else { dimension.plural() },
                group_thousands(&total(sums).payments.to_string()),
                total(sums).payments as f64 * 100.0 / all as f64
            ),
            _ => "No payments in the period.".to_owned(),
        };
        (vec!["Payments", "Share", "Approval rate"], table, description)
    };
    let columns = std::iter::once(capitalised(noun)).chain(columns.into_iter().map(str::to_owned)).collect();
    ChartView {
        key: chart.key(),
        title,
        description,
        columns,
        rows: table,
        kind: Kind::HorizontalBars,
        plotted: vec![1],
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The value axis: percentages within 0 to 100, fitted to the values in steps of 5, 10 or
/// 20 points (a rate between 78 and 93 % is not drawn flat); otherwise round steps that
/// hold every value (whole steps for counts), so that no axis reads 0.9 payments.
fn value_axis(rows: &[Vec<Datum>], plotted: &[usize], stacked: bool) -> Value {
    let first = rows.first().and_then(|row| plotted.first().map(|&column| &row[column]));
    if matches!(first, Some(Datum::Percent(_))) {
        let rates = || rows.iter().flat_map(|row| plotted.iter().filter_map(|&column| row[column].number()));
        let (low, high) = (rates().fold(100.0, f64::min), rates().fold(0.0, f64::max));
        let (min, max, step) = percent_axis(low, high);
        return json!({
            "axis_min": min, "axis_max": max, "axis_split_number": (max - min) / step, "axis_formatter": "{c}%",
            "axis_font_size": 14,
        });
    }
    let values = rows.iter().map(|row| {
        let numbers = plotted.iter().filter_map(|&column| row[column].number());
        if stacked { numbers.sum::<f64>() } else { numbers.fold(0.0, f64::max) }
    });
    let lows = rows.iter().flat_map(|row| plotted.iter().filter_map(|&column| row[column].number()));
    let (high, low) = (values.fold(0.0, f64::max), lows.fold(0.0, f64::min));
    if high - low <= 0.0 {
        return json!({ "axis_formatter": "{t}", "axis_font_size": 14 });
    }
    let whole = matches!(first, Some(Datum::Count(_)));
    let rough = (high - low) / 5.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let mut step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|f| f * magnitude).find(|s| *s >= rough).unwrap_or(rough);
    if whole {
        step = step.ceil().max(1.0);
    }
    let (min, max) = ((low / step).floor() * step, (high / step).ceil() * step);
    json!({
        "axis_min": min,
        "axis_max": max,
        "axis_split_number": ((max - min) / step).round() as u64,
        "axis_formatter": "{t}",
        "axis_font_size": 14,
    })
}

/// The bounds and step of a percentage axis holding `low` to `high` (0 to 100 when there
/// is nothing to plot).
fn percent_axis(low: f64, high: f64) -> (u32, u32, u32) {
    if low > high {
        return (0, 100, 20);
    }
    let step = match high - low {
        span if span <= 15.0 => 5,
        span if span <= 40.0 => 10,
        _ => 20,
    };
    let min = ((low / f64::from(step)).floor() as u32 * step).min(100 - step);
    let max = ((high / f64::from(step)).ceil() as u32 * step).clamp(min + step, 100);
    (min, max, step)
}

/// How a chart looks apart from its data.
#[derive(Debug, Clone, Copy)]
struct Look<'a> {
    title: Option<&'a str>,
    dark: bool,
}

/// The charts' themes: charts-rs's light and dark ones on a transparent background, so
/// that a chart sits on the page's card whatever its colour.
fn theme(dark: bool) -> &'static str {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        for (name, base) in [("dashboard-light", "light"), ("dashboard-dark", "dark")] {
            let mut theme = (*charts_rs::get_theme(base)).clone();
            theme.background_color = charts_rs::Color::transparent();
            charts_rs::add_theme(name, theme);
        }
    });
    if dark { "dashboard-dark" } else { "dashboard-light" }
}

/// Draws `columns[plotted]` of `rows` (the first column names the categories).
fn draw(kind: Kind, look: Look, columns: &[String], rows: &[Vec<Datum>], plotted: &[usize]) -> String {
    let title = look.title;
    let categories: Vec<String> = rows.iter().map(|row| row[0].display()).collect();
    let series: Vec<Value> = plotted
        .iter()
        .map(|&column| {
            let data: Vec<Option<f64>> = rows.iter().map(|row| row[column].number()).collect();
            let mut series = json!({ "name": columns[column], "data": data });
            if kind == Kind::Bars {
                series["stack"] = json!("total");
            }
            series
        })
        .collect();
    let horizontal = kind == Kind::HorizontalBars;
    let height = if horizontal { (40 + 28 * rows.len().max(3)) as f64 } else { 300.0 }
        + if title.is_some() { 36.0 } else { 0.0 };
    let mut options = json!({
        "width": 720,
        "height": height,
        "theme": theme(look.dark),
        "font_family": "Roboto",
        "title_text": title.unwrap_or_default(),
        // Room on the right for the value written after the longest bar.
        // The names of the bars get room to spare on the left: they are measured in
        // Roboto and written in the page's font, which may be wider.
        "margin": { "left": if horizontal { 60 } else { 8 }, "top": 12, "right": if horizontal { 96 } else { 16 }, "bottom": 8 },
        // The chart is drawn 720 wide and shown narrower: text drawn at 14 reads at 11 or more.
        "x_axis_font_size": 14,
        "series_label_font_size": 14,
        "legend_font_size": 14,
        "tooltip_font_size": 14,
        "series_colors": ["#4F46E5", "#DC2626", "#059669", "#D97706"],
        "legend_show": plotted.len() > 1,
        "legend_align": "right",
        "x_axis_data": if horizontal { categories.iter().rev().cloned().collect::<Vec<_>>() } else { categories },
        "x_axis_label_overflow": "thin",
        "y_axis_configs": [value_axis(rows, plotted, kind == Kind::Bars)],
        "series_list": series,
        "tooltip_show": true,
        "empty_text": "Nothing in this period",
    });
    if horizontal {
        for series in options["series_list"].as_array_mut().into_iter().flatten() {
            if let Some(data) = series["data"].as_array_mut() {
                data.reverse();
            }
            series["label_show"] = json!(true);
        }
        options["series_label_formatter"] = json!("{t}");
    }
    // Rates are drawn as a plain line; amounts fill the area under it (never smoothed:
    // a smoothed curve shows values that are not in the data).
    let rates = plotted.iter().any(|&column| rows.first().is_some_and(|row| matches!(row[column], Datum::Percent(_))));
    if kind == Kind::Line && !rates {
        options["series_fill"] = json!(true);
    }
    let text = options.to_string();
    let drawn = match kind {
        Kind::Bars => charts_rs::BarChart::from_json(&text).and_then(|c| c.svg()),
        Kind::HorizontalBars => charts_rs::HorizontalBarChart::from_json(&text).and_then(|c| c.svg()),
        Kind::Line => charts_rs::LineChart::from_json(&text).and_then(|c| c.svg()),
    };
    drawn.unwrap_or_else(|error| {
        tracing::warn!(%error, "a chart could not be drawn");
        #[cfg(test)]
        eprintln!("{error}");
        String::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_axis_fits_its_values() {
        assert_eq!(percent_axis(78.2, 93.1), (75, 95, 5), "a rate between 78 and 93 % is not drawn flat");
        assert_eq!(percent_axis(91.0, 96.0), (90, 100, 5));
        assert_eq!(percent_axis(0.4, 1.9), (0, 5, 5), "a chargeback ratio near zero");
        assert_eq!(percent_axis(12.0, 88.0), (0, 100, 20));
        assert_eq!(percent_axis(100.0, 100.0), (95, 100, 5), "all approved still has a line to draw");
        assert_eq!(percent_axis(100.0, 0.0), (0, 100, 20), "nothing to plot");
    }

    #[test]
    fn charts_are_drawn() {
        let columns: Vec<String> = ["Period", "Turnover"].iter().map(|s| s.to_string()).collect();
        let rows = vec![
            vec![Datum::Text("Nov 1".into()), Datum::Money(12_345, "EUR".into())],
            vec![Datum::Text("Nov 2".into()), Datum::Money(2_345, "EUR".into())],
        ];
        for kind in [Kind::Line, Kind::Bars, Kind::HorizontalBars] {
            let svg = draw(kind, Look { title: Some("Title"), dark: false }, &columns, &rows, &[1]);
            assert!(svg.starts_with("<svg"), "{kind:?}: {svg}");
            // The SVG is inlined in pages whose policy allows no inline style.
            assert!(!svg.contains("style="), "{kind:?}: {svg}");
        }
    }
}
