//! Configuration: command-line flags, `DASHBOARD_*` environment variables and an optional
//! TOML file, in that order of precedence, over documented defaults. Everything is
//! checked at start-up; a bad value stops the program with a message naming the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use dashboard_core::hooks::Setting;
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/dashboard.db";
pub const DEFAULT_THEME: &str = "default";
pub const DEFAULT_SESSION_LIFETIME_HOURS: u32 = 12;
pub const DEFAULT_POOL_SIZE: usize = 16;
pub const DEFAULT_IDLE_TIMEOUT_MINUTES: u32 = 30;
pub const DEFAULT_LOCKOUT_ATTEMPTS: u32 = 5;
pub const DEFAULT_LOCKOUT_MINUTES: u32 = 30;
pub const DEFAULT_SMS_OUTBOX: &str = "data/sms-outbox.jsonl";
pub const DEFAULT_SMS_PER_HOUR: u32 = 5;
pub const DEFAULT_SECRET_KEY_FILE: &str = "data/secret.key";

/// Settings every command needs: where the configuration file and the database are.
#[derive(Debug, Clone, Default, Args)]
pub struct DatabaseArgs {
    /// TOML configuration file; its keys are the long flag names with underscores.
    #[arg(long, env = "DASHBOARD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH (default sqlite://data/dashboard.db) or postgres://…
    #[arg(long, env = "DASHBOARD_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
}

/// Settings of the web server.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "DASHBOARD_LISTEN")]
    pub listen: Option<String>,
    /// Embedded theme: "default" or "dark".
    #[arg(long, env = "DASHBOARD_THEME")]
    pub theme: Option<String>,
    /// A theme folder whose templates/ and static/ override the theme's files.
    #[arg(long, env = "DASHBOARD_THEME_DIR")]
    pub theme_dir: Option<PathBuf>,
    /// The address users open, for printed links [default: http:// + the listen address].
    #[arg(long, env = "DASHBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Development only: cookies without `Secure`, for plain http:// on hosts other than
    /// localhost.
    #[arg(long, env = "DASHBOARD_PLAIN_HTTP")]
    pub plain_http: Option<bool>,
    /// Absolute session lifetime in hours [default: 12].
    #[arg(long, env = "DASHBOARD_SESSION_LIFETIME_HOURS")]
    pub session_lifetime_hours: Option<u32>,
    /// Database connections in the pool [default: 16].
    #[arg(long, env = "DASHBOARD_POOL_SIZE")]
    pub pool_size: Option<usize>,
    /// Log format: "text" or "json" [default: text].
    #[arg(long, env = "DASHBOARD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Idle timeout in minutes of sessions without permissions that need the second
    /// factor; those always time out after 5 minutes [default: 30].
    #[arg(long, env = "DASHBOARD_IDLE_TIMEOUT_MINUTES")]
    pub idle_timeout_minutes: Option<u32>,
    /// Consecutive failed sign-ins that lock an account [default: 5].
    #[arg(long, env = "DASHBOARD_LOCKOUT_ATTEMPTS")]
    pub lockout_attempts: Option<u32>,
    /// Minutes a locked account stays locked [default: 30].
    #[arg(long, env = "DASHBOARD_LOCKOUT_MINUTES")]
    pub lockout_minutes: Option<u32>,
    /// Strict mode: no permission is exempt from the second factor [default: false].
    #[arg(long, env = "DASHBOARD_STRICT_MODE")]
    pub strict_mode: Option<bool>,
    /// File the text messages are appended to, one JSON object per line
    /// [default: data/sms-outbox.jsonl].
    #[arg(long, env = "DASHBOARD_SMS_OUTBOX")]
    pub sms_outbox: Option<PathBuf>,
    /// Send text messages through this SMS provider URL (`POST` JSON `{to, text}`)
    /// instead of the outbox file.
    #[arg(long, env = "DASHBOARD_SMS_HTTP_URL")]
    pub sms_http_url: Option<String>,
    /// Bearer token for the SMS provider.
    #[arg(long, env = "DASHBOARD_SMS_HTTP_TOKEN", hide_env_values = true)]
    pub sms_http_token: Option<String>,
    /// Text messages one user may be sent per hour [default: 5].
    #[arg(long, env = "DASHBOARD_SMS_PER_HOUR")]
    pub sms_per_hour: Option<u32>,
    /// File with the key that encrypts secrets at rest; created on first start
    /// [default: data/secret.key].
    #[arg(long, env = "DASHBOARD_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// The registered crates' settings given as flags or in the environment, by name (see
    /// [`with_crate_settings`]).
    #[arg(skip)]
    pub crate_settings: BTreeMap<String, String>,
}

