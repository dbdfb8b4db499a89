//! The sandbox acquirer: a simulated acquirer whose answers come from documented test
//! cards, behind the payments domain's connector trait.

use std::time::Duration;

use dashboard_payments_domain::card::Card;
use dashboard_payments_domain::connector::{Connector, ConnectorFuture, Inquiry, Outcome};
use dashboard_payments_domain::model::OperationKind;

/// What a sandbox test card does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCardBehaviour {
    Approve,
    Decline {
        code: &'static str,
        reason: &'static str,
    },
    ThreeDSecure,
    Timeout,
    /// Approved; its refunds never reach the acquirer: they get no answer, and asked
    /// about later the sandbox says it never received them (the refund is given back).
    RefundsLost,
}

/// The sandbox's documented test cards (all pass the Luhn check). Any other valid card
/// number is approved.
pub const TEST_CARDS: &[(&str, TestCardBehaviour)] = &[
    ("4242424242424242", TestCardBehaviour::Approve),
    ("5555555555554444", TestCardBehaviour::Approve),
    ("378282246310005", TestCardBehaviour::Approve),
    ("4000000000009995", TestCardBehaviour::Decline { code: "51", reason: "Insufficient funds" }),
    ("4000000000000002", TestCardBehaviour::Decline { code: "05", reason: "Do not honour" }),
    ("4000000000009987", TestCardBehaviour::Decline { code: "41", reason: "Lost card" }),
    ("4000000000009979", TestCardBehaviour::Decline { code: "43", reason: "Stolen card" }),
    ("4000000000000069", TestCardBehaviour::Decline { code: "54", reason: "Expired card" }),
    ("4000000000003220", TestCardBehaviour::ThreeDSecure),
    ("4000000000000119", TestCardBehaviour::Timeout),
    ("4000000000000127", TestCardBehaviour::RefundsLost),
];

pub fn behaviour_of(number: &str) -> TestCardBehaviour {
    TEST_CARDS.iter().find(|(card, _)| *card == number).map(|(_, b)| *b).unwrap_or(TestCardBehaviour::Approve)
}

/// The behaviour of the test card shown as `first6`…`last4` (the documented test cards
/// differ in both); any other card is approved, as [`behaviour_of`] says.
pub fn behaviour_of_masked(first6: &str, last4: &str) -> TestCardBehaviour {
    TEST_CARDS
        .iter()
        .find(|(card, _)| card.starts_with(first6) && card.ends_with(last4))
        .map(|(_, b)| *b)
        .unwrap_or(TestCardBehaviour::Approve)
}

/// A simulated acquirer: decisions come from [`TEST_CARDS`], after `latency`. It keeps
/// no record of its own: every request it is sent, it carries out as the card says, so
/// that asking about one later ([`Connector::inquire`]) gives the answer it gave, or would
/// have given, then.
pub struct SandboxAcquirer {
    pub latency: Duration,
}

impl SandboxAcquirer {
    /// The sandbox's reference of the payment an order started.
    fn reference(order: &str) -> String {
        format!("sbx_{order}")
    }

    /// The reference of a payment whose refunds get lost, so that a refund knows it.
    fn refunds_lost_reference(order: &str) -> String {
        format!("sbx_lost_{order}")
    }

    fn loses_refunds_of(reference: &str) -> bool {
        reference.starts_with("sbx_lost_")
    }

    async fn answer(&self, order: &str, behaviour: TestCardBehaviour) -> Outcome {
        // At no latency, at once: a timer would wait for its next tick (a millisecond).
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        Self::decided(order, behaviour)
    }

    fn decided(order: &str, behaviour: TestCardBehaviour) -> Outcome {
        match behaviour {
            TestCardBehaviour::Approve => Outcome::Approved { reference: Self::reference(order) },
            TestCardBehaviour::Decline { code, reason } => Outcome::Declined { code, reason },
            TestCardBehaviour::ThreeDSecure => Outcome::ChallengeRequired { reference: Self::reference(order) },
            TestCardBehaviour::Timeout => Outcome::Failed { reason: "The acquirer did not answer in time.".to_owned() },
            TestCardBehaviour::RefundsLost => Outcome::Approved { reference: Self::refunds_lost_reference(order) },
        }
    }
}

