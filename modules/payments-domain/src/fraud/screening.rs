//! The rules' screening of a payment, before the acquirer: in the write that stores the
//! payment ([`screen!`](crate::screen)), so that what the velocities count and the
//! payment counted next are one: payments of one card (e-mail, address) take turns there,
//! and the 11th of a card within 10 minutes sees the 10 before it, however many arrive at
//! once. Every entry point (the gateway API, the virtual terminal, the hosted page, batch
//! files) starts payments through the same write, so the rules decide alike for all.

use std::sync::Arc;

use diesel::QueryResult;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::Action;
use super::language::{Facts, List, ListKind, Lookups, Measure, Subject, Velocity, Window};
use super::lists::Subjects;
use super::rules::{CompanyRules, RuleBook};
use dashboard_core::{AppError, AppState};

/// A rule that matched a payment, as it was then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
pub struct MatchedRule {
    pub rule_id: i64,
    pub name: String,
    pub action: Action,
}

/// What the rules decided for a payment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The action of the first matching rule (by priority), as it applies to this kind
    /// of payment; none when no rule matched.
    pub decision: Option<Action>,
    /// Every matching rule, in priority order; the first decided.
    pub matched: Vec<MatchedRule>,
}

impl Verdict {
    /// The rule that decided.
    pub fn decided_by(&self) -> Option<&MatchedRule> {
        self.matched.first()
    }

    pub fn declines(&self) -> bool {
        self.decision == Some(Action::Decline)
    }

    pub fn holds(&self) -> bool {
        self.decision == Some(Action::Review)
    }

    pub fn challenges(&self) -> bool {
        self.decision == Some(Action::Challenge)
    }
}

/// A payment ready to be screened inside its write: the company's rules, what the
/// payment is, and what its velocities and lists look up.
pub struct Screening {
    pub rules: Arc<CompanyRules>,
    pub facts: Facts,
    pub subjects: Subjects,
    pub company_id: i64,
    /// A payout can be neither held nor challenged: a rule that would is a decline.
    pub payout: bool,
}

/// What a payment is, for the rules.
pub struct Payment<'a> {
    pub company_id: i64,
    pub project_id: i64,
    pub kind: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub card_brand: &'a str,
    pub card_first_digits: &'a str,
    pub card_fingerprint: &'a str,
    pub email: Option<&'a str>,
    pub country: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub payout: bool,
}

/// The screening of a payment, or none when its company has no enabled rule.
pub async fn prepare(state: &AppState, payment: &Payment<'_>) -> Result<Option<Screening>, AppError> {
    let rules = RuleBook::of(state)?.rules(&state.db, payment.company_id).await?;
    if rules.rules.is_empty() {
        return Ok(None);
    }
    let geo = super::geo::Geo::of_state(state)?;
    let bin = payment.card_first_digits.get(..6).map(str::to_owned);
    let facts = Facts {
        amount: payment.amount,
        currency: payment.currency.to_owned(),
        project_id: payment.project_id,
        method: "card".to_owned(),
        card_brand: Some(payment.card_brand.to_owned()),
        card_bin: bin.clone(),
        card_country: geo.card_country(payment.card_first_digits),
        customer_country: payment.country.map(str::to_owned),
        ip_country: payment.ip.and_then(|ip| geo.ip_country(ip)),
        email_domain: payment.email.and_then(|email| email.rsplit_once('@')).map(|(_, domain)| domain.to_lowercase()),
        kind: payment.kind.to_owned(),
    };
    let subjects = Subjects {
        card: Some(payment.card_fingerprint.to_owned()),
        email: payment.email.map(str::to_lowercase),
        ip: payment.ip.map(str::to_owned),
        country: payment.country.map(str::to_owned),
        bin,
    };
    Ok(Some(Screening { rules, facts, subjects, company_id: payment.company_id, payout: payment.payout }))
}

impl Screening {
    /// What is counted for a velocity's subject: the card's fingerprint, the e-mail, the
    /// address.
    pub fn subject_value(&self, subject: Subject) -> Option<&str> {
        match subject {
            Subject::Card => self.subjects.card.as_deref(),
            Subject::Email => self.subjects.email.as_deref(),
            Subject::Ip => self.subjects.ip.as_deref(),
        }
    }

    /// What is counted for `subject`, when the rules count it (else nothing is).
    pub fn counted(&self, subject: Subject) -> Option<String> {
        let counts = self.rules.needs.velocities.iter().any(|velocity| velocity.subject == subject);
        self.subject_value(subject).filter(|_| counts).map(str::to_owned)
    }

