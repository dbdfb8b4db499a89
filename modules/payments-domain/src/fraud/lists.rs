//! A company's block and allow lists: card fingerprints (a card number given is turned
//! into its fingerprint and forgotten), e-mails, addresses and networks, countries and
//! BINs, each with a reason, its author and an optional expiry. Rules read them
//! (`card in blocklist`); every change is audited in the same write.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::geo::{Network, address_key};
use super::language::{List, ListKind};
use crate::schema::{fraud_list_entries, payments};
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::db::prelude::*;
use dashboard_core::time::{Timestamp, now};
use dashboard_core::{AppError, AppState};

/// The most rows an imported file may hold.
pub const MOST_IMPORTED: usize = 10_000;

/// An entry to add, as the API and the form take it: a value, or a payment to take the
/// value of `kind` from (its card, e-mail, address, country or BIN).
#[derive(Debug, Clone, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EntryRequest {
    pub list: List,
    pub kind: ListKind,
    /// A card number (only its fingerprint is kept) or fingerprint, an e-mail, an address
    /// or CIDR network, an ISO country code, or a BIN (6 digits).
    #[oai(validator(max_length = 200))]
    pub value: Option<String>,
    /// A payment (`pay_…`) whose card, e-mail, address, country or BIN to list.
    #[oai(validator(max_length = 64))]
    pub payment_id: Option<String>,
    #[oai(validator(max_length = 500))]
    pub reason: Option<String>,
    /// After this instant the entry no longer counts.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An entry of a list.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EntryView {
    pub id: i64,
    pub list: List,
    pub kind: ListKind,
    /// As the lists keep it: a card's fingerprint, an e-mail in lower case, an address or
    /// network in CIDR form, a country code, a BIN.
    pub value: String,
    pub reason: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    /// Whether it counts now (not expired).
    pub active: bool,
}

/// The lists' filters, as typed.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct EntryFilter {
    #[serde(default)]
    pub list: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    /// A value, or a part of it or of the reason.
    #[serde(default)]
    pub q: Option<String>,
    /// The opaque cursor of the next page.
    #[serde(default)]
    pub after: Option<String>,
}

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = fraud_list_entries, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct EntryRow {
    id: i64,
    list: String,
    kind: String,
    value: String,
    reason: Option<String>,
    created_by: Option<i64>,
    created_at: NaiveDateTime,
    expires_at: Option<NaiveDateTime>,
}

impl EntryRow {
    fn view(self, at: NaiveDateTime) -> EntryView {
        EntryView {
            id: self.id,
            list: List::parse(&self.list).unwrap_or(List::Block),
            kind: ListKind::parse(&self.kind).unwrap_or(ListKind::Email),
            value: self.value,
            reason: self.reason,
            created_by: self.created_by,
            created_at: Timestamp::from(&self.created_at),
            expires_at: self.expires_at.as_ref().map(Timestamp::from),
            active: self.expires_at.is_none_or(|expires| expires > at),
        }
    }
}

/// A value as a list keeps it, and an address entry's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub value: String,
    pub range: Option<(String, String)>,
}

/// A typed value as `kind`'s list keeps it, or why it cannot be one.
pub fn normalize(state: &AppState, kind: ListKind, value: &str) -> Result<Listed, AppError> {
    let value = value.trim();
    let bad = |message: &str| AppError::BadRequest(message.to_owned());
    let plain = |value: String| Ok(Listed { value, range: None });
    match kind {
        ListKind::Card => {
            let digits: String = value.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
            if digits.bytes().all(|b| b.is_ascii_digit()) && (12..=19).contains(&digits.len()) {
                if !crate::card::luhn_valid(&digits) {
                    return Err(bad("This card number is not valid (its check digit is wrong)."));
                }
                return plain(state.secrets.fingerprint(digits.as_bytes()));
            }
            if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
                return plain(value.to_ascii_lowercase());
            }
            Err(bad("Give a card number (only its fingerprint is kept) or a card fingerprint (64 hex digits)."))
        }
        ListKind::Email => {
            let email = value.to_lowercase();
            let valid = email.len() <= 254
                && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
                && !email.chars().any(char::is_whitespace);
            if valid { plain(email) } else { Err(bad("Give an e-mail address, such as name@example.com.")) }
        }
        ListKind::Ip => {
            let network = Network::parse(value)
                .ok_or_else(|| bad("Give an IP address or a network in CIDR form, such as 203.0.113.0/24."))?;
            Ok(Listed {
                value: network.shown(),
                range: Some((Network::key(network.first), Network::key(network.last))),
            })
        }
        ListKind::Country => {
            let code = value.to_ascii_uppercase();
            if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
                plain(code)
            } else {
                Err(bad("Give a country as its two-letter ISO code, such as DE."))
            }
        }
        ListKind::Bin => {
            if value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit()) {
                plain(value.to_owned())
            } else {
                Err(bad("Give a BIN: the card's first 6 digits."))
            }
        }
    }
}

