//! What every handler can reach: the database, the registry, the theme, the settings.

use std::sync::Arc;

use chrono::TimeDelta;

use crate::db::DbPool;
use crate::registry::Registry;
use crate::theme::Theme;

/// Settings the running application needs (the binary parses and validates them).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The address users open, printed at start-up and used in links.
    pub public_url: String,
    /// Mark cookies `Secure`; off only in the explicit plain-HTTP development mode.
    pub secure_cookies: bool,
    /// Absolute lifetime of a session.
    pub session_lifetime: TimeDelta,
}

/// Shared application state, added to every request with poem's `Data`.
#[derive(Clone)]
pub struct AppState {
    pub db: DbPool,
    pub registry: &'static Registry,
    pub theme: Arc<Theme>,
    pub settings: Arc<Settings>,
}
