//! The engine's cryptography: password hashing (Argon2id), tokens, keyed hashes of device
//! secrets, and encryption at rest of second-factor secrets (ChaCha20-Poly1305).

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Argon2id cost. The default is OWASP's recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for PasswordCost {
    fn default() -> PasswordCost {
        PasswordCost { memory_kib: 19_456, iterations: 2 }
    }
}

fn argon2(cost: PasswordCost) -> Argon2<'static> {
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &str, cost: PasswordCost) -> String {
    argon2(cost)
        .hash_password(password.as_bytes())
        .expect("Argon2 hashing cannot fail for valid parameters")
        .to_string()
}

/// Whether `password` matches the PHC string (with the parameters stored in it).
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// `n` random bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A bearer token or device secret: 32 random bytes, URL-safe base64 (43 characters).
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// How a session token is stored: its SHA-256.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two byte strings in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Encrypts `plaintext` bound to `context` (e.g. the username): nonce ‖ ciphertext.
pub fn seal(key: &[u8; 32], context: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new_from_slice(key).expect("32-byte key");
    let nonce_bytes = random_bytes::<12>();
    let nonce = Nonce::from(nonce_bytes);
    let ciphertext =
        cipher.encrypt(&nonce, Payload { msg: plaintext, aad: context }).expect("encryption cannot fail in memory");
    [nonce_bytes.as_slice(), &ciphertext].concat()
}

/// Decrypts what [`seal`] produced for the same `context`; `None` if it was altered, moved
/// to another context, or sealed under another key.
pub fn open(key: &[u8; 32], context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 {
        return None;
    }
    let cipher = ChaCha20Poly1305::new_from_slice(key).ok()?;
    let nonce: [u8; 12] = sealed[..12].try_into().ok()?;
    cipher.decrypt(&Nonce::from(nonce), Payload { msg: &sealed[12..], aad: context }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let cost = PasswordCost { memory_kib: 1024, iterations: 1 };
        let hash = hash_password("correct horse battery", cost);
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery!", &hash));
        assert!(!verify_password("anything", "not a phc string"));
        assert_ne!(hash, hash_password("correct horse battery", cost), "salted");
        assert!(hash_password("x", PasswordCost::default()).contains("m=19456,t=2,p=1"));
    }

    #[test]
    fn sealed_secrets_open_only_in_their_context_and_unaltered() {
        let key = [3u8; 32];
        let sealed = seal(&key, b"zhang.wei", b"secret");
        assert_eq!(open(&key, b"zhang.wei", &sealed).as_deref(), Some(&b"secret"[..]));
        assert_eq!(open(&key, b"li.na", &sealed), None, "moved to another account");
        assert_eq!(open(&[4u8; 32], b"zhang.wei", &sealed), None, "another key");
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(open(&key, b"zhang.wei", &altered), None);
        assert_ne!(seal(&key, b"zhang.wei", b"secret"), sealed, "fresh nonce each time");
    }

    #[test]
    fn tokens_are_long_random_and_compared_in_constant_time() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"ab", b"abc")
        );
        assert_eq!(token_hash(&a), token_hash(&a));
    }
}
