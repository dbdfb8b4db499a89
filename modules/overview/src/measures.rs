//! What the rollups count, and the dimensions they break it down by.

use std::ops::AddAssign;

use dashboard_payments_domain::model::{OperationKind, Status};
use serde::Serialize;

/// The counts and sums of one rollup cell (or of many, added up). Amounts are minor
/// units of one currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Measures {
    /// Payments (not payouts) created.
    pub payments: i64,
    /// Of those, approved by the acquirer (whatever happened to them afterwards).
    pub approved: i64,
    /// Of those, declined or failed.
    pub declined: i64,
    /// Successful sales, captures and recurring charges, and their amount.
    pub captures: i64,
    pub captured: i64,
    /// Successful refunds and reversals, and their amount.
    pub refunds: i64,
    pub refunded: i64,
    pub chargebacks: i64,
    pub charged_back: i64,
    pub payouts: i64,
    pub paid_out: i64,
}

impl AddAssign for Measures {
    fn add_assign(&mut self, other: Measures) {
        self.payments += other.payments;
        self.approved += other.approved;
        self.declined += other.declined;
        self.captures += other.captures;
        self.captured += other.captured;
        self.refunds += other.refunds;
        self.refunded += other.refunded;
        self.chargebacks += other.chargebacks;
        self.charged_back += other.charged_back;
        self.payouts += other.payouts;
        self.paid_out += other.paid_out;
    }
}

impl Measures {
    /// The rollups' columns of the measures, in the order of [`Measures::values`].
    pub const COLUMNS: [&'static str; 11] = [
        "payments",
        "approved",
        "declined",
        "captures",
        "captured",
        "refunds",
        "refunded",
        "chargebacks",
        "charged_back",
        "payouts",
        "paid_out",
    ];

    /// Every measure, in the order of the rollups' columns.
    pub fn values(&self) -> [i64; 11] {
        [
            self.payments,
            self.approved,
            self.declined,
            self.captures,
            self.captured,
            self.refunds,
            self.refunded,
            self.chargebacks,
            self.charged_back,
            self.payouts,
            self.paid_out,
        ]
    }

    /// `count` payments created with `status`.
    pub fn created(status: &str, count: i64) -> Measures {
        let status = Status::parse(status);
        let approved = status.is_some_and(approved);
        let declined = matches!(status, Some(Status::Declined | Status::Failed));
        Measures {
            payments: count,
            approved: if approved { count } else { 0 },
            declined: if declined { count } else { 0 },
            ..Measures::default()
        }
    }

    /// `count` successful operations of `kind` that moved `amount` in total (kinds that
    /// move no money count nothing).
    pub fn moved(kind: &str, count: i64, amount: i64) -> Measures {
        let mut m = Measures::default();
        match OperationKind::parse(kind) {
            Some(OperationKind::Sale | OperationKind::Capture | OperationKind::Recurring) => {
                (m.captures, m.captured) = (count, amount)
            }
            Some(OperationKind::Refund | OperationKind::Reversal) => (m.refunds, m.refunded) = (count, amount),
            Some(OperationKind::Chargeback) => (m.chargebacks, m.charged_back) = (count, amount),
            Some(OperationKind::Payout) => (m.payouts, m.paid_out) = (count, amount),
            _ => {}
        }
        m
    }

    /// Only what counts payments (status and decline reason break down payments, not
    /// money).
    pub fn payments_only(self) -> Measures {
        Measures { payments: self.payments, approved: self.approved, declined: self.declined, ..Measures::default() }
    }

    pub fn is_zero(&self) -> bool {
        *self == Measures::default()
    }

    /// Captured minus refunded.
    pub fn turnover(&self) -> i64 {
        self.captured - self.refunded
    }

    /// Approved among those answered, in percent.
    pub fn approval_rate(&self) -> Option<f64> {
        ratio(self.approved, self.approved + self.declined)
    }

    /// Captured amount per capture.
    pub fn average_ticket(&self) -> Option<i64> {
        (self.captures > 0).then(|| (self.captured as f64 / self.captures as f64).round() as i64)
    }

    /// Refunded amount against captured amount, in percent.
    pub fn refund_rate(&self) -> Option<f64> {
        ratio(self.refunded, self.captured)
    }

    /// Chargebacks against captures, in percent.
    pub fn chargeback_ratio(&self) -> Option<f64> {
        ratio(self.chargebacks, self.captures)
    }
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// The statuses of a payment the acquirer approved (at first: it may have been refunded,
/// released or charged back since).
fn approved(status: Status) -> bool {
    matches!(
        status,
        Status::Authorized
            | Status::Capturing
            | Status::Cancelling
            | Status::Completed
            | Status::PartiallyRefunded
            | Status::Refunded
            | Status::Reversed
            | Status::Cancelled
            | Status::ChargedBack
    )
}

/// What a breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Dimension {
    Project,
    Method,
    Brand,
    Country,
    Currency,
    Status,
    Decline,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Dimension::Project,
        Dimension::Method,
        Dimension::Brand,
        Dimension::Country,
        Dimension::Currency,
        Dimension::Status,
        Dimension::Decline,
    ];

    /// The rollups' bit of this dimension (project and currency are in every cell).
    pub fn bit(self) -> i16 {
        match self {
            Dimension::Project | Dimension::Currency => 0,
            Dimension::Method => METHOD,
            Dimension::Country => COUNTRY,
            Dimension::Brand => BRAND,
            Dimension::Status => STATUS,
            Dimension::Decline => DECLINE,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Dimension::Project => "project",
            Dimension::Method => "method",
            Dimension::Brand => "brand",
            Dimension::Country => "country",
            Dimension::Currency => "currency",
            Dimension::Status => "status",
            Dimension::Decline => "decline",
        }
    }

    pub fn parse(key: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.key() == key)
    }

    pub fn label(self) -> &'static str {
        match self {
            Dimension::Project => "project",
            Dimension::Method => "payment method",
            Dimension::Brand => "card brand",
            Dimension::Country => "country",
            Dimension::Currency => "currency",
            Dimension::Status => "status",
            Dimension::Decline => "decline reason",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Dimension::Project => "projects",
            Dimension::Method => "payment methods",
            Dimension::Brand => "card brands",
            Dimension::Country => "countries",
            Dimension::Currency => "currencies",
            Dimension::Status => "statuses",
            Dimension::Decline => "decline reasons",
        }
    }

    /// Status and decline reason break down payments, not money.
    pub fn counts_money(self) -> bool {
        !matches!(self, Dimension::Status | Dimension::Decline)
    }
}

pub const METHOD: i16 = 1;
pub const COUNTRY: i16 = 2;
pub const BRAND: i16 = 4;
pub const STATUS: i16 = 8;
pub const DECLINE: i16 = 16;

/// The grouping sets kept: each combination of the filter dimensions (method, country)
/// with none or one of brand, status and decline reason. Any filter with any one
/// breakdown reads exactly one of them.
pub const GROUPINGS: [i16; 16] = {
    let mut all = [0; 16];
    let mut i = 0;
    while i < 16 {
        all[i] = (i as i16 & 3) | [0, BRAND, STATUS, DECLINE][i / 4];
        i += 1;
    }
    all
};
