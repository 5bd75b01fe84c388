//! Accounts as the system keeps them: users, their sessions, and devices.

use super::lockout::LoginState;
use super::{DeviceKind, Role};
use crate::time::Timestamp;

/// A user account. Accounts are never deleted, only disabled, so that the audit trail's
/// references to them stay meaningful.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct User {
    pub id: i64,
    /// Login name: 3–64 characters of a–z, 0–9, '.', '_', '-'.
    pub username: String,
    /// Name shown to colleagues (personal data).
    pub display_name: String,
    pub role: Role,
    /// The jurisdiction node the user is bound to.
    pub jurisdiction: String,
    /// Argon2id hash in PHC string format.
    pub password_hash: String,
    pub password_changed_at: Timestamp,
    /// The TOTP secret, encrypted at rest; `None` when the user has no second factor.
    pub totp_secret: Option<Vec<u8>>,
    /// A second factor set up but not yet confirmed with a first code.
    pub totp_pending: bool,
    pub totp_last_step: Option<i64>,
    pub login: LoginState,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl User {
    pub fn has_second_factor(&self) -> bool {
        self.totp_secret.is_some() && !self.totp_pending
    }
}

/// A user to create (the id and times are assigned when stored).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub jurisdiction: String,
}

/// Why a username or display name was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum AccountError {
    #[error("username must be 3–64 characters of a–z, 0–9, '.', '_' or '-', starting with a letter or digit")]
    Username,
    #[error("display name must be 1–64 characters without control or invisible formatting characters")]
    DisplayName,
    #[error("users cannot be bound to a {0}; use a city, district, sub-district, community or police station")]
    Jurisdiction(crate::jurisdiction::JurisdictionKind),
}

pub fn check_username(username: &str) -> Result<(), AccountError> {
    let ok = (3..=64).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
        && username.as_bytes()[0].is_ascii_alphanumeric();
    if ok { Ok(()) } else { Err(AccountError::Username) }
}

pub fn check_display_name(name: &str) -> Result<(), AccountError> {
    let count = name.trim().chars().count();
    if (1..=64).contains(&count) && !crate::text::has_hidden(name, false) {
        Ok(())
    } else {
        Err(AccountError::DisplayName)
    }
}

/// A signed-in session. The bearer token itself is never stored, only its SHA-256.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Session {
    pub token_hash: [u8; 32],
    pub user_id: i64,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub ip: Option<String>,
}

/// A device with its own credential (tracker, alarm point, checkpoint terminal).
#[derive(Clone, PartialEq, Debug)]
pub struct Device {
    pub id: i64,
    /// What the device sends to identify itself (for OsmAnd trackers, the `id` parameter).
    pub unique_id: String,
    pub kind: DeviceKind,
    /// The patrol unit, alarm point or checkpoint it belongs to, if known.
    pub unit: Option<String>,
    pub jurisdiction: String,
    /// What people call the place, for a fixed device (an alarm point's shop, a checkpoint).
    pub name: Option<String>,
    /// Where a fixed device stands (alarm points, checkpoint terminals); trackers move and
    /// report fixes instead.
    pub location: Option<fangkong_geo::LatLon>,
    /// Keyed hash of the device's secret.
    pub secret_hash: [u8; 32],
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
}

pub fn check_unique_id(unique_id: &str) -> bool {
    (1..=64).contains(&unique_id.len()) && unique_id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_display_names() {
        for ok in ["admin", "zhang.wei", "disp-01", "a_b", "110dispatcher"] {
            assert_eq!(check_username(ok), Ok(()), "{ok}");
        }
        for bad in ["ab", "Admin", "zhang wei", ".hidden", "张伟", &"a".repeat(65)] {
            assert_eq!(check_username(bad), Err(AccountError::Username), "{bad}");
        }
        assert!(check_display_name("张伟").is_ok());
        assert!(check_display_name(" ").is_err());
        assert!(check_display_name("a\nb").is_err());
        assert!(check_display_name("\u{202E}伟张").is_err(), "no direction overrides");
        assert!(check_display_name("张\u{200B}伟").is_err(), "no zero-width characters");
        assert!(check_unique_id("862118020000001") && !check_unique_id("with space") && !check_unique_id(""));
    }
}