/// The value of `kind` a payment the principal may see has.
async fn value_of_payment(
    state: &AppState,
    principal: &Principal,
    kind: ListKind,
    public_id: &str,
) -> Result<Listed, AppError> {
    let (company_id, public_id) = (principal.company_id, public_id.trim().to_owned());
    #[allow(clippy::type_complexity)]
    let found: Option<(i64, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>)> = dashboard_core::db_run!(state.db, conn => {
        payments::table
            .filter(payments::public_id.eq(&public_id))
            .filter(payments::company_id.eq(company_id))
            .select((
                payments::project_id,
                payments::card_fingerprint,
                payments::customer_email,
                payments::customer_ip,
                payments::customer_country,
                payments::card_first6,
            ))
            .first(conn)
            .await
            .optional()
    })?;
    let Some((project_id, card, email, ip, country, bin)) = found else { return Err(AppError::NotFound) };
    if !principal.projects.allows(project_id) {
        return Err(AppError::NotFound);
    }
    let value = match kind {
        ListKind::Card => card,
        ListKind::Email => email,
        ListKind::Ip => ip,
        ListKind::Country => country,
        ListKind::Bin => bin,
    }
    .ok_or_else(|| AppError::BadRequest(format!("Payment {public_id} has no {}.", kind.label().to_lowercase())))?;
    normalize(state, kind, &value)
}

fn reason_of(reason: Option<&str>) -> Result<Option<String>, AppError> {
    let reason = reason.map(str::trim).filter(|reason| !reason.is_empty()).map(str::to_owned);
    if reason.as_ref().is_some_and(|reason| reason.chars().count() > 500) {
        return Err(AppError::BadRequest("A reason has at most 500 characters.".to_owned()));
    }
    if reason.as_deref().is_some_and(crate::card::holds_card_number) {
        return Err(AppError::BadRequest("The reason holds what looks like a card number.".to_owned()));
    }
    Ok(reason)
}

/// An entry ready to store.
struct NewEntry {
    list: List,
    kind: ListKind,
    listed: Listed,
    reason: Option<String>,
    expires_at: Option<NaiveDateTime>,
}

async fn checked(state: &AppState, principal: &Principal, request: &EntryRequest) -> Result<NewEntry, AppError> {
    let listed = match (request.value.as_deref().filter(|v| !v.trim().is_empty()), &request.payment_id) {
        (Some(value), None) => normalize(state, request.kind, value)?,
        (None, Some(payment)) => value_of_payment(state, principal, request.kind, payment).await?,
        _ => return Err(AppError::BadRequest("Give either a value or a payment to take it from.".to_owned())),
    };
    let expires_at = request.expires_at.map(|at| at.naive_utc());
    if expires_at.is_some_and(|expires| expires <= now()) {
        return Err(AppError::BadRequest("The expiry must be in the future.".to_owned()));
    }
    Ok(NewEntry {
        list: request.list,
        kind: request.kind,
        listed,
        reason: reason_of(request.reason.as_deref())?,
        expires_at,
    })
}

fn entry_event(principal: &Principal, action: &'static str, entry: &NewEntry) -> AuditEvent {
    AuditEvent::success(principal, action).details(serde_json::json!({
        "list": entry.list.as_str(), "kind": entry.kind.as_str(), "value": entry.listed.value, "reason": entry.reason,
    }))
}

/// Adds an entry; a value already on that list is refused. Audited in the same write.
pub async fn add(state: &AppState, principal: &Principal, request: &EntryRequest) -> Result<EntryView, AppError> {
    let entry = checked(state, principal, request).await?;
    let (company_id, user_id, at) = (principal.company_id, principal.person(), now());
    let row: Option<EntryRow> = dashboard_core::db_transaction!(state.db, conn => {
        let row: Option<EntryRow> = diesel::insert_into(fraud_list_entries::table)
            .values(insertable(company_id, user_id, at, &entry))
            .on_conflict_do_nothing()
            .returning(EntryRow::as_returning())
            .get_result(conn)
            .await
            .optional()?;
        if let Some(row) = &row {
            let event = entry_event(principal, "fraud_list.add", &entry).target(format!("list entry {}", row.id));
            dashboard_core::record_audit!(conn, event)?;
        }
        Ok::<_, AppError>(row)
    })?;
    let row = row.ok_or_else(|| {
        AppError::Conflict(format!("{} is already on the {}.", entry.listed.value, entry.list.label().to_lowercase()))
    })?;
    Ok(row.view(at))
}