    /// The buckets the payment takes its turn in while its velocities are counted, in one
    /// order for every payment (so two payments never wait for each other in turn).
    pub fn buckets(&self) -> Vec<i64> {
        let mut buckets: Vec<i64> = [Subject::Card, Subject::Email, Subject::Ip]
            .into_iter()
            .filter_map(|subject| Some(bucket(self.company_id, subject, &self.counted(subject)?)))
            .collect();
        buckets.sort_unstable();
        buckets.dedup();
        buckets
    }

    pub fn needs_lists(&self) -> bool {
        !self.rules.needs.lists.is_empty()
    }

    /// The decision, given the velocities and lists read in the payment's write.
    pub fn decide(&self, known: &Known) -> Verdict {
        let matched: Vec<MatchedRule> = self
            .rules
            .rules
            .iter()
            .filter(|rule| rule.condition.matches(&self.facts, known))
            .map(|rule| MatchedRule { rule_id: rule.id, name: rule.name.clone(), action: rule.action })
            .collect();
        let decision = matched.first().map(|rule| match rule.action {
            Action::Review | Action::Challenge if self.payout => Action::Decline,
            action => action,
        });
        Verdict { decision, matched }
    }
}

/// The bucket a subject's payments take turns in: a hash of what is counted, the same on
/// every instance of the dashboard.
fn bucket(company_id: i64, subject: Subject, value: &str) -> i64 {
    let digest = sha2::Sha256::digest(format!("{company_id}:{subject:?}:{value}").as_bytes());
    i64::from(u16::from_be_bytes([digest[0], digest[1]]))
}

/// The velocities and list memberships read for a payment.
#[derive(Debug, Default)]
pub struct Known {
    /// Per subject: payments within 10 minutes, 1 hour, 24 hours, then their sums in the
    /// payment's currency.
    pub counted: Vec<(Subject, [i64; 6])>,
    /// `(list, kind)` as stored.
    pub listed: Vec<(String, String)>,
}

/// A row of [`read_known!`](crate::read_known): `("velocity", subject, counts and sums)`
/// or `(list, kind, nothing)`.
pub type KnownRow = (String, String, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

impl Known {
    pub fn from_rows(rows: Vec<KnownRow>) -> Known {
        let mut known = Known::default();
        for (source, name, a, b, c, d, e, f) in rows {
            if source != "velocity" {
                known.listed.push((source, name));
                continue;
            }
            let subject = match name.as_str() {
                "card" => Subject::Card,
                "email" => Subject::Email,
                _ => Subject::Ip,
            };
            known.counted.push((subject, [a, b, c, d, e, f].map(|n| n.unwrap_or(0))));
        }
        known
    }
}

impl Lookups for Known {
    fn velocity(&self, velocity: Velocity) -> i64 {
        let Some((_, counts)) = self.counted.iter().find(|(subject, _)| *subject == velocity.subject) else {
            return 0;
        };
        let window = match velocity.window {
            Window::TenMinutes => 0,
            Window::Hour => 1,
            Window::Day => 2,
        };
        counts[window + if velocity.measure == Measure::Sum { 3 } else { 0 }]
    }

    fn listed(&self, kind: ListKind, list: List) -> bool {
        self.listed.iter().any(|(l, k)| l == list.as_str() && k == kind.as_str())
    }
}

/// The starts of the three windows before `now`.
pub fn window_starts(now: chrono::NaiveDateTime) -> [chrono::NaiveDateTime; 3] {
    [Window::TenMinutes, Window::Hour, Window::Day].map(|window| now - window.duration())
}

/// Makes the payments of the same buckets take turns for the rest of the write.
pub trait TakeTurns {
    fn take_turns<'a>(&'a mut self, buckets: &'a [i64]) -> BoxFuture<'a, QueryResult<()>>;
}

/// Transaction-scoped advisory locks (no row is written), one per bucket, in the order
/// given (sorted): a payment waits for those of its card, e-mail and address before it.
/// One statement of fixed text (prepared once), whose locks are taken left to right; fewer
/// buckets repeat the last (a lock held already is taken again at once).
///
/// It also has the rest of the write use the plans made once for all payments: the
/// screening's read, fitted anew to each payment's values, cost more to plan than to run
/// (PostgreSQL keeps fitting it, as it reckons a generic plan reads a third of the rows
/// newer than a bound time).
impl TakeTurns for &dashboard_core::db::PgConn {
    fn take_turns<'a>(&'a mut self, buckets: &'a [i64]) -> BoxFuture<'a, QueryResult<()>> {
        use dashboard_core::db::prelude::keep_prepared;
        use diesel::sql_types::Integer;
        use diesel_async::RunQueryDsl;
        const GENERIC_PLANS: &str = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)";
        Box::pin(async move {
            let Some(&last) = buckets.last() else {
                return keep_prepared(diesel::sql_query(GENERIC_PLANS)).execute(self).await.map(drop);
            };
            let key = |n: usize| i32::try_from(buckets.get(n).copied().unwrap_or(last)).unwrap_or_default();
            keep_prepared(
                diesel::sql_query(
                    "SELECT set_config('plan_cache_mode', 'force_generic_plan', true), \
                     pg_advisory_xact_lock($1, $2), pg_advisory_xact_lock($1, $3), pg_advisory_xact_lock($1, $4)",
                )
                .bind::<Integer, _>(LOCK_CLASS)
                .bind::<Integer, _>(key(0))
                .bind::<Integer, _>(key(1))
                .bind::<Integer, _>(key(2)),
            )
            .execute(self)
            .await
            .map(drop)
        })
    }
}

