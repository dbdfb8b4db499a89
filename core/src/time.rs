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

/// Serde adapter writing a UTC `NaiveDateTime` with [`rfc3339`].
pub mod serde_rfc3339 {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(value: &chrono::NaiveDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::rfc3339(value))
    }
}
