//! My profile's service functions that pages and API share beyond core's.

use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::directory::{self, valid_phone};
use dashboard_core::links::{self, LinkPurpose};
use dashboard_core::second_factor::CodeCheck;
use dashboard_core::session::{self, ClientInfo, needs_second_factor};
use dashboard_core::sms::{self, CodePurpose};
use dashboard_core::web::PRODUCT_NAME;
use dashboard_core::{AppError, AppState, db_transaction};
use serde_json::json;

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

/// Stores the phone once the code sent to it comes back. One write uses the code, stores
/// the phone, revokes the user's API tokens when it replaces a number (they were issued
/// to whoever the old phone confirmed) and records it.
pub async fn confirm_phone(
    state: &AppState,
    principal: &Principal,
    phone: &str,
    code: &str,
) -> Result<String, AppError> {
    may_set_phone(state, principal).await?;
    let phone = valid_phone(phone)?;
    let wrong_code = || AppError::BadRequest("The code is wrong or has expired. Request a new one.".to_owned());
    let code_id = sms::matching_code(state, principal.user_id, CodePurpose::PhoneConfirmation, &phone, code)
        .await?
        .ok_or_else(wrong_code)?;
    let previous = directory::profile_phone(&state.db, principal.user_id).await?.filter(|previous| *previous != phone);
    let user_id = principal.user_id;
    let replaces = previous.is_some();
    let saved = db_transaction!(state.db, conn => {
        use dashboard_core::schema::users;
        if dashboard_core::use_code!(conn, code_id) == 0 {
            return Ok(false);
        }
        diesel::update(users::table.find(user_id))
            .set((users::phone.eq(&phone), users::updated_at.eq(dashboard_core::time::now())))
            .execute(conn)
            .await?;
        let tokens = if replaces { dashboard_core::revoke_user_tokens!(conn, user_id)? } else { 0 };
        let event = AuditEvent::success(principal, "profile.phone_changed").details(json!({ "tokens_revoked": tokens }));
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, diesel::result::Error>(true)
    })?;
    if !saved {
        return Err(wrong_code());
    }
    state.token_principals.forget_all();
    if let Some(previous) = previous {
        // Tell the old number, so that a takeover does not go unnoticed.
        let text = format!(
            "The phone number of your {PRODUCT_NAME} account was changed. If this was not you, contact your merchant admin."
        );
        if let Err(error) = state.sms.send(&sms::SmsMessage { to: previous, text }).await {
            // The change is saved either way; a failed notice is only logged.
            tracing::warn!(%error, "the notice to the previous phone could not be sent");
        }
    }
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
    match session::check_code(state, principal.user_id, principal.company_id, code, client).await? {
        CodeCheck::Accepted => {}
        CodeCheck::JustUsed => return Err(AppError::BadRequest(CodeCheck::JUST_USED.to_owned())),
        CodeCheck::Wrong => return Err(AppError::BadRequest("The code from the app is wrong.".to_owned())),
    }
    let user_id = principal.user_id;
    db_transaction!(state.db, conn => {
        dashboard_core::remove_second_factor!(conn, user_id);
        dashboard_core::record_audit!(conn, AuditEvent::success(principal, "second_factor.disabled"))?;
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// A one-time code for the support bot integration to link a chat to this user.
pub async fn support_bot_code(state: &AppState, principal: &Principal) -> Result<(String, String), AppError> {
    let event = AuditEvent::success(principal, "support_bot.link_issued");
    let code = links::issue(state, principal.user_id, LinkPurpose::SupportBot, Some(event)).await?;
    let expires_at = dashboard_core::time::rfc3339(&(dashboard_core::time::now() + LinkPurpose::SupportBot.lifetime()));
    Ok((code, expires_at))
}