#[allow(clippy::type_complexity)]
fn insertable(
    company_id: i64,
    user_id: Option<i64>,
    at: NaiveDateTime,
    entry: &NewEntry,
) -> (
    diesel::dsl::Eq<fraud_list_entries::company_id, i64>,
    diesel::dsl::Eq<fraud_list_entries::list, &'static str>,
    diesel::dsl::Eq<fraud_list_entries::kind, &'static str>,
    diesel::dsl::Eq<fraud_list_entries::value, String>,
    diesel::dsl::Eq<fraud_list_entries::range_start, Option<String>>,
    diesel::dsl::Eq<fraud_list_entries::range_end, Option<String>>,
    diesel::dsl::Eq<fraud_list_entries::reason, Option<String>>,
    diesel::dsl::Eq<fraud_list_entries::created_by, Option<i64>>,
    diesel::dsl::Eq<fraud_list_entries::created_at, NaiveDateTime>,
    diesel::dsl::Eq<fraud_list_entries::expires_at, Option<NaiveDateTime>>,
) {
    let (start, end) = entry.listed.range.clone().unzip();
    (
        fraud_list_entries::company_id.eq(company_id),
        fraud_list_entries::list.eq(entry.list.as_str()),
        fraud_list_entries::kind.eq(entry.kind.as_str()),
        fraud_list_entries::value.eq(entry.listed.value.clone()),
        fraud_list_entries::range_start.eq(start),
        fraud_list_entries::range_end.eq(end),
        fraud_list_entries::reason.eq(entry.reason.clone()),
        fraud_list_entries::created_by.eq(user_id),
        fraud_list_entries::created_at.eq(at),
        fraud_list_entries::expires_at.eq(entry.expires_at),
    )
}

