//! The payment and operation model and its state machine.

use dashboard_core::error::AppError;

/// An enum stored as text, with the label people read (also as `{{human "<set>" value}}`
/// in pages).
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident as $set:literal { $($variant:ident => $text:literal as $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, poem_openapi::Enum)]
        #[serde(rename_all = "snake_case")]
        #[oai(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// As people read it.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }

        // Pages say `{{human "<set>" value}}`.
        dashboard_core::register!(dashboard_core::labels::LabelSet {
            name: $set,
            labels: || vec![$(($text, $label)),+],
        });
    };
}
pub(crate) use text_enum;

text_enum!(
    /// What kind of payment.
    Kind as "payment_kind" { Purchase => "purchase" as "Purchase", Payout => "payout" as "Payout", Recurring => "recurring" as "Recurring", PaymentLink => "payment_link" as "Payment link" }
);
text_enum!(
    /// One-step (sale) or two-step (authorise, then capture or cancel).
    Flow as "payment_flow" { OneStep => "one_step" as "One step (sale)", TwoStep => "two_step" as "Two steps (hold, then capture)" }
);
text_enum!(
    /// How the customer pays.
    Method as "payment_method" { Card => "card" as "Card", BankTransfer => "bank_transfer" as "Bank transfer", Wallet => "wallet" as "Wallet" }
);
text_enum!(
    /// Where a payment stands.
    Status as "payment_status" {
        Processing => "processing" as "Processing",
        AwaitingChallenge => "awaiting_challenge" as "Awaiting 3-D Secure",
        Authorized => "authorized" as "Held",
        Capturing => "capturing" as "Capturing",
        Cancelling => "cancelling" as "Releasing",
        Completed => "completed" as "Completed",
        PartiallyRefunded => "partially_refunded" as "Partially refunded",
        Refunded => "refunded" as "Refunded",
        Reversed => "reversed" as "Reversed",
        Cancelled => "cancelled" as "Released",
        Declined => "declined" as "Declined",
        Failed => "failed" as "Failed",
        PaidOut => "paid_out" as "Paid out",
        ChargedBack => "charged_back" as "Charged back",
    }
);
text_enum!(
    /// An operation on a payment.
    OperationKind as "operation_kind" {
        Sale => "sale" as "Sale",
        Auth => "auth" as "Hold",
        Capture => "capture" as "Capture",
        Cancel => "cancel" as "Release",
        Refund => "refund" as "Refund",
        Reversal => "reversal" as "Reversal",
        Payout => "payout" as "Payout",
        Recurring => "recurring" as "Recurring",
        Chargeback => "chargeback" as "Chargeback",
        ChargebackReversal => "chargeback_reversal" as "Chargeback won back",
    }
);
text_enum!(
    /// Where a chargeback case stands: the merchant answers a new one by accepting it or
    /// disputing it; the acquirer decides a dispute.
    ChargebackStatus as "chargeback_status" {
        New => "new" as "Needs an answer",
        Accepted => "accepted" as "Accepted",
        Disputed => "disputed" as "Disputed",
        Won => "won" as "Won",
        Lost => "lost" as "Lost",
    }
);
text_enum!(
    /// Where a payment link stands: customers pay only an active one.
    LinkStatus as "link_status" {
        Active => "active" as "Active",
        Exhausted => "exhausted" as "Fully paid",
        Expired => "expired" as "Expired",
        Deactivated => "deactivated" as "Deactivated",
    }
);
text_enum!(
    /// Where an operation stands.
    OperationStatus as "operation_status" { Pending => "pending" as "Pending", Success => "success" as "Succeeded", Declined => "declined" as "Declined", Failed => "failed" as "Failed" }
);

/// The statuses from which an operation may start (the state machine's edges).
pub fn allowed_from(kind: OperationKind) -> &'static [Status] {
    match kind {
        OperationKind::Capture | OperationKind::Cancel => &[Status::Authorized],
        OperationKind::Refund => &[Status::Completed, Status::PartiallyRefunded],
        OperationKind::Reversal => &[Status::Completed],
        OperationKind::Chargeback => &[Status::Completed, Status::PartiallyRefunded],
        OperationKind::ChargebackReversal => &[Status::ChargedBack],
        // These start a payment.
        OperationKind::Sale | OperationKind::Auth | OperationKind::Payout | OperationKind::Recurring => &[],
    }
}

