//! What every handler can reach: the database, the registry, the theme, the settings and
//! what the registered services built.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::TimeDelta;
use poem::http::Extensions;

use crate::crypto::SecretBox;
use crate::db::DbPool;
use crate::registry::Registry;
use crate::sms::SmsSender;
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
    /// Idle timeout of sessions without permissions that need the second factor (those
    /// have 5 minutes, see [`crate::session::SECOND_FACTOR_IDLE`]).
    pub idle_timeout: TimeDelta,
    /// Consecutive failed sign-ins (password or code) that lock an account.
    pub lockout_attempts: i32,
    /// How long a locked account stays locked.
    pub lockout_duration: TimeDelta,
    /// No permission is exempt from the second factor.
    pub strict_mode: bool,
    /// Text messages a user may be sent per hour.
    pub sms_per_hour: u32,
    /// The values of the settings crates register ([`crate::hooks::Setting`]), checked;
    /// a setting missing here has its default.
    pub crate_settings: BTreeMap<&'static str, String>,
}

impl Settings {
    /// The value of a registered setting (its default when none was given).
    pub fn setting(&self, name: &str) -> &str {
        match self.crate_settings.get(name) {
            Some(value) => value,
            None => crate::hooks::Setting::all().get(name).map(|setting| setting.default).unwrap_or_default(),
        }
    }
}

/// Shared application state, added to every request with poem's `Data`.
#[derive(Clone)]
pub struct AppState {
    pub db: DbPool,
    pub registry: &'static Registry,
    pub theme: Arc<Theme>,
    pub settings: Arc<Settings>,
    pub sms: Arc<dyn SmsSender>,
    /// What the registered services built at start-up ([`crate::hooks::Service`]).
    pub extensions: Arc<Extensions>,
    /// Encrypts secrets at rest (TOTP secrets).
    pub secrets: SecretBox,
    /// Principals of recently used API tokens.
    pub token_principals: Arc<crate::tokens::TokenPrincipals>,
    /// Turns for password hashing (sign-in storms wait here, or are turned away).
    pub hashing: Arc<crate::auth::HashingTurns>,
    /// The requests being answered, which long jobs give way to.
    pub requests: Arc<crate::pacing::Requests>,
}

impl AppState {
    /// A value a registered service built at start-up; an internal error when no service
    /// built one (a crate is missing from the binary).
    pub fn extension<T: Send + Sync + 'static>(&self) -> Result<&T, crate::AppError> {
        self.extensions
            .get::<T>()
            .ok_or_else(|| crate::AppError::Internal(format!("no service provides {}", std::any::type_name::<T>())))
    }
}
