//! The double-entry ledger: every money movement is a set of postings that sum to zero
//! per currency. Positive amounts are debits, negative ones credits. Balances are
//! derived from postings, never stored.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use futures_util::future::BoxFuture;
use serde::Serialize;

use super::model::OperationKind;
use crate::schema::{ledger_postings, operations, payments};
use dashboard_core::db::prelude::*;
use dashboard_core::db::{DbPool, PgConn, SqliteWriteConn};
use dashboard_core::error::AppError;

/// What the acquirer owes the merchant for captured payments.
pub const ACQUIRER: &str = "acquirer_receivable";
/// The merchant's money (credit-normal: the balance is minus the sum).
pub const MERCHANT: &str = "merchant_balance";
/// Memo pair for authorisations: funds held on customers' cards for the merchant.
pub const AUTHORIZATIONS: &str = "authorizations";
pub const HELD: &str = "held_funds";
/// Money sent out by payouts.
pub const PAYOUTS: &str = "payouts_outgoing";

dashboard_core::register!(dashboard_core::labels::LabelSet {
    name: "ledger_account",
    labels: || {
        vec![
            (ACQUIRER, "Due from the acquirer"),
            (MERCHANT, "Merchant balance"),
            (AUTHORIZATIONS, "Authorisations"),
            (HELD, "Held on cards"),
            (PAYOUTS, "Paid out"),
        ]
    },
});

/// The postings of an operation: (account, signed amount). `held` is the authorised
/// amount a capture or cancel releases.
pub fn postings(kind: OperationKind, amount: i64, held: i64) -> Vec<(&'static str, i64)> {
    match kind {
        // A won dispute brings the charged back money back as a sale does.
        OperationKind::Sale | OperationKind::Recurring | OperationKind::ChargebackReversal => {
            vec![(ACQUIRER, amount), (MERCHANT, -amount)]
        }
        OperationKind::Auth => vec![(AUTHORIZATIONS, amount), (HELD, -amount)],
        OperationKind::Capture => {
            vec![(HELD, held), (AUTHORIZATIONS, -held), (ACQUIRER, amount), (MERCHANT, -amount)]
        }
        OperationKind::Cancel => vec![(HELD, held), (AUTHORIZATIONS, -held)],
        OperationKind::Refund | OperationKind::Reversal | OperationKind::Chargeback => {
            vec![(MERCHANT, amount), (ACQUIRER, -amount)]
        }
        OperationKind::Payout => vec![(MERCHANT, amount), (PAYOUTS, -amount)],
    }
}

/// A posting as it is written.
#[derive(Insertable)]
#[diesel(table_name = ledger_postings)]
pub struct NewPosting<'a> {
    pub operation_id: i64,
    pub payment_id: i64,
    pub project_id: i64,
    pub account: &'a str,
    pub currency: &'a str,
    pub amount: i64,
    pub created_at: NaiveDateTime,
}

/// An operation's postings (see [`postings`]) as they are written.
pub fn rows<'a>(
    postings: &[(&'a str, i64)],
    operation_id: i64,
    payment_id: i64,
    project_id: i64,
    currency: &'a str,
    created_at: NaiveDateTime,
) -> Vec<NewPosting<'a>> {
    postings
        .iter()
        .map(|&(account, amount)| NewPosting {
            operation_id,
            payment_id,
            project_id,
            account,
            currency,
            amount,
            created_at,
        })
        .collect()
}

/// Writes an operation's postings with the caller's connection, inside its transaction.
pub trait WritePostings {
    fn write_postings<'a>(&'a mut self, postings: &'a [NewPosting<'a>]) -> BoxFuture<'a, QueryResult<()>>;
}

/// One statement for all of them: on PostgreSQL each statement is a round trip.
impl WritePostings for &PgConn {
    fn write_postings<'a>(&'a mut self, postings: &'a [NewPosting<'a>]) -> BoxFuture<'a, QueryResult<()>> {
        Box::pin(async move {
            if !postings.is_empty() {
                keep_prepared(diesel::insert_into(ledger_postings::table).values(postings)).execute(self).await?;
            }
            Ok(())
        })
    }
}

impl WritePostings for PgConn {
    fn write_postings<'a>(&'a mut self, postings: &'a [NewPosting<'a>]) -> BoxFuture<'a, QueryResult<()>> {
        Box::pin(async move {
            let mut shared: &PgConn = self;
            shared.write_postings(postings).await
        })
    }
}

/// One statement each: diesel-async offers no multi-row insert on SQLite, where a
/// statement costs no round trip anyway.
impl WritePostings for SqliteWriteConn {
    fn write_postings<'a>(&'a mut self, postings: &'a [NewPosting<'a>]) -> BoxFuture<'a, QueryResult<()>> {
        Box::pin(async move {
            for posting in postings {
                diesel::insert_into(ledger_postings::table).values(posting).execute(self).await?;
            }
            Ok(())
        })
    }
}

