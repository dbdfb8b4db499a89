//! The API twins of the Finance pages: the same payments-domain functions under the
//! section's permission.

use dashboard_core::auth::Principal;
use dashboard_core::export::attachment;
use dashboard_core::{ApiResult, AppState};
use dashboard_payments_domain::finance::{self, Position, Statement, StatementFilter};
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Query;
use poem_openapi::payload::{Binary, Json};

#[derive(poem_openapi::ApiResponse)]
enum CsvFile {
    /// Every movement of the statement as CSV (times in the caller's time zone), streamed.
    #[oai(status = 200, content_type = "text/csv")]
    Csv(Binary<poem::Body>, #[oai(header = "Content-Disposition")] String),
}

#[derive(Default)]
pub struct FinanceApi;

#[OpenApi(tag = "FinanceTag::Finance")]
impl FinanceApi {
    /// Balances per project and currency
    ///
    /// From the ledger, in minor units: what is available to pay out, the balance, the
    /// payouts on their way, what is held, and the totals received, paid out, refunded
    /// and charged back.
    #[oai(path = "/finance/balances", method = "get", operation_id = "finance_balances")]
    async fn balances(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        project_id: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<Position>>> {
        Ok(Json(finance::positions(&state, principal, project_id.0).await?))
    }

    /// The statement of a currency
    ///
    /// The merchant account's movements in `currency`, oldest first, with the balance when
    /// the period starts, after each movement and when it ends. `from` and `to` are days
    /// (`YYYY-MM-DD`, both included) in the caller's time zone.
    #[oai(path = "/finance/statement", method = "get", operation_id = "finance_statement")]
    #[allow(clippy::too_many_arguments)]
    async fn statement(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        /// ISO 4217, e.g. `EUR`.
        #[oai(validator(pattern = "^[A-Za-z]{3}$"))]
        currency: Query<String>,
        project_id: Query<Option<i64>>,
        from: Query<Option<chrono::NaiveDate>>,
        to: Query<Option<chrono::NaiveDate>>,
        after: Query<Option<i64>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Statement>> {
        let filter = filter_of(
            currency.0,
            project_id.0,
            from.0.map(|day| day.to_string()),
            to.0.map(|day| day.to_string()),
            after.0,
        );
        Ok(Json(finance::statement(&state, principal, &filter, limit.0.unwrap_or(100)).await?))
    }

    /// Export a statement as CSV
    #[oai(path = "/finance/statement/export", method = "get", operation_id = "finance_statement_export")]
    async fn export(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        /// ISO 4217, e.g. `EUR`.
        #[oai(validator(pattern = "^[A-Za-z]{3}$"))]
        currency: Query<String>,
        project_id: Query<Option<i64>>,
        from: Query<Option<chrono::NaiveDate>>,
        to: Query<Option<chrono::NaiveDate>>,
    ) -> ApiResult<CsvFile> {
        let filter = filter_of(
            currency.0,
            project_id.0,
            from.0.map(|day| day.to_string()),
            to.0.map(|day| day.to_string()),
            None,
        );
        let body = crate::statement_export(state.0.clone(), principal, filter).await?;
        Ok(CsvFile::Csv(Binary(body), attachment(crate::STATEMENT_FILE)))
    }
}

fn filter_of(
    currency: String,
    project_id: Option<i64>,
    from: Option<String>,
    to: Option<String>,
    after: Option<i64>,
) -> StatementFilter {
    StatementFilter { currency: Some(currency), project_id: project_id.map(|id| id.to_string()), from, to, after }
}

#[derive(poem_openapi::Tags)]
enum FinanceTag {
    /// Balances and statements.
    Finance,
}
