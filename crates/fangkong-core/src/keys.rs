//! Keys: one master secret per deployment, and the purpose-bound keys derived from it.
//!
//! The master key comes from a file outside the database (`--key-file`); each purpose gets
//! its own key, derived as HMAC-SHA256(master, "fangkong/" + purpose), so a key leaked or
//! rotated for one purpose says nothing about another. The database stores only a short
//! check value, so a server started with the wrong key file refuses to run instead of
//! writing data nobody can verify or decrypt.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const KEY_BYTES: usize = 32;

/// The keyed hash chain of the audit trail.
pub const AUDIT_CHAIN: &str = "audit-chain/v1";
/// Encryption at rest of second-factor secrets.
pub const TOTP_SECRETS: &str = "totp-secrets/v1";
/// Hashing of device credentials.
pub const DEVICE_SECRETS: &str = "device-secrets/v1";
/// Encrypts personal data at rest (names, identity numbers, phones).
pub const PERSONAL_DATA: &str = "personal-data/v1";
/// Keys the blind indexes that find personal data by value (identity numbers).
pub const BLIND_INDEX: &str = "blind-index/v1";
const KEY_CHECK: &str = "key-check/v1";

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The key for `purpose`.
pub fn derive(master: &[u8; KEY_BYTES], purpose: &str) -> [u8; KEY_BYTES] {
    hmac_sha256(master, format!("fangkong/{purpose}").as_bytes())
}

/// A value that identifies the master key without revealing it (hex, 16 bytes).
pub fn check_value(master: &[u8; KEY_BYTES]) -> String {
    let derived = derive(master, KEY_CHECK);
    derived[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_get_different_keys_and_the_check_value_is_stable() {
        let master = [7u8; KEY_BYTES];
        assert_ne!(derive(&master, AUDIT_CHAIN), derive(&master, TOTP_SECRETS));
        assert_eq!(derive(&master, AUDIT_CHAIN), derive(&master, AUDIT_CHAIN));
        assert_eq!(check_value(&master).len(), 32);
        assert_ne!(check_value(&master), check_value(&[8u8; KEY_BYTES]));
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
