//! The `/api/v1` handlers, one module per area, and the wire types they own.
//!
//! Core types are not `Serialize`: each area converts its domain values into its own
//! response bodies here, so the API can stay stable while the domain evolves.

pub mod codes;
pub mod system;

use fangkong_core::time::Timestamp;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant as RFC 3339 UTC with milliseconds (`2026-11-28T01:25:14.123Z`).
pub fn rfc3339(at: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.as_millis()) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| at.as_millis().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_format_as_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp::from_millis(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Timestamp::from_millis(1_764_293_114_123)), "2025-11-28T01:25:14.123Z");
    }
}
