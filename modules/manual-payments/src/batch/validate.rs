//! Reading and checking a batch file before anything runs: every row is checked against
//! the payments, balances and limits as they are now and against the rows before it (two
//! refunds of one payment may not take more than is left; payouts may not take more than
//! the project holds), and every problem is said with its row and column.

use std::collections::HashMap;

use dashboard_core::auth::Principal;
use dashboard_core::money::parse_amount;
use dashboard_core::{AppError, AppState};
use dashboard_payments_domain::card::Card;
use dashboard_payments_domain::model::Status;
use dashboard_payments_domain::payouts::{self, Funds};
use dashboard_payments_domain::service::{self, PaymentAction, PaymentFacts};

use super::{Kind, MAX_FILE_BYTES, MAX_ROWS};

/// The columns a file may have (in any order; only those a row's kind needs must be
/// filled).
pub const COLUMNS: &[&str] = &[
    "type",
    "payment",
    "project_id",
    "amount",
    "currency",
    "card_number",
    "expiry_month",
    "expiry_year",
    "holder",
    "merchant_order_id",
    "reason",
];

/// One row as checked: what it will do, or what is wrong with it.
#[derive(Debug, Clone)]
pub struct CheckedRow {
    pub number: i32,
    pub kind: Option<Kind>,
    /// The cells as typed, a card number masked.
    pub cells: Vec<String>,
    pub errors: Vec<String>,
    pub payment_id: Option<String>,
    pub project_id: Option<i64>,
    /// Minor units, resolved (an empty amount is all that is left when checked).
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub card: Option<Card>,
    pub merchant_order_id: Option<String>,
    /// A refund's reason, checked as the service checks one.
    pub reason: Option<String>,
}

/// A file read for checking: its header, how many rows it has, and its rows, read a
/// chunk at a time (a file of 100,000 rows is never held as rows all at once).
pub struct Sheet<'b> {
    pub header: Vec<String>,
    pub rows: usize,
    source: Source<'b>,
    /// Rows handed out so far.
    read: usize,
}

enum Source<'b> {
    Csv(csv::Reader<&'b [u8]>),
    /// An XLSX workbook's first sheet (calamine reads a sheet whole), from its second line.
    Xlsx {
        sheet: calamine::Range<calamine::Data>,
        next: usize,
    },
}

impl<'b> Sheet<'b> {
    /// Reads `bytes` (CSV, or an XLSX workbook's first sheet) with a header row; `kind` is
    /// the kind of every row when the file has no `type` column. A file that cannot be
    /// read at all, or has no rows or too many, is refused as a whole, before anything is
    /// stored.
    pub fn read(bytes: &'b [u8], kind: Option<Kind>) -> Result<Sheet<'b>, AppError> {
        if bytes.len() > MAX_FILE_BYTES {
            return Err(AppError::BadRequest(format!(
                "The file is larger than {} MB: split it into several batches.",
                MAX_FILE_BYTES / 1_048_576
            )));
        }
        let (header, rows, source) = if bytes.starts_with(b"PK\x03\x04") { xlsx(bytes)? } else { csv(bytes)? };
        let header: Vec<String> =
            header.iter().map(|name| name.trim().trim_start_matches('\u{feff}').to_ascii_lowercase()).collect();
        if let Some(unknown) = header.iter().find(|name| !COLUMNS.contains(&name.as_str())) {
            return Err(AppError::BadRequest(format!("The column {unknown:?} is not one of {}.", COLUMNS.join(", "))));
        }
        if kind.is_none() && !header.iter().any(|name| name == "type") {
            return Err(AppError::BadRequest(
                "The file needs a type column, or choose the kind of every row.".to_owned(),
            ));
        }
        if rows > MAX_ROWS {
            return Err(AppError::BadRequest(format!("A batch has at most {MAX_ROWS} rows: split the file.")));
        }
        if rows == 0 {
            return Err(AppError::BadRequest("The file has no rows under its header.".to_owned()));
        }
        Ok(Sheet { header, rows, source, read: 0 })
    }

    /// The next rows of cells, at most `at_most`, each with its number as a spreadsheet
    /// shows it (row 1 is the header); none at the end.
    pub fn next_rows(&mut self, at_most: usize) -> Result<Vec<(i32, Vec<String>)>, AppError> {
        let mut rows = Vec::with_capacity(at_most.min(self.rows - self.read));
        while rows.len() < at_most && self.read < self.rows {
            let cells = match &mut self.source {
                Source::Csv(reader) => {
                    let mut record = csv::StringRecord::new();
                    // Read once already, when counted.
                    if !reader.read_record(&mut record).map_err(|e| unreadable_row(self.read, &e))? {
                        break;
                    }
                    record.iter().map(str::to_owned).collect()
                }
                Source::Xlsx { sheet, next } => {
                    let mut found = None;
                    for line in sheet.rows().skip(*next) {
                        *next += 1;
                        if !is_empty_line(line) {
                            found = Some(line);
                            break;
                        }
                    }
                    let Some(line) = found else { break };
                    line.iter().map(cell_text).collect()
                }
            };
            self.read += 1;
            rows.push((i32::try_from(self.read + 1).unwrap_or(i32::MAX), cells));
        }
        Ok(rows)
    }
}

type Opened<'b> = (Vec<String>, usize, Source<'b>);

