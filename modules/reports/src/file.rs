//! Writing a report's rows into its file, row by row with flat memory: CSV (times in the
//! report's time zone, amounts in their currency's decimals, text that a spreadsheet
//! would run as a formula kept as text), or XLSX with typed cells: amounts and counts are
//! numbers, times and days are dates, on as many sheets as the rows need.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use dashboard_core::AppError;
use dashboard_core::reports::{Cell, ColumnKind};
use rust_xlsxwriter::{ExcelDateTime, Format as CellFormat, Workbook, XlsxError};

/// A report's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::Xlsx => "Excel (XLSX)",
        }
    }

    /// Its short name: `CSV`, `XLSX`.
    pub fn short(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::Xlsx => "XLSX",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// The columns a file shows: which of the type's cells, under which header.
pub struct Layout {
    /// Positions in the type's rows, in the file's order.
    pub picked: Vec<usize>,
    pub headers: Vec<String>,
    pub kinds: Vec<ColumnKind>,
    /// What a sheet is called (XLSX).
    pub title: String,
    pub zone: Tz,
}

/// A report's file being written.
// One per report being built: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum ReportFile {
    Csv(CsvFile),
    Xlsx(XlsxFile),
}

impl ReportFile {
    /// Starts the file at `path` with its header.
    pub fn create(path: &Path, format: Format, layout: Layout) -> Result<ReportFile, AppError> {
        Ok(match format {
            Format::Csv => ReportFile::Csv(CsvFile::create(path, layout)?),
            Format::Xlsx => ReportFile::Xlsx(XlsxFile::create(path, layout)?),
        })
    }

    /// One row of the type's cells.
    pub fn write(&mut self, row: &[Cell]) -> Result<(), AppError> {
        match self {
            ReportFile::Csv(file) => file.write(row),
            ReportFile::Xlsx(file) => file.write(row),
        }
    }

    /// Completes the file.
    pub fn finish(self) -> Result<(), AppError> {
        match self {
            ReportFile::Csv(file) => file.finish(),
            ReportFile::Xlsx(file) => file.finish(),
        }
    }
}

fn io_error(error: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("the report's file cannot be written: {error}"))
}

/// The time a person in `zone` reads for a UTC instant.
fn local(zone: Tz, utc: &NaiveDateTime) -> NaiveDateTime {
    zone.from_utc_datetime(utc).naive_local()
}

/// The header of a column: a time column says its zone.
fn header(label: &str, kind: ColumnKind, zone: Tz) -> String {
    match kind {
        ColumnKind::Time => format!("{label} ({})", zone.name()),
        _ => label.to_owned(),
    }
}

pub struct CsvFile {
    writer: csv::Writer<BufWriter<File>>,
    layout: Layout,
    /// Reused for each cell's text.
    cell: String,
}

impl CsvFile {
    fn create(path: &Path, layout: Layout) -> Result<CsvFile, AppError> {
        let file = File::create(path).map_err(io_error)?;
        let mut writer = csv::Writer::from_writer(BufWriter::with_capacity(256 * 1024, file));
        let headers = layout.headers.iter().zip(&layout.kinds).map(|(label, kind)| header(label, *kind, layout.zone));
        writer.write_record(headers).map_err(io_error)?;
        Ok(CsvFile { writer, layout, cell: String::with_capacity(64) })
    }

    fn write(&mut self, row: &[Cell]) -> Result<(), AppError> {
        use std::fmt::Write as _;
        for &position in &self.layout.picked {
            self.cell.clear();
            let text: &str = match row.get(position).unwrap_or(&Cell::Empty) {
                Cell::Empty => "",
                Cell::Text(text) if text.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
                    // A spreadsheet would run it as a formula: an apostrophe keeps it text.
                    self.cell.push('\'');
                    self.cell.push_str(text);
                    &self.cell
                }
                Cell::Text(text) => text,
                Cell::Label(text) => text,
                Cell::Integer(number) => {
                    let _ = write!(self.cell, "{number}");
                    &self.cell
                }
                Cell::Money(minor, exponent) => {
                    decimal(&mut self.cell, *minor, *exponent);
                    &self.cell
                }
                Cell::Time(utc) => {
                    timestamp(&mut self.cell, local(self.layout.zone, utc));
                    &self.cell
                }
                Cell::Date(day) => {
                    let _ = write!(self.cell, "{day}");
                    &self.cell
                }
            };
            self.writer.write_field(text).map_err(io_error)?;
        }
        self.writer.write_record(None::<&[u8]>).map_err(io_error)
    }

    fn finish(self) -> Result<(), AppError> {
        let file = self.writer.into_inner().map_err(io_error)?.into_inner().map_err(io_error)?;
        file.sync_all().map_err(io_error)
    }
}

/// `2026-11-29 17:38:05` (chrono's general formatter takes several times as long, and a
/// report writes millions).
fn timestamp(out: &mut String, at: NaiveDateTime) {
    use chrono::{Datelike, Timelike};
    let mut digits = *b"0000-00-00 00:00:00";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for position in (at..at + width).rev() {
            digits[position] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, at.year().clamp(0, 9999) as u32);
    put(5, 2, at.month());
    put(8, 2, at.day());
    put(11, 2, at.hour());
    put(14, 2, at.minute());
    put(17, 2, at.second());
    out.push_str(std::str::from_utf8(&digits).unwrap_or_default());
}

