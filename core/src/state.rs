//! What every handler can reach: the database, the registry, the theme, the settings.

use std::sync::Arc;

use chrono::TimeDelta;

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
}

/// Shared application state, added to every request with poem's `Data`.
#[derive(Clone)]
pub struct AppState {
    pub db: DbPool,
    pub registry: &'static Registry,
    pub theme: Arc<Theme>,
    pub settings: Arc<Settings>,
    pub sms: Arc<dyn SmsSender>,
    /// The acquirer payments go to (the sandbox unless a real one is plugged in).
    pub connector: Arc<dyn crate::payments::connector::Connector>,
    /// Encrypts secrets at rest (TOTP secrets).
    pub secrets: SecretBox,
    /// Principals of recently used API tokens.
    pub token_principals: Arc<crate::tokens::TokenPrincipals>,
}
