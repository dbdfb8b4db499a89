//! The payments domain: the model and state machine, the double-entry ledger,
//! idempotency, the acquirer connector, callbacks and the registry search. Every section
//! that works with payments builds on this crate; it registers no section of its own,
//! only its tables' migrations, the callbacks' delivery job and the `ledger` command.

pub mod callback_targets;
pub mod callbacks;
pub mod card;
pub mod chargebacks;
pub mod checkout;
pub mod connector;
pub mod entered;
pub mod finance;
pub mod fraud;
pub mod idempotency;
pub mod ledger;
pub mod links;
pub mod model;
pub mod moto;
pub mod page_styles;
pub mod payouts;
pub mod records;
pub mod recovery;
pub mod schema;
pub mod search;
pub mod service;

dashboard_core::register_migrations!(
    sqlite: "../../migrations/payments/sqlite",
    postgres: "../../migrations/payments/postgres",
);

/// Re-exports used by this crate's macros. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use dashboard_core as core;
}
