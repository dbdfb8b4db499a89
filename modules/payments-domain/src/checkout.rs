//! A project's checkout: where the customer goes after paying on the hosted Payment Page
//! (the success, failure and return URLs), and which methods and currencies the project
//! accepts, each within its limits. The limits hold for every way of paying (the gateway
//! API, the virtual terminal, the hosted page) because each of them starts its payment in
//! the service, which asks [`require_accepted`].

use serde::{Deserialize, Serialize};

use crate::model::Method;
use crate::schema::{project_checkout, project_methods};
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::db::DbPool;
use dashboard_core::db::prelude::*;
use dashboard_core::time::now;
use dashboard_core::{AppError, AppState};

/// Where the hosted page sends the customer: after a successful payment, after a failed
/// one, and when they leave without paying. Each an `https://` URL (`http://` only to
/// `localhost` on an installation in development).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Redirects {
    #[oai(validator(max_length = 2000))]
    pub success_url: Option<String>,
    #[oai(validator(max_length = 2000))]
    pub failure_url: Option<String>,
    #[oai(validator(max_length = 2000))]
    pub return_url: Option<String>,
}

/// A method and currency a project accepts, with the smallest and largest amount it takes
/// (minor units; none: no limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AcceptedMethod {
    pub method: Method,
    /// ISO 4217, e.g. `EUR`.
    #[oai(validator(
        pattern = "^(AED|AUD|BGN|BHD|BRL|CAD|CHF|CLP|CNY|CZK|DKK|EUR|GBP|HKD|HUF|IDR|ILS|INR|ISK|JOD|JPY|KRW|KWD|MXN|MYR|NOK|NZD|OMR|PHP|PLN|RON|SAR|SEK|SGD|THB|TND|TRY|UAH|USD|VND|ZAR)$"
    ))]
    pub currency: String,
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000")))]
    pub min_amount: Option<i64>,
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000")))]
    pub max_amount: Option<i64>,
}

/// A project's checkout settings.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
pub struct Checkout {
    pub redirects: Redirects,
    /// What the project accepts; empty: every method and currency, without limits.
    pub methods: Vec<AcceptedMethod>,
}

/// The most methods and currencies a project lists.
const MOST_METHODS: usize = 100;

/// A redirect URL as typed: trimmed, empty meaning none, else an absolute `https://` URL
/// without credentials (`http://localhost` too where the installation sends callbacks to
/// private addresses, i.e. in development).
pub fn redirect_url(state: &AppState, text: Option<&str>, what: &str) -> Result<Option<String>, AppError> {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else { return Ok(None) };
    let refused =
        || AppError::BadRequest(format!("The {what} must be an https:// address of at most 2,000 characters."));
    let url = url::Url::parse(text).map_err(|_| refused())?;
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let scheme_allowed =
        url.scheme() == "https" || (url.scheme() == "http" && local && crate::callback_targets::private_allowed(state));
    if !scheme_allowed || url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(refused());
    }
    let url = url.to_string();
    if url.len() > 2_000 { Err(refused()) } else { Ok(Some(url)) }
}

/// The checkout settings of a project the principal may see.
pub async fn settings(state: &AppState, principal: &Principal, project_id: i64) -> Result<Checkout, AppError> {
    dashboard_core::directory::visible_project(&state.db, principal, project_id).await?;
    Ok(Checkout {
        redirects: redirects_of(&state.db, project_id).await?,
        methods: methods_of(&state.db, project_id).await?,
    })
}

/// A project's redirects, for the hosted page.
pub async fn redirects_of(db: &DbPool, project_id: i64) -> Result<Redirects, AppError> {
    let row: Option<(Option<String>, Option<String>, Option<String>)> = dashboard_core::db_run!(db, conn => {
        project_checkout::table
            .find(project_id)
            .select((project_checkout::success_url, project_checkout::failure_url, project_checkout::return_url))
            .first(conn)
            .await
            .optional()
    })?;
    Ok(row.map_or_else(Redirects::default, |(success_url, failure_url, return_url)| Redirects {
        success_url,
        failure_url,
        return_url,
    }))
}

/// What a project accepts, by method and currency.
pub async fn methods_of(db: &DbPool, project_id: i64) -> Result<Vec<AcceptedMethod>, AppError> {
    let rows: Vec<(String, String, Option<i64>, Option<i64>)> = dashboard_core::db_run!(db, conn => {
        project_methods::table
            .filter(project_methods::project_id.eq(project_id))
            .order((project_methods::method.asc(), project_methods::currency.asc()))
            .select((project_methods::method, project_methods::currency, project_methods::min_amount, project_methods::max_amount))
            .load(conn)
            .await
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(method, currency, min_amount, max_amount)| {
            Some(AcceptedMethod { method: Method::parse(&method)?, currency, min_amount, max_amount })
        })
        .collect())
}

