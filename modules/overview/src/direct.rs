//! The same figures aggregated directly over the payments and operations, without the
//! rollups: what the property tests compare the rollups with, and what the benchmark
//! measures them against. Too slow for pages at scale (it reads every payment of the
//! period). Written apart from the rollups' own queries on purpose.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use dashboard_core::AppError;
use dashboard_core::db::DbPool;
use dashboard_payments_domain::schema::{operations, payments};

use crate::measures::{Dimension, Measures};
use crate::rollup::day_start;
use crate::scope::Scope;
use crate::service::ByCurrency;

/// (project, currency, method, country, brand, status, decline reason, count).
type Created = (i64, String, String, Option<String>, Option<String>, String, Option<String>, i64);
/// (project, currency, method, country, brand, kind, count, amount).
type Moved = (i64, String, String, Option<String>, Option<String>, String, i64, Option<i64>);

/// The figures of `scope`'s filters from `from` to `to` (inclusive, days of the scope's
/// zone), per value of `dimension` ("" for all together) and currency.
pub async fn measures(
    db: &DbPool,
    scope: &Scope,
    from: NaiveDate,
    to: NaiveDate,
    dimension: Option<Dimension>,
) -> Result<BTreeMap<String, ByCurrency>, AppError> {
    let (start, end) = (day_start(scope.zone, from), day_start(scope.zone, to + Days::new(1)));
    let created: Vec<Created> = dashboard_core::db_run!(db, conn => {
        payments::table
            .filter(payments::project_id.eq_any(&scope.projects))
            .filter(payments::created_at.ge(start))
            .filter(payments::created_at.lt(end))
            .filter(payments::kind.ne("payout"))
            .group_by((
                payments::project_id,
                payments::currency,
                payments::method,
                payments::customer_country,
                payments::card_brand,
                payments::status,
                payments::decline_reason,
            ))
            .select((
                payments::project_id,
                payments::currency,
                payments::method,
                payments::customer_country,
                payments::card_brand,
                payments::status,
                payments::decline_reason,
                count_star(),
            ))
            .load(conn)
            .await
    })?;
    let moved: Vec<Moved> = dashboard_core::db_run!(db, conn => {
        operations::table
            .inner_join(payments::table)
            .filter(payments::project_id.eq_any(&scope.projects))
            .filter(operations::completed_at.ge(start))
            .filter(operations::completed_at.lt(end))
            .filter(operations::status.eq("success"))
            .group_by((
                payments::project_id,
                payments::currency,
                payments::method,
                payments::customer_country,
                payments::card_brand,
                operations::kind,
            ))
            .select((
                payments::project_id,
                payments::currency,
                payments::method,
                payments::customer_country,
                payments::card_brand,
                operations::kind,
                count_star(),
                dashboard_core::db::sum_i64("operations.amount"),
            ))
            .load(conn)
            .await
    })?;
    // The filters apply to the finest groups (the reference need not be fast).
    let kept = |currency: &String, method: &String, country: &Option<String>| {
        scope.currency.as_ref().is_none_or(|c| c == currency)
            && scope.method.as_ref().is_none_or(|m| m == method)
            && scope.country.as_ref().is_none_or(|c| Some(c) == country.as_ref())
    };
    let mut out: BTreeMap<String, ByCurrency> = BTreeMap::new();
    for (project, currency, method, country, brand, status, decline, count) in created {
        if !kept(&currency, &method, &country) {
            continue;
        }
        let value = match dimension {
            None => String::new(),
            Some(Dimension::Project) => project.to_string(),
            Some(Dimension::Method) => method,
            Some(Dimension::Country) => country.unwrap_or_default(),
            Some(Dimension::Brand) => brand.unwrap_or_default(),
            Some(Dimension::Currency) => currency.clone(),
            Some(Dimension::Status) => status.clone(),
            Some(Dimension::Decline) => decline.unwrap_or_default(),
        };
        *out.entry(value).or_default().entry(currency).or_default() += Measures::created(&status, count);
    }
    for (project, currency, method, country, brand, kind, count, amount) in moved {
        if !kept(&currency, &method, &country) {
            continue;
        }
        let value = match dimension {
            // Status and decline reason break down payments, not money.
            Some(Dimension::Status | Dimension::Decline) => continue,
            None => String::new(),
            Some(Dimension::Project) => project.to_string(),
            Some(Dimension::Method) => method,
            Some(Dimension::Country) => country.unwrap_or_default(),
            Some(Dimension::Brand) => brand.unwrap_or_default(),
            Some(Dimension::Currency) => currency.clone(),
        };
        *out.entry(value).or_default().entry(currency).or_default() +=
            Measures::moved(&kind, count, amount.unwrap_or(0));
    }
    Ok(out)
}