/// Nothing to wait for: SQLite's writes take turns on its one write connection (the write
/// lane), so a payment's write already comes after every earlier one.
impl TakeTurns for dashboard_core::db::SqliteWriteConn {
    fn take_turns<'a>(&'a mut self, _buckets: &'a [i64]) -> BoxFuture<'a, QueryResult<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The first key of the velocities' advisory locks (`FRDV`), apart from other locks.
const LOCK_CLASS: i32 = 0x4652_4456;

/// Screens a payment with `$conn`, inside the write that stores it, before it is stored:
/// takes its turn among the payments of its card, e-mail and address, reads its
/// velocities and lists, and decides. Evaluates to
/// `Result<Verdict, diesel::result::Error>`.
#[macro_export]
macro_rules! screen {
    ($conn:ident, $screening:expr, $now:expr) => {{
        use dashboard_core::db::prelude::Together as _;
        let (__screening, __now): (&$crate::fraud::screening::Screening, chrono::NaiveDateTime) = ($screening, $now);
        let __buckets = __screening.buckets();
        // Sent together (one trip on PostgreSQL), run in this order: the turns, then the read.
        let __shared = $conn.together();
        let ((), __known) = futures_util::try_join!(
            __shared.with(|mut turn| async move {
                $crate::fraud::screening::TakeTurns::take_turns(turn.conn(), &__buckets).await
            }),
            __shared.with(|mut turn| async move {
                let __read = turn.conn();
                $crate::read_known!(__read, __screening, __now)
            }),
        )?;
        Ok::<_, diesel::result::Error>(__screening.decide(&__known))
    }};
}

/// The velocities and list memberships of a payment's [`Screening`] at `$now`, read with
/// `$conn` in one statement (one trip to the database; its text is the same every time,
/// so it is prepared once per connection): a row per subject with its payments' counts
/// and sums in the three windows, and a row per list entry holding the payment.
/// Evaluates to `Result<Known, diesel::result::Error>`.
#[macro_export]
macro_rules! read_known {
    ($conn:ident, $screening:expr, $now:expr) => {{
        use diesel::IntoSql as _;
        use diesel::query_dsl::CombineDsl as _;
        use diesel::sql_types::{BigInt as __BigInt, Nullable as __Nullable, Text as __Text, Timestamp as __Timestamp};
        use $crate::fraud::language::Subject as __Subject;
        use $crate::schema::{fraud_list_entries as __entries, payments as __payments};
        let (__screening, __now): (&$crate::fraud::screening::Screening, chrono::NaiveDateTime) = ($screening, $now);
        let __starts = $crate::fraud::screening::window_starts(__now);
        let __currency = __screening.facts.currency.clone();
        let __count = |since: chrono::NaiveDateTime| {
            diesel::dsl::sql::<__Nullable<__BigInt>>("CAST(SUM(CASE WHEN payments.created_at > ")
                .bind::<__Timestamp, _>(since)
                .sql(" THEN 1 ELSE 0 END) AS BIGINT)")
        };
        let __sum = |since: chrono::NaiveDateTime| {
            diesel::dsl::sql::<__Nullable<__BigInt>>("CAST(SUM(CASE WHEN payments.created_at > ")
                .bind::<__Timestamp, _>(since)
                .sql(" AND payments.currency = ")
                .bind::<__Text, _>(__currency.clone())
                .sql(" THEN payments.amount ELSE 0 END) AS BIGINT)")
        };
        let __velocities = |subject: &'static str| {
            (
                "velocity".into_sql::<__Text>(),
                subject.into_sql::<__Text>(),
                __count(__starts[0]),
                __count(__starts[1]),
                __count(__starts[2]),
                __sum(__starts[0]),
                __sum(__starts[1]),
                __sum(__starts[2]),
            )
        };
        let __recent = || {
            __payments::table
                .filter(__payments::company_id.eq(__screening.company_id))
                .filter(__payments::created_at.gt(__starts[2]))
        };
        let __no_lists = $crate::fraud::lists::Subjects::default();
        let __listed = if __screening.needs_lists() { &__screening.subjects } else { &__no_lists };
        let __none = || None::<i64>.into_sql::<__Nullable<__BigInt>>();
        let __statement = __recent()
            .filter(__payments::card_fingerprint.eq(__screening.counted(__Subject::Card)))
            .select(__velocities("card"))
            .union_all(
                __recent()
                    .filter(__payments::customer_email.eq(__screening.counted(__Subject::Email)))
                    .select(__velocities("email"))
                    .union_all(
                        __recent()
                            .filter(__payments::customer_ip.eq(__screening.counted(__Subject::Ip)))
                            .select(__velocities("ip"))
                            .union_all($crate::entries_listing!(__screening.company_id, __listed, __now).select((
                                __entries::list,
                                __entries::kind,
                                __none(),
                                __none(),
                                __none(),
                                __none(),
                                __none(),
                                __none(),
                            ))),
                    ),
            );
        keep_prepared(__statement)
            .load::<$crate::fraud::screening::KnownRow>($conn)
            .await
            .map($crate::fraud::screening::Known::from_rows)
    }};
}