/// Sets a project's redirect URLs; audited in the same write.
pub async fn set_redirects(
    state: &AppState,
    principal: &Principal,
    project_id: i64,
    redirects: Redirects,
) -> Result<Redirects, AppError> {
    dashboard_core::directory::visible_project(&state.db, principal, project_id).await?;
    let redirects = Redirects {
        success_url: redirect_url(state, redirects.success_url.as_deref(), "success URL")?,
        failure_url: redirect_url(state, redirects.failure_url.as_deref(), "failure URL")?,
        return_url: redirect_url(state, redirects.return_url.as_deref(), "return URL")?,
    };
    let event = AuditEvent::success(principal, "project.redirects")
        .target(format!("project {project_id}"))
        .details(serde_json::to_value(&redirects).map_err(|e| AppError::Internal(e.to_string()))?);
    let (user_id, now, row) = (principal.user_id, now(), redirects.clone());
    dashboard_core::db_transaction!(state.db, conn => {
        diesel::insert_into(project_checkout::table)
            .values((
                project_checkout::project_id.eq(project_id),
                project_checkout::success_url.eq(&row.success_url),
                project_checkout::failure_url.eq(&row.failure_url),
                project_checkout::return_url.eq(&row.return_url),
                project_checkout::updated_by.eq(Some(user_id)),
                project_checkout::updated_at.eq(now),
            ))
            .on_conflict(project_checkout::project_id)
            .do_update()
            .set((
                project_checkout::success_url.eq(&row.success_url),
                project_checkout::failure_url.eq(&row.failure_url),
                project_checkout::return_url.eq(&row.return_url),
                project_checkout::updated_by.eq(Some(user_id)),
                project_checkout::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, AppError>(())
    })?;
    Ok(redirects)
}

/// Checks a list of accepted methods: known currencies, limits above zero with the
/// smallest below the largest, each method and currency once.
fn checked_methods(methods: Vec<AcceptedMethod>) -> Result<Vec<AcceptedMethod>, AppError> {
    if methods.len() > MOST_METHODS {
        return Err(AppError::BadRequest(format!("A project lists at most {MOST_METHODS} methods and currencies.")));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut checked = Vec::with_capacity(methods.len());
    for accepted in methods {
        let currency = crate::model::currency(&accepted.currency)?;
        for amount in [accepted.min_amount, accepted.max_amount].into_iter().flatten() {
            crate::service::amount_check(amount)?;
        }
        if let (Some(min), Some(max)) = (accepted.min_amount, accepted.max_amount)
            && min > max
        {
            return Err(AppError::BadRequest(format!(
                "The smallest amount for {} in {currency} is above the largest.",
                accepted.method.label()
            )));
        }
        if !seen.insert((accepted.method.as_str(), currency.clone())) {
            return Err(AppError::BadRequest(format!("{} in {currency} is listed twice.", accepted.method.label())));
        }
        checked.push(AcceptedMethod { currency, ..accepted });
    }
    Ok(checked)
}

/// Replaces what a project accepts (an empty list: everything, without limits); audited
/// in the same write.
pub async fn set_methods(
    state: &AppState,
    principal: &Principal,
    project_id: i64,
    methods: Vec<AcceptedMethod>,
) -> Result<Vec<AcceptedMethod>, AppError> {
    dashboard_core::directory::visible_project(&state.db, principal, project_id).await?;
    let methods = checked_methods(methods)?;
    let event = AuditEvent::success(principal, "project.methods")
        .target(format!("project {project_id}"))
        .details(serde_json::to_value(&methods).map_err(|e| AppError::Internal(e.to_string()))?);
    let rows: Vec<_> = methods
        .iter()
        .map(|m| {
            (
                project_methods::project_id.eq(project_id),
                project_methods::method.eq(m.method.as_str()),
                project_methods::currency.eq(m.currency.clone()),
                project_methods::min_amount.eq(m.min_amount),
                project_methods::max_amount.eq(m.max_amount),
            )
        })
        .collect();
    dashboard_core::db_transaction!(state.db, conn => {
        diesel::delete(project_methods::table.filter(project_methods::project_id.eq(project_id))).execute(conn).await?;
        for row in rows {
            diesel::insert_into(project_methods::table).values(row).execute(conn).await?;
        }
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, AppError>(())
    })?;
    Ok(methods)
}

/// Refuses a payment the project does not accept: a method or currency it does not list
/// (when it lists any), or an amount outside the limits it set.
pub async fn require_accepted(
    db: &DbPool,
    project_id: i64,
    method: Method,
    currency: &str,
    amount: i64,
) -> Result<(), AppError> {
    let methods = methods_of(db, project_id).await?;
    if methods.is_empty() {
        return Ok(());
    }
    let Some(accepted) = methods.iter().find(|m| m.method == method && m.currency == currency) else {
        return Err(AppError::Unprocessable(format!(
            "This project does not accept {} payments in {currency}.",
            method.label().to_lowercase()
        )));
    };
    let shown = |amount: i64| dashboard_core::money::format_grouped(amount, currency);
    if let Some(min) = accepted.min_amount.filter(|min| amount < *min) {
        return Err(AppError::Unprocessable(format!("The amount is below this project's smallest, {}.", shown(min))));
    }
    if let Some(max) = accepted.max_amount.filter(|max| amount > *max) {
        return Err(AppError::Unprocessable(format!("The amount is above this project's largest, {}.", shown(max))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(currency: &str, min: Option<i64>, max: Option<i64>) -> AcceptedMethod {
        AcceptedMethod { method: Method::Card, currency: currency.to_owned(), min_amount: min, max_amount: max }
    }

    #[test]
    fn a_list_with_a_method_twice_or_limits_the_wrong_way_round_is_refused() {
        assert!(checked_methods(vec![accepted("EUR", None, None), accepted("EUR", Some(1), None)]).is_err());
        assert!(checked_methods(vec![accepted("EUR", Some(500), Some(100))]).is_err());
        assert!(checked_methods(vec![accepted("XXX", None, None)]).is_err());
        let checked = checked_methods(vec![accepted("eur", Some(100), Some(500))]).map_err(|e| e.to_string());
        assert_eq!(checked.map(|list| list[0].currency.clone()), Ok("EUR".to_owned()));
    }
}
