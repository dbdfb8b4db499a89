//! The second factor: TOTP (Google Authenticator compatible) with single-use recovery
//! codes.
//!
//! Set-up follows the seed: the user has a phone on the account → an SMS activation code
//! is sent → the user enters it → a new secret is shown (QR code and otpauth URI) → the
//! user proves it with a code from the app → enabled, and recovery codes are shown once.
//! Codes: 6 digits, 30-second steps, SHA-1, one step of drift; each step is accepted once
//! (one atomic update, so also under concurrent requests). Secrets are 160 random bits,
//! encrypted at rest.

use diesel::prelude::{Queryable, Selectable};
use diesel::result::Error as DieselError;
use rand::Rng;
use serde::Serialize;
use totp_rs::{Algorithm, Builder, Totp};

use crate::auth::sha256_hex;
use crate::crypto::SecretBox;
use crate::error::AppError;
use crate::schema::{recovery_codes, second_factors, users};
use crate::sms::{self, CodePurpose};
use crate::state::AppState;
use crate::time::now;
use crate::web::PRODUCT_NAME;

/// How many recovery codes a user gets.
pub const RECOVERY_CODES: usize = 10;

/// Where a user stands with the second factor.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SecondFactorStatus {
    /// TOTP is enabled and asked at every sign-in.
    pub enabled: bool,
    /// The SMS step of the set-up was passed; the app's code is awaited.
    pub awaiting_app_code: bool,
    /// The phone the activation code goes to, partly hidden.
    pub phone: Option<String>,
    /// Unused recovery codes left.
    pub recovery_codes_left: i64,
}

/// What the user scans into the authenticator app.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Enrolment {
    /// `otpauth://totp/…` URI.
    pub otpauth_uri: String,
    /// The secret in base32, for typing into the app.
    pub secret: String,
    /// The QR code of the URI as a PNG, base64.
    pub qr_png_base64: String,
}

/// `+447700900123` → `+44•••••••23`.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 5 {
        return phone.to_owned();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "•".repeat(chars.len() - 5))
}

fn totp(secret: Vec<u8>, account: &str) -> Result<Totp, AppError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_issuer(Some(PRODUCT_NAME))
        .with_account_name(account.replace(':', "_"))
        .build()
        .map_err(|e| AppError::Internal(format!("TOTP set-up failed: {e}")))
}

/// A user's second factor: the secret (sealed) once set up, and when it was enabled.
#[derive(Queryable, Selectable)]
#[diesel(table_name = second_factors, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct FactorRow {
    totp_secret_encrypted: Option<String>,
    enabled_at: Option<chrono::NaiveDateTime>,
}

async fn factor_row(state: &AppState, user_id: i64) -> Result<Option<FactorRow>, AppError> {
    Ok(crate::db_run!(state.db, conn => {
        second_factors::table
            .find(user_id)
            .select(FactorRow::as_select())
            .first(conn)
            .await
            .optional()
    })?)
}

async fn user_phone_and_name(state: &AppState, user_id: i64) -> Result<(Option<String>, String), AppError> {
    Ok(crate::db_run!(state.db, conn => {
        users::table.find(user_id).select((users::phone, users::username)).first(conn).await
    })?)
}

pub async fn is_enabled(state: &AppState, user_id: i64) -> Result<bool, AppError> {
    Ok(matches!(factor_row(state, user_id).await?, Some(FactorRow { enabled_at: Some(_), .. })))
}

pub async fn status(state: &AppState, user_id: i64) -> Result<SecondFactorStatus, AppError> {
    let row = factor_row(state, user_id).await?;
    let (phone, _) = user_phone_and_name(state, user_id).await?;
    let recovery_codes_left: i64 = crate::db_run!(state.db, conn => {
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::used_at.is_null())
            .count()
            .get_result(conn)
            .await
    })?;
    Ok(SecondFactorStatus {
        enabled: matches!(row, Some(FactorRow { enabled_at: Some(_), .. })),
        awaiting_app_code: matches!(row, Some(FactorRow { totp_secret_encrypted: Some(_), enabled_at: None })),
        phone: phone.as_deref().map(mask_phone),
        recovery_codes_left,
    })
}

/// Step 1: sends the SMS activation code to the phone on the account.
pub async fn send_activation_code(state: &AppState, user_id: i64) -> Result<(), AppError> {
    if is_enabled(state, user_id).await? {
        return Err(AppError::Conflict("Two-factor authentication is already enabled.".to_owned()));
    }
    let (phone, _) = user_phone_and_name(state, user_id).await?;
    let phone = phone.ok_or_else(|| {
        AppError::BadRequest(
            "Your account has no phone number. Ask your merchant admin to add it, or add and confirm it in My profile."
                .to_owned(),
        )
    })?;
    sms::send_code(state, user_id, &phone, CodePurpose::SecondFactorActivation, "", |code| {
        format!("{code} is your {PRODUCT_NAME} code to set up two-factor authentication. Never share it.")
    })
    .await
}