/// Adds a flag (with its environment variable) for every setting a crate registers.
pub fn with_crate_settings(mut command: clap::Command) -> clap::Command {
    for setting in Setting::all().into_values() {
        command = command.arg(
            clap::Arg::new(setting.name)
                .long(setting.flag())
                .env(setting.env())
                .value_name("VALUE")
                .help(format!("{} [default: {}].", setting.help, setting.default)),
        );
    }
    command
}

impl ServeArgs {
    /// Takes the registered crates' settings from parsed arguments.
    pub fn read_crate_settings(&mut self, matches: &clap::ArgMatches) {
        for name in Setting::all().into_keys() {
            if let Ok(Some(value)) = matches.try_get_one::<String>(name) {
                self.crate_settings.insert(name.to_owned(), value.clone());
            }
        }
    }
}

/// The keys a configuration file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    theme: Option<String>,
    theme_dir: Option<PathBuf>,
    public_url: Option<String>,
    plain_http: Option<bool>,
    session_lifetime_hours: Option<u32>,
    pool_size: Option<usize>,
    log_format: Option<String>,
    idle_timeout_minutes: Option<u32>,
    lockout_attempts: Option<u32>,
    lockout_minutes: Option<u32>,
    strict_mode: Option<bool>,
    sms_outbox: Option<PathBuf>,
    sms_http_url: Option<String>,
    sms_http_token: Option<String>,
    sms_per_hour: Option<u32>,
    secret_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The resolved and checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub theme: String,
    pub theme_dir: Option<PathBuf>,
    pub public_url: String,
    pub plain_http: bool,
    pub session_lifetime_hours: u32,
    pub pool_size: usize,
    pub log_format: LogFormat,
    pub idle_timeout_minutes: u32,
    pub lockout_attempts: u32,
    pub lockout_minutes: u32,
    pub strict_mode: bool,
    pub sms_outbox: PathBuf,
    pub sms_http_url: Option<String>,
    pub sms_http_token: Option<String>,
    pub sms_per_hour: u32,
    pub secret_key_file: PathBuf,
    /// The registered crates' settings, checked (a missing one has its default).
    pub crate_settings: BTreeMap<&'static str, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Resolves flags and environment (already merged by clap) over the file over defaults.
    pub fn resolve(database: &DatabaseArgs, serve: &ServeArgs) -> Result<Config, ConfigError> {
        let (file, mut file_settings) = match &database.config {
            Some(path) => read_file(path)?,
            None => (FileConfig::default(), BTreeMap::new()),
        };
        let listen_text = pick(&serve.listen, file.listen, DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError(format!(
                "listen address {listen_text:?} (--listen, DASHBOARD_LISTEN) is not an address like 127.0.0.1:8080"
            ))
        })?;
        let database_url = pick(&database.database_url, file.database_url, DEFAULT_DATABASE_URL.to_owned());
        dashboard_core::db::parse_url(&database_url)
            .map_err(|e| ConfigError(format!("database URL (--database-url, DASHBOARD_DATABASE_URL): {e}")))?;
        let theme = pick(&serve.theme, file.theme, DEFAULT_THEME.to_owned());
        let theme_dir = serve.theme_dir.clone().or(file.theme_dir);
        if let Some(dir) = &theme_dir
            && !dir.is_dir()
        {
            return Err(ConfigError(format!(
                "theme folder {} (--theme-dir, DASHBOARD_THEME_DIR) does not exist",
                dir.display()
            )));
        }
        let public_url = pick(&serve.public_url, file.public_url, default_public_url(listen));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError(format!(
                "public URL {public_url:?} (--public-url, DASHBOARD_PUBLIC_URL) must start with http:// or https://"
            )));
        }
        let session_lifetime_hours =
            pick(&serve.session_lifetime_hours, file.session_lifetime_hours, DEFAULT_SESSION_LIFETIME_HOURS);
        if !(1..=24 * 7).contains(&session_lifetime_hours) {
            return Err(ConfigError("session lifetime (--session-lifetime-hours) must be 1 to 168 hours".to_owned()));
        }
        let pool_size = pick(&serve.pool_size, file.pool_size, DEFAULT_POOL_SIZE);
        if !(1..=512).contains(&pool_size) {
            return Err(ConfigError("pool size (--pool-size) must be 1 to 512".to_owned()));
        }
        let log_format = match pick(&serve.log_format, file.log_format, "text".to_owned()).as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError(format!(
                    "log format {other:?} (--log-format, DASHBOARD_LOG_FORMAT) must be \"text\" or \"json\""
                )));
            }
        };
        let idle_timeout_minutes = in_range(
            "idle timeout (--idle-timeout-minutes)",
            pick(&serve.idle_timeout_minutes, file.idle_timeout_minutes, DEFAULT_IDLE_TIMEOUT_MINUTES),
            1,
            24 * 60,
        )?;
        let lockout_attempts = in_range(
            "lockout attempts (--lockout-attempts)",
            pick(&serve.lockout_attempts, file.lockout_attempts, DEFAULT_LOCKOUT_ATTEMPTS),
            1,
            100,
        )?;
        let lockout_minutes = in_range(
            "lockout time (--lockout-minutes)",
            pick(&serve.lockout_minutes, file.lockout_minutes, DEFAULT_LOCKOUT_MINUTES),
            1,
            7 * 24 * 60,
        )?;
        let sms_per_hour = in_range(
            "SMS per hour (--sms-per-hour)",
            pick(&serve.sms_per_hour, file.sms_per_hour, DEFAULT_SMS_PER_HOUR),
            1,
            1000,
        )?;
        let sms_http_url = serve.sms_http_url.clone().or(file.sms_http_url);
        if let Some(url) = &sms_http_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError(format!(
                "SMS provider URL {url:?} (--sms-http-url, DASHBOARD_SMS_HTTP_URL) must start with http:// or https://"
            )));
        }
        let mut crate_settings = BTreeMap::new();
        for (name, setting) in Setting::all() {
            let given = serve.crate_settings.get(name).cloned().or_else(|| file_settings.remove(name));
            if let Some(value) = given {
                crate_settings.insert(name, setting.checked(&value).map_err(ConfigError)?);
            }
        }
        Ok(Config {
            crate_settings,
            sms_http_url,
            sms_http_token: serve.sms_http_token.clone().or(file.sms_http_token),
            idle_timeout_minutes,
            lockout_attempts,
            lockout_minutes,
            strict_mode: pick(&serve.strict_mode, file.strict_mode, false),
            sms_outbox: pick(&serve.sms_outbox, file.sms_outbox, PathBuf::from(DEFAULT_SMS_OUTBOX)),
            sms_per_hour,
            secret_key_file: pick(&serve.secret_key_file, file.secret_key_file, PathBuf::from(DEFAULT_SECRET_KEY_FILE)),
            listen,
            database_url,
            theme,
            theme_dir,
            public_url: public_url.trim_end_matches('/').to_owned(),
            plain_http: pick(&serve.plain_http, file.plain_http, false),
            session_lifetime_hours,
            pool_size,
            log_format,
        })
    }
}

