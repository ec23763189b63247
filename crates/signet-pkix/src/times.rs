//! How Signet writes a time for people and logs.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A time as RFC 3339 in UTC, to the second (`2026-12-07T01:15:29Z`): how every Signet output
/// and log field writes a time. A year RFC 3339 cannot write (before 0 or after 9999, which
/// no X.509 time can hold) falls back to Unix seconds.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let utc = t.to_offset(UtcOffset::UTC);
    utc.replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{}", utc.unix_timestamp()))
}