/// Step 2: checks the SMS activation code and creates a new, not yet enabled, secret.
pub async fn activate(state: &AppState, user_id: i64, sms_code: &str) -> Result<Enrolment, AppError> {
    if is_enabled(state, user_id).await? {
        return Err(AppError::Conflict("Two-factor authentication is already enabled.".to_owned()));
    }
    if !sms::verify_code(state, user_id, CodePurpose::SecondFactorActivation, "", sms_code).await? {
        return Err(AppError::BadRequest("The SMS code is wrong or has expired. Request a new one.".to_owned()));
    }
    let mut secret = vec![0u8; 20];
    rand::rng().fill(&mut secret[..]);
    let sealed = state.secrets.seal(&totp_row(user_id), &secret);
    let now = now();
    crate::db_write!(state.db, conn => {
        diesel::insert_into(second_factors::table)
            .values((
                second_factors::user_id.eq(user_id),
                second_factors::totp_secret_encrypted.eq(&sealed),
                second_factors::enabled_at.eq(None::<chrono::NaiveDateTime>),
                second_factors::last_accepted_step.eq(None::<i64>),
                second_factors::created_at.eq(now),
                second_factors::updated_at.eq(now),
            ))
            .on_conflict(second_factors::user_id)
            .do_update()
            .set((
                second_factors::totp_secret_encrypted.eq(&sealed),
                second_factors::enabled_at.eq(None::<chrono::NaiveDateTime>),
                second_factors::last_accepted_step.eq(None::<i64>),
                second_factors::updated_at.eq(now),
            ))
            .execute(conn)
            .await
    })?;
    enrolment(state, user_id).await?.ok_or_else(|| AppError::Internal("the new secret was not stored".to_owned()))
}

/// The pending set-up (after the SMS step, before the app's code), to show again.
pub async fn enrolment(state: &AppState, user_id: i64) -> Result<Option<Enrolment>, AppError> {
    let Some(FactorRow { totp_secret_encrypted: Some(sealed), enabled_at: None }) = factor_row(state, user_id).await?
    else {
        return Ok(None);
    };
    let (_, username) = user_phone_and_name(state, user_id).await?;
    let secret = state.secrets.open(&totp_row(user_id), &sealed).map_err(|e| AppError::Internal(e.to_string()))?;
    let totp = totp(secret, &username)?;
    let otpauth_uri = totp.to_url().map_err(|e| AppError::Internal(e.to_string()))?;
    let qr_png_base64 = totp.to_qr_base64().map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Some(Enrolment { otpauth_uri, secret: totp.secret().to_base32(), qr_png_base64 }))
}

/// Step 3: the first code from the app enables the second factor; returns the recovery
/// codes, shown once. `event` is recorded in the same write.
pub async fn enable(
    state: &AppState,
    user_id: i64,
    code: &str,
    event: Option<crate::audit::AuditEvent>,
) -> Result<Vec<String>, AppError> {
    let Some(FactorRow { totp_secret_encrypted: Some(sealed), enabled_at: None }) = factor_row(state, user_id).await?
    else {
        return Err(AppError::BadRequest("Start the set-up first: request the SMS code.".to_owned()));
    };
    let step = matching_step(state, user_id, &sealed, code)?.ok_or_else(|| {
        AppError::BadRequest("The code from the app is wrong. Check the app and try again.".to_owned())
    })?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|code| recovery_hash(&state.secrets, user_id, code)).collect();
    let now = now();
    let enabled = crate::db_transaction!(state.db, conn => {
        let enabled = diesel::update(
            second_factors::table.find(user_id).filter(second_factors::enabled_at.is_null()),
        )
        .set((
            second_factors::enabled_at.eq(Some(now)),
            second_factors::last_accepted_step.eq(Some(step)),
            second_factors::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        if enabled == 1 {
            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn).await?;
            for hash in &hashes {
                diesel::insert_into(recovery_codes::table)
                    .values((recovery_codes::user_id.eq(user_id), recovery_codes::code_hash.eq(hash)))
                    .execute(conn)
                    .await?;
            }
            if let Some(event) = event {
                crate::record_audit!(conn, event)?;
            }
        }
        Ok::<_, DieselError>(enabled)
    })?;
    if enabled != 1 {
        return Err(AppError::Conflict("Two-factor authentication is already enabled.".to_owned()));
    }
    Ok(codes)
}