/// The clear error for an operation the payment's status does not allow.
pub fn illegal(kind: OperationKind, status: Status) -> AppError {
    let what = match kind {
        OperationKind::Capture => "captured",
        OperationKind::Cancel => "released",
        OperationKind::Refund => "refunded",
        OperationKind::Reversal => "reversed",
        OperationKind::Chargeback => "charged back",
        _ => "changed",
    };
    AppError::Conflict(format!("A payment that is {} cannot be {what}.", status.as_str().replace('_', " ")))
}

/// Parses an ISO 4217 currency code that the dashboard knows (three capital letters).
pub fn currency(code: &str) -> Result<String, AppError> {
    let code = code.trim().to_ascii_uppercase();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) && dashboard_core::money::known(&code) {
        Ok(code)
    } else {
        Err(AppError::BadRequest(format!("{code:?} is not a supported ISO 4217 currency.")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dashboard_core::labels;

    /// Every value of `all` is labelled in `set` as its enum says, for people (not as stored).
    fn labelled<T: Copy>(set: &str, all: &[T], text: fn(T) -> &'static str, label: fn(T) -> &'static str) {
        for value in all {
            let (text, label) = (text(*value), label(*value));
            assert_eq!(labels::find(set, text), Some(label), "{set}: {text}");
            assert!(!label.contains('_') && label.starts_with(char::is_uppercase), "{set}: {label:?}");
        }
    }

    #[test]
    fn every_value_people_see_has_a_label() {
        labelled("payment_kind", Kind::ALL, Kind::as_str, Kind::label);
        labelled("payment_flow", Flow::ALL, Flow::as_str, Flow::label);
        labelled("payment_method", Method::ALL, Method::as_str, Method::label);
        labelled("payment_status", Status::ALL, Status::as_str, Status::label);
        labelled("operation_kind", OperationKind::ALL, OperationKind::as_str, OperationKind::label);
        labelled("operation_status", OperationStatus::ALL, OperationStatus::as_str, OperationStatus::label);
        labelled("chargeback_status", ChargebackStatus::ALL, ChargebackStatus::as_str, ChargebackStatus::label);
        labelled("link_status", LinkStatus::ALL, LinkStatus::as_str, LinkStatus::label);
        use crate::fraud::{Action, BacktestStatus, ReviewStatus, RuleStatus, language::List};
        labelled("fraud_action", Action::ALL, Action::as_str, Action::label);
        labelled("fraud_rule_status", RuleStatus::ALL, RuleStatus::as_str, RuleStatus::label);
        labelled("fraud_review_status", ReviewStatus::ALL, ReviewStatus::as_str, ReviewStatus::label);
        labelled("fraud_backtest_status", BacktestStatus::ALL, BacktestStatus::as_str, BacktestStatus::label);
        labelled("fraud_list", List::ALL, List::as_str, List::label);
        use crate::page_styles::{Font, Placement};
        labelled("page_font", Font::ALL, Font::as_str, Font::label);
        labelled("logo_placement", Placement::ALL, Placement::as_str, Placement::label);
        use crate::ledger::{ACQUIRER, AUTHORIZATIONS, HELD, MERCHANT, PAYOUTS};
        for account in [ACQUIRER, MERCHANT, AUTHORIZATIONS, HELD, PAYOUTS] {
            assert!(labels::find("ledger_account", account).is_some(), "{account}");
        }
        for number in
            ["4242424242424242", "5555555555554444", "378282246310005", "6011000000000004", "3530111333300000"]
        {
            let brand = crate::card::CardNumber::parse(number).expect("a valid number").brand();
            assert!(labels::find("card_brand", brand).is_some(), "{brand}");
            assert!(labels::find("card_brand_short", brand).is_some(), "{brand}");
        }
    }
}
