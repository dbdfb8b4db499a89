//! The largest request body the dashboard reads, checked before any handler runs.
//!
//! Without it a request could make the server hold as much as it sends (four 200 MB
//! sign-in bodies took it from 114 MB to 2.5 GB). A body declared larger than the limit is
//! refused unread; one of unknown length is read up to the limit and refused as soon as
//! it goes beyond, so the server never holds more than the limit per request.

use poem::http::header;
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::error::{AppError, problem_response};

/// JSON bodies of the API: the largest request the API documents is a few kilobytes.
pub const API_BODY_LIMIT: usize = 64 * 1024;
/// Forms of the pages.
pub const FORM_BODY_LIMIT: usize = 1024 * 1024;

/// Refuses bodies over the limit of their kind with 413 (a problem document under
/// `/api/`, the error page elsewhere); a section's file upload route declares its own
/// larger limit ([`crate::hooks::Upload`]).
pub struct BodyLimit<E> {
    pub inner: E,
}

impl<E: Endpoint> Endpoint for BodyLimit<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let api = req.uri().path().starts_with("/api/");
        let upload = (req.method() == poem::http::Method::POST)
            .then(|| {
                inventory::iter::<crate::hooks::Upload>
                    .into_iter()
                    .find(|upload| crate::registry::path_fits(upload.path, req.uri().path()))
            })
            .flatten();
        let limit = match upload {
            Some(upload) => upload.limit,
            None if api => API_BODY_LIMIT,
            None => FORM_BODY_LIMIT,
        };
        if let Err(error) = read_within(&mut req, limit).await {
            return if api { Ok(problem_response(&error)) } else { Err(error.into()) };
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// Refuses a body over `limit` bytes: one of declared length at once, unread; one of
/// undeclared length (chunked) is read into memory up to the limit and put back.
async fn read_within(req: &mut Request, limit: usize) -> Result<(), AppError> {
    let too_large = || AppError::PayloadTooLarge(format!("The request body is larger than {} KiB.", limit / 1024));
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => return Err(too_large()),
        // Nothing to read, or a length the connection itself stops at.
        Some(_) => return Ok(()),
        None if !req.headers().contains_key(header::TRANSFER_ENCODING) => return Ok(()),
        None => {}
    }
    let body = req.take_body().into_bytes_limit(limit).await.map_err(|error| match error {
        poem::error::ReadBodyError::PayloadTooLarge => too_large(),
        other => AppError::BadRequest(format!("The request body could not be read: {other}.")),
    })?;
    req.set_body(body);
    Ok(())
}
