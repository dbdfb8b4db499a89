//! The figures as the API and the pages show them: counts and rates over all
//! currencies, money per currency.

use crate::charts::Datum;
use dashboard_core::money::group_thousands;
use poem_openapi::Object;
use serde::Serialize;

use crate::measures::Measures;
use crate::service::{ByCurrency, total};

/// CurrencyFigures figures of one currency (minor units).
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CurrencyFigures {
    pub currency: String,
    /// Captured minus refunded.
    pub turnover: i64,
    pub captured: i64,
    pub refunded: i64,
    pub charged_back: i64,
    pub paid_out: i64,
    /// Captured amount per capture.
    pub average_ticket: Option<i64>,
    /// Refunded against captured, in percent.
    pub refund_rate: Option<f64>,
}

/// The figures of a period (or of one value of a breakdown, or one bucket of a series).
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Figures {
    /// Payments created (payouts not included).
    pub payments: i64,
    pub approved: i64,
    pub declined: i64,
    /// Approved among the payments answered, in percent.
    pub approval_rate: Option<f64>,
    /// Successful sales, captures and recurring charges.
    pub captures: i64,
    /// Successful refunds and reversals.
    pub refunds: i64,
    pub chargebacks: i64,
    /// Chargebacks against captures, in percent.
    pub chargeback_ratio: Option<f64>,
    pub payouts: i64,
    /// Per currency, largest turnover first.
    pub money: Vec<CurrencyFigures>,
}

impl Figures {
    pub fn of(sums: &ByCurrency) -> Figures {
        let all = total(sums);
        let mut money: Vec<CurrencyFigures> = sums
            .iter()
            .filter(|(_, m)| m.captures + m.refunds + m.chargebacks + m.payouts > 0)
            .map(|(currency, m)| CurrencyFigures {
                currency: currency.clone(),
                turnover: m.turnover(),
                captured: m.captured,
                refunded: m.refunded,
                charged_back: m.charged_back,
                paid_out: m.paid_out,
                average_ticket: m.average_ticket(),
                refund_rate: m.refund_rate(),
            })
            .collect();
        money.sort_by(|a, b| b.turnover.cmp(&a.turnover).then_with(|| a.currency.cmp(&b.currency)));
        Figures {
            payments: all.payments,
            approved: all.approved,
            declined: all.declined,
            approval_rate: all.approval_rate(),
            captures: all.captures,
            refunds: all.refunds,
            chargebacks: all.chargebacks,
            chargeback_ratio: all.chargeback_ratio(),
            payouts: all.payouts,
            money,
        }
    }

    /// The money of `currency` (zeros when none moved).
    pub fn money_in(&self, currency: &str) -> CurrencyFigures {
        self.money.iter().find(|m| m.currency == currency).cloned().unwrap_or_else(|| CurrencyFigures {
            currency: currency.to_owned(),
            turnover: 0,
            captured: 0,
            refunded: 0,
            charged_back: 0,
            paid_out: 0,
            average_ticket: None,
            refund_rate: None,
        })
    }
}

/// A KPI card: the value now, before, and the change.
#[derive(Debug, Clone, Serialize)]
pub struct Kpi {
    pub key: &'static str,
    pub label: &'static str,
    /// The value now and before, for people (grouped, with the currency).
    pub value: String,
    pub previous: String,
    /// The same as figures, for files.
    #[serde(skip)]
    pub figures: [Datum; 2],
    /// `+12.5%`, `−3.0 pts`, or empty when there is nothing to compare with.
    pub change: String,
    /// Whether the change is good news (for colour), if it is either.
    pub trend: &'static str,
    pub note: String,
}

fn percent(value: Option<f64>) -> String {
    Datum::Percent(value).display()
}

fn money(value: i64, currency: &str) -> Datum {
    Datum::Money(value, currency.to_owned())
}

fn money_or_empty(value: Option<i64>, currency: &str) -> Datum {
    value.map_or(Datum::Empty, |value| money(value, currency))
}