/// A project's balances in one currency.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Balance {
    pub project_id: i64,
    pub currency: String,
    /// The merchant's money, in minor units.
    pub available: i64,
    /// Authorised but not yet captured or released.
    pub held: i64,
}

/// Balances of the given projects, per currency.
pub async fn balances(db: &DbPool, project_ids: &[i64]) -> Result<Vec<Balance>, AppError> {
    let ids = project_ids.to_vec();
    let sums: Vec<(i64, String, String, Option<i64>)> = dashboard_core::db_run!(db, conn => {
        ledger_postings::table
            .filter(ledger_postings::project_id.eq_any(&ids))
            .filter(ledger_postings::account.eq_any([MERCHANT, HELD]))
            .group_by((ledger_postings::project_id, ledger_postings::currency, ledger_postings::account))
            .select((
                ledger_postings::project_id,
                ledger_postings::currency,
                ledger_postings::account,
                dashboard_core::db::sum_i64("ledger_postings.amount"),
            ))
            .load(conn)
            .await
    })?;
    let mut balances: Vec<Balance> = Vec::new();
    for (project_id, currency, account, sum) in sums {
        let position = balances.iter().position(|b| b.project_id == project_id && b.currency == currency);
        let balance = match position {
            Some(i) => &mut balances[i],
            None => {
                balances.push(Balance { project_id, currency, available: 0, held: 0 });
                let last = balances.len() - 1;
                &mut balances[last]
            }
        };
        let value = -sum.unwrap_or(0);
        if account == MERCHANT {
            balance.available = value;
        } else {
            balance.held = value;
        }
    }
    balances.sort_by(|a, b| (a.project_id, &a.currency).cmp(&(b.project_id, &b.currency)));
    Ok(balances)
}

/// Checks the ledger's and the payments' invariants over the whole database; returns
/// every violation found (empty: all hold).
pub async fn verify(db: &DbPool) -> Result<Vec<String>, AppError> {
    let mut problems = Vec::new();

    // 1. Each operation's postings balance, per currency.
    let unbalanced: Vec<(i64, String, Option<i64>)> = dashboard_core::db_run!(db, conn => {
        ledger_postings::table
            .group_by((ledger_postings::operation_id, ledger_postings::currency))
            .select((ledger_postings::operation_id, ledger_postings::currency, dashboard_core::db::sum_i64("ledger_postings.amount")))
            .load(conn)
            .await
    })?;
    for (operation, currency, sum) in unbalanced.into_iter().filter(|(_, _, sum)| sum.unwrap_or(0) != 0) {
        problems.push(format!("operation {operation}: postings in {currency} sum to {}", sum.unwrap_or(0)));
    }

    // 2. Only successful operations post.
    let stray: Vec<i64> = dashboard_core::db_run!(db, conn => {
        ledger_postings::table
            .inner_join(operations::table)
            .filter(operations::status.ne("success"))
            .select(ledger_postings::operation_id)
            .distinct()
            .load(conn)
            .await
    })?;
    for operation in stray {
        problems.push(format!("operation {operation} has postings but did not succeed"));
    }

    // 3. Per payment: amounts agree with the successful operations and stay in bounds.
    type Totals = (i64, String, i64, i64, i64, i64, i64);
    let totals: Vec<Totals> = dashboard_core::db_run!(db, conn => {
        payments::table
            .select((
                payments::id,
                payments::public_id,
                payments::amount,
                payments::authorized_amount,
                payments::captured_amount,
                payments::refunded_amount,
                payments::charged_back_amount,
            ))
            .load(conn)
            .await
    })?;
    // Refunds reserve their amount while the acquirer is asked: pending ones count.
    let sums: Vec<(i64, String, String, Option<i64>, i64)> = dashboard_core::db_run!(db, conn => {
        operations::table
            .filter(operations::status.eq_any(["success", "pending"]))
            .group_by((operations::payment_id, operations::kind, operations::status))
            .select((
                operations::payment_id,
                operations::kind,
                operations::status,
                dashboard_core::db::sum_i64("operations.amount"),
                diesel::dsl::count_star(),
            ))
            .load(conn)
            .await
    })?;
    let sum_of = |payment: i64, kinds: &[&str], statuses: &[&str]| -> (i64, i64) {
        sums.iter()
            .filter(|(id, kind, status, _, _)| {
                *id == payment && kinds.contains(&kind.as_str()) && statuses.contains(&status.as_str())
            })
            .fold((0, 0), |(amount, count), (_, _, _, sum, n)| (amount + sum.unwrap_or(0), count + n))
    };
    let done = ["success"];
    for (id, public_id, amount, authorized, captured, refunded, charged_back) in totals {
        let (sold, _) = sum_of(id, &["sale", "capture", "recurring"], &done);
        let (refunds, _) = sum_of(id, &["refund", "reversal"], &["success", "pending"]);
        let (charged, _) = sum_of(id, &["chargeback"], &done);
        let (won_back, _) = sum_of(id, &["chargeback_reversal"], &done);
        let chargebacks = charged - won_back;
        let (_, finals) = sum_of(id, &["capture", "cancel"], &done);
        if sold != captured {
            problems.push(format!("payment {public_id}: captured {captured} but operations say {sold}"));
        }
        if refunds != refunded {
            problems.push(format!("payment {public_id}: refunded {refunded} but operations say {refunds}"));
        }
        if chargebacks != charged_back {
            problems.push(format!("payment {public_id}: charged back {charged_back} but operations say {chargebacks}"));
        }
        if refunded + charged_back > captured {
            problems.push(format!(
                "payment {public_id}: {refunded} refunded and {charged_back} charged back exceed {captured} captured"
            ));
        }
        if captured > amount || authorized > amount {
            problems.push(format!("payment {public_id}: more captured or authorised than its amount {amount}"));
        }
        if finals > 1 {
            problems.push(format!("payment {public_id}: its hold was captured or released {finals} times"));
        }
    }

    // 4. No project's available balance is below zero: payouts are checked against it.
    let merchant: Vec<(i64, String, Option<i64>)> = dashboard_core::db_run!(db, conn => {
        ledger_postings::table
            .filter(ledger_postings::account.eq(MERCHANT))
            .group_by((ledger_postings::project_id, ledger_postings::currency))
            .select((ledger_postings::project_id, ledger_postings::currency, dashboard_core::db::sum_i64("ledger_postings.amount")))
            .load(conn)
            .await
    })?;
    for (project, currency, sum) in merchant {
        // Credit-normal: the balance is minus the sum.
        let balance = -sum.unwrap_or(0);
        if balance < 0 {
            let shown = dashboard_core::money::format_minor(balance, &currency);
            problems.push(format!("project {project}: its available balance in {currency} is negative ({shown})"));
        }
    }

    // 5. No operation waits for the acquirer for good: the recovery settles one within
    //    minutes, and a 3-D Secure challenge expires.
    for (public_id, kind, created_at) in stuck_operations(db).await? {
        problems.push(format!(
            "payment {public_id}: its {kind} has waited for the acquirer since {} UTC",
            created_at.format("%Y-%m-%d %H:%M:%S")
        ));
    }
    Ok(problems)
}

