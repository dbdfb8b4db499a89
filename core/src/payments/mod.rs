//! Payments: the model, the double-entry ledger, the acquirer connector with its
//! sandbox, idempotency, and the operations every section uses.

pub mod callbacks;
pub mod card;
pub mod connector;
pub mod history;
pub mod idempotency;
pub mod ledger;
pub mod model;
pub mod search;
pub mod service;