fn in_range(what: &str, value: u32, min: u32, max: u32) -> Result<u32, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError(format!("{what} must be {min} to {max}, not {value}")))
    }
}

/// Flag or environment first, then the file, then the default.
fn pick<T: Clone>(flag: &Option<T>, file: Option<T>, default: T) -> T {
    flag.clone().or(file).unwrap_or(default)
}

/// The file's own keys, and the values of the registered crates' settings it holds.
fn read_file(path: &Path) -> Result<(FileConfig, BTreeMap<&'static str, String>), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read the configuration file {}: {e}", path.display())))?;
    let problem = |e: &dyn std::fmt::Display| ConfigError(format!("configuration file {}: {e}", path.display()));
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| problem(&e))?;
    let mut crate_settings = BTreeMap::new();
    for name in Setting::all().into_keys() {
        if let Some(value) = table.remove(name) {
            // A number or a boolean is written as such in TOML; its text is the value.
            let text = match value {
                toml::Value::String(text) => text,
                other => other.to_string(),
            };
            crate_settings.insert(name, text);
        }
    }
    let file = FileConfig::deserialize(table).map_err(|e| problem(&e))?;
    Ok((file, crate_settings))
}

fn default_public_url(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", listen.port())
    } else {
        format!("http://{listen}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::resolve(&DatabaseArgs::default(), &ServeArgs::default()).expect("defaults are valid");
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.public_url, "http://127.0.0.1:8080");
        assert!(!config.plain_http);
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        let serve = ServeArgs { listen: Some("localhost".to_owned()), ..ServeArgs::default() };
        let error = Config::resolve(&DatabaseArgs::default(), &serve).expect_err("not an address");
        assert!(error.to_string().contains("DASHBOARD_LISTEN"), "{error}");

        let database = DatabaseArgs { database_url: Some("mysql://x".to_owned()), ..DatabaseArgs::default() };
        let error = Config::resolve(&database, &ServeArgs::default()).expect_err("unsupported scheme");
        assert!(error.to_string().contains("DASHBOARD_DATABASE_URL"), "{error}");

        let serve = ServeArgs { log_format: Some("xml".to_owned()), ..ServeArgs::default() };
        assert!(Config::resolve(&DatabaseArgs::default(), &serve).is_err());
    }

    #[test]
    fn a_crates_setting_comes_from_the_flag_or_the_file_and_is_checked() {
        let dir = std::env::temp_dir().join(format!("dashboard-config-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("dashboard.toml");
        std::fs::write(&path, "sandbox_latency_ms = 150\n").expect("write");
        let database = DatabaseArgs { config: Some(path.clone()), ..DatabaseArgs::default() };
        let config = Config::resolve(&database, &ServeArgs::default()).expect("valid file");
        assert_eq!(config.crate_settings.get("sandbox_latency_ms").map(String::as_str), Some("150"));

        let mut serve = ServeArgs::default();
        serve.crate_settings.insert("sandbox_latency_ms".to_owned(), "20".to_owned());
        let config = Config::resolve(&database, &serve).expect("valid flag");
        assert_eq!(config.crate_settings.get("sandbox_latency_ms").map(String::as_str), Some("20"), "the flag wins");

        serve.crate_settings.insert("sandbox_latency_ms".to_owned(), "soon".to_owned());
        let error = Config::resolve(&database, &serve).expect_err("not a number");
        assert!(error.to_string().contains("--sandbox-latency-ms"), "{error}");
        assert!(error.to_string().contains("DASHBOARD_SANDBOX_LATENCY_MS"), "{error}");
    }

    #[test]
    fn the_file_fills_what_flags_leave_open_and_unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("dashboard-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("dashboard.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\ntheme = \"dark\"\n").expect("write");
        let database = DatabaseArgs { config: Some(path.clone()), ..DatabaseArgs::default() };
        let serve = ServeArgs { theme: Some("default".to_owned()), ..ServeArgs::default() };
        let config = Config::resolve(&database, &serve).expect("valid file");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.theme, "default", "the flag wins over the file");
        assert_eq!(config.public_url, "http://127.0.0.1:9000");

        std::fs::write(&path, "listne = \"0.0.0.0:9000\"\n").expect("write");
        let error = Config::resolve(&database, &ServeArgs::default()).expect_err("typo in key");
        assert!(error.to_string().contains("listne"), "{error}");
    }
}
