//! My profile's service functions that pages and API share beyond core's.

use dashboard_core::audit::{self, AuditEvent};
use dashboard_core::auth::Principal;
use dashboard_core::directory::{self, valid_phone};
use dashboard_core::links::{self, LinkPurpose};
use dashboard_core::session::needs_second_factor;
use dashboard_core::sms::{self, CodePurpose};
use dashboard_core::web::PRODUCT_NAME;
use dashboard_core::{AppError, AppState, second_factor};

async fn record(
    state: &AppState,
    principal: &Principal,
    action: &'static str,
    details: serde_json::Value,
) -> Result<(), AppError> {
    let event = AuditEvent::by_user(principal.company_id, principal.user_id, action, "success").details(details);
    audit::record(&state.db, event).await
}

/// Sends a code to a phone the user entered; returns the phone as it will be stored.
pub async fn request_phone_code(state: &AppState, principal: &Principal, phone: &str) -> Result<String, AppError> {
    let phone = valid_phone(phone)?;
    sms::send_code(state, principal.user_id, &phone, CodePurpose::PhoneConfirmation, &phone, |code| {
        format!("{code} confirms this number for your {PRODUCT_NAME} account. Never share it.")
    })
    .await?;
    Ok(phone)
}

/// Stores the phone once the code sent to it comes back.
pub async fn confirm_phone(
    state: &AppState,
    principal: &Principal,
    phone: &str,
    code: &str,
) -> Result<String, AppError> {
    let phone = valid_phone(phone)?;
    if !sms::verify_code(state, principal.user_id, CodePurpose::PhoneConfirmation, &phone, code).await? {
        return Err(AppError::BadRequest("The code is wrong or has expired. Request a new one.".to_owned()));
    }
    directory::set_phone(&state.db, principal.user_id, Some(&phone)).await?;
    record(state, principal, "profile.phone_changed", serde_json::json!({})).await?;
    Ok(phone)
}

/// Turns the second factor off, with a current code, where no role of the user needs it.
pub async fn disable_second_factor(state: &AppState, principal: &Principal, code: &str) -> Result<(), AppError> {
    let granted = principal.permissions.iter().chain(&principal.awaiting_second_factor);
    if let Some(code) = granted.into_iter().find(|code| needs_second_factor(state, code)) {
        return Err(AppError::BadRequest(format!(
            "Your roles need two-factor authentication (for example {code}), so it stays on."
        )));
    }
    if !second_factor::verify(state, principal.user_id, code).await? {
        return Err(AppError::BadRequest("The code from the app is wrong.".to_owned()));
    }
    second_factor::remove(state, principal.user_id).await?;
    record(state, principal, "second_factor.disabled", serde_json::json!({})).await
}

/// A one-time code for the support bot integration to link a chat to this user.
pub async fn support_bot_code(state: &AppState, principal: &Principal) -> Result<(String, String), AppError> {
    let code = links::issue(state, principal.user_id, LinkPurpose::SupportBot).await?;
    let expires_at = dashboard_core::time::rfc3339(&(dashboard_core::time::now() + LinkPurpose::SupportBot.lifetime()));
    record(state, principal, "support_bot.link_issued", serde_json::json!({})).await?;
    Ok((code, expires_at))
}