/// Checks a code at sign-in: a TOTP code (each time step once) or an unused recovery
/// code (used up).
pub async fn verify(state: &AppState, user_id: i64, code: &str) -> Result<bool, AppError> {
    Ok(check(state, user_id, code).await? == CodeCheck::Accepted)
}

/// What a second-factor code turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    Accepted,
    Wrong,
    /// The app's current code, but accepted once already (each is taken once): the user
    /// waits for the next one.
    JustUsed,
}

impl CodeCheck {
    /// What a person who typed a code accepted once already is told.
    pub const JUST_USED: &str = "This code was used a moment ago, and each code is taken once. Wait for the next \
                                 code in your authenticator app.";

    pub fn accepted(self) -> bool {
        self == CodeCheck::Accepted
    }
}

/// Like [`verify`], telling a code accepted once already from a wrong one.
pub async fn check(state: &AppState, user_id: i64, code: &str) -> Result<CodeCheck, AppError> {
    let Some(FactorRow { totp_secret_encrypted: Some(sealed), enabled_at: Some(_) }) =
        factor_row(state, user_id).await?
    else {
        return Ok(CodeCheck::Wrong);
    };
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
        let Some(step) = matching_step(state, user_id, &sealed, &compact)? else { return Ok(CodeCheck::Wrong) };
        // Accept a step once: the update succeeds for one request only.
        let accepted = crate::db_write!(state.db, conn => {
            diesel::update(
                second_factors::table.find(user_id).filter(
                    second_factors::last_accepted_step.is_null().or(second_factors::last_accepted_step.lt(step)),
                ),
            )
            .set(second_factors::last_accepted_step.eq(Some(step)))
            .execute(conn)
            .await
        })?;
        return Ok(if accepted == 1 { CodeCheck::Accepted } else { CodeCheck::JustUsed });
    }
    // Codes made before they were stored as HMACs are plain SHA-256 hashes: still taken.
    let hashes = [recovery_hash(&state.secrets, user_id, &compact), sha256_hex(&normalised_recovery_code(&compact))];
    let now = now();
    let used = crate::db_write!(state.db, conn => {
        diesel::update(
            recovery_codes::table
                .filter(recovery_codes::user_id.eq(user_id))
                .filter(recovery_codes::code_hash.eq_any(&hashes))
                .filter(recovery_codes::used_at.is_null()),
        )
        .set(recovery_codes::used_at.eq(Some(now)))
        .execute(conn)
        .await
    })?;
    Ok(if used == 1 { CodeCheck::Accepted } else { CodeCheck::Wrong })
}

/// Removes the second factor (the user where roles allow it, or the merchant admin's
/// reset); the user sets it up again from the start.
pub async fn remove(state: &AppState, user_id: i64) -> Result<(), AppError> {
    crate::db_transaction!(state.db, conn => {
        crate::remove_second_factor!(conn, user_id);
        Ok::<_, DieselError>(())
    })?;
    Ok(())
}

/// Removes the second factor of `$user_id` (its secret and recovery codes) with `$conn`,
/// inside the caller's transaction; `?` on a database error.
#[macro_export]
macro_rules! remove_second_factor {
    ($conn:ident, $user_id:expr) => {{
        use $crate::schema::{recovery_codes as __codes, second_factors as __factors};
        diesel::delete(__factors::table.find($user_id)).execute($conn).await?;
        diesel::delete(__codes::table.filter(__codes::user_id.eq($user_id))).execute($conn).await?;
    }};
}

/// What a user's sealed TOTP secret is bound to.
fn totp_row(user_id: i64) -> String {
    format!("totp user {user_id}")
}

/// The time step `code` matches (now, or one step before or after), if any.
fn matching_step(state: &AppState, user_id: i64, sealed: &str, code: &str) -> Result<Option<i64>, AppError> {
    let secret = state.secrets.open(&totp_row(user_id), sealed).map_err(|e| AppError::Internal(e.to_string()))?;
    let totp = totp(secret, "user")?;
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default();
    Ok(totp.check(code.trim(), now).and_then(|step| i64::try_from(step).ok()))
}

/// `abcd-efgh`: 40 random bits in an alphabet without look-alikes.
fn new_recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let mut code: String = (0..8).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    code.insert(4, '-');
    code
}

/// Recovery codes are compared without case and without the dash.
/// A recovery code as stored: an HMAC under the installation's key, bound to its user
/// (40 random bits would be found from a plain hash in a copy of the database).
fn recovery_hash(secrets: &SecretBox, user_id: i64, code: &str) -> String {
    secrets.mac("recovery code", format!("{user_id}:{}", normalised_recovery_code(code)).as_bytes())
}

fn normalised_recovery_code(code: &str) -> String {
    code.to_lowercase().replace('-', "")
}