/// `1 refund`, `2 refunds`.
fn counted(count: i64, one: &str, many: &str) -> String {
    format!("{} {}", group_thousands(&count.to_string()), if count == 1 { one } else { many })
}

/// Relative change of an amount or count.
fn relative(now: i64, before: i64, up_is_good: bool) -> (String, &'static str) {
    if before == 0 {
        return (String::new(), "flat");
    }
    let change = (now - before) as f64 * 100.0 / before.abs() as f64;
    (format!("{}{:.1}%", if change >= 0.0 { "+" } else { "−" }, change.abs()), trend(change, up_is_good))
}

/// Change of a rate, in percentage points.
fn points(now: Option<f64>, before: Option<f64>, up_is_good: bool) -> (String, &'static str) {
    match (now, before) {
        (Some(now), Some(before)) => {
            let change = now - before;
            (format!("{}{:.1} pts", if change >= 0.0 { "+" } else { "−" }, change.abs()), trend(change, up_is_good))
        }
        _ => (String::new(), "flat"),
    }
}

fn trend(change: f64, up_is_good: bool) -> &'static str {
    if change.abs() < 0.05 {
        "flat"
    } else if (change > 0.0) == up_is_good {
        "good"
    } else {
        "bad"
    }
}

/// The KPI cards of a period against the previous one, money in `currency`; the counts
/// are of every currency, or of `filtered_to` alone when the filters name one.
pub fn kpis(
    now: &Measures,
    before: &Measures,
    now_all: &Measures,
    before_all: &Measures,
    currency: &str,
    filtered_to: Option<&str>,
) -> Vec<Kpi> {
    let card = |key, label, now: Datum, before: Datum, (change, trend): (String, &'static str), note: String| Kpi {
        key,
        label,
        value: now.display(),
        previous: before.display(),
        figures: [now, before],
        change,
        trend,
        note,
    };
    vec![
        card(
            "turnover",
            "Turnover",
            money(now.turnover(), currency),
            money(before.turnover(), currency),
            relative(now.turnover(), before.turnover(), true),
            "captured minus refunded".to_owned(),
        ),
        card(
            "payments",
            "Payments",
            Datum::Count(now_all.payments),
            Datum::Count(before_all.payments),
            relative(now_all.payments, before_all.payments, true),
            filtered_to.map_or_else(|| "all currencies".to_owned(), |currency| format!("in {currency} only")),
        ),
        card(
            "approval_rate",
            "Approval rate",
            Datum::Percent(now_all.approval_rate()),
            Datum::Percent(before_all.approval_rate()),
            points(now_all.approval_rate(), before_all.approval_rate(), true),
            format!("{} approved, {} declined", now_all.approved, now_all.declined),
        ),
        card(
            "average_ticket",
            "Average ticket",
            money_or_empty(now.average_ticket(), currency),
            money_or_empty(before.average_ticket(), currency),
            relative(now.average_ticket().unwrap_or(0), before.average_ticket().unwrap_or(0), true),
            counted(now.captures, "capture", "captures"),
        ),
        card(
            "refunds",
            "Refunds",
            money(now.refunded, currency),
            money(before.refunded, currency),
            relative(now.refunded, before.refunded, false),
            format!("{} · {} of captured", counted(now.refunds, "refund", "refunds"), percent(now.refund_rate())),
        ),
        card(
            "chargeback_ratio",
            "Chargeback ratio",
            Datum::Percent(now_all.chargeback_ratio()),
            Datum::Percent(before_all.chargeback_ratio()),
            points(now_all.chargeback_ratio(), before_all.chargeback_ratio(), false),
            counted(now_all.chargebacks, "chargeback", "chargebacks"),
        ),
        card(
            "payouts",
            "Payouts",
            money(now.paid_out, currency),
            money(before.paid_out, currency),
            relative(now.paid_out, before.paid_out, true),
            counted(now.payouts, "payout", "payouts"),
        ),
    ]
}