/// Payouts have no customer challenge, and no refunds.
fn for_payout(behaviour: TestCardBehaviour) -> TestCardBehaviour {
    match behaviour {
        TestCardBehaviour::ThreeDSecure | TestCardBehaviour::RefundsLost => TestCardBehaviour::Approve,
        other => other,
    }
}

impl Connector for SandboxAcquirer {
    fn charge<'a>(
        &'a self,
        order: &'a str,
        card: &'a Card,
        _amount: i64,
        _currency: &'a str,
        _capture: bool,
        strong_authentication: bool,
    ) -> ConnectorFuture<'a> {
        let behaviour = match behaviour_of(card.number.digits()) {
            // The issuer challenges a card it would approve when 3-D Secure is asked for.
            TestCardBehaviour::Approve if strong_authentication => TestCardBehaviour::ThreeDSecure,
            behaviour => behaviour,
        };
        Box::pin(self.answer(order, behaviour))
    }

    fn capture<'a>(&'a self, order: &'a str, _reference: &'a str, _amount: i64) -> ConnectorFuture<'a> {
        Box::pin(self.answer(order, TestCardBehaviour::Approve))
    }

    fn cancel<'a>(&'a self, order: &'a str, _reference: &'a str) -> ConnectorFuture<'a> {
        Box::pin(self.answer(order, TestCardBehaviour::Approve))
    }

    fn refund<'a>(&'a self, order: &'a str, reference: &'a str, _amount: i64) -> ConnectorFuture<'a> {
        if Self::loses_refunds_of(reference) {
            return Box::pin(std::future::pending());
        }
        Box::pin(self.answer(order, TestCardBehaviour::Approve))
    }

    fn payout<'a>(&'a self, order: &'a str, card: &'a Card, _amount: i64, _currency: &'a str) -> ConnectorFuture<'a> {
        Box::pin(self.answer(order, for_payout(behaviour_of(card.number.digits()))))
    }

    fn complete_challenge<'a>(&'a self, reference: &'a str, passed: bool) -> ConnectorFuture<'a> {
        let outcome = if passed {
            Outcome::Approved { reference: reference.to_owned() }
        } else {
            Outcome::Declined { code: "3DS", reason: "3-D Secure authentication failed" }
        };
        Box::pin(async move {
            tokio::time::sleep(self.latency).await;
            outcome
        })
    }

    fn inquire<'a>(&'a self, inquiry: &'a Inquiry) -> ConnectorFuture<'a> {
        let card = inquiry.card.as_ref().map(|(first6, last4)| behaviour_of_masked(first6, last4));
        let behaviour = match (inquiry.kind, card) {
            (OperationKind::Sale | OperationKind::Auth, Some(card)) => card,
            (OperationKind::Payout, Some(card)) => for_payout(card),
            (OperationKind::Refund, _) if inquiry.reference.as_deref().is_some_and(Self::loses_refunds_of) => {
                return Box::pin(async { Outcome::Failed { reason: "The sandbox never received it.".to_owned() } });
            }
            (OperationKind::Capture | OperationKind::Cancel | OperationKind::Refund | OperationKind::Reversal, _) => {
                TestCardBehaviour::Approve
            }
            _ => return Box::pin(async { Outcome::Failed { reason: "The sandbox never received it.".to_owned() } }),
        };
        Box::pin(async move { Self::decided(&inquiry.order, behaviour) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_card_is_known_by_its_masked_digits_too() {
        for (number, behaviour) in TEST_CARDS {
            assert_eq!(behaviour_of_masked(&number[..6], &number[number.len() - 4..]), *behaviour, "{number}");
        }
        assert_eq!(behaviour_of_masked("411111", "1111"), TestCardBehaviour::Approve);
    }

    #[test]
    fn every_test_card_passes_the_luhn_check() {
        for (number, _) in TEST_CARDS {
            assert!(dashboard_payments_domain::card::luhn_valid(number), "{number}");
        }
    }
}