/// How long an operation may wait before `verify` reports it: well past the recovery's
/// delay (twice the acquirer timeout, at most four minutes), and past a 3-D Secure
/// challenge's lifetime for one that waits for the customer.
const STUCK_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Operations still pending after [`STUCK_AFTER`] (a challenge's after its lifetime too):
/// payment, operation kind and when it was asked for.
async fn stuck_operations(db: &DbPool) -> Result<Vec<(String, String, chrono::NaiveDateTime)>, AppError> {
    let now = dashboard_core::time::now();
    let (cutoff, challenge_cutoff) = (now - STUCK_AFTER, now - STUCK_AFTER - crate::service::CHALLENGE_LIFETIME);
    let awaiting = crate::model::Status::AwaitingChallenge.as_str();
    Ok(dashboard_core::db_run!(db, conn => {
        operations::table
            .inner_join(payments::table)
            .filter(operations::completed_at.is_null())
            .filter(
                operations::created_at
                    .lt(challenge_cutoff)
                    .or(operations::created_at.lt(cutoff).and(payments::status.ne(awaiting))),
            )
            .order(operations::id.asc())
            .select((payments::public_id, operations::kind, operations::created_at))
            .load(conn)
            .await
    })?)
}

// `dashboard ledger verify`: the operator's check of every invariant.
dashboard_core::register!(dashboard_core::hooks::Command {
    name: "ledger",
    define: || {
        clap::Command::new("ledger").about("The payments ledger").subcommand_required(true).subcommand(
            clap::Command::new("verify").about(
                "Check every invariant of payments and ledger over the whole database; exits 1 on any violation.",
            ),
        )
    },
    run: |db, _matches| {
        Box::pin(async move {
            let problems = verify(&db).await?;
            if problems.is_empty() {
                println!("The ledger is consistent: every entry balances and no payment breaks an invariant.");
                return Ok(());
            }
            for problem in &problems {
                println!("{problem}");
            }
            Err(AppError::Conflict(format!("{} violation(s) found", problems.len())))
        })
    },
});
