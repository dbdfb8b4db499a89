//! A rule tried on past payments: over the payments of a period, how many and how much it
//! would have matched, per day, and how those ended (charged back later, declined
//! already, or neither) beside those it would not have matched: the confusion table that
//! says whether a rule catches fraud or customers.
//!
//! A backtest runs in the background and reads the company's payments in time order,
//! in pages, keeping each card's, e-mail's and address's payments of the last 24 hours
//! in memory for the velocities (so every velocity is what the screening would have
//! counted then). Lists are read as they are now. Its progress is stored as it goes; one
//! whose server stopped is started again by another.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::geo::{Geo, Network, address_key};
use super::language::{self, Condition, Facts, List, ListKind, Lookups, Measure, Subject, Velocity, Window};
use super::{Action, BacktestStatus};
use crate::model::Status;
use crate::schema::{fraud_backtests, fraud_list_entries, payments};
use crate::service::Money;
use dashboard_core::auth::Principal;
use dashboard_core::db::prelude::*;
use dashboard_core::db::{DbConn, DbPool};
use dashboard_core::time::{Timestamp, now};
use dashboard_core::{AppError, AppState};
use diesel::connection::DefaultLoadingMode;

/// The longest period a backtest reads.
pub const MOST_DAYS: i64 = 366;

/// A backtest to run.
#[derive(Debug, Clone, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BacktestRequest {
    /// What to call it; the rule's first words when none.
    #[oai(validator(max_length = 100))]
    pub name: Option<String>,
    /// The condition, in the rules' language.
    #[oai(validator(min_length = 1, max_length = 4000))]
    pub condition: String,
    pub action: Action,
    /// The first day, `YYYY-MM-DD`, in the user's time zone.
    #[oai(validator(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub from: String,
    /// The last day, included.
    #[oai(validator(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub to: String,
    /// One project's payments; all the user may see when none.
    pub project_id: Option<i64>,
}

/// How the payments a rule matched (or not) ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize, poem_openapi::Object)]
pub struct Outcomes {
    /// Charged back later: the fraud a rule is for.
    pub charged_back: i64,
    /// Declined or failed already, without the rule.
    pub declined: i64,
    /// Neither: the customers a rule would have turned away.
    pub other: i64,
}

impl Outcomes {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::ChargedBack => self.charged_back += 1,
            Outcome::Declined => self.declined += 1,
            Outcome::Other => self.other += 1,
        }
    }
}

/// One day of a backtest, in the user's time zone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, poem_openapi::Object)]
pub struct BacktestDay {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub payments: i64,
    pub matched: i64,
    pub matched_amounts: Vec<Money>,
    pub matched_charged_back: i64,
    pub matched_declined: i64,
}

/// What a backtest found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, poem_openapi::Object)]
pub struct BacktestResult {
    /// Payments of the period read.
    pub payments: i64,
    pub matched: i64,
    pub matched_amounts: Vec<Money>,
    /// The payments it would have matched, by how they ended.
    pub matched_outcomes: Outcomes,
    /// Those it would not have matched.
    pub unmatched_outcomes: Outcomes,
    pub days: Vec<BacktestDay>,
    /// How long it ran.
    pub seconds: f64,
}

/// A backtest.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BacktestView {
    pub id: i64,
    pub name: String,
    pub condition: String,
    pub action: Action,
    pub project_id: Option<i64>,
    /// The period's first instant (UTC).
    pub period_from: Timestamp,
    /// The instant after its last day.
    pub period_to: Timestamp,
    pub status: BacktestStatus,
    /// Payments read so far, of `total`.
    pub scanned: i64,
    pub total: i64,
    pub result: Option<BacktestResult>,
    pub error: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = fraud_backtests, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct BacktestRow {
    id: i64,
    company_id: i64,
    created_by: Option<i64>,
    name: String,
    condition: String,
    action: String,
    project_ids: Option<String>,
    period_from: NaiveDateTime,
    period_to: NaiveDateTime,
    status: String,
    scanned: i64,
    total: i64,
    result: Option<String>,
    error: Option<String>,
    created_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
}

/// Which payments a backtest evaluates: its projects (none: all the company's), and the
/// time zone its days are in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Scope {
    projects: Option<Vec<i64>>,
    project_id: Option<i64>,
    time_zone: String,
}

impl BacktestRow {
    fn scope(&self) -> Scope {
        self.project_ids.as_deref().and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default()
    }

