//! The acquirer behind the payments, as a trait so that a real one can be plugged in
//! (the sandbox acquirer of `dashboard-sandbox` is one).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use dashboard_core::{AppError, AppState};

use super::card::Card;
use super::model::OperationKind;

/// What the acquirer answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Approved {
        reference: String,
    },
    Declined {
        code: &'static str,
        reason: &'static str,
    },
    /// 3-D Secure: the customer must pass a challenge first.
    ChallengeRequired {
        reference: String,
    },
    /// No answer (timeout) or an error: the operation did not happen.
    Failed {
        reason: String,
    },
}

pub type ConnectorFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// An acquirer. Card data passed in lives only for the call. Every request carries
/// `order`, the operation's own reference ([`order_reference`]): the acquirer keeps it,
/// and [`Connector::inquire`] asks by it when an answer was lost.
pub trait Connector: Send + Sync {
    /// Charges a card: `capture` true is a sale, false an authorisation (hold);
    /// `strong_authentication` asks for 3-D Secure whatever the issuer would decide (a
    /// fraud rule wants it).
    fn charge<'a>(
        &'a self,
        order: &'a str,
        card: &'a Card,
        amount_minor: i64,
        currency: &'a str,
        capture: bool,
        strong_authentication: bool,
    ) -> ConnectorFuture<'a>;
    /// Captures (part of) an authorisation.
    fn capture<'a>(&'a self, order: &'a str, reference: &'a str, amount_minor: i64) -> ConnectorFuture<'a>;
    /// Releases an authorisation.
    fn cancel<'a>(&'a self, order: &'a str, reference: &'a str) -> ConnectorFuture<'a>;
    /// Refunds (part of) a captured payment.
    fn refund<'a>(&'a self, order: &'a str, reference: &'a str, amount_minor: i64) -> ConnectorFuture<'a>;
    /// Sends money to a card.
    fn payout<'a>(
        &'a self,
        order: &'a str,
        card: &'a Card,
        amount_minor: i64,
        currency: &'a str,
    ) -> ConnectorFuture<'a>;
    /// The customer's answer to a 3-D Secure challenge.
    fn complete_challenge<'a>(&'a self, reference: &'a str, passed: bool) -> ConnectorFuture<'a>;
    /// What became of a request whose answer never arrived (the server stopped while it
    /// waited, or the answer came too late): the acquirer's result for it, or
    /// [`Outcome::Failed`] when the acquirer never received it.
    fn inquire<'a>(&'a self, inquiry: &'a Inquiry) -> ConnectorFuture<'a>;
}

/// A request whose answer was lost, as the dashboard stored it.
#[derive(Debug, Clone)]
pub struct Inquiry {
    /// The operation's own reference, sent with the request.
    pub order: String,
    pub kind: OperationKind,
    pub amount_minor: i64,
    pub currency: String,
    /// The first six and last four digits of the card, for a charge or a payout.
    pub card: Option<(String, String)>,
    /// The acquirer's reference of the payment, for an operation on an existing one.
    pub reference: Option<String>,
}

/// The reference an operation is known by at the acquirer.
pub fn order_reference(operation_id: i64) -> String {
    format!("op_{operation_id}")
}

/// The acquirer the payments go to, as the start-up service of the crate that provides
/// it (the sandbox, or a real acquirer's crate) keeps it in the application state.
#[derive(Clone)]
pub struct Acquirer(pub Arc<dyn Connector>);

/// The application's acquirer.
pub fn of(state: &AppState) -> Result<&dyn Connector, AppError> {
    Ok(state.extension::<Acquirer>()?.0.as_ref())
}
