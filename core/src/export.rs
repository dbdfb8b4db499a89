//! Exports of everything a filter matches, streamed: rows arrive in batches (page by
//! page with a keyset cursor, or in one pass over the database) and are written as they
//! come, so memory stays flat whatever the count.

use std::future::Future;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use poem::http::header;
use poem::{Body, Response};
use tokio::sync::mpsc;

use crate::error::AppError;

/// One page of items (an export's rows) and the cursor of the next page (`None`: this
/// was the last).
pub type Page<T, C> = (Vec<T>, Option<C>);

/// The rows of an export, arriving in batches: whatever produces them (a page loop, or a
/// single pass over the database) runs ahead of the file being written by at most
/// [`BATCHES_AHEAD`] batches, so memory stays flat and both sides work at once.
pub type Rows = mpsc::Receiver<RowBatch>;

/// A batch of rows, or why there are no more.
pub type RowBatch = Result<Vec<Vec<String>>, AppError>;

/// How many batches a producer may run ahead of the writer.
pub const BATCHES_AHEAD: usize = 2;

/// A channel for a producer of [`Rows`].
pub fn rows_channel() -> (mpsc::Sender<RowBatch>, Rows) {
    mpsc::channel(BATCHES_AHEAD)
}

/// Items (an export's rows) fetched page by page: `fetch(cursor)` answers a page and the
/// next cursor, starting from `None`. The pages are fetched by a task of their own, at
/// most [`BATCHES_AHEAD`] ahead of the reader.
pub fn paged<T, C, F, Fut>(mut fetch: F) -> mpsc::Receiver<Result<Vec<T>, AppError>>
where
    T: Send + 'static,
    C: Send + 'static,
    F: FnMut(Option<C>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Page<T, C>, AppError>> + Send + 'static,
{
    let (sender, rows) = mpsc::channel(BATCHES_AHEAD);
    tokio::spawn(async move {
        let mut cursor = None;
        loop {
            let (batch, next) = match fetch(cursor).await {
                Ok(page) => page,
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            };
            // A closed channel: the download was abandoned.
            if sender.send(Ok(batch)).await.is_err() || next.is_none() {
                return;
            }
            cursor = next;
        }
    });
    rows
}

/// A CSV download named `filename`: `header`, then the `rows` as they come.
pub fn csv_download(filename: &str, header: &'static [&'static str], rows: Rows) -> Response {
    csv_response(filename, csv_body(header, rows))
}

/// A CSV download named `filename` of a body already made (e.g. by [`csv_body`]).
pub fn csv_response(filename: &str, body: Body) -> Response {
    Response::builder()
        .content_type("text/csv; charset=utf-8")
        .header(header::CONTENT_DISPOSITION, attachment(filename))
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
}

/// `Content-Disposition` of a download.
pub fn attachment(filename: &str) -> String {
    format!("attachment; filename=\"{filename}\"")
}

/// A download made for a page, as an API twin answers it: its body and its
/// `Content-Disposition` (the API's response types declare the header themselves).
pub fn body_and_disposition(download: Response) -> (Body, String) {
    let disposition = download
        .headers()
        .get(header::CONTENT_DISPOSITION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (download.into_body(), disposition)
}

/// The streamed CSV body of [`csv_download`].
pub fn csv_body(header: &'static [&'static str], rows: Rows) -> Body {
    csv_body_named(header.iter().map(|h| (*h).to_owned()).collect(), rows)
}

/// [`csv_body`] with a header known only when the file is made (e.g. an uploaded file's).
pub fn csv_body_named(header: Vec<String>, rows: Rows) -> Body {
    let first = csv_bytes(std::iter::once(header));
    let batches = stream::unfold(Some(rows), |rows| async move {
        let mut rows = rows?;
        match rows.recv().await? {
            Ok(batch) => Some((Ok::<_, std::io::Error>(csv_bytes(batch.into_iter())), Some(rows))),
            Err(error) => {
                // The status line is gone already: end the file and say why in the log.
                tracing::error!(%error, "export stopped");
                Some((Err(std::io::Error::other(error.to_string())), None))
            }
        }
    });
    Body::from_bytes_stream(stream::iter([Ok(first)]).chain(batches))
}

fn csv_bytes(rows: impl Iterator<Item = Vec<String>>) -> Bytes {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        // Writing to a Vec cannot fail.
        let _ = writer.write_record(&row);
    }
    Bytes::from(writer.into_inner().unwrap_or_default())
}

/// An XLSX download of the same rows: written with constant memory (rows go to a
/// temporary file as they come), then streamed from that file. `numbers` are the
/// columns written as numbers.
pub async fn xlsx_download(
    filename: &str,
    header: &'static [&'static str],
    numbers: &'static [usize],
    mut rows: Rows,
) -> Result<Response, AppError> {
    let internal = |e: rust_xlsxwriter::XlsxError| AppError::Internal(format!("XLSX export failed: {e}"));
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory().map_err(internal)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (column, title) in header.iter().enumerate() {
        sheet.write_string_with_format(0, column as u16, *title, &bold).map_err(internal)?;
    }
    let mut row: u32 = 1;
    while let Some(batch) = rows.recv().await {
        for values in batch? {
            if row >= 1_048_576 {
                return Err(AppError::BadRequest(
                    "More than 1,048,575 rows match: XLSX cannot hold them. Narrow the filter or export CSV."
                        .to_owned(),
                ));
            }
            for (column, value) in values.iter().enumerate() {
                let number = numbers.contains(&column).then(|| value.parse::<f64>().ok()).flatten();
                match number {
                    Some(number) => sheet.write_number(row, column as u16, number).map_err(internal)?,
                    None => sheet.write_string(row, column as u16, value).map_err(internal)?,
                };
            }
            row += 1;
        }
    }
    let file = tempfile::NamedTempFile::new().map_err(|e| AppError::Internal(e.to_string()))?;
    tokio::task::block_in_place(|| workbook.save(file.path())).map_err(internal)?;
    // The open handle keeps the content readable after the temporary name is removed.
    let handle = tokio::fs::File::open(file.path()).await.map_err(|e| AppError::Internal(e.to_string()))?;
    drop(file);
    Ok(Response::builder()
        .content_type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        .header(header::CONTENT_DISPOSITION, attachment(filename))
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_async_read(handle)))
}

/// Spreadsheet programs run cells that start with these as formulas; a leading
/// apostrophe keeps such text as text (CSV injection).
pub fn safe_cell(value: &str) -> String {
    safe_text(value.to_owned())
}

/// [`safe_cell`] of an owned text, which it returns as it is when it is safe.
pub fn safe_text(value: String) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value }
}
