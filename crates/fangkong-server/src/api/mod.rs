//! The `/api/v1` handlers, one module per area, and the wire types they own.
//!
//! Core types are not `Serialize`: each area converts its domain values into its own
//! response bodies here, so the API can stay stable while the domain evolves.

pub mod audit;
pub mod auth;
pub mod codes;
pub mod devices;
pub mod eido;
pub mod forces;
pub mod incidents;
pub mod jurisdictions;
pub mod positions;
pub mod registry;
pub mod stream;
pub mod system;
pub mod users;

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

/// Parses an RFC 3339 instant from a query parameter named `field`.
pub fn parse_rfc3339(field: &str, text: &str) -> Result<Timestamp, crate::error::ApiError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| Timestamp::from_millis((t.unix_timestamp_nanos() / 1_000_000) as i64))
        .map_err(|_| {
            crate::error::ApiError::bad_request(
                "invalid_query",
                format!("{field} must be RFC 3339, e.g. 2026-11-28T08:00:00+08:00"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_format_as_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp::from_millis(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Timestamp::from_millis(1_764_293_114_123)), "2025-11-28T01:25:14.123Z");
        assert_eq!(
            parse_rfc3339("from", "2025-11-28T09:25:14.123+08:00").unwrap(),
            Timestamp::from_millis(1_764_293_114_123)
        );
        assert!(parse_rfc3339("from", "yesterday").is_err());
    }
}
