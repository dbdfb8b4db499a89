//! My profile's service functions that pages and API share beyond core's.

use dashboard_core::audit::{self, AuditEvent};
use dashboard_core::auth::Principal;
use dashboard_core::directory::{self, valid_phone};
use dashboard_core::links::{self, LinkPurpose};
use dashboard_core::session::{self, ClientInfo, needs_second_factor};
use dashboard_core::sms::{self, CodePurpose};
use dashboard_core::web::PRODUCT_NAME;
use dashboard_core::{AppError, AppState, second_factor};

async fn record(
    state: &AppState,
    principal: &Principal,
    action: &'static str,
    details: serde_json::Value,
) -> Result<(), AppError> {
    let event = AuditEvent::success(principal, action).details(details);
    audit::record(&state.db, event).await
}

/// Whether the user may set their own phone in this session. The phone anchors the
/// second factor's set-up, so a password alone must not move it: users whose roles need
/// the second factor get their first phone from the merchant admin (as the seed says),
/// and any change of an existing phone needs a session that passed the second factor.
async fn may_set_phone(state: &AppState, principal: &Principal) -> Result<(), AppError> {
    principal.require_session()?;
    if principal.second_factor_verified {
        return Ok(());
    }
    let has_phone = directory::profile_phone(&state.db, principal.user_id).await?.is_some();
    let needs_second_factor = granted_need_second_factor(state, principal).await?;
    if has_phone || needs_second_factor {
        return Err(AppError::SecondFactorRequired);
    }
    Ok(())
}

/// Whether any permission the user's roles grant needs the second factor.
async fn granted_need_second_factor(state: &AppState, principal: &Principal) -> Result<bool, AppError> {
    let granted = dashboard_core::auth::user_permissions(state, principal.user_id).await?;
    Ok(granted.iter().any(|code| needs_second_factor(state, code)))
}

/// Sends a code to a phone the user entered; returns the phone as it will be stored.
pub async fn request_phone_code(state: &AppState, principal: &Principal, phone: &str) -> Result<String, AppError> {
    may_set_phone(state, principal).await?;
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
    may_set_phone(state, principal).await?;
    let phone = valid_phone(phone)?;
    if !sms::verify_code(state, principal.user_id, CodePurpose::PhoneConfirmation, &phone, code).await? {
        return Err(AppError::BadRequest("The code is wrong or has expired. Request a new one.".to_owned()));
    }
    let previous = directory::profile_phone(&state.db, principal.user_id).await?;
    directory::set_phone(&state.db, principal.user_id, Some(&phone)).await?;
    if let Some(previous) = previous.filter(|previous| *previous != phone) {
        // Tell the old number, so that a takeover does not go unnoticed.
        let text = format!(
            "The phone number of your {PRODUCT_NAME} account was changed. If this was not you, contact your merchant admin."
        );
        if let Err(error) = state.sms.send(&sms::SmsMessage { to: previous, text }).await {
            // The change is saved either way; a failed notice is only logged.
            tracing::warn!(%error, "the notice to the previous phone could not be sent");
        }
    }
    record(state, principal, "profile.phone_changed", serde_json::json!({})).await?;
    Ok(phone)
}

/// Turns the second factor off, with a current code, where no role of the user needs it.
/// Wrong codes count towards the lockout like at sign-in.
pub async fn disable_second_factor(
    state: &AppState,
    principal: &Principal,
    code: &str,
    client: &ClientInfo,
) -> Result<(), AppError> {
    principal.require_session()?;
    if granted_need_second_factor(state, principal).await? {
        return Err(AppError::BadRequest("Your roles need two-factor authentication, so it stays on.".to_owned()));
    }
    if !session::check_code(state, principal.user_id, principal.company_id, code, client).await? {
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