    fn view(self) -> BacktestView {
        let scope = self.scope();
        BacktestView {
            id: self.id,
            name: self.name,
            condition: self.condition,
            action: Action::parse(&self.action).unwrap_or(Action::Decline),
            project_id: scope.project_id,
            period_from: Timestamp::from(&self.period_from),
            period_to: Timestamp::from(&self.period_to),
            status: BacktestStatus::parse(&self.status).unwrap_or(BacktestStatus::Failed),
            scanned: self.scanned,
            total: self.total,
            result: self.result.as_deref().and_then(|text| serde_json::from_str(text).ok()),
            error: self.error,
            created_by: self.created_by,
            created_at: Timestamp::from(&self.created_at),
            finished_at: self.finished_at.as_ref().map(Timestamp::from),
        }
    }
}

/// Starts a backtest of the principal's company; it runs in the background.
pub async fn start(
    state: &AppState,
    principal: &Principal,
    request: BacktestRequest,
) -> Result<BacktestView, AppError> {
    let condition = request.condition.trim().to_owned();
    language::parse(&condition).map_err(|mistake| AppError::BadRequest(mistake.to_string()))?;
    let (from, to) = dashboard_core::time::local_days(Some(&request.from), Some(&request.to), &principal.time_zone)?;
    let (Some(from), Some(to)) = (from, to) else {
        return Err(AppError::BadRequest("Give the period's first and last day.".to_owned()));
    };
    if to - from > chrono::TimeDelta::days(MOST_DAYS + 1) {
        return Err(AppError::BadRequest(format!("A backtest reads at most {MOST_DAYS} days.")));
    }
    if let Some(project_id) = request.project_id {
        dashboard_core::directory::visible_project(&state.db, principal, project_id)
            .await
            .map_err(|_| AppError::BadRequest(format!("There is no project {project_id} you may see.")))?;
    }
    let name = request
        .name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map_or_else(|| condition.chars().take(60).collect::<String>(), |name| name.chars().take(100).collect());
    let projects = match &principal.projects {
        dashboard_core::auth::ProjectScope::All => None,
        dashboard_core::auth::ProjectScope::Only(ids) => Some(ids.iter().copied().collect()),
    };
    let scope = Scope { projects, project_id: request.project_id, time_zone: principal.time_zone.clone() };
    let scope_text = serde_json::to_string(&scope).map_err(|e| AppError::Internal(e.to_string()))?;
    let (company_id, user_id, at) = (principal.company_id, principal.person(), now());
    let total = count(&state.db, company_id, &scope, from, to).await?;
    let row: BacktestRow = dashboard_core::db_write!(state.db, conn => {
        diesel::insert_into(fraud_backtests::table)
            .values((
                fraud_backtests::company_id.eq(company_id),
                fraud_backtests::created_by.eq(user_id),
                fraud_backtests::name.eq(&name),
                fraud_backtests::condition.eq(&condition),
                fraud_backtests::action.eq(request.action.as_str()),
                fraud_backtests::project_ids.eq(Some(&scope_text)),
                fraud_backtests::period_from.eq(from),
                fraud_backtests::period_to.eq(to),
                fraud_backtests::status.eq(BacktestStatus::Running.as_str()),
                fraud_backtests::scanned.eq(0),
                fraud_backtests::total.eq(total),
                fraud_backtests::created_at.eq(at),
                fraud_backtests::heartbeat_at.eq(at),
            ))
            .returning(BacktestRow::as_returning())
            .get_result(conn)
            .await
    })?;
    spawn(state.clone(), row.clone());
    Ok(row.view())
}

