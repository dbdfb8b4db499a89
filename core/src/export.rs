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

/// The streamed CSV body of [`csv_download`]. The next page is fetched while the
/// current one is written and sent, so the database and the writer work side by side.
pub fn csv_body<C, F, Fut>(header: &'static [&'static str], fetch: F) -> Body
where
    C: Send + 'static,
    F: FnMut(Option<C>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Page<C>, AppError>> + Send + 'static,
{
    let first = csv_bytes(std::iter::once(header.iter().map(|h| (*h).to_owned()).collect()));
    let mut fetch = fetch;
    let pending = Some(tokio::spawn(fetch(None)));
    // State: the fetcher and the page being fetched (`None`: that was the last).
    let pages = stream::unfold((fetch, pending), |(mut fetch, pending)| async move {
        let page = pending?.await.unwrap_or_else(|error| Err(AppError::Internal(error.to_string())));
        match page {
            Ok((rows, next)) => {
                let pending = next.map(|cursor| tokio::spawn(fetch(Some(cursor))));
                Some((Ok::<_, std::io::Error>(csv_bytes(rows.into_iter())), (fetch, pending)))
            }
            Err(error) => {
                // The status line is gone already: end the file and say why in the log.
                tracing::error!(%error, "export stopped");
                Some((Err(std::io::Error::other(error.to_string())), (fetch, None)))
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

/// An XLSX download of the same rows: written with constant memory (rows go to a
/// temporary file as they come), then streamed from that file. `numbers` are the
/// columns written as numbers.
pub async fn xlsx_download<C, F, Fut>(
    filename: &str,
    header: &'static [&'static str],
    numbers: &'static [usize],
    mut fetch: F,
) -> Result<Response, AppError>
where
    F: FnMut(Option<C>) -> Fut,
    Fut: Future<Output = Result<Page<C>, AppError>>,
{
    let internal = |e: rust_xlsxwriter::XlsxError| AppError::Internal(format!("XLSX export failed: {e}"));
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (column, title) in header.iter().enumerate() {
        sheet.write_string_with_format(0, column as u16, *title, &bold).map_err(internal)?;
    }
    let mut row: u32 = 1;
    let mut cursor = None;
    loop {
        let (rows, next) = fetch(cursor).await?;
        for values in rows {
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
        match next {
            Some(next) => cursor = Some(next),
            None => break,
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
