//! Card payments taken by hand (MO/TO: mail order, telephone order): a project takes them
//! only when a project admin has turned them on, since they come without 3-D Secure.

use crate::schema::moto_projects;
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::time::now;
use dashboard_core::{AppError, AppState};

/// Whether project `project_id` takes MO/TO payments.
pub async fn enabled(state: &AppState, project_id: i64) -> Result<bool, AppError> {
    let found: Option<i64> = dashboard_core::db_run!(state.db, conn => {
        moto_projects::table.find(project_id).select(moto_projects::project_id).first(conn).await.optional()
    })?;
    Ok(found.is_some())
}

/// Refuses a MO/TO payment for a project that does not take them.
pub async fn require_enabled(state: &AppState, project_id: i64) -> Result<(), AppError> {
    if enabled(state, project_id).await? {
        Ok(())
    } else {
        Err(AppError::Refused(
            "This project does not take card payments by hand (MO/TO): a project admin can turn them on in Projects."
                .to_owned(),
        ))
    }
}

/// A card payment taken by hand, for a project that takes them: what every MO/TO entry
/// point calls (once per idempotency claim, as any purchase).
pub async fn create_purchase(
    state: &AppState,
    principal: &Principal,
    new: crate::service::NewPurchase,
    claim: &crate::idempotency::Claim,
) -> Result<crate::idempotency::Replay<crate::service::PaymentView>, AppError> {
    require_enabled(state, new.project_id).await?;
    crate::service::create_purchase(state, principal, new, claim).await
}

/// Turns MO/TO payments on or off for a project the principal may use; audited in the
/// same write.
pub async fn set_enabled(state: &AppState, principal: &Principal, project_id: i64, on: bool) -> Result<(), AppError> {
    let projects = dashboard_core::directory::visible_projects(&state.db, principal).await?;
    if !projects.iter().any(|project| project.id == project_id) {
        return Err(AppError::NotFound);
    }
    let event = AuditEvent::success(principal, if on { "project.moto_enabled" } else { "project.moto_disabled" })
        .target(format!("project {project_id}"));
    let (user_id, now) = (principal.user_id, now());
    dashboard_core::db_transaction!(state.db, conn => {
        if on {
            diesel::insert_into(moto_projects::table)
                .values((
                    moto_projects::project_id.eq(project_id),
                    moto_projects::enabled_by.eq(Some(user_id)),
                    moto_projects::enabled_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        } else {
            diesel::delete(moto_projects::table.find(project_id)).execute(conn).await?;
        }
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, AppError>(())
    })
}