/// Removes an entry of the principal's company; audited in the same write.
pub async fn remove(state: &AppState, principal: &Principal, id: i64) -> Result<(), AppError> {
    let company_id = principal.company_id;
    let removed: Option<EntryRow> = dashboard_core::db_transaction!(state.db, conn => {
        let row: Option<EntryRow> = diesel::delete(
            fraud_list_entries::table
                .filter(fraud_list_entries::id.eq(id))
                .filter(fraud_list_entries::company_id.eq(company_id)),
        )
        .returning(EntryRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
        if let Some(row) = &row {
            let event = AuditEvent::success(principal, "fraud_list.remove")
                .target(format!("list entry {id}"))
                .details(serde_json::json!({ "list": row.list, "kind": row.kind, "value": row.value }));
            dashboard_core::record_audit!(conn, event)?;
        }
        Ok::<_, AppError>(row)
    })?;
    removed.map(|_| ()).ok_or(AppError::NotFound)
}

/// One page of the company's entries that match `filter`, newest first, and the cursor
/// of the next page.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    filter: &EntryFilter,
    limit: i64,
) -> Result<(Vec<EntryView>, Option<String>), AppError> {
    let given = |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let list = given(&filter.list)
        .map(|v| List::parse(&v).ok_or_else(|| AppError::BadRequest(format!("{v:?} is not a list: block or allow."))))
        .transpose()?;
    let kind = given(&filter.kind)
        .map(|v| {
            ListKind::parse(&v)
                .ok_or_else(|| AppError::BadRequest(format!("{v:?} is not a kind: card, email, ip, country or bin.")))
        })
        .transpose()?;
    let before = given(&filter.after).map(|token| dashboard_core::cursor::decode::<1>(&token)).transpose()?;
    let (company_id, at, q) = (principal.company_id, now(), given(&filter.q));
    let rows: Vec<EntryRow> = dashboard_core::db_run!(state.db, conn => {
        let mut query = fraud_list_entries::table
            .filter(fraud_list_entries::company_id.eq(company_id))
            .select(EntryRow::as_select())
            .order(fraud_list_entries::id.desc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(list) = list {
            query = query.filter(fraud_list_entries::list.eq(list.as_str()));
        }
        if let Some(kind) = kind {
            query = query.filter(fraud_list_entries::kind.eq(kind.as_str()));
        }
        if let Some([before]) = before {
            query = query.filter(fraud_list_entries::id.lt(before));
        }
        if let Some(q) = &q {
            let pattern = format!("%{}%", q.replace(['%', '_', '\\'], "").to_lowercase());
            query = query.filter(
                lower(fraud_list_entries::value)
                    .like(pattern.clone())
                    .or(lower(fraud_list_entries::reason.assume_not_null()).like(pattern)),
            );
        }
        query.load(conn).await
    })?;
    let page_size = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > page_size;
    let rows: Vec<EntryRow> = rows.into_iter().take(page_size).collect();
    let next = if more { rows.last().map(|row| dashboard_core::cursor::encode(&[row.id])) } else { None };
    Ok((rows.into_iter().map(|row| row.view(at)).collect(), next))
}

/// The columns of an imported or exported list file.
pub const FILE_COLUMNS: &[&str] = &["list", "kind", "value", "reason", "expires_at"];

/// What an import did.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
pub struct ImportResult {
    /// Entries added.
    pub added: usize,
    /// Rows whose value was on its list already (left as they were).
    pub already_listed: usize,
}

/// Adds the entries of a CSV file (`list,kind,value,reason,expires_at`, a header row
/// first): every row is checked before any is added, and a file with a mistake adds
/// nothing (the mistakes are told with their rows). One audit event for the file.
pub async fn import(state: &AppState, principal: &Principal, file: &[u8]) -> Result<ImportResult, AppError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(file);
    let headers = reader.headers().map_err(|e| AppError::BadRequest(format!("The file is not CSV: {e}")))?.clone();
    let column = |name: &str| headers.iter().position(|header| header.eq_ignore_ascii_case(name));
    let (Some(list_at), Some(kind_at), Some(value_at)) = (column("list"), column("kind"), column("value")) else {
        return Err(AppError::BadRequest(
            "The first row names the columns: list, kind, value, and optionally reason and expires_at.".to_owned(),
        ));
    };
    let (reason_at, expires_at) = (column("reason"), column("expires_at"));
    let mut entries = Vec::new();
    let mut mistakes = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let row = index + 2;
        if entries.len() + mistakes.len() >= MOST_IMPORTED {
            return Err(AppError::BadRequest(format!("A file holds at most {MOST_IMPORTED} rows.")));
        }
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                mistakes.push(format!("Row {row}: {e}"));
                continue;
            }
        };
        let cell = |at: Option<usize>| at.and_then(|at| record.get(at)).unwrap_or("").to_owned();
        let request = (|| {
            let list = List::parse(&cell(Some(list_at)).to_lowercase())
                .ok_or_else(|| AppError::BadRequest("list is block or allow".to_owned()))?;
            let kind = ListKind::parse(&cell(Some(kind_at)).to_lowercase())
                .ok_or_else(|| AppError::BadRequest("kind is card, email, ip, country or bin".to_owned()))?;
            let expires = cell(expires_at);
            let expires_at = if expires.is_empty() {
                None
            } else {
                Some(
                    DateTime::parse_from_rfc3339(&expires)
                        .map_err(|_| {
                            AppError::BadRequest("expires_at is a time such as 2027-01-31T00:00:00Z".to_owned())
                        })?
                        .with_timezone(&Utc),
                )
            };
            Ok::<_, AppError>(EntryRequest {
                list,
                kind,
                value: Some(cell(Some(value_at))),
                payment_id: None,
                reason: Some(cell(reason_at)),
                expires_at,
            })
        })();
        let entry = match request {
            Ok(request) => checked(state, principal, &request).await,
            Err(error) => Err(error),
        };
        match entry {
            Ok(entry) => entries.push(entry),
            Err(error) => mistakes.push(format!("Row {row}: {}", error.to_string().trim_end_matches('.'))),
        }
    }
    if !mistakes.is_empty() {
        let shown: Vec<&str> = mistakes.iter().take(20).map(String::as_str).collect();
        let more = if mistakes.len() > 20 { format!(" (and {} more)", mistakes.len() - 20) } else { String::new() };
        return Err(AppError::BadRequest(format!("Nothing was added. {}{more}.", shown.join("; "))));
    }
    if entries.is_empty() {
        return Err(AppError::BadRequest("The file has no rows below its header.".to_owned()));
    }
    let (company_id, user_id, at, rows) = (principal.company_id, principal.person(), now(), entries.len());
    let added: usize = dashboard_core::db_transaction!(state.db, conn => {
        let mut added = 0;
        for entry in &entries {
            added += diesel::insert_into(fraud_list_entries::table)
                .values(insertable(company_id, user_id, at, entry))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        let event = AuditEvent::success(principal, "fraud_list.import")
            .details(serde_json::json!({ "rows": rows, "added": added }));
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, AppError>(added)
    })?;
    Ok(ImportResult { added, already_listed: rows - added })
}