/// `minor` units written with `exponent` decimals: `-1234, 2` → `-12.34`.
fn decimal(out: &mut String, minor: i64, exponent: u32) {
    use std::fmt::Write as _;
    if exponent == 0 {
        let _ = write!(out, "{minor}");
        return;
    }
    let unit = 10u64.pow(exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:0width$}", magnitude / unit, magnitude % unit, width = exponent as usize);
}

/// Rows a sheet holds besides its header (Excel's limit is 1,048,576 rows).
const ROWS_PER_SHEET: u32 = 1_048_575;

pub struct XlsxFile {
    workbook: Workbook,
    path: std::path::PathBuf,
    layout: Layout,
    /// The sheet being written (an index into the workbook) and its next row.
    sheet: usize,
    row: u32,
    sheets: usize,
    /// Formats by money exponent, and of times and days.
    money: Vec<CellFormat>,
    time: CellFormat,
    day: CellFormat,
}

impl XlsxFile {
    fn create(path: &Path, layout: Layout) -> Result<XlsxFile, AppError> {
        let money = (0..=4)
            .map(|exponent| {
                let decimals = if exponent == 0 { String::new() } else { format!(".{}", "0".repeat(exponent)) };
                CellFormat::new().set_num_format(format!("#,##0{decimals}"))
            })
            .collect();
        let mut workbook = Workbook::new();
        // Compressing the sheets takes most of the time of a large workbook: level 2 takes
        // about half the time of the default 6 for a file about a tenth larger.
        workbook.set_zip_compression_level(2);
        let mut file = XlsxFile {
            workbook,
            path: path.to_owned(),
            layout,
            sheet: 0,
            row: 0,
            sheets: 0,
            money,
            time: CellFormat::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            day: CellFormat::new().set_num_format("yyyy-mm-dd"),
        };
        file.next_sheet().map_err(io_error)?;
        Ok(file)
    }

    /// Starts a sheet with the header row and column widths.
    fn next_sheet(&mut self) -> Result<(), XlsxError> {
        self.sheets += 1;
        let name = match self.sheets {
            1 => self.layout.title.clone(),
            n => format!("{} {n}", self.layout.title),
        };
        let bold = CellFormat::new().set_bold();
        let sheet = self.workbook.add_worksheet_with_constant_memory()?;
        sheet.set_name(name)?;
        sheet.set_freeze_panes(1, 0)?;
        for (column, (label, kind)) in self.layout.headers.iter().zip(&self.layout.kinds).enumerate() {
            let column = column as u16;
            let width = match kind {
                ColumnKind::Time => 20.0,
                ColumnKind::Money | ColumnKind::Integer | ColumnKind::Date => 12.0,
                ColumnKind::Text => 18.0,
            };
            sheet.set_column_width(column, width)?;
            sheet.write_string_with_format(0, column, header(label, *kind, self.layout.zone), &bold)?;
        }
        self.sheet = self.sheets - 1;
        self.row = 1;
        Ok(())
    }

    fn write(&mut self, cells: &[Cell]) -> Result<(), AppError> {
        if self.row > ROWS_PER_SHEET {
            self.next_sheet().map_err(io_error)?;
        }
        self.write_cells(cells).map_err(io_error)?;
        self.row += 1;
        Ok(())
    }

    fn write_cells(&mut self, cells: &[Cell]) -> Result<(), XlsxError> {
        let XlsxFile { workbook, layout, sheet, row, money, time, day, .. } = self;
        let (row, zone) = (*row, layout.zone);
        let worksheet = workbook.worksheet_from_index(*sheet)?;
        for (column, &position) in layout.picked.iter().enumerate() {
            let column = column as u16;
            match cells.get(position).unwrap_or(&Cell::Empty) {
                Cell::Empty => continue,
                Cell::Text(text) => worksheet.write_string(row, column, text)?,
                Cell::Label(text) => worksheet.write_string(row, column, *text)?,
                Cell::Integer(number) => worksheet.write_number(row, column, *number as f64)?,
                Cell::Money(minor, exponent) => {
                    let value = *minor as f64 / 10f64.powi(*exponent as i32);
                    let format = &money[(*exponent as usize).min(money.len() - 1)];
                    worksheet.write_number_with_format(row, column, value, format)?
                }
                Cell::Time(utc) => {
                    let at = ExcelDateTime::from_timestamp(local(zone, utc).and_utc().timestamp())?;
                    worksheet.write_datetime_with_format(row, column, &at, time)?
                }
                Cell::Date(date) => {
                    let midnight = date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp();
                    worksheet.write_datetime_with_format(row, column, &ExcelDateTime::from_timestamp(midnight)?, day)?
                }
            };
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), AppError> {
        self.workbook.save(&self.path).map_err(io_error)?;
        File::open(&self.path).and_then(|file| file.sync_all()).map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::decimal;

    #[test]
    fn times_are_written_to_the_second() {
        let mut out = String::new();
        let at = chrono::NaiveDate::from_ymd_opt(2026, 3, 9).unwrap().and_hms_micro_opt(7, 5, 59, 999_999).unwrap();
        super::timestamp(&mut out, at);
        assert_eq!(out, "2026-03-09 07:05:59");
    }

    #[test]
    fn amounts_are_written_with_their_currency_s_decimals() {
        let written = |minor, exponent| {
            let mut out = String::new();
            decimal(&mut out, minor, exponent);
            out
        };
        assert_eq!(written(145_867, 2), "1458.67");
        assert_eq!(written(-5, 2), "-0.05");
        assert_eq!(written(3_120, 0), "3120");
        assert_eq!(written(1_000, 3), "1.000");
    }
}