/// A CSV file's header and rows counted (each read once, so that a row that cannot be
/// read refuses the file before anything is stored).
fn csv(bytes: &[u8]) -> Result<Opened<'_>, AppError> {
    let reader = || csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(bytes);
    let mut counting = reader();
    let header: Vec<String> = counting
        .headers()
        .map_err(|_| {
            AppError::BadRequest("The file is neither a CSV file with a header row nor an XLSX workbook.".into())
        })?
        .iter()
        .map(str::to_owned)
        .collect();
    let (mut rows, mut record) = (0, csv::StringRecord::new());
    while rows <= MAX_ROWS && counting.read_record(&mut record).map_err(|e| unreadable_row(rows, &e))? {
        rows += 1;
    }
    let mut reading = reader();
    reading.headers().map_err(|e| unreadable_row(0, &e))?;
    Ok((header, rows, Source::Csv(reading)))
}

fn unreadable_row(index: usize, error: &csv::Error) -> AppError {
    AppError::BadRequest(format!("Row {} cannot be read: {error}", index + 2))
}

/// The first sheet of an XLSX workbook; its rows are the lines under the header that are
/// not empty.
fn xlsx(bytes: &[u8]) -> Result<Opened<'_>, AppError> {
    use calamine::Reader;
    let unreadable = |e: calamine::XlsxError| AppError::BadRequest(format!("The workbook cannot be read: {e}"));
    let mut workbook = calamine::Xlsx::new(std::io::Cursor::new(bytes)).map_err(unreadable)?;
    let sheet = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| AppError::BadRequest("The workbook has no sheet.".to_owned()))?
        .map_err(unreadable)?;
    let header: Vec<String> = sheet
        .rows()
        .next()
        .ok_or_else(|| AppError::BadRequest("The sheet is empty.".to_owned()))?
        .iter()
        .map(cell_text)
        .collect();
    let rows = sheet.rows().skip(1).filter(|line| !is_empty_line(line)).count();
    Ok((header, rows, Source::Xlsx { sheet, next: 1 }))
}

/// A cell as text: numbers as they read (`12.5`, `3`), text as it is.
fn cell_text(cell: &calamine::Data) -> String {
    use calamine::Data;
    match cell {
        Data::Empty => String::new(),
        Data::String(text) => text.trim().to_owned(),
        Data::Int(number) => number.to_string(),
        Data::Float(number) => number.to_string(),
        Data::Bool(value) => value.to_string(),
        other => other.to_string(),
    }
}

/// Empty lines under the table are not rows.
fn is_empty_line(line: &[calamine::Data]) -> bool {
    line.iter().all(|cell| matches!(cell, calamine::Data::Empty) || cell_text(cell).is_empty())
}

/// The payments found, by id and by merchant order id.
#[derive(Default)]
struct Payments {
    by_id: HashMap<String, PaymentFacts>,
    by_order: HashMap<String, Vec<String>>,
}

fn index_payments(found: Vec<PaymentFacts>) -> Payments {
    let mut payments = Payments::default();
    for facts in found {
        // Found twice (a row names its id, another its order id): once is enough.
        if payments.by_id.contains_key(&facts.id) {
            continue;
        }
        if let Some(order) = &facts.merchant_order_id {
            payments.by_order.entry(order.clone()).or_default().push(facts.id.clone());
        }
        payments.by_id.insert(facts.id.clone(), facts);
    }
    payments
}

/// The state of the checks as they go down the file.
pub struct Checker<'a> {
    state: &'a AppState,
    principal: &'a Principal,
    columns: HashMap<String, usize>,
    kind: Option<Kind>,
    payments: Payments,
    /// What each payment has left after the rows above: (refundable, held).
    left: HashMap<String, (i64, i64)>,
    /// Each project's funds per currency, and what the payouts above take of them.
    funds: HashMap<(i64, String), (Funds, i64)>,
    /// Rows seen, by what they do: a second identical row is most likely a mistake.
    seen: HashMap<String, i32>,
}

