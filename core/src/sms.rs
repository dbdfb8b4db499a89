//! Text messages and the one-time codes they carry.
//!
//! [`SmsSender`] is the transport; [`FileOutbox`] appends each message as a JSON line to
//! a file (the demo's and the tests' transport). Codes are 6 digits from the OS CSPRNG,
//! stored salted and hashed, single use, valid for 5 minutes and for 5 attempts; a new
//! code voids the previous one of the same purpose; sends per user per hour are limited.
//! A confirmation code is bound to a canonical description of what it confirms.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use chrono::TimeDelta;
use rand::Rng;
use serde::Serialize;

use crate::auth::random_token;
use crate::crypto::SecretBox;
use crate::error::AppError;
use crate::schema::sms_codes;
use crate::state::AppState;
use crate::time::now;

pub const CODE_LIFETIME: TimeDelta = TimeDelta::minutes(5);
pub const MAX_ATTEMPTS: i32 = 5;

/// One text message.
#[derive(Debug, Clone, Serialize)]
pub struct SmsMessage {
    pub to: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the text message could not be sent: {0}")]
pub struct SmsError(pub String);

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SmsError>> + Send + 'a>>;

/// Sends text messages. Implement it to plug in another provider.
pub trait SmsSender: Send + Sync {
    fn send<'a>(&'a self, message: &'a SmsMessage) -> SendFuture<'a>;
}

/// Sends a notice (not a code) to `phone`. A notice that cannot be sent is logged: what
/// it tells of has happened and stands.
pub async fn notify(state: &AppState, phone: String, text: String) {
    if let Err(error) = state.sms.send(&SmsMessage { to: phone, text }).await {
        tracing::warn!(error = %error.0, "a notice could not be sent by SMS");
    }
}

/// Appends every message as one JSON object per line: `to`, `text`, `created_at`.
pub struct FileOutbox {
    path: PathBuf,
    write_lock: tokio::sync::Mutex<()>,
}

impl FileOutbox {
    pub fn new(path: PathBuf) -> FileOutbox {
        FileOutbox { path, write_lock: tokio::sync::Mutex::new(()) }
    }
}

impl SmsSender for FileOutbox {
    fn send<'a>(&'a self, message: &'a SmsMessage) -> SendFuture<'a> {
        Box::pin(async move {
            let line = serde_json::json!({
                "to": message.to,
                "text": message.text,
                "created_at": crate::time::rfc3339(&now()),
            })
            .to_string();
            // One writer at a time, so that lines never interleave.
            let _guard = self.write_lock.lock().await;
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || append_line(&path, &line))
                .await
                .map_err(|e| SmsError(e.to_string()))?
                .map_err(|e| SmsError(format!("{}: {e}", self.path.display())))
        })
    }
}

fn append_line(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    // The codes in it sign people in: readable by the dashboard's user only.
    let mut file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    writeln!(file, "{line}")
}

/// Sends through an SMS provider's HTTP API: `POST url` with a JSON body `{"to", "text"}`
/// and, when a token is configured, `Authorization: Bearer <token>`. Any answer but 2xx
/// is a failure.
pub struct HttpSms {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl HttpSms {
    pub fn new(url: String, token: Option<String>) -> Result<HttpSms, SmsError> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| SmsError(e.to_string()))?;
        Ok(HttpSms { client, url, token })
    }
}

impl SmsSender for HttpSms {
    fn send<'a>(&'a self, message: &'a SmsMessage) -> SendFuture<'a> {
        Box::pin(async move {
            let mut request = self.client.post(&self.url).json(message);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let response =
                request.send().await.map_err(|e| SmsError(format!("the SMS provider is unreachable: {e}")))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SmsError(format!("the SMS provider answered {}", response.status())))
            }
        })
    }
}

