//! The deployment's master key and the keys derived from it for each purpose.
//!
//! The key file is text: comment lines starting with `#`, and one line with the 32-byte
//! master key in base64. `fangkong keygen` writes one; the demo writes one into its data
//! directory. Losing the file means losing the ability to verify the audit trail and to
//! decrypt second-factor secrets: back it up separately from the database.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use fangkong_core::keys::{self, KEY_BYTES};
use rand::RngCore;

#[derive(Clone)]
pub struct KeyRing {
    master: [u8; KEY_BYTES],
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even in debug output.
        f.debug_struct("KeyRing").field("check", &self.check_value()).finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("the key file has no key line (expected one line of base64 with 32 bytes)")]
    Missing,
    #[error("the key file's key line is not valid base64")]
    NotBase64,
    #[error("the key file's key is {0} bytes; it must be 32")]
    WrongLength(usize),
}

impl KeyRing {
    pub fn from_master(master: [u8; KEY_BYTES]) -> KeyRing {
        KeyRing { master }
    }

    /// A new random master key from the operating system's generator.
    pub fn generate() -> KeyRing {
        let mut master = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut master);
        KeyRing { master }
    }

    pub fn parse(text: &str) -> Result<KeyRing, KeyFileError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .ok_or(KeyFileError::Missing)?;
        let bytes = STANDARD.decode(line).map_err(|_| KeyFileError::NotBase64)?;
        let master: [u8; KEY_BYTES] =
            bytes.as_slice().try_into().map_err(|_| KeyFileError::WrongLength(bytes.len()))?;
        Ok(KeyRing { master })
    }

    /// The key file's text.
    pub fn to_file_text(&self) -> String {
        format!(
            "# Fangkong master key. Keep it secret and back it up apart from the database:\n\
             # without it the audit trail cannot be verified nor second factors decrypted.\n\
             # Check value (safe to share): {}\n{}\n",
            self.check_value(),
            STANDARD.encode(self.master)
        )
    }

    /// Identifies the key without revealing it; stored in the database.
    pub fn check_value(&self) -> String {
        keys::check_value(&self.master)
    }

    pub fn audit_chain(&self) -> [u8; KEY_BYTES] {
        keys::derive(&self.master, keys::AUDIT_CHAIN)
    }

    pub fn totp_secrets(&self) -> [u8; KEY_BYTES] {
        keys::derive(&self.master, keys::TOTP_SECRETS)
    }

    pub fn device_secrets(&self) -> [u8; KEY_BYTES] {
        keys::derive(&self.master, keys::DEVICE_SECRETS)
    }

    pub fn personal_data(&self) -> [u8; KEY_BYTES] {
        keys::derive(&self.master, keys::PERSONAL_DATA)
    }

    pub fn blind_index(&self) -> [u8; KEY_BYTES] {
        keys::derive(&self.master, keys::BLIND_INDEX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_bad_ones_say_why() {
        let ring = KeyRing::generate();
        let text = ring.to_file_text();
        let parsed = KeyRing::parse(&text).unwrap();
        assert_eq!(parsed.check_value(), ring.check_value());
        assert!(!format!("{ring:?}").contains(&STANDARD.encode(ring.master)), "Debug hides the key");
        assert_eq!(KeyRing::parse("# only a comment\n").unwrap_err(), KeyFileError::Missing);
        assert_eq!(KeyRing::parse("not base64!!").unwrap_err(), KeyFileError::NotBase64);
        assert_eq!(KeyRing::parse("AAAA").unwrap_err(), KeyFileError::WrongLength(3));
        assert_ne!(KeyRing::generate().check_value(), ring.check_value());
    }
}
