//! "Forgot your password?": anyone may ask for a set-password link for a username. The
//! link goes to the account's e-mail address only, and the answer is the same whether or
//! not the username exists, has an address, or was sent a link a moment ago; the lookup
//! and the e-mail happen after the answer, so that its timing says nothing either.

use chrono::TimeDelta;
use dashboard_core::audit::AuditEvent;
use dashboard_core::links::{self, LinkPurpose};
use dashboard_core::schema::users;
use dashboard_core::session::ClientInfo;
use dashboard_core::throttle::SignInThrottle;
use dashboard_core::web::PRODUCT_NAME;
use dashboard_core::{AppError, AppState};

/// What whoever asks is told.
pub const ASKED: &str = "If this username has an account with an e-mail address, a link to set a new password is on \
                         its way there. It works for one hour.";

/// While a link asked for this way is this recent, asking again sends nothing more:
/// nobody can flood a colleague's mailbox.
const ASK_AGAIN_AFTER: TimeDelta = TimeDelta::minutes(5);

/// Asks for a link for `username`. Counted as a sign-in attempt (address and username),
/// so it cannot be used to probe faster than signing in.
pub fn ask(state: &AppState, username: &str, client: &ClientInfo) -> Result<(), AppError> {
    SignInThrottle::of(state)?.check(client.ip.as_deref(), username)?;
    let (state, username, ip) = (state.clone(), username.trim().to_lowercase(), client.ip.clone());
    tokio::spawn(async move {
        if let Err(error) = send_link(&state, &username, ip).await {
            tracing::warn!(%error, "a set-password link that was asked for could not be sent");
        }
    });
    Ok(())
}

/// Issues and mails the link when the username is an active account with an address.
async fn send_link(state: &AppState, username: &str, ip: Option<String>) -> Result<(), AppError> {
    let found: Option<(i64, i64, Option<String>)> = dashboard_core::db_run!(state.db, conn => {
        users::table
            .filter(users::username.eq(username))
            .filter(users::active.eq(true))
            .select((users::id, users::company_id, users::email))
            .first(conn)
            .await
            .optional()
    })?;
    let Some((user_id, company_id, Some(email))) = found else { return Ok(()) };
    if links::issued_within(state, user_id, LinkPurpose::ResetPassword, ASK_AGAIN_AFTER).await? {
        return Ok(());
    }
    let event = AuditEvent::by_user(company_id, user_id, "user.password_link_asked", "success").ip(ip);
    let token = links::issue(state, user_id, LinkPurpose::ResetPassword, Some(event)).await?;
    let url = format!("{}/set-password?token={token}", state.settings.public_url);
    let text = format!(
        "Someone asked to set a new password for your {PRODUCT_NAME} account {username}.\n\n\
         Set it here within one hour:\n{url}\n\n\
         If it was not you, ignore this e-mail: your password stays as it is."
    );
    dashboard_core::mail::send(state, &[email], &format!("Set a new {PRODUCT_NAME} password"), &text).await
}