/// What a code is for; codes of one purpose never unlock another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    /// Activates the set-up of the authenticator app (the seed's "SMS verification code").
    SecondFactorActivation,
    /// Confirms a phone number the user entered themselves.
    PhoneConfirmation,
    /// Confirms one operation, e.g. a payout (see [`Confirmation`]).
    Operation,
}

impl CodePurpose {
    fn key(self) -> &'static str {
        match self {
            CodePurpose::SecondFactorActivation => "second_factor_activation",
            CodePurpose::PhoneConfirmation => "phone_confirmation",
            CodePurpose::Operation => "operation",
        }
    }
}

/// A fresh 6-digit code.
fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000))
}

/// `salt:HMAC(salt:subject:code)` under the installation's key for one-time codes (a
/// copy of the database alone cannot be searched for the code); the subject binds the
/// code to what it confirms.
fn hash_code(secrets: &SecretBox, salt: &str, subject: &str, code: &str) -> String {
    format!("{salt}:{}", secrets.mac("sms code", format!("{salt}:{subject}:{code}").as_bytes()))
}

fn code_matches(secrets: &SecretBox, stored: &str, subject: &str, code: &str) -> bool {
    let Some((salt, _)) = stored.split_once(':') else { return false };
    let expected = hash_code(secrets, salt, subject, code);
    // Constant-time comparison of two equal-length hex strings.
    expected.len() == stored.len() && expected.bytes().zip(stored.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Sends a new code for `purpose` to `phone`; `text` turns the code into the message.
/// Voids the user's previous code of the same purpose.
pub async fn send_code(
    state: &AppState,
    user_id: i64,
    phone: &str,
    purpose: CodePurpose,
    subject: &str,
    text: impl FnOnce(&str) -> String,
) -> Result<(), AppError> {
    let now = now();
    let hour_ago = now - TimeDelta::hours(1);
    let limit = i64::from(state.settings.sms_per_hour);
    let code = new_code();
    let code_hash = hash_code(&state.secrets, &random_token()[..16], subject, &code);
    let purpose_key = purpose.key();
    let subject = subject.to_owned();
    crate::db_transaction!(state.db, conn => {
        let sent: i64 = sms_codes::table
            .filter(sms_codes::user_id.eq(user_id))
            .filter(sms_codes::created_at.gt(hour_ago))
            .count()
            .get_result(conn)
            .await?;
        if sent >= limit {
            return Err(AppError::TooManyRequests(
                "Too many text messages were sent in the last hour. Try again later.".to_owned(),
            ));
        }
        diesel::update(
            sms_codes::table
                .filter(sms_codes::user_id.eq(user_id))
                .filter(sms_codes::purpose.eq(purpose_key))
                .filter(sms_codes::used_at.is_null()),
        )
        .set(sms_codes::used_at.eq(now))
        .execute(conn)
        .await?;
        diesel::insert_into(sms_codes::table)
            .values((
                sms_codes::user_id.eq(user_id),
                sms_codes::purpose.eq(purpose_key),
                sms_codes::subject.eq(&subject),
                sms_codes::code_hash.eq(&code_hash),
                sms_codes::created_at.eq(now),
                sms_codes::expires_at.eq(now + CODE_LIFETIME),
            ))
            .execute(conn)
            .await?;
        Ok::<_, AppError>(())
    })?;
    let message = SmsMessage { to: phone.to_owned(), text: text(&code) };
    state.sms.send(&message).await.map_err(|e| AppError::Unavailable(e.to_string()))
}

/// Checks `code` against the user's live code for `purpose` and `subject`; a match
/// uses it up (once, also under concurrent requests), a miss counts an attempt.
pub async fn verify_code(
    state: &AppState,
    user_id: i64,
    purpose: CodePurpose,
    subject: &str,
    code: &str,
) -> Result<bool, AppError> {
    let Some(id) = matching_code(state, user_id, purpose, subject, code).await? else { return Ok(false) };
    let used = crate::db_write!(state.db, conn => Ok::<_, diesel::result::Error>(crate::use_code!(conn, id)))?;
    Ok(used == 1)
}

/// Marks the code `$id` used with `$conn`, inside the caller's write (the one whose effect
/// it confirms); evaluates to 1, or 0 when it was used meanwhile.
#[macro_export]
macro_rules! use_code {
    ($conn:ident, $id:expr) => {{
        use $crate::schema::sms_codes as __codes;
        diesel::update(__codes::table.filter(__codes::id.eq($id)).filter(__codes::used_at.is_null()))
            .set(__codes::used_at.eq($crate::time::now()))
            .execute($conn)
            .await?
    }};
}

/// The id of the user's live, unused code for `purpose` and `subject` that `code` is,
/// without using it up ([`use_code!`](crate::use_code) does, in the write it confirms);
/// a miss counts an attempt.
pub async fn matching_code(
    state: &AppState,
    user_id: i64,
    purpose: CodePurpose,
    subject: &str,
    code: &str,
) -> Result<Option<i64>, AppError> {
    let code = code.trim().to_owned();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let now = now();
    let purpose_key = purpose.key();
    let subject = subject.to_owned();
    let live: Option<(i64, String)> = crate::db_run!(state.db, conn => {
        sms_codes::table
            .filter(sms_codes::user_id.eq(user_id))
            .filter(sms_codes::purpose.eq(purpose_key))
            .filter(sms_codes::used_at.is_null())
            .filter(sms_codes::expires_at.gt(now))
            .order(sms_codes::id.desc())
            .select((sms_codes::id, sms_codes::code_hash))
            .first(conn)
            .await
            .optional()
    })?;
    let Some((id, stored)) = live else { return Ok(None) };
    // Count the attempt before comparing, in one update that succeeds only under the
    // limit: parallel guesses cannot get more than five tries at one code.
    let counted = crate::db_write!(state.db, conn => {
        diesel::update(
            sms_codes::table
                .filter(sms_codes::id.eq(id))
                .filter(sms_codes::used_at.is_null())
                .filter(sms_codes::attempts.lt(MAX_ATTEMPTS)),
        )
        .set(sms_codes::attempts.eq(sms_codes::attempts + 1))
        .execute(conn)
        .await
    })?;
    Ok((counted == 1 && code_matches(&state.secrets, &stored, &subject, &code)).then_some(id))
}

/// An operation to confirm with an SMS code (PSD2 dynamic linking): the code is bound to
/// what identifies it, and the message says what it confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// One payout: amount in minor units, ISO 4217 currency, the payee as shown (e.g.
    /// `card 4242…4242`) and as bound (a key that changes with the payee, e.g. the card's
    /// fingerprint), and the project it is paid from.
    Payout { amount_minor: i64, currency: String, payee: String, payee_key: String, project_id: i64, project: String },
    /// A batch file: its id and name, the SHA-256 of its bytes, its number of rows, and
    /// the totals it moves per kind and currency (kind, currency, minor units), in a
    /// fixed order.
    Batch { batch_id: i64, file_name: String, file_hash: String, rows: u32, totals: Vec<(String, String, i64)> },
}

impl Confirmation {
    /// The exact text the code is bound to; any change invalidates the code.
    pub fn canonical(&self) -> String {
        match self {
            Confirmation::Payout { amount_minor, currency, payee_key, project_id, .. } => {
                format!("payout|{project_id}|{amount_minor}|{}|{}", currency.to_uppercase(), payee_key.trim())
            }
            Confirmation::Batch { batch_id, file_hash, rows, totals, .. } => {
                let totals: Vec<String> = totals
                    .iter()
                    .map(|(kind, currency, minor)| format!("{kind}:{minor}:{}", currency.to_uppercase()))
                    .collect();
                format!("batch|{batch_id}|{file_hash}|{rows}|{}", totals.join(","))
            }
        }
    }

    /// The message: it says what the code confirms.
    pub fn sms_text(&self, code: &str) -> String {
        match self {
            Confirmation::Payout { amount_minor, currency, payee, project, .. } => format!(
                "Payout {} to {}, project {}: code {code}. Valid for 5 minutes. Never share it.",
                crate::money::format_grouped(*amount_minor, currency),
                payee.trim(),
                project.trim()
            ),
            Confirmation::Batch { file_name, rows, totals, .. } => {
                let totals: Vec<String> = totals
                    .iter()
                    .map(|(kind, currency, minor)| format!("{kind} {}", crate::money::format_grouped(*minor, currency)))
                    .collect();
                format!(
                    "Batch {} of {rows} rows ({}): code {code}. Valid for 5 minutes. Never share it.",
                    file_name.trim(),
                    totals.join(", ")
                )
            }
        }
    }
}

/// Sends a confirmation code for `operation` to the user's phone.
pub async fn request_confirmation(
    state: &AppState,
    user_id: i64,
    phone: &str,
    operation: &Confirmation,
) -> Result<(), AppError> {
    send_code(state, user_id, phone, CodePurpose::Operation, &operation.canonical(), |code| operation.sms_text(code))
        .await
}

/// Whether `code` confirms exactly `operation` (and uses the code up).
pub async fn confirm(state: &AppState, user_id: i64, operation: &Confirmation, code: &str) -> Result<bool, AppError> {
    verify_code(state, user_id, CodePurpose::Operation, &operation.canonical(), code).await
}

/// The id of the code that confirms exactly `operation`, not used up yet: the write that
/// carries the operation out uses it ([`use_code!`](crate::use_code)), so that a repeated
/// request finds the operation's answer rather than a used code.
pub async fn confirming_code(
    state: &AppState,
    user_id: i64,
    operation: &Confirmation,
    code: &str,
) -> Result<Option<i64>, AppError> {
    matching_code(state, user_id, CodePurpose::Operation, &operation.canonical(), code).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_bound_to_their_subject() {
        let code = new_code();
        assert_eq!(code.len(), 6);
        let secrets = SecretBox::new([1; 32]);
        let stored = hash_code(&secrets, "salt", "payout|100|EUR|card 1234", &code);
        assert!(code_matches(&secrets, &stored, "payout|100|EUR|card 1234", &code));
        assert!(!code_matches(&secrets, &stored, "payout|101|EUR|card 1234", &code));
        assert!(!code_matches(&secrets, &stored, "payout|100|EUR|card 1234", "000000x"));
        assert!(!code_matches(&SecretBox::new([2; 32]), &stored, "payout|100|EUR|card 1234", &code), "another key");
    }

    #[test]
    fn a_confirmation_says_what_it_confirms() {
        let payout = Confirmation::Payout {
            amount_minor: 125_000,
            currency: "eur".into(),
            payee: "card 4242…4242".into(),
            payee_key: "fp1".into(),
            project_id: 7,
            project: "Web shop".into(),
        };
        assert_eq!(payout.canonical(), "payout|7|125000|EUR|fp1");
        assert!(
            payout
                .sms_text("123456")
                .starts_with("Payout 1,250.00 EUR to card 4242…4242, project Web shop: code 123456."),
            "{}",
            payout.sms_text("123456")
        );
        let batch = Confirmation::Batch {
            batch_id: 4,
            file_name: "november.csv".into(),
            file_hash: "ab12".into(),
            rows: 3,
            totals: vec![("payouts".into(), "JPY".into(), 5_000), ("refunds".into(), "EUR".into(), 125_000)],
        };
        assert_eq!(batch.canonical(), "batch|4|ab12|3|payouts:5000:JPY,refunds:125000:EUR");
        assert!(
            batch
                .sms_text("1")
                .starts_with("Batch november.csv of 3 rows (payouts 5,000 JPY, refunds 1,250.00 EUR): code 1.")
        );
    }
}
