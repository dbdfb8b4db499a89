//! Exports of everything a filter matches, streamed: rows are fetched page by page with
//! a keyset cursor and written as they come, so memory stays flat whatever the count.

use std::future::Future;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use poem::http::header;
use poem::{Body, Response};

use crate::error::AppError;

/// One page of rows and the cursor of the next page (`None`: this was the last).
pub type Page<C> = (Vec<Vec<String>>, Option<C>);

/// A CSV download named `filename`: `header`, then the rows `fetch` returns page by
/// page, starting from cursor `None`.
pub fn csv_download<C, F, Fut>(filename: &str, header: &'static [&'static str], fetch: F) -> Response
where
    C: Send + 'static,
    F: FnMut(Option<C>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Page<C>, AppError>> + Send + 'static,
{
    Response::builder()
        .content_type("text/csv; charset=utf-8")
        .header(header::CONTENT_DISPOSITION, attachment(filename))
        .header(header::CACHE_CONTROL, "no-store")
        .body(csv_body(header, fetch))
}

/// `Content-Disposition` of a download.
pub fn attachment(filename: &str) -> String {
    format!("attachment; filename=\"{filename}\"")
}

/// The streamed CSV body of [`csv_download`].
pub fn csv_body<C, F, Fut>(header: &'static [&'static str], fetch: F) -> Body
where
    C: Send + 'static,
    F: FnMut(Option<C>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Page<C>, AppError>> + Send + 'static,
{
    let first = csv_bytes(std::iter::once(header.iter().map(|h| (*h).to_owned()).collect()));
    // State: the fetcher, the next cursor, whether more pages may follow.
    let pages = stream::unfold((fetch, None::<C>, true), |(mut fetch, cursor, more)| async move {
        if !more {
            return None;
        }
        match fetch(cursor).await {
            Ok((rows, next)) => {
                let has_next = next.is_some();
                Some((Ok::<_, std::io::Error>(csv_bytes(rows.into_iter())), (fetch, next, has_next)))
            }
            Err(error) => {
                // The status line is gone already: end the file and say why in the log.
                tracing::error!(%error, "export stopped");
                Some((Err(std::io::Error::other(error.to_string())), (fetch, None, false)))
            }
        }
    });
    Body::from_bytes_stream(stream::iter([Ok(first)]).chain(pages))
}

fn csv_bytes(rows: impl Iterator<Item = Vec<String>>) -> Bytes {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        // Writing to a Vec cannot fail.
        let _ = writer.write_record(&row);
    }
    Bytes::from(writer.into_inner().unwrap_or_default())
}

/// Spreadsheet programs run cells that start with these as formulas; a leading
/// apostrophe keeps such text as text (CSV injection).
pub fn safe_cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_owned() }
}
