//! The section's API: the same service functions as its pages.

use dashboard_core::auth::Principal;
use dashboard_core::{ApiResult, AppState};
use dashboard_payments_domain::fraud::backtest::{self, BacktestRequest, BacktestView};
use dashboard_payments_domain::fraud::language::{List, ListKind};
use dashboard_payments_domain::fraud::lists::{self, EntryFilter, EntryRequest, EntryView, ImportResult};
use dashboard_payments_domain::fraud::reviews::{self, Decision, ReviewFilter, ReviewView};
use dashboard_payments_domain::fraud::rules::{self, RuleRequest, RuleView};
use dashboard_payments_domain::fraud::{Action, ReviewStatus, RuleStatus};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::pages::RuleFilter;

/// A page of list entries.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EntryPage {
    pub items: Vec<EntryView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A page of review cases.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReviewPage {
    pub items: Vec<ReviewView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A decision on a held payment.
#[derive(Debug, Object)]
pub struct DecisionRequest {
    pub decision: Decision,
    #[oai(validator(max_length = 1000))]
    pub note: Option<String>,
}

#[derive(ApiResponse)]
enum ExportFile {
    #[oai(status = 200, content_type = "text/csv")]
    Csv(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

fn csv(download: poem::Response) -> ExportFile {
    let (body, disposition) = dashboard_core::export::body_and_disposition(download);
    ExportFile::Csv(Binary(body), disposition)
}

fn default_limit() -> i64 {
    50
}

fn entry_filter(list: Option<List>, kind: Option<ListKind>, q: Option<String>, after: Option<String>) -> EntryFilter {
    EntryFilter { list: list.map(|l| l.as_str().to_owned()), kind: kind.map(|k| k.as_str().to_owned()), q, after }
}

/// The API lists every status unless one is asked for.
fn review_filter(status: Option<ReviewStatus>, project_id: Option<i64>, after: Option<String>) -> ReviewFilter {
    ReviewFilter { status: status.map(|s| s.as_str().to_owned()), project_id: project_id.map(|p| p.to_string()), after }
}

#[derive(Default)]
pub struct FraudApi;

#[OpenApi(tag = "FraudTag::Fraud")]
impl FraudApi {
    /// Fraud rules, in the order they are read
    #[oai(path = "/fraud/rules", method = "get", operation_id = "fraud_rules_list")]
    async fn rules(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        status: Query<Option<RuleStatus>>,
        action: Query<Option<Action>>,
    ) -> ApiResult<Json<Vec<RuleView>>> {
        let all = rules::list(&state, principal).await?;
        Ok(Json(
            all.into_iter()
                .filter(|rule| status.0.is_none_or(|s| rule.status == s))
                .filter(|rule| action.0.is_none_or(|a| rule.action == a))
                .collect(),
        ))
    }

    /// Add a fraud rule
    ///
    /// A condition the language cannot read is refused with its line and column.
    #[oai(path = "/fraud/rules", method = "post", operation_id = "fraud_rules_create")]
    async fn create_rule(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<RuleRequest>,
    ) -> ApiResult<Json<RuleView>> {
        Ok(Json(rules::create(&state, principal, body.0).await?))
    }

    /// The fraud rules matching the same filters as the list, as CSV
    #[oai(path = "/fraud/rules/export", method = "get", operation_id = "fraud_rules_export")]
    async fn export_rules(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        status: Query<Option<RuleStatus>>,
        action: Query<Option<Action>>,
    ) -> ApiResult<ExportFile> {
        let filter = RuleFilter::of(status.0, action.0);
        Ok(csv(crate::pages::rules_csv(&state, principal, &filter).await?))
    }

    /// A fraud rule
    #[oai(path = "/fraud/rules/:id", method = "get", operation_id = "fraud_rules_get")]
    async fn rule(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Json<RuleView>> {
        Ok(Json(rules::view(&state, principal, id.0).await?))
    }

    /// Change a fraud rule (its condition, action, priority, or whether it is enabled)
    #[oai(path = "/fraud/rules/:id", method = "put", operation_id = "fraud_rules_update")]
    async fn update_rule(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
        body: Json<RuleRequest>,
    ) -> ApiResult<Json<RuleView>> {
        Ok(Json(rules::update(&state, principal, id.0, body.0).await?))
    }

    /// Delete a fraud rule (payments it decided still name it)
    #[oai(path = "/fraud/rules/:id", method = "delete", operation_id = "fraud_rules_delete")]
    async fn delete_rule(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Deleted> {
        rules::delete(&state, principal, id.0).await?;
        Ok(Deleted::NoContent)
    }

    /// Entries of the block and allow lists, newest first
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/fraud/lists", method = "get", operation_id = "fraud_lists_list")]
    async fn entries(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        list: Query<Option<List>>,
        kind: Query<Option<ListKind>>,
        /// A value, or a part of it or of the reason.
        q: Query<Option<String>>,
        /// The `next` of the previous page.
        #[oai(validator(pattern = "^([A-Za-z0-9_-]{10}[AEIMQUYcgkosw048])?$"))]
        after: Query<Option<String>>,
        /// 1 to 500.
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<i64>,
    ) -> ApiResult<Json<EntryPage>> {
        let filter = entry_filter(list.0, kind.0, q.0, after.0);
        let (items, next) = lists::list(&state, principal, &filter, limit.0).await?;
        Ok(Json(EntryPage { items, next }))
    }

    /// Add to a block or allow list
    ///
    /// A card number given is kept only as its fingerprint. With `payment_id` instead of
    /// `value`, that payment's card, e-mail, address, country or BIN is listed.
    #[oai(path = "/fraud/lists", method = "post", operation_id = "fraud_lists_add")]
    async fn add_entry(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<EntryRequest>,
    ) -> ApiResult<Json<EntryView>> {
        Ok(Json(lists::add(&state, principal, &body.0).await?))
    }

    /// The list entries matching the same filters as the list, as CSV (the form import takes)
    #[oai(path = "/fraud/lists/export", method = "get", operation_id = "fraud_lists_export")]
    async fn export_entries(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        list: Query<Option<List>>,
        kind: Query<Option<ListKind>>,
        q: Query<Option<String>>,
    ) -> ApiResult<ExportFile> {
        let filter = entry_filter(list.0, kind.0, q.0, None);
        Ok(csv(crate::pages::lists_csv(&state, principal, filter).await?))
    }

    /// Import list entries from CSV
    ///
    /// Columns `list,kind,value,reason,expires_at` with a header row, at most 10,000 rows;
    /// every row is checked first and a file with a mistake adds nothing. Values already
    /// listed are left as they are.
    #[oai(path = "/fraud/lists/import", method = "post", operation_id = "fraud_lists_import")]
    async fn import(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Binary<Vec<u8>>,
    ) -> ApiResult<Json<ImportResult>> {
        Ok(Json(lists::import(&state, principal, &body.0).await?))
    }

    /// Remove a list entry
    #[oai(path = "/fraud/lists/:id", method = "delete", operation_id = "fraud_lists_remove")]
    async fn remove_entry(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Deleted> {
        lists::remove(&state, principal, id.0).await?;
        Ok(Deleted::NoContent)
    }

    /// Payments held for review, the nearest deadline first
    #[oai(path = "/fraud/reviews", method = "get", operation_id = "fraud_reviews_list")]
    async fn reviews(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        status: Query<Option<ReviewStatus>>,
        project_id: Query<Option<i64>>,
        /// The `next` of the previous page.
        #[oai(validator(pattern = "^([A-Za-z0-9_-]{21}[AQgw])?$"))]
        after: Query<Option<String>>,
        /// 1 to 500.
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<i64>,
    ) -> ApiResult<Json<ReviewPage>> {
        let filter = review_filter(status.0, project_id.0, after.0);
        let (items, next) = reviews::list(&state, principal, &filter, limit.0).await?;
        Ok(Json(ReviewPage { items, next }))
    }

    /// The review cases matching the same filters as the list, as CSV
    #[oai(path = "/fraud/reviews/export", method = "get", operation_id = "fraud_reviews_export")]
    async fn export_reviews(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        status: Query<Option<ReviewStatus>>,
        project_id: Query<Option<i64>>,
    ) -> ApiResult<ExportFile> {
        let filter = review_filter(status.0, project_id.0, None);
        Ok(csv(crate::pages::reviews_csv(&state, principal, filter).await?))
    }

    /// A review case
    #[oai(path = "/fraud/reviews/:id", method = "get", operation_id = "fraud_reviews_get")]
    async fn review(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<ReviewView>> {
        Ok(Json(reviews::view(&state, principal, id.0).await?))
    }

    /// Approve (capture) or decline (release) a held payment
    ///
    /// Once per case: a repeated decision answers as the first did, the other decision is
    /// refused with 409.
    #[oai(path = "/fraud/reviews/:id/decision", method = "post", operation_id = "fraud_reviews_decide")]
    async fn decide(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
        body: Json<DecisionRequest>,
    ) -> ApiResult<Json<ReviewView>> {
        Ok(Json(reviews::decide(&state, principal, id.0, body.0.decision, body.0.note.as_deref()).await?))
    }

    /// Backtests, newest first (the last 50)
    #[oai(path = "/fraud/backtests", method = "get", operation_id = "fraud_backtests_list")]
    async fn backtests(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<Vec<BacktestView>>> {
        Ok(Json(backtest::list(&state, principal, 50).await?))
    }

    /// Start a backtest: a rule tried on the payments of a period, in the background
    ///
    /// Poll the backtest until its status is `done`: `scanned` of `total` payments tell
    /// how far it got.
    #[oai(path = "/fraud/backtests", method = "post", operation_id = "fraud_backtests_start")]
    async fn start_backtest(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<BacktestRequest>,
    ) -> ApiResult<Json<BacktestView>> {
        Ok(Json(backtest::start(&state, principal, body.0).await?))
    }

    /// A backtest, with its progress and, once done, its result
    #[oai(path = "/fraud/backtests/:id", method = "get", operation_id = "fraud_backtests_get")]
    async fn backtest(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<BacktestView>> {
        Ok(Json(backtest::view(&state, principal, id.0).await?))
    }
}

#[derive(poem_openapi::Tags)]
enum FraudTag {
    /// Fraud rules, block and allow lists, payments held for review, backtests.
    Fraud,
}
