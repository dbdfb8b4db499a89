//! The sandbox acquirer: a simulated acquirer whose answers come from documented test
//! cards, behind the payments domain's connector trait.

use std::time::Duration;

use dashboard_payments_domain::card::Card;
use dashboard_payments_domain::connector::{Connector, ConnectorFuture, Outcome};

/// What a sandbox test card does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCardBehaviour {
    Approve,
    Decline { code: &'static str, reason: &'static str },
    ThreeDSecure,
    Timeout,
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
];

pub fn behaviour_of(number: &str) -> TestCardBehaviour {
    TEST_CARDS.iter().find(|(card, _)| *card == number).map(|(_, b)| *b).unwrap_or(TestCardBehaviour::Approve)
}

/// A simulated acquirer: decisions come from [`TEST_CARDS`], after `latency`.
pub struct SandboxAcquirer {
    pub latency: Duration,
}

impl SandboxAcquirer {
    fn reference() -> String {
        format!("sbx_{}", &dashboard_core::auth::random_token()[..20])
    }

    async fn answer(&self, behaviour: TestCardBehaviour) -> Outcome {
        tokio::time::sleep(self.latency).await;
        match behaviour {
            TestCardBehaviour::Approve => Outcome::Approved { reference: Self::reference() },
            TestCardBehaviour::Decline { code, reason } => Outcome::Declined { code, reason },
            TestCardBehaviour::ThreeDSecure => Outcome::ChallengeRequired { reference: Self::reference() },
            TestCardBehaviour::Timeout => Outcome::Failed { reason: "The acquirer did not answer in time.".to_owned() },
        }
    }
}

impl Connector for SandboxAcquirer {
    fn charge<'a>(&'a self, card: &'a Card, _amount: i64, _currency: &'a str, _capture: bool) -> ConnectorFuture<'a> {
        Box::pin(self.answer(behaviour_of(card.number.digits())))
    }

    fn capture<'a>(&'a self, _reference: &'a str, _amount: i64) -> ConnectorFuture<'a> {
        Box::pin(self.answer(TestCardBehaviour::Approve))
    }

    fn cancel<'a>(&'a self, _reference: &'a str) -> ConnectorFuture<'a> {
        Box::pin(self.answer(TestCardBehaviour::Approve))
    }

    fn refund<'a>(&'a self, _reference: &'a str, _amount: i64) -> ConnectorFuture<'a> {
        Box::pin(self.answer(TestCardBehaviour::Approve))
    }

    fn payout<'a>(&'a self, card: &'a Card, _amount: i64, _currency: &'a str) -> ConnectorFuture<'a> {
        let behaviour = match behaviour_of(card.number.digits()) {
            // Payouts have no customer challenge.
            TestCardBehaviour::ThreeDSecure => TestCardBehaviour::Approve,
            other => other,
        };
        Box::pin(self.answer(behaviour))
    }

    fn complete_challenge<'a>(&'a self, _reference: &'a str, passed: bool) -> ConnectorFuture<'a> {
        let behaviour = if passed {
            TestCardBehaviour::Approve
        } else {
            TestCardBehaviour::Decline { code: "3DS", reason: "3-D Secure authentication failed" }
        };
        Box::pin(self.answer(behaviour))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_card_passes_the_luhn_check() {
        for (number, _) in TEST_CARDS {
            assert!(dashboard_payments_domain::card::luhn_valid(number), "{number}");
        }
    }
}
