//! The sandbox's simulated 3-D Secure challenge, where the "customer" passes or fails.

use dashboard_core::payments::service;
use dashboard_core::web::check_csrf;
use dashboard_core::{AppError, PageContext};
use poem::handler;
use poem::web::{CsrfVerifier, Form, Html, Path};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
pub struct ChallengeForm {
    csrf_token: String,
    /// "pass" or "fail".
    answer: String,
}

fn render(page: &PageContext, id: &str, done: Option<&str>) -> Result<Html<String>, AppError> {
    let data = json!({ "id": id, "csrf_token": page.csrf_token, "done": done });
    page.render("3-D Secure", "payments/challenge", &data)
}

#[handler]
pub fn challenge(page: PageContext, Path(id): Path<String>) -> Result<Html<String>, AppError> {
    render(&page, &id, None)
}

#[handler]
pub async fn challenge_submit(
    page: PageContext,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Form(form): Form<ChallengeForm>,
) -> Result<Html<String>, AppError> {
    check_csrf(verifier, &form.csrf_token)?;
    let status = service::complete_challenge(&page.state, &id, form.answer == "pass").await?;
    render(&page, &id, Some(status.as_str()))
}
