//! Errors of the web layer: one enum, answered as an HTML page or as
//! `application/problem+json` (RFC 9457) with a stable `type`.

use poem::Response;
use poem::http::StatusCode;
use serde::Serialize;

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("Sign in to continue.")]
    Unauthorized,
    #[error("You do not have permission to do this.")]
    Forbidden,
    /// Refused whatever the permissions, for the reason given (403).
    #[error("{0}")]
    Refused(String),
    #[error("This needs two-factor authentication. Set it up in My profile, then sign in again.")]
    SecondFactorRequired,
    /// The second factor was given too long ago for this action (step-up).
    #[error("Confirm it is you first: enter a code from your authenticator app, then do this again within 5 minutes.")]
    StepUpRequired,
    #[error("Not found.")]
    NotFound,
    /// A page's form without a valid CSRF token (an old page, or another site's form).
    #[error("The form expired. Reload the page and try again.")]
    FormExpired,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("The service is temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] DbError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden
            | AppError::Refused(_)
            | AppError::SecondFactorRequired
            | AppError::StepUpRequired
            | AppError::FormExpired => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unavailable(_) | AppError::Db(DbError::Pool(_)) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Db(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable problem type, the last part of `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            AppError::Unauthorized => "unauthorized",
            AppError::Forbidden | AppError::Refused(_) => "forbidden",
            AppError::SecondFactorRequired => "second-factor-required",
            AppError::StepUpRequired => "step-up-required",
            AppError::NotFound => "not-found",
            AppError::FormExpired => "form-expired",
            AppError::BadRequest(_) => "bad-request",
            AppError::Conflict(_) => "conflict",
            AppError::Unprocessable(_) => "unprocessable",
            AppError::TooManyRequests(_) => "too-many-requests",
            AppError::PayloadTooLarge(_) => "payload-too-large",
            AppError::Unavailable(_) | AppError::Db(DbError::Pool(_)) => "unavailable",
            AppError::Db(_) | AppError::Internal(_) => "internal",
        }
    }

    /// What the user is told. Internal causes go to the log, not to the user.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Db(DbError::Pool(_)) => "The service is temporarily unavailable; please try again.".to_owned(),
            AppError::Db(_) | AppError::Internal(_) => {
                "Something went wrong on our side. The error was logged; please try again.".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(error: diesel::result::Error) -> Self {
        AppError::Db(DbError::Query(error))
    }
}

impl poem::error::ResponseError for AppError {
    fn status(&self) -> StatusCode {
        AppError::status(self)
    }

    fn as_response(&self) -> Response {
        log_if_internal(self);
        Response::builder()
            .status(AppError::status(self))
            .content_type("text/plain; charset=utf-8")
            .body(self.public_message())
    }
}

fn log_if_internal(error: &AppError) {
    if error.status().is_server_error() {
        tracing::error!(error = %error, "request failed");
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Problem {
    /// A URI naming the kind of problem, stable across releases.
    #[serde(rename = "type")]
    #[oai(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Problem {
    pub fn from_error(error: &AppError) -> Problem {
        let status = error.status();
        Problem {
            kind: format!("https://dashboard.invalid/problems/{}", error.kind()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: Some(error.public_message()),
        }
    }
}

/// The problem document of `error` as a response.
pub fn problem_response(error: &AppError) -> Response {
    log_if_internal(error);
    let body = serde_json::to_string(&Problem::from_error(error)).unwrap_or_default();
    Response::builder().status(error.status()).content_type("application/problem+json").body(body)
}

/// Error answer of API operations, documented in the OpenAPI document.
#[derive(Debug, poem_openapi::ApiResponse)]
pub enum ApiError {
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(poem_openapi::payload::Json<Problem>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(poem_openapi::payload::Json<Problem>),
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(poem_openapi::payload::Json<Problem>),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(poem_openapi::payload::Json<Problem>),
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(poem_openapi::payload::Json<Problem>),
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(poem_openapi::payload::Json<Problem>),
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(poem_openapi::payload::Json<Problem>),
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(poem_openapi::payload::Json<Problem>),
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(poem_openapi::payload::Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(poem_openapi::payload::Json<Problem>),
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        log_if_internal(&error);
        let problem = poem_openapi::payload::Json(Problem::from_error(&error));
        match error.status() {
            StatusCode::BAD_REQUEST => ApiError::BadRequest(problem),
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized(problem),
            StatusCode::FORBIDDEN => ApiError::Forbidden(problem),
            StatusCode::NOT_FOUND => ApiError::NotFound(problem),
            StatusCode::CONFLICT => ApiError::Conflict(problem),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(problem),
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(problem),
            StatusCode::TOO_MANY_REQUESTS => ApiError::TooManyRequests(problem),
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable(problem),
            _ => ApiError::Internal(problem),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        AppError::Db(error).into()
    }
}

/// Shorthand for API operation results.
pub type ApiResult<T> = Result<T, ApiError>;