async fn count(
    db: &DbPool,
    company_id: i64,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<i64, AppError> {
    let scope = scope.clone();
    Ok(dashboard_core::db_run!(db, conn => {
        let mut query = payments::table
            .filter(payments::company_id.eq(company_id))
            .filter(payments::created_at.ge(from))
            .filter(payments::created_at.lt(to))
            .into_boxed();
        if let Some(projects) = &scope.projects {
            query = query.filter(payments::project_id.eq_any(projects.clone()));
        }
        if let Some(project_id) = scope.project_id {
            query = query.filter(payments::project_id.eq(project_id));
        }
        query.count().get_result::<i64>(conn).await
    })?)
}

fn spawn(state: AppState, row: BacktestRow) {
    tokio::spawn(async move {
        let id = row.id;
        let outcome = run(&state, &row).await;
        if let Err(error) = &outcome {
            tracing::warn!(backtest = id, %error, "a backtest failed");
        }
        if let Err(error) = store_outcome(&state.db, id, outcome).await {
            tracing::warn!(backtest = id, %error, "a backtest's result was not stored");
        }
    });
}

async fn store_outcome(db: &DbPool, id: i64, outcome: Result<BacktestResult, AppError>) -> Result<(), AppError> {
    let at = now();
    let (status, result, error) = match outcome {
        Ok(result) => (BacktestStatus::Done, serde_json::to_string(&result).ok(), None),
        Err(error) => (BacktestStatus::Failed, None, Some(error.to_string())),
    };
    dashboard_core::db_write!(db, conn => {
        diesel::update(fraud_backtests::table.find(id))
            .set((
                fraud_backtests::status.eq(status.as_str()),
                fraud_backtests::result.eq(result),
                fraud_backtests::error.eq(error),
                fraud_backtests::finished_at.eq(Some(at)),
                fraud_backtests::heartbeat_at.eq(at),
            ))
            .execute(conn)
            .await
    })?;
    Ok(())
}

/// The principal's company's backtests, newest first (at most `limit`).
pub async fn list(state: &AppState, principal: &Principal, limit: i64) -> Result<Vec<BacktestView>, AppError> {
    let company_id = principal.company_id;
    let rows: Vec<BacktestRow> = dashboard_core::db_run!(state.db, conn => {
        fraud_backtests::table
            .filter(fraud_backtests::company_id.eq(company_id))
            .order(fraud_backtests::id.desc())
            .limit(limit)
            .select(BacktestRow::as_select())
            .load(conn)
            .await
    })?;
    Ok(rows
        .into_iter()
        .map(BacktestRow::view)
        .filter(|view| view.project_id.is_none_or(|p| principal.projects.allows(p)))
        .collect())
}

/// One backtest of the principal's company.
pub async fn view(state: &AppState, principal: &Principal, id: i64) -> Result<BacktestView, AppError> {
    let company_id = principal.company_id;
    let row: Option<BacktestRow> = dashboard_core::db_run!(state.db, conn => {
        fraud_backtests::table
            .filter(fraud_backtests::id.eq(id))
            .filter(fraud_backtests::company_id.eq(company_id))
            .select(BacktestRow::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    row.map(BacktestRow::view)
        .filter(|view| view.project_id.is_none_or(|p| principal.projects.allows(p)))
        .ok_or(AppError::NotFound)
}

/// A payment as a backtest reads it.
#[derive(Queryable)]
struct Past {
    created_at: NaiveDateTime,
    project_id: i64,
    kind: String,
    method: String,
    amount: i64,
    currency: String,
    status: String,
    charged_back_amount: i64,
    card_fingerprint: Option<String>,
    card_first6: Option<String>,
    card_brand: Option<String>,
    customer_email: Option<String>,
    customer_country: Option<String>,
    customer_ip: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    ChargedBack,
    Declined,
    Other,
}

impl Past {
    fn outcome(&self) -> Outcome {
        if self.charged_back_amount > 0 || self.status == Status::ChargedBack.as_str() {
            Outcome::ChargedBack
        } else if self.status == Status::Declined.as_str() || self.status == Status::Failed.as_str() {
            Outcome::Declined
        } else {
            Outcome::Other
        }
    }

    fn subject(&self, subject: Subject) -> Option<&str> {
        match subject {
            Subject::Card => self.card_fingerprint.as_deref(),
            Subject::Email => self.customer_email.as_deref(),
            Subject::Ip => self.customer_ip.as_deref(),
        }
    }
}

/// The lists as they are now, in memory.
#[derive(Default)]
struct Lists {
    values: std::collections::HashSet<(List, ListKind, String)>,
    networks: Vec<(List, Network)>,
}

impl Lists {
    async fn read(db: &DbPool, company_id: i64) -> Result<Lists, AppError> {
        let at = now();
        let rows: Vec<(String, String, String)> = dashboard_core::db_run!(db, conn => {
            fraud_list_entries::table
                .filter(fraud_list_entries::company_id.eq(company_id))
                .filter(fraud_list_entries::expires_at.is_null().or(fraud_list_entries::expires_at.gt(at)))
                .select((fraud_list_entries::list, fraud_list_entries::kind, fraud_list_entries::value))
                .load(conn)
                .await
        })?;
        let mut lists = Lists::default();
        for (list, kind, value) in rows {
            let (Some(list), Some(kind)) = (List::parse(&list), ListKind::parse(&kind)) else { continue };
            if kind == ListKind::Ip {
                if let Some(network) = Network::parse(&value) {
                    lists.networks.push((list, network));
                }
            } else {
                lists.values.insert((list, kind, value));
            }
        }
        Ok(lists)
    }
}

/// A currency's code as three bytes: copied, never allocated.
type Code = [u8; 3];

fn code(currency: &str) -> Code {
    let bytes = currency.as_bytes();
    [bytes.first().copied().unwrap_or(0), bytes.get(1).copied().unwrap_or(0), bytes.get(2).copied().unwrap_or(0)]
}

/// A subject's payments within one window, oldest first, with their sums per currency.
#[derive(Default)]
struct Recent {
    payments: VecDeque<(NaiveDateTime, i64, Code)>,
    sums: Vec<(Code, i64)>,
}

impl Recent {
    fn forget_before(&mut self, start: NaiveDateTime) {
        while let Some(&(at, amount, currency)) = self.payments.front() {
            if at > start {
                break;
            }
            if let Some((_, sum)) = self.sums.iter_mut().find(|(code, _)| *code == currency) {
                *sum -= amount;
            }
            self.payments.pop_front();
        }
    }

    fn sum(&self, currency: Code) -> i64 {
        self.sums.iter().find(|(code, _)| *code == currency).map_or(0, |(_, sum)| *sum)
    }

    fn add(&mut self, at: NaiveDateTime, amount: i64, currency: Code) {
        match self.sums.iter_mut().find(|(code, _)| *code == currency) {
            Some((_, sum)) => *sum += amount,
            None => self.sums.push((currency, amount)),
        }
        self.payments.push_back((at, amount, currency));
    }
}

/// The velocities the rule reads, kept while the payments pass in time order.
struct Velocities {
    /// Per (subject, window) read: each subject value's recent payments.
    windows: Vec<((Subject, Window), HashMap<String, Recent>)>,
}

/// What one payment's velocities were, and which lists it was on.
struct PastLookups<'a> {
    counted: Vec<((Subject, Window), i64, i64)>,
    lists: &'a Lists,
    past: &'a Past,
}

impl Lookups for PastLookups<'_> {
    fn velocity(&self, velocity: Velocity) -> i64 {
        self.counted
            .iter()
            .find(|(key, _, _)| *key == (velocity.subject, velocity.window))
            .map_or(0, |(_, count, sum)| if velocity.measure == Measure::Sum { *sum } else { *count })
    }

    fn listed(&self, kind: ListKind, list: List) -> bool {
        let value = match kind {
            ListKind::Ip => {
                let Some(address) = self.past.customer_ip.as_deref().and_then(address_key) else { return false };
                return self.lists.networks.iter().any(|(l, network)| *l == list && network.contains(address));
            }
            ListKind::Card => &self.past.card_fingerprint,
            ListKind::Email => &self.past.customer_email,
            ListKind::Country => &self.past.customer_country,
            ListKind::Bin => &self.past.card_first6,
        };
        value.as_ref().is_some_and(|value| self.lists.values.contains(&(list, kind, value.clone())))
    }
}

impl Velocities {
    fn new(condition: &Condition) -> Velocities {
        let mut keys: Vec<(Subject, Window)> =
            condition.needs().velocities.iter().map(|v| (v.subject, v.window)).collect();
        keys.sort_unstable();
        keys.dedup();
        Velocities { windows: keys.into_iter().map(|key| (key, HashMap::new())).collect() }
    }

    fn widest(&self) -> Option<chrono::TimeDelta> {
        self.windows.iter().map(|((_, window), _)| window.duration()).max()
    }

    /// The payment's velocities before it; then counts it for those after.
    fn pass(&mut self, past: &Past) -> Vec<((Subject, Window), i64, i64)> {
        let mut counted = Vec::with_capacity(self.windows.len());
        let currency = code(&past.currency);
        for ((subject, window), recent) in &mut self.windows {
            let Some(value) = past.subject(*subject) else {
                counted.push(((*subject, *window), 0, 0));
                continue;
            };
            if !recent.contains_key(value) {
                recent.insert(value.to_owned(), Recent::default());
            }
            let Some(of_subject) = recent.get_mut(value) else { continue };
            of_subject.forget_before(past.created_at - window.duration());
            counted.push(((*subject, *window), of_subject.payments.len() as i64, of_subject.sum(currency)));
            of_subject.add(past.created_at, past.amount, currency);
        }
        counted
    }
}

/// Per day and in total, as the payments pass.
#[derive(Default)]
struct Tally {
    result: BacktestResult,
    days: BTreeMap<chrono::NaiveDate, (BacktestDay, BTreeMap<String, i64>)>,
    amounts: BTreeMap<String, i64>,
}

impl Tally {
    fn add(&mut self, day: chrono::NaiveDate, past: &Past, matched: bool) {
        let outcome = past.outcome();
        self.result.payments += 1;
        let (entry, amounts) = self.days.entry(day).or_default();
        entry.payments += 1;
        if matched {
            self.result.matched += 1;
            self.result.matched_outcomes.add(outcome);
            entry.matched += 1;
            match outcome {
                Outcome::ChargedBack => entry.matched_charged_back += 1,
                Outcome::Declined => entry.matched_declined += 1,
                Outcome::Other => {}
            }
            *amounts.entry(past.currency.clone()).or_insert(0) += past.amount;
            *self.amounts.entry(past.currency.clone()).or_insert(0) += past.amount;
        } else {
            self.result.unmatched_outcomes.add(outcome);
        }
    }

    fn finish(mut self, seconds: f64) -> BacktestResult {
        let money = |amounts: BTreeMap<String, i64>| {
            amounts.into_iter().map(|(currency, amount)| Money { amount, currency }).collect::<Vec<_>>()
        };
        self.result.days = self
            .days
            .into_iter()
            .map(|(day, (mut entry, amounts))| {
                entry.day = day.to_string();
                entry.matched_amounts = money(amounts);
                entry
            })
            .collect();
        self.result.matched_amounts = money(self.amounts);
        self.result.seconds = seconds;
        self.result
    }
}

/// Reads the period's payments (and the day before it, for the velocities) and tallies
/// what the rule would have matched, storing the progress after each batch. The payments
/// are read by a task of their own while those before are tallied.
async fn run(state: &AppState, row: &BacktestRow) -> Result<BacktestResult, AppError> {
    let started = std::time::Instant::now();
    let condition = language::parse(&row.condition).map_err(|mistake| AppError::BadRequest(mistake.to_string()))?;
    let scope = row.scope();
    let zone = scope.time_zone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::Tz::UTC);
    let lists = Lists::read(&state.db, row.company_id).await?;
    let geo = Geo::of_state(state)?;
    let mut velocities = Velocities::new(&condition);
    // Velocities count the payments before the period's first too.
    let read_from = velocities.widest().map_or(row.period_from, |widest| row.period_from - widest);
    let evaluated = |past: &Past| {
        past.created_at >= row.period_from
            && scope.projects.as_ref().is_none_or(|projects| projects.contains(&past.project_id))
            && scope.project_id.is_none_or(|project| project == past.project_id)
    };
    let (pages, mut arriving) = tokio::sync::mpsc::channel(4);
    let reader = tokio::spawn(read_pages(state.db.clone(), row.company_id, (read_from, row.period_to), pages));
    let mut tally = Tally::default();
    let mut days = LocalDays::new(zone);
    while let Some(page) = arriving.recv().await {
        for past in &page? {
            let counted = velocities.pass(past);
            if !evaluated(past) {
                continue;
            }
            let facts = Facts {
                amount: past.amount,
                currency: past.currency.clone(),
                project_id: past.project_id,
                method: past.method.clone(),
                card_brand: past.card_brand.clone(),
                card_bin: past.card_first6.clone(),
                card_country: past.card_first6.as_deref().and_then(|bin| geo.card_country(bin)),
                customer_country: past.customer_country.clone(),
                ip_country: past.customer_ip.as_deref().and_then(|ip| geo.ip_country(ip)),
                email_domain: past
                    .customer_email
                    .as_deref()
                    .and_then(|e| e.rsplit_once('@'))
                    .map(|(_, d)| d.to_owned()),
                kind: past.kind.clone(),
            };
            let matched = condition.matches(&facts, &PastLookups { counted, lists: &lists, past });
            tally.add(days.of(past.created_at), past, matched);
        }
        progress(&state.db, row.id, tally.result.payments).await?;
    }
    reader.await.map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(tally.finish(started.elapsed().as_secs_f64()))
}

/// Payments sent at a time.
const BATCH: usize = 10_000;

/// The query of the company's payments of `[from, to)` in time order.
macro_rules! past_payments {
    ($company_id:expr, $from:expr, $to:expr) => {
        payments::table
            .filter(payments::company_id.eq($company_id))
            .filter(payments::created_at.ge($from))
            .filter(payments::created_at.lt($to))
            .order((payments::created_at, payments::id))
            .select((
                payments::created_at,
                payments::project_id,
                payments::kind,
                payments::method,
                payments::amount,
                payments::currency,
                payments::status,
                payments::charged_back_amount,
                payments::card_fingerprint,
                payments::card_first6,
                payments::card_brand,
                payments::customer_email,
                payments::customer_country,
                payments::customer_ip,
            ))
    };
}

/// Sends the company's payments of `[from, to)` in time order, in batches, until the last
/// or until the receiver stops listening: one query read in one pass (on SQLite on a
/// blocking thread, on PostgreSQL as its rows arrive), several times faster than page by
/// page.
async fn read_pages(
    db: DbPool,
    company_id: i64,
    (from, to): (NaiveDateTime, NaiveDateTime),
    pages: tokio::sync::mpsc::Sender<Result<Vec<Past>, AppError>>,
) {
    let failed = pages.clone();
    let read = async move {
        match db.get().await? {
            DbConn::Postgres(mut conn) => {
                use futures_util::TryStreamExt;
                let mut found = past_payments!(company_id, from, to).load_stream::<Past>(&mut *conn).await?;
                let mut batch = Vec::with_capacity(BATCH);
                while let Some(past) = found.try_next().await? {
                    batch.push(past);
                    if batch.len() == BATCH && pages.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                        return Ok(());
                    }
                }
                let _ = pages.send(Ok(batch)).await;
                Ok::<_, AppError>(())
            }
            DbConn::Sqlite(mut conn) => {
                let read = conn.spawn_blocking(move |conn| {
                    let query = past_payments!(company_id, from, to);
                    let mut batch = Vec::with_capacity(BATCH);
                    for past in diesel::RunQueryDsl::load_iter::<Past, DefaultLoadingMode>(query, conn)? {
                        batch.push(past?);
                        if batch.len() == BATCH && pages.blocking_send(Ok(std::mem::take(&mut batch))).is_err() {
                            return Ok(());
                        }
                    }
                    let _ = pages.blocking_send(Ok(batch));
                    Ok(())
                });
                Ok(read.await?)
            }
        }
    };
    if let Err(error) = read.await {
        let _ = failed.send(Err(error)).await;
    }
}