/// An entry as a row of the list file.
pub fn file_row(entry: &EntryView) -> Vec<String> {
    vec![
        entry.list.as_str().to_owned(),
        entry.kind.as_str().to_owned(),
        dashboard_core::export::safe_text(entry.value.clone()),
        dashboard_core::export::safe_text(entry.reason.clone().unwrap_or_default()),
        entry.expires_at.as_ref().map_or(String::new(), |at| at.0.clone()),
    ]
}

/// What a payment is, as the lists look it up.
#[derive(Debug, Clone, Default)]
pub struct Subjects {
    pub card: Option<String>,
    pub email: Option<String>,
    pub ip: Option<String>,
    pub country: Option<String>,
    pub bin: Option<String>,
}

impl Subjects {
    /// The address as the lists' range columns compare it.
    pub fn ip_key(&self) -> Option<String> {
        self.ip.as_deref().and_then(address_key).map(Network::key)
    }
}

/// The entries of company `$company_id`'s lists that hold a payment with [`Subjects`]
/// `$subjects` at `$now`: a query to select from (a statement of the screening's). An
/// absent subject is looked up as NULL, which no entry equals.
#[macro_export]
macro_rules! entries_listing {
    ($company_id:expr, $subjects:expr, $now:expr) => {{
        use $crate::schema::fraud_list_entries as __entries;
        let (__company, __subjects, __now): (i64, &$crate::fraud::lists::Subjects, chrono::NaiveDateTime) =
            ($company_id, $subjects, $now);
        let __value = |kind: &'static str, value: Option<String>| {
            __entries::kind.eq(kind).and(__entries::value.nullable().eq(value))
        };
        let __ip = __subjects.ip_key();
        __entries::table
            .filter(__entries::company_id.eq(__company))
            .filter(__entries::expires_at.is_null().or(__entries::expires_at.gt(__now)))
            .filter(
                __value("card", __subjects.card.clone())
                    .or(__value("email", __subjects.email.as_ref().map(|email| email.to_lowercase())))
                    .or(__value("country", __subjects.country.clone()))
                    .or(__value("bin", __subjects.bin.clone()))
                    .or(__entries::kind
                        .eq("ip")
                        .and(__entries::range_start.le(__ip.clone()))
                        .and(__entries::range_end.ge(__ip))),
            )
    }};
}

/// The demo company's lists, unless it has some.
pub async fn add_demo(db: &dashboard_core::db::DbPool, company_id: i64) -> Result<usize, AppError> {
    let kept: i64 = dashboard_core::db_run!(db, conn => {
        fraud_list_entries::table.filter(fraud_list_entries::company_id.eq(company_id)).count().get_result(conn).await
    })?;
    if kept > 0 {
        return Ok(0);
    }
    let bots = Network::parse("203.0.113.224/27").map(|n| (Network::key(n.first), Network::key(n.last)));
    let plain = |value: &str| Listed { value: value.to_owned(), range: None };
    let entries = [
        (List::Block, ListKind::Ip, Listed { value: "203.0.113.224/27".to_owned(), range: bots }, "Card-testing bots"),
        (List::Block, ListKind::Email, plain("refunds-please@mailinator.com"), "Chargebacks on three orders"),
        (List::Block, ListKind::Country, plain("KP"), "Sanctions"),
        (List::Allow, ListKind::Email, plain("purchasing@northwind.example"), "Key account"),
    ];
    let at = now();
    let entries: Vec<NewEntry> = entries
        .into_iter()
        .map(|(list, kind, listed, reason)| NewEntry {
            list,
            kind,
            listed,
            reason: Some(reason.to_owned()),
            expires_at: None,
        })
        .collect();
    dashboard_core::db_transaction!(db, conn => {
        for entry in &entries {
            diesel::insert_into(fraud_list_entries::table)
                .values(insertable(company_id, None, at, entry))
                .execute(conn)
                .await?;
        }
        Ok::<_, AppError>(())
    })?;
    Ok(entries.len())
}
