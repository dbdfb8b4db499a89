//! The core of the merchant dashboard: the user, role and second-factor model, the section
//! registry, the database layer (SQLite and PostgreSQL through one code path), errors and
//! themed rendering. Sections are module crates that depend on this crate only.

pub mod api;
pub mod audit;
pub mod auth;
pub mod compression;
pub mod crypto;
pub mod cursor;
pub mod db;
pub mod directory;
pub mod error;
pub mod export;
pub mod hooks;
pub mod labels;
pub mod limits;
pub mod links;
pub mod mail;
pub mod metrics;
pub mod money;
pub mod origin;
pub mod pacing;
pub mod pager;
pub mod preferences;
pub mod rate_limit;
pub mod registry;
pub mod reports;
pub mod schema;
pub mod second_factor;
pub mod security_headers;
pub mod session;
pub mod sms;
pub mod state;
pub mod theme;
pub mod throttle;
pub mod time;
pub mod tokens;
pub mod web;

// Linked for its `bundled` feature: SQLite is compiled in, no system library needed.
use libsqlite3_sys as _;

pub use auth::Principal;
pub use error::{ApiError, ApiResult, AppError};
pub use registry::{Access, Api, BuiltinRole, Nav, Page, Permission, Section, Template};
pub use state::AppState;
pub use web::PageContext;

/// Re-exports used by this crate's macros, so that section crates need no extra
/// dependencies for them. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use diesel_migrations;
    pub use inventory;
    pub use poem::EndpointExt;
    pub use poem::http::Method;
}
