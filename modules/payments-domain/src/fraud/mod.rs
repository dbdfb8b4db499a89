//! Fraud prevention: block and allow lists ([`lists`]), rules in a small language
//! ([`language`], kept by [`rules`]), the screening of every purchase and payout before
//! the acquirer ([`screening`], inside the write that starts the payment), the payments
//! held for review ([`reviews`]) and rules tried on past payments ([`backtest`]).

pub mod backtest;
pub mod geo;
pub mod language;
pub mod lists;
pub mod reviews;
pub mod rules;
pub mod screening;

use crate::model::text_enum;

text_enum!(
    /// What a matching rule does to a payment.
    Action as "fraud_action" {
        Decline => "decline" as "Decline",
        Review => "review" as "Hold for review",
        Challenge => "challenge" as "Require 3-D Secure",
        Allow => "allow" as "Allow",
    }
);

text_enum!(
    /// Whether a rule screens payments, or is a draft (tried in backtests only).
    RuleStatus as "fraud_rule_status" { Enabled => "enabled" as "Enabled", Draft => "draft" as "Draft" }
);

text_enum!(
    /// Where a payment held for review stands.
    ReviewStatus as "fraud_review_status" {
        Open => "open" as "Waiting for review",
        Approved => "approved" as "Approved (captured)",
        Declined => "declined" as "Declined (released)",
        Expired => "expired" as "Released at the deadline",
        Closed => "closed" as "Closed (no longer held)",
    }
);

text_enum!(
    /// Where a backtest stands.
    BacktestStatus as "fraud_backtest_status" {
        Running => "running" as "Running",
        Done => "done" as "Done",
        Failed => "failed" as "Failed",
    }
);

/// The code of a payment the rules declined; its reason names the rule (the merchant
/// sees it, the customer only that the payment was declined).
pub const DECLINE_CODE: &str = "fraud_declined";

/// The reason of a payment rule `name` declined.
pub fn decline_reason(name: &str) -> String {
    format!("Declined by the fraud rule \u{201c}{name}\u{201d}")
}

/// What the fraud rules decided for a payment some rule matched, as its detail shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FraudCheck {
    /// The action taken: the first matching rule's.
    pub decision: Action,
    /// Every rule that matched, in priority order, as they were then.
    pub rules: Vec<screening::MatchedRule>,
    /// The review case, for a payment held for review.
    pub review_id: Option<i64>,
    pub review_status: Option<ReviewStatus>,
}

/// What the rules decided for payment `payment_id`; none when no rule matched it.
pub async fn check_of(
    db: &dashboard_core::db::DbPool,
    payment_id: i64,
) -> Result<Option<FraudCheck>, dashboard_core::AppError> {
    use crate::schema::{fraud_checks, fraud_reviews};
    let found: Option<(String, String, Option<i64>, Option<String>)> = dashboard_core::db_run!(db, conn => {
        fraud_checks::table
            .left_join(fraud_reviews::table.on(fraud_reviews::payment_id.eq(fraud_checks::payment_id)))
            .filter(fraud_checks::payment_id.eq(payment_id))
            .select((fraud_checks::decision, fraud_checks::matched, fraud_reviews::id.nullable(), fraud_reviews::status.nullable()))
            .first(conn)
            .await
            .optional()
    })?;
    Ok(found.map(|(decision, matched, review_id, review_status)| FraudCheck {
        decision: Action::parse(&decision).unwrap_or(Action::Review),
        rules: serde_json::from_str(&matched).unwrap_or_default(),
        review_id,
        review_status: review_status.as_deref().and_then(ReviewStatus::parse),
    }))
}