impl<'a> Checker<'a> {
    pub fn new(state: &'a AppState, principal: &'a Principal, header: &[String], kind: Option<Kind>) -> Checker<'a> {
        Checker {
            state,
            principal,
            columns: header.iter().enumerate().map(|(i, name)| (name.clone(), i)).collect(),
            kind,
            payments: Payments::default(),
            left: HashMap::new(),
            funds: HashMap::new(),
            seen: HashMap::new(),
        }
    }

    /// Checks the next rows of the file, in order (the payments they name are looked up
    /// together first).
    pub async fn check(&mut self, rows: Vec<(i32, Vec<String>)>) -> Result<Vec<CheckedRow>, AppError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let references: Vec<String> =
            rows.iter().filter_map(|(_, cells)| self.cell(cells, "payment")).map(str::to_owned).collect();
        self.payments = index_payments(service::facts_of(self.state, self.principal, &references).await?);
        let mut checked = Vec::with_capacity(rows.len());
        for (number, cells) in rows {
            checked.push(self.row(number, cells).await?);
        }
        Ok(checked)
    }

    /// The non-empty cell of `column` in `cells`.
    fn cell<'c>(&self, cells: &'c [String], column: &str) -> Option<&'c str> {
        self.columns.get(column).and_then(|&i| cells.get(i)).map(String::as_str).filter(|text| !text.is_empty())
    }

    async fn row(&mut self, number: i32, cells: Vec<String>) -> Result<CheckedRow, AppError> {
        let mut row = CheckedRow {
            number,
            kind: None,
            cells: Vec::new(),
            errors: Vec::new(),
            payment_id: None,
            project_id: None,
            amount: None,
            currency: None,
            card: None,
            merchant_order_id: self.cell(&cells, "merchant_order_id").map(str::to_owned),
            reason: None,
        };
        // A cell a spreadsheet would run as a formula is refused, whatever its column.
        for (name, &i) in &self.columns {
            if let Some(text) = cells.get(i)
                && text.starts_with(['=', '+', '-', '@'])
            {
                row.errors.push(format!("{name}: starts with {:?}, which a spreadsheet runs as a formula", &text[..1]));
            }
        }
        row.kind = match (self.cell(&cells, "type"), self.kind) {
            (Some(text), _) => Kind::parse(text).or_else(|| {
                row.errors.push(format!("type: {text:?} is not refund, capture, release, reversal or payout"));
                None
            }),
            (None, Some(kind)) => Some(kind),
            (None, None) => {
                row.errors.push("type: empty".to_owned());
                None
            }
        };
        if row.errors.is_empty() {
            match row.kind {
                Some(Kind::Payout) => self.payout(&cells, &mut row).await?,
                Some(Kind::Action(action)) => self.action(action, &cells, &mut row),
                None => {}
            }
        }
        if row.errors.is_empty() {
            let key =
                format!("{:?}|{:?}|{:?}|{:?}", row.kind, row.payment_id, row.amount, self.cell(&cells, "card_number"));
            if let Some(first) = self.seen.insert(key, number) {
                row.errors.push(format!("the same as row {first}"));
            }
        }
        row.cells = self.masked(cells);
        Ok(row)
    }

    /// The cells with the card number's middle digits hidden.
    fn masked(&self, mut cells: Vec<String>) -> Vec<String> {
        if let Some(cell) = self.columns.get("card_number").and_then(|&i| cells.get_mut(i)) {
            let digits: String = cell.chars().filter(char::is_ascii_digit).collect();
            if digits.len() >= 10 {
                *cell = format!("{}…{}", &digits[..4], &digits[digits.len() - 4..]);
            }
        }
        cells
    }

    fn action(&mut self, action: PaymentAction, cells: &[String], row: &mut CheckedRow) {
        if !self.principal.has_permission(crate::ACT) {
            row.errors.push("type: you may not refund, capture or release by hand".to_owned());
            return;
        }
        let Some(reference) = self.cell(cells, "payment") else {
            row.errors.push("payment: empty (the payment's id or your order id)".to_owned());
            return;
        };
        let facts = match self.payments.by_id.get(reference) {
            Some(facts) => facts.clone(),
            None => match self.payments.by_order.get(reference).map(Vec::as_slice) {
                Some([only]) => self.payments.by_id[only].clone(),
                Some(several) if several.len() > 1 => {
                    row.errors.push(format!("payment: {} payments have the order id {reference:?}", several.len()));
                    return;
                }
                _ => {
                    row.errors.push(format!("payment: no payment you may see is {reference:?}"));
                    return;
                }
            },
        };
        if let Some(project) = self.cell(cells, "project_id")
            && project != facts.project_id.to_string()
        {
            row.errors.push(format!("project_id: the payment is in project {}", facts.project_id));
        }
        if let Some(currency) = self.cell(cells, "currency")
            && !currency.eq_ignore_ascii_case(&facts.currency)
        {
            row.errors.push(format!("currency: the payment is in {}", facts.currency));
        }
        match action.asking(None, self.cell(cells, "reason").map(str::to_owned)) {
            Ok(asking) => row.reason = asking.reason().map(str::to_owned),
            Err(refusal) => row.errors.push(format!("reason: {refusal}")),
        }
        let typed = match self.cell(cells, "amount") {
            None => None,
            Some(_) if !action.takes_amount() => {
                row.errors.push(format!("amount: a {} takes the whole amount; leave it empty", action.as_str()));
                return;
            }
            Some(text) => match parse_amount(text, &facts.currency) {
                Some(amount) if amount > 0 => Some(amount),
                _ => {
                    row.errors.push(format!("amount: {text:?} is not an amount in {}", facts.currency));
                    return;
                }
            },
        };
        let (refundable, held) = *self.left.entry(facts.id.clone()).or_insert((facts.refundable, facts.authorized));
        let money = |minor: i64| dashboard_core::money::format_minor(minor, &facts.currency);
        let (amount, left_after) = match action {
            PaymentAction::Refund => {
                let amount = typed.unwrap_or(refundable);
                if amount > refundable || amount == 0 {
                    row.errors.push(format!("amount: {} is left to refund", money(refundable)));
                }
                (amount, (refundable - amount, held))
            }
            PaymentAction::Reversal => {
                if facts.status != Status::Completed || facts.refunded > 0 || refundable == 0 {
                    row.errors.push("payment: only a completed sale with nothing refunded can be reversed".to_owned());
                }
                (refundable, (0, held))
            }
            PaymentAction::Capture => {
                let amount = typed.unwrap_or(held);
                if held == 0 {
                    row.errors.push("payment: nothing is held on it".to_owned());
                } else if amount > held {
                    row.errors.push(format!("amount: {} is held", money(held)));
                }
                (amount, (refundable, 0))
            }
            PaymentAction::Release => {
                if held == 0 {
                    row.errors.push("payment: nothing is held on it".to_owned());
                }
                (held, (refundable, 0))
            }
        };
        if row.errors.is_empty() {
            self.left.insert(facts.id.clone(), left_after);
        }
        row.payment_id = Some(facts.id);
        row.project_id = Some(facts.project_id);
        row.amount = Some(amount);
        row.currency = Some(facts.currency);
    }

    async fn payout(&mut self, cells: &[String], row: &mut CheckedRow) -> Result<(), AppError> {
        if !self.principal.has_permission(crate::PAYOUT) {
            row.errors.push("type: you may not make payouts".to_owned());
            return Ok(());
        }
        if self.cell(cells, "reason").is_some() {
            row.errors.push("reason: only a refund takes a reason".to_owned());
        }
        let project = self.cell(cells, "project_id").and_then(|text| text.parse::<i64>().ok());
        let project = match project {
            Some(id) if self.principal.projects.allows(id) => id,
            _ => {
                row.errors.push("project_id: not a project you may pay out from".to_owned());
                return Ok(());
            }
        };
        let currency = match self.cell(cells, "currency").map(dashboard_payments_domain::model::currency) {
            Some(Ok(currency)) => currency,
            _ => {
                row.errors.push("currency: not a currency code such as EUR".to_owned());
                return Ok(());
            }
        };
        let amount = match self.cell(cells, "amount").map(|text| (text, parse_amount(text, &currency))) {
            Some((_, Some(amount))) if amount > 0 => amount,
            Some((text, _)) => {
                row.errors.push(format!("amount: {text:?} is not an amount in {currency}"));
                return Ok(());
            }
            None => {
                row.errors.push("amount: empty".to_owned());
                return Ok(());
            }
        };
        let whole = |column: &str| self.cell(cells, column).and_then(|text| text.parse::<u32>().ok()).unwrap_or(0);
        let holder = self.cell(cells, "holder").map(str::to_owned);
        match Card::payee(
            self.cell(cells, "card_number").unwrap_or_default(),
            whole("expiry_month"),
            whole("expiry_year"),
            holder,
        ) {
            Ok(card) => row.card = Some(card),
            Err(error) => row.errors.push(format!("card_number: {error}")),
        }
        let key = (project, currency.clone());
        if !self.funds.contains_key(&key) {
            let funds = payouts::funds(self.state, project, &currency).await?;
            self.funds.insert(key.clone(), (funds, 0));
        }
        let (funds, taken) = self.funds[&key];
        // The payouts above count as on their way, and as sent today.
        let after_those =
            Funds { on_their_way: funds.on_their_way + taken, sent_today: funds.sent_today + taken, ..funds };
        match after_those.allow(amount, &currency) {
            Ok(()) if row.errors.is_empty() => {
                self.funds.insert(key, (funds, taken + amount));
            }
            Ok(()) => {}
            Err(error) => row.errors.push(format!("amount: {error}")),
        }
        row.project_id = Some(project);
        row.amount = Some(amount);
        row.currency = Some(currency);
        Ok(())
    }
}
