//! Timestamps: stored as UTC `NaiveDateTime` (both databases), shown as RFC 3339.

use chrono::{NaiveDateTime, SecondsFormat, TimeDelta, Utc};

/// UTC now, at microsecond precision (what both databases store).
pub fn now() -> NaiveDateTime {
    let now = Utc::now().naive_utc();
    let extra_nanos = i64::from(now.and_utc().timestamp_subsec_nanos() % 1000);
    now.checked_sub_signed(TimeDelta::nanoseconds(extra_nanos)).unwrap_or(now)
}

/// RFC 3339 in UTC with a `Z`, to the second: `2026-11-27T10:15:00Z`.
pub fn rfc3339(value: &NaiveDateTime) -> String {
    value.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A stored UTC time as a person reads it, in their time zone (an IANA name; UTC when it
/// is unknown): `29 Nov 2026, 17:38`.
pub fn shown(value: &NaiveDateTime, time_zone: &str) -> String {
    const FORMAT: &str = "%-d %b %Y, %H:%M";
    match time_zone.parse::<chrono_tz::Tz>() {
        Ok(zone) => value.and_utc().with_timezone(&zone).format(FORMAT).to_string(),
        Err(_) => value.format(FORMAT).to_string(),
    }
}

/// A day as people read it across the product: `29 Nov 2026`.
pub fn day_shown(day: chrono::NaiveDate) -> String {
    day.format("%-d %b %Y").to_string()
}

/// A span of days as people read it: `1 Nov 2026 – 29 Nov 2026`, or one day alone.
pub fn days_shown(first: chrono::NaiveDate, last: chrono::NaiveDate) -> String {
    if first == last { day_shown(first) } else { format!("{} – {}", day_shown(first), day_shown(last)) }
}

/// A stored UTC time as two columns of a file people open: `2026-11-29 17:38:05` in their
/// time zone (UTC when unknown), and that zone's name.
pub fn file_columns(value: &NaiveDateTime, time_zone: &str) -> [String; 2] {
    let zone = time_zone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::Tz::UTC);
    [value.and_utc().with_timezone(&zone).format("%Y-%m-%d %H:%M:%S").to_string(), zone.name().to_owned()]
}

/// The instant (UTC) a day starts in `zone`: its first local minute that exists.
pub fn day_start(zone: chrono_tz::Tz, day: chrono::NaiveDate) -> NaiveDateTime {
    use chrono::TimeZone;
    let mut local = day.and_time(chrono::NaiveTime::MIN);
    loop {
        match zone.from_local_datetime(&local) {
            chrono::LocalResult::Single(at) | chrono::LocalResult::Ambiguous(at, _) => return at.naive_utc(),
            // Midnight fell into a daylight-saving gap: the day starts when the clocks do.
            chrono::LocalResult::None => local += TimeDelta::minutes(15),
        }
    }
}

/// A period of whole days typed as `YYYY-MM-DD` (either end may be empty), both days
/// included, in the time zone `time_zone` (UTC when unknown): the UTC instants it starts
/// at and ends before.
pub fn local_days(
    from: Option<&str>,
    to: Option<&str>,
    time_zone: &str,
) -> Result<(Option<NaiveDateTime>, Option<NaiveDateTime>), crate::AppError> {
    let zone = time_zone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::Tz::UTC);
    let day = |text: Option<&str>, what: &str| match text.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| crate::AppError::BadRequest(format!("The {what} date must look like 2026-11-27."))),
    };
    let (first, last) = (day(from, "from")?, day(to, "to")?);
    if let (Some(first), Some(last)) = (first, last)
        && last < first
    {
        return Err(crate::AppError::BadRequest("The to date must not be before the from date.".to_owned()));
    }
    let after_last = last.and_then(|last| last.succ_opt());
    Ok((first.map(|day| day_start(zone, day)), after_last.map(|day| day_start(zone, day))))
}

/// What the zone `time_zone` is called now (`EST`, `CET`, `UTC`; an offset such as `+03`
/// where it has no abbreviation), for a heading above times shown in it.
pub fn zone_abbreviation(time_zone: &str) -> String {
    let zone = time_zone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::Tz::UTC);
    Utc::now().with_timezone(&zone).format("%Z").to_string()
}

/// The time zones a person picks from: UTC and the time zone database's places
/// (`Europe/London`), sorted, each with its label (`America/New York`) and whether it is
/// `chosen`.
pub fn zone_choices(chosen: &str) -> Vec<serde_json::Value> {
    let mut names: Vec<&'static str> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|zone| zone.name())
        .filter(|name| {
            name.contains('/')
                && !name.starts_with("Etc/")
                && name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        })
        .collect();
    names.sort_unstable();
    std::iter::once("UTC")
        .chain(names)
        .map(|name| serde_json::json!({ "value": name, "label": name.replace('_', " "), "selected": name == chosen }))
        .collect()
}