/// The day an instant falls on in a time zone, worked out once a quarter of an hour of
/// the payments (they come in time order; every zone's offset is whole quarters).
struct LocalDays {
    zone: chrono_tz::Tz,
    quarter: i64,
    day: chrono::NaiveDate,
}

impl LocalDays {
    fn new(zone: chrono_tz::Tz) -> LocalDays {
        LocalDays { zone, quarter: i64::MIN, day: chrono::NaiveDate::MIN }
    }

    fn of(&mut self, at: NaiveDateTime) -> chrono::NaiveDate {
        let quarter = at.and_utc().timestamp().div_euclid(900);
        if quarter != self.quarter {
            self.quarter = quarter;
            self.day = at.and_utc().with_timezone(&self.zone).date_naive();
        }
        self.day
    }
}

async fn progress(db: &DbPool, id: i64, scanned: i64) -> Result<(), AppError> {
    let at = now();
    dashboard_core::db_write!(db, conn => {
        diesel::update(fraud_backtests::table.find(id))
            .set((fraud_backtests::scanned.eq(scanned), fraud_backtests::heartbeat_at.eq(at)))
            .execute(conn)
            .await
    })?;
    Ok(())
}

/// How long a running backtest may go without progress before another server takes it
/// over: its server stopped.
const ABANDONED_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// Starts again the backtests whose server stopped while they ran.
pub async fn resume_abandoned(state: &AppState) -> Result<usize, AppError> {
    let at = now();
    let rows: Vec<BacktestRow> = dashboard_core::db_write!(state.db, conn => {
        // Taking one over renews its heartbeat, so that only one server takes it.
        diesel::update(
            fraud_backtests::table
                .filter(fraud_backtests::status.eq(BacktestStatus::Running.as_str()))
                .filter(fraud_backtests::heartbeat_at.lt(at - ABANDONED_AFTER)),
        )
        .set(fraud_backtests::heartbeat_at.eq(at))
        .returning(BacktestRow::as_returning())
        .get_results(conn)
        .await
    })?;
    let resumed = rows.len();
    for row in rows {
        spawn(state.clone(), row);
    }
    Ok(resumed)
}

dashboard_core::register!(dashboard_core::hooks::Job {
    name: "fraud backtests",
    every: std::time::Duration::from_secs(60),
    run: |state| {
        Box::pin(async move {
            resume_abandoned(&state).await?;
            Ok(())
        })
    },
});