/// Records what the rules decided for the payment `$public_id` being stored with `$conn`
/// (its rules, and a review case when it is held until `$due`). Evaluates to
/// `Result<(), diesel::result::Error>`.
#[macro_export]
macro_rules! record_verdict {
    ($conn:ident, $verdict:expr, $public_id:expr, $project_id:expr, $company_id:expr, $now:expr, $due:expr) => {{
        use diesel::IntoSql as _;
        use diesel::sql_types::{BigInt as __BigInt, Nullable as __Nullable, Text as __Text, Timestamp as __Timestamp};
        use $crate::schema::{fraud_checks as __checks, fraud_reviews as __reviews, payments as __payments};
        let __verdict: &$crate::fraud::screening::Verdict = $verdict;
        let (__public_id, __now): (&str, chrono::NaiveDateTime) = ($public_id, $now);
        if let (Some(__decision), Some(__rule)) = (__verdict.decision, __verdict.decided_by()) {
            let __matched = serde_json::to_string(&__verdict.matched).unwrap_or_default();
            let __of_payment = __payments::table.filter(__payments::public_id.eq(__public_id));
            diesel::insert_into(__checks::table)
                .values(__of_payment.select((
                    __payments::id,
                    __decision.as_str().into_sql::<__Text>(),
                    Some(__rule.rule_id).into_sql::<__Nullable<__BigInt>>(),
                    __matched.into_sql::<__Text>(),
                    __now.into_sql::<__Timestamp>(),
                )))
                .into_columns((
                    __checks::payment_id,
                    __checks::decision,
                    __checks::rule_id,
                    __checks::matched,
                    __checks::created_at,
                ))
                .execute($conn)
                .await?;
            if __decision == $crate::fraud::Action::Review {
                let __reasons: Vec<&str> = __verdict.matched.iter().map(|rule| rule.name.as_str()).collect();
                let __due: chrono::NaiveDateTime = $due;
                let (__project, __company): (i64, i64) = ($project_id, $company_id);
                diesel::insert_into(__reviews::table)
                    .values(__of_payment.select((
                        __payments::id,
                        __company.into_sql::<__BigInt>(),
                        __project.into_sql::<__BigInt>(),
                        $crate::fraud::ReviewStatus::Open.as_str().into_sql::<__Text>(),
                        __reasons.join(", ").into_sql::<__Text>(),
                        __now.into_sql::<__Timestamp>(),
                        __due.into_sql::<__Timestamp>(),
                    )))
                    .into_columns((
                        __reviews::payment_id,
                        __reviews::company_id,
                        __reviews::project_id,
                        __reviews::status,
                        __reviews::reasons,
                        __reviews::created_at,
                        __reviews::due_at,
                    ))
                    .execute($conn)
                    .await?;
            }
        }
        Ok::<(), diesel::result::Error>(())
    }};
}