/// Serde adapter writing a UTC `NaiveDateTime` with [`rfc3339`].
pub mod serde_rfc3339 {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(value: &chrono::NaiveDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::rfc3339(value))
    }
}

/// A stored timestamp, read quickly. SQLite keeps timestamps as text, which diesel reads
/// by trying chrono's format strings one by one (a format parse per value: a fifth of
/// the time of reading an export). The text this application writes,
/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, is read by hand here; anything else goes to diesel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, diesel::deserialize::FromSqlRow)]
pub struct StoredTime(pub NaiveDateTime);

impl diesel::deserialize::FromSql<diesel::sql_types::Timestamp, diesel::sqlite::Sqlite> for StoredTime {
    fn from_sql(mut value: diesel::sqlite::SqliteValue<'_, '_, '_>) -> diesel::deserialize::Result<Self> {
        if value.value_type() == Some(diesel::sqlite::SqliteType::Text)
            && let Some(time) = parse_stored(value.read_text())
        {
            return Ok(StoredTime(time));
        }
        <NaiveDateTime as diesel::deserialize::FromSql<diesel::sql_types::Timestamp, diesel::sqlite::Sqlite>>::from_sql(
            value,
        )
        .map(StoredTime)
    }
}

impl diesel::deserialize::FromSql<diesel::sql_types::Timestamp, diesel::pg::Pg> for StoredTime {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        <NaiveDateTime as diesel::deserialize::FromSql<diesel::sql_types::Timestamp, diesel::pg::Pg>>::from_sql(value)
            .map(StoredTime)
    }
}

/// `YYYY-MM-DD HH:MM:SS` with up to 9 digits of fraction, or `None`.
fn parse_stored(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
    if bytes.len() < 19 || separators.iter().any(|(at, separator)| bytes[*at] != *separator) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes[range].iter().try_fold(0_u32, |n, b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
    };
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(number(0..4)?).ok()?, number(5..7)?, number(8..10)?)?;
    let nanos = match &bytes[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(20..bytes.len())? * 10_u32.pow(9 - u32::try_from(digits.len()).ok()?)
        }
        _ => return None,
    };
    let time = chrono::NaiveTime::from_hms_nano_opt(number(11..13)?, number(14..16)?, number(17..19)?, nanos)?;
    Some(NaiveDateTime::new(date, time))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn times_are_shown_in_the_users_zone() {
        let utc = NaiveDateTime::parse_from_str("2026-11-29 23:30:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(shown(&utc, "UTC"), "29 Nov 2026, 23:30");
        assert_eq!(shown(&utc, "Asia/Kolkata"), "30 Nov 2026, 05:00");
        assert_eq!(shown(&utc, "America/New_York"), "29 Nov 2026, 18:30");
        assert_eq!(shown(&utc, "Not/AZone"), "29 Nov 2026, 23:30");
    }

    #[test]
    fn stored_text_is_read_like_chrono_reads_it() {
        for text in ["2026-11-27 07:58:01.123456", "2026-01-02 00:00:00", "2024-02-29 23:59:59.5"] {
            let chrono = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
            assert_eq!(parse_stored(text), Some(chrono), "{text}");
        }
        for text in ["2026-11-27T07:58:01", "2026-02-30 00:00:00", "2026-11-27 25:00:00", "2026-11-27 07:58:01.", "x"] {
            assert_eq!(parse_stored(text), None, "{text}");
        }
    }
}

/// A UTC instant as the API writes it, RFC 3339 (`2026-11-27T10:15:00Z`), declared a
/// `date-time` string in the OpenAPI document; templates read it as the string it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub String);

impl From<String> for Timestamp {
    fn from(text: String) -> Timestamp {
        Timestamp(text)
    }
}

impl From<&NaiveDateTime> for Timestamp {
    fn from(value: &NaiveDateTime) -> Timestamp {
        Timestamp(rfc3339(value))
    }
}

mod timestamp_schema {
    use std::borrow::Cow;

    use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
    use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
    use serde_json::Value;

    use super::Timestamp;

    impl Type for Timestamp {
        const IS_REQUIRED: bool = true;
        type RawValueType = Self;
        type RawElementValueType = Self;

        fn name() -> Cow<'static, str> {
            "string_date-time".into()
        }

        fn schema_ref() -> MetaSchemaRef {
            MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time")))
        }

        fn as_raw_value(&self) -> Option<&Self::RawValueType> {
            Some(self)
        }

        fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
            Box::new(self.as_raw_value().into_iter())
        }
    }

    impl ToJSON for Timestamp {
        fn to_json(&self) -> Option<Value> {
            Some(Value::String(self.0.clone()))
        }
    }

    impl ParseFromJSON for Timestamp {
        fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
            match value {
                Some(Value::String(text)) if chrono::DateTime::parse_from_rfc3339(&text).is_ok() => Ok(Timestamp(text)),
                _ => Err(ParseError::custom("expected an RFC 3339 date-time")),
            }
        }
    }
}
