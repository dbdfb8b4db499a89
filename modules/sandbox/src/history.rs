//! A realistic payment history for the demo company and for benchmarks, written in bulk
//! (multi-row inserts in batches), with operations and ledger postings that keep every
//! invariant (`dashboard ledger verify` passes on it).

use chrono::{Datelike, NaiveDateTime, TimeDelta, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use dashboard_core::db::DbPool;
use dashboard_core::error::AppError;
use dashboard_core::time::now;
use dashboard_payments_domain::ledger;
use dashboard_payments_domain::model::{Flow, Kind, OperationKind, Status};

/// Rows written per batch (one transaction each).
const BATCH: usize = 500;

const CURRENCIES: [(&str, u32); 4] = [("EUR", 50), ("USD", 25), ("GBP", 15), ("JPY", 10)];
const COUNTRIES: [&str; 12] = ["DE", "FR", "GB", "US", "ES", "IT", "NL", "PL", "SE", "JP", "CA", "AU"];
const CARDS: [(&str, &str, &str); 5] = [
    ("424242", "4242", "visa"),
    ("400000", "0077", "visa"),
    ("555555", "4444", "mastercard"),
    ("222300", "0018", "mastercard"),
    ("378282", "0005", "amex"),
];
const DECLINES: [(&str, &str); 5] = [
    ("51", "Insufficient funds"),
    ("05", "Do not honour"),
    ("41", "Lost card"),
    ("43", "Stolen card"),
    ("54", "Expired card"),
];

/// One generated operation: kind, amount, success, time, decline.
struct Op {
    kind: OperationKind,
    amount: i64,
    success: bool,
    at: NaiveDateTime,
    decline: Option<(&'static str, &'static str)>,
}

struct Generated {
    public_id: String,
    project_id: i64,
    kind: Kind,
    flow: Flow,
    method: &'static str,
    status: Status,
    currency: &'static str,
    amount: i64,
    authorized: i64,
    captured: i64,
    refunded: i64,
    charged_back: i64,
    country: &'static str,
    email: String,
    /// The fingerprint of the customer's card, and the customer's address.
    fingerprint: String,
    ip: String,
    card: (&'static str, &'static str, &'static str),
    decline: Option<(&'static str, &'static str)>,
    created: NaiveDateTime,
    ops: Vec<Op>,
}

fn pick<T: Copy>(rng: &mut StdRng, weighted: &[(T, u32)]) -> T {
    let total: u32 = weighted.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total);
    for (value, weight) in weighted {
        if roll < *weight {
            return *value;
        }
        roll -= weight;
    }
    weighted[0].0
}

/// Typical ticket sizes: many small, some large; in minor units of `currency`.
fn amount(rng: &mut StdRng, currency: &str) -> i64 {
    let major = (rng.random_range(1.5_f64..7.5)).exp().round() as i64;
    if currency == "JPY" { major * 120 } else { major * 100 + rng.random_range(0..100) }
}

/// A moment in the last `days` days, busier at weekends and growing over time.
fn moment(rng: &mut StdRng, end: NaiveDateTime, days: i64) -> NaiveDateTime {
    loop {
        let back = rng.random_range(0..days * 86_400);
        let at = end - TimeDelta::seconds(back);
        let weekend = matches!(at.weekday(), Weekday::Sat | Weekday::Sun);
        let growth = 1.0 - back as f64 / (days * 86_400) as f64 * 0.4;
        let keep = if weekend { 1.0 } else { 0.75 } * growth;
        if rng.random_bool(keep.clamp(0.05, 1.0)) {
            return at;
        }
    }
}

fn generate(
    rng: &mut StdRng,
    index: usize,
    projects: &[i64],
    (created, end): (NaiveDateTime, NaiveDateTime),
    run: &str,
) -> Generated {
    let currency = pick(rng, &CURRENCIES);
    let amount = amount(rng, currency);
    let kind = pick(rng, &[(Kind::Purchase, 90), (Kind::Payout, 6), (Kind::Recurring, 4)]);
    let flow = if kind == Kind::Purchase && rng.random_bool(0.2) { Flow::TwoStep } else { Flow::OneStep };
    let method = pick(rng, &[("card", 85), ("wallet", 10), ("bank_transfer", 5)]);
    let later =
        |rng: &mut StdRng, from: NaiveDateTime| (from + TimeDelta::minutes(rng.random_range(1..4 * 24 * 60))).min(end);
    let customer = rng.random_range(1..6_000u32);
    let mut g = Generated {
        public_id: format!("pay_demo{run}{index:012}"),
        project_id: projects[rng.random_range(0..projects.len())],
        kind,
        flow,
        method,
        status: Status::Completed,
        currency,
        amount,
        authorized: 0,
        captured: 0,
        refunded: 0,
        charged_back: 0,
        country: COUNTRIES[rng.random_range(0..COUNTRIES.len())],
        email: format!("customer{customer}@example.com"),
        fingerprint: customer_fingerprint(customer),
        ip: customer_address(customer),
        card: CARDS[rng.random_range(0..CARDS.len())],
        decline: None,
        created,
        ops: Vec::new(),
    };
    let first = match (kind, flow) {
        (Kind::Payout, _) => OperationKind::Payout,
        (Kind::Recurring, _) => OperationKind::Recurring,
        (_, Flow::TwoStep) => OperationKind::Auth,
        _ => OperationKind::Sale,
    };
    if rng.random_bool(0.12) {
        let decline = DECLINES[rng.random_range(0..DECLINES.len())];
        g.status = Status::Declined;
        g.decline = Some(decline);
        g.ops.push(Op { kind: first, amount, success: false, at: created, decline: Some(decline) });
        return g;
    }
    g.ops.push(Op { kind: first, amount, success: true, at: created, decline: None });
    match first {
        OperationKind::Payout => g.status = Status::PaidOut,
        OperationKind::Auth => {
            g.authorized = amount;
            let roll = rng.random_range(0..100);
            if roll < 80 || end - created < TimeDelta::days(2) && roll < 95 {
                let captured = if rng.random_bool(0.2) { amount * rng.random_range(50..100) / 100 } else { amount };
                let captured = captured.max(1);
                g.ops.push(Op {
                    kind: OperationKind::Capture,
                    amount: captured,
                    success: true,
                    at: later(rng, created),
                    decline: None,
                });
                g.captured = captured;
                g.status = Status::Completed;
            } else if roll < 95 {
                g.ops.push(Op {
                    kind: OperationKind::Cancel,
                    amount,
                    success: true,
                    at: later(rng, created),
                    decline: None,
                });
                g.status = Status::Cancelled;
            } else {
                g.status = Status::Authorized;
            }
        }
        _ => {
            g.captured = amount;
        }
    }
    if g.status == Status::Completed && rng.random_bool(0.07) {
        let refund =
            if rng.random_bool(0.5) { g.captured } else { (g.captured * rng.random_range(10..90) / 100).max(1) };
        let at = later(rng, g.ops.last().map_or(created, |op| op.at));
        g.ops.push(Op { kind: OperationKind::Refund, amount: refund, success: true, at, decline: None });
        g.refunded = refund;
        g.status = if refund == g.captured { Status::Refunded } else { Status::PartiallyRefunded };
    }
    if g.status == Status::Completed && rng.random_bool(0.004) {
        let reason = CHARGEBACK_REASONS[rng.random_range(0..CHARGEBACK_REASONS.len())];
        let at = (g.ops.last().map_or(created, |op| op.at) + TimeDelta::days(rng.random_range(5..60))).min(end);
        g.ops.push(Op {
            kind: OperationKind::Chargeback,
            amount: g.captured,
            success: true,
            at,
            decline: Some(reason),
        });
        g.charged_back = g.captured;
        g.status = Status::ChargedBack;
    }
    g
}

/// Card schemes' chargeback reasons: (code, words).
const CHARGEBACK_REASONS: [(&str, &str); 4] = [
    ("10.4", "Fraud, card absent"),
    ("13.1", "Merchandise not received"),
    ("13.3", "Not as described"),
    ("12.6", "Duplicate processing"),
];

/// A customer's card as the lists and velocities know it: a fingerprint (64 hex digits)
/// of their own.
fn customer_fingerprint(customer: u32) -> String {
    format!("{0:032x}{0:032x}", u128::from(customer).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

/// A customer's address, in the documentation networks the sandbox places in the US,
/// Germany and the UK (their first 200 addresses: the demo's block list has others).
fn customer_address(customer: u32) -> String {
    let network = ["192.0.2", "198.51.100", "203.0.113"][(customer % 3) as usize];
    format!("{network}.{}", customer % 200 + 1)
}

fn timestamp(at: &NaiveDateTime) -> String {
    format!("'{}'", at.format("%Y-%m-%d %H:%M:%S%.6f"))
}

fn text(value: Option<&str>) -> String {
    // Generated values only: no quotes to escape.
    value.map_or_else(|| "NULL".to_owned(), |v| format!("'{v}'"))
}

/// Writes `count` payments over the last `days` days for `company_id`'s `projects`.
/// Deterministic for a given `seed`. Returns how many were written.
pub async fn generate_history(
    db: &DbPool,
    company_id: i64,
    projects: &[i64],
    count: usize,
    days: i64,
    seed: u64,
) -> Result<usize, AppError> {
    if projects.is_empty() || count == 0 {
        return Ok(0);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let end = now();
    let run = format!("{:04x}", seed % 0x10000);
    // In time order, as payments arrive: the table's rows then lie in the order in which
    // the registry, exports and analytics read them.
    let mut moments: Vec<NaiveDateTime> = (0..count).map(|_| moment(&mut rng, end, days)).collect();
    moments.sort_unstable();
    let mut written = 0;
    while written < count {
        let size = BATCH.min(count - written);
        let batch: Vec<Generated> =
            (written..written + size).map(|i| generate(&mut rng, i, projects, (moments[i], end), &run)).collect();
        write_batch(db, company_id, &batch).await?;
        written += size;
    }
    Ok(written)
}

async fn write_batch(db: &DbPool, company_id: i64, batch: &[Generated]) -> Result<(), AppError> {
    let payments_sql = format!(
        "INSERT INTO payments (public_id, company_id, project_id, kind, flow, method, status, currency, amount, \
         authorized_amount, captured_amount, refunded_amount, charged_back_amount, merchant_order_id, customer_email, \
         customer_country, card_first6, card_last4, card_brand, card_expiry, card_fingerprint, customer_ip, decline_code, \
         decline_reason, created_at, updated_at) VALUES {}",
        batch
            .iter()
            .map(|g| {
                let card = (g.method == "card").then_some(g.card);
                format!(
                    "('{}', {company_id}, {}, '{}', '{}', '{}', '{}', '{}', {}, {}, {}, {}, {}, '{}', '{}', '{}', {}, {}, {}, {}, {}, '{}', {}, {}, {}, {})",
                    g.public_id,
                    g.project_id,
                    g.kind.as_str(),
                    g.flow.as_str(),
                    g.method,
                    g.status.as_str(),
                    g.currency,
                    g.amount,
                    g.authorized,
                    g.captured,
                    g.refunded,
                    g.charged_back,
                    g.public_id.replace("pay_demo", "order-"),
                    g.email,
                    g.country,
                    text(card.map(|c| c.0)),
                    text(card.map(|c| c.1)),
                    text(card.map(|c| c.2)),
                    text(card.map(|_| "12/29")),
                    text(card.map(|_| g.fingerprint.as_str())),
                    g.ip,
                    text(g.decline.map(|d| d.0)),
                    text(g.decline.map(|d| d.1)),
                    timestamp(&g.created),
                    timestamp(&g.ops.last().map_or(g.created, |op| op.at)),
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let first = &batch[0].public_id;
    let last = &batch[batch.len() - 1].public_id;
    let (first, last) = (first.clone(), last.clone());
    dashboard_core::db_transaction!(db, conn => {
        conn.batch_execute(&payments_sql).await?;
        let ids: Vec<(i64, String)> = dashboard_payments_domain::schema::payments::table
            .filter(dashboard_payments_domain::schema::payments::public_id.between(&first, &last))
            .select((dashboard_payments_domain::schema::payments::id, dashboard_payments_domain::schema::payments::public_id))
            .load(conn)
            .await?;
        let id_of: std::collections::HashMap<String, i64> = ids.into_iter().map(|(id, public)| (public, id)).collect();
        let mut operations = Vec::new();
        for g in batch {
            let payment = id_of[&g.public_id];
            for op in &g.ops {
                operations.push(format!(
                    "({payment}, '{}', '{}', {}, '{}', {}, {}, 'demo', {}, {})",
                    op.kind.as_str(),
                    if op.success { "success" } else { "declined" },
                    op.amount,
                    g.currency,
                    text(op.decline.map(|d| d.0)),
                    text(op.decline.map(|d| d.1)),
                    timestamp(&op.at),
                    timestamp(&op.at),
                ));
            }
        }
        conn.batch_execute(&format!(
            "INSERT INTO operations (payment_id, kind, status, amount, currency, decline_code, decline_reason, \
             connector_reference, created_at, completed_at) VALUES {}",
            operations.join(", ")
        ))
        .await?;
        let payment_ids: Vec<i64> = id_of.values().copied().collect();
        let op_rows: Vec<(i64, i64)> = dashboard_payments_domain::schema::operations::table
            .filter(dashboard_payments_domain::schema::operations::payment_id.eq_any(&payment_ids))
            .order(dashboard_payments_domain::schema::operations::id.asc())
            .select((dashboard_payments_domain::schema::operations::id, dashboard_payments_domain::schema::operations::payment_id))
            .load(conn)
            .await?;
        let mut ops_of: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
        for (op, payment) in op_rows {
            ops_of.entry(payment).or_default().push(op);
        }
        let mut postings = Vec::new();
        for g in batch {
            let payment = id_of[&g.public_id];
            let op_ids = &ops_of[&payment];
            for (op, op_id) in g.ops.iter().zip(op_ids) {
                if !op.success {
                    continue;
                }
                for (account, amount) in ledger::postings(op.kind, op.amount, g.authorized) {
                    postings.push(format!(
                        "({op_id}, {payment}, {}, '{account}', '{}', {amount}, {})",
                        g.project_id,
                        g.currency,
                        timestamp(&op.at)
                    ));
                }
            }
        }
        if !postings.is_empty() {
            conn.batch_execute(&format!(
                "INSERT INTO ledger_postings (operation_id, payment_id, project_id, account, currency, amount, created_at) \
                 VALUES {}",
                postings.join(", ")
            ))
            .await?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// How many payments a company has (to generate the demo history once).
pub async fn payment_count(db: &DbPool, company_id: i64) -> Result<i64, AppError> {
    Ok(dashboard_core::db_run!(db, conn => {
        dashboard_payments_domain::schema::payments::table
            .filter(dashboard_payments_domain::schema::payments::company_id.eq(company_id))
            .count()
            .get_result(conn)
            .await
    })?)
}
