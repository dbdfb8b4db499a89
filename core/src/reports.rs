//! Report types: what a crate that owns some data offers the Reports section to build in
//! the background (payments, operations, a daily summary, a balance statement …). A crate
//! declares each with `register!(ReportType { … })`; the Reports section lists them, asks
//! for their period, projects, filters and columns, and writes the rows they send into a
//! CSV or XLSX file. A type answers typed cells (money in minor units with its exponent,
//! times in UTC), so that the file shows times in the report's time zone and an XLSX holds
//! numbers and dates, not text.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

/// A kind of report. `rows` starts sending the rows of a request in batches, in the
/// order of the file (oldest first where rows have a time), and stops when the receiver
/// is dropped (the report was cancelled).
pub struct ReportType {
    /// Lower case with underscores, stable: stored with each report and used by the API.
    pub id: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    /// The permission a user needs to build (and see) it, besides managing reports.
    pub permission: &'static str,
    pub columns: &'static [Column],
    pub filters: &'static [Filter],
    /// Checks a request's filters with a clear error for a bad one, before it is queued.
    pub check: fn(&ReportRequest) -> Result<(), AppError>,
    pub rows: fn(AppState, ReportRequest) -> BoxFuture<'static, Result<ReportRows, AppError>>,
}

inventory::collect!(ReportType);

impl ReportType {
    /// Every registered type, by label.
    pub fn all() -> Vec<&'static ReportType> {
        let mut all: Vec<&'static ReportType> = inventory::iter::<ReportType>.into_iter().collect();
        all.sort_by_key(|kind| kind.label);
        all
    }

    pub fn find(id: &str) -> Option<&'static ReportType> {
        inventory::iter::<ReportType>.into_iter().find(|kind| kind.id == id)
    }
}

/// A column of a report type.
pub struct Column {
    /// Lower case with underscores, stable (the API chooses columns by it).
    pub id: &'static str,
    /// The file's header.
    pub label: &'static str,
    /// What its cells hold (a time column's header names the report's time zone).
    pub kind: ColumnKind,
    /// In the file unless the user leaves it out.
    pub default: bool,
}

/// What a column's cells hold: [`Cell::Text`], [`Cell::Integer`], [`Cell::Money`],
/// [`Cell::Time`] or [`Cell::Date`] (or [`Cell::Empty`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Integer,
    Money,
    Time,
    Date,
}

/// A filter of a report type: a choice from `choices` (value, label), or free text when
/// it answers none ([`free_text`]). Its value arrives in [`ReportRequest::filters`] under
/// `id`.
pub struct Filter {
    pub id: &'static str,
    pub label: &'static str,
    pub choices: fn() -> Vec<(&'static str, &'static str)>,
}

/// The `choices` of a free-text [`Filter`].
pub fn free_text() -> Vec<(&'static str, &'static str)> {
    Vec::new()
}

/// One cell of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    /// Text known when the program was built (a status's label): nothing to allocate.
    Label(&'static str),
    Integer(i64),
    /// An amount in minor units and its currency's exponent (2 for EUR, 0 for JPY).
    Money(i64, u32),
    /// A UTC instant, written in the report's time zone.
    Time(NaiveDateTime),
    Date(NaiveDate),
}

impl Cell {
    /// A text cell, or an empty one for none.
    pub fn text(value: Option<String>) -> Cell {
        value.map_or(Cell::Empty, Cell::Text)
    }

    /// An amount of `currency`.
    pub fn money(minor: i64, currency: &str) -> Cell {
        Cell::Money(minor, crate::money::exponent(currency))
    }
}

/// What a report is built from: who asks (the report's creator as they are when it is
/// built, limited to the report's projects, in the report's time zone) and the period of
/// whole days in that zone.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub principal: Principal,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Filter id → value, as the user gave them (empty values left out).
    pub filters: BTreeMap<String, String>,
}

impl ReportRequest {
    /// The time zone the period's days and the file's times are in.
    pub fn time_zone(&self) -> &str {
        &self.principal.time_zone
    }

    /// The UTC instants the period starts at and ends before.
    pub fn period(&self) -> (NaiveDateTime, NaiveDateTime) {
        let zone = self.time_zone().parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::Tz::UTC);
        let after_last = self.last_day.succ_opt().unwrap_or(self.last_day);
        (crate::time::day_start(zone, self.first_day), crate::time::day_start(zone, after_last))
    }

    /// The value of a filter, if given.
    pub fn filter(&self, id: &str) -> Option<&str> {
        self.filters.get(id).map(String::as_str)
    }
}

/// Rows in the order of the file, and how far into the period they reached (the time of
/// the last one, for the progress shown while the report is built; none when the type
/// cannot say).
#[derive(Debug, Default)]
pub struct RowBatch {
    pub rows: Vec<Vec<Cell>>,
    pub reached: Option<NaiveDateTime>,
}

/// The rows of a report as they come; an error ends them (the report fails with it).
pub type ReportRows = mpsc::Receiver<Result<RowBatch, AppError>>;

/// How many batches a type may send ahead of the file being written.
pub const BATCHES_AHEAD: usize = 2;

/// A channel for a type's rows.
pub fn rows_channel() -> (mpsc::Sender<Result<RowBatch, AppError>>, ReportRows) {
    mpsc::channel(BATCHES_AHEAD)
}
