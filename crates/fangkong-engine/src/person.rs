//! The person index (人员索引): one keyed blind index of a person's identity number, the
//! same for every registry that holds people — residents, force members, and the hotel
//! guests, tenancies and checkpoint inspections to come — so that a person can be matched
//! across registries while none of them stores the number in the clear.
//!
//! One key (the key ring's blind-index key), one normal form ([`normal_id_number`]: an
//! identity number as `documents::check_resident_id` gives it, a 15-digit number as its
//! 18-digit form; other text without blanks and upper-cased), one width (16 bytes,
//! [`INDEX_BYTES`]). The HMAC's domain is `registry-id:`, the name it had when the housing
//! registry was its only user: keeping it spared re-keying millions of residents, while
//! force members, indexed apart before, are re-keyed to it when the engine starts
//! ([`Engine::rekey_members`](crate::Engine)).
//!
//! Every question about a person by this index is asked through a use case that takes a
//! caller and a purpose and is audited; the index itself answers nothing.

use fangkong_core::registry::Day;
pub use fangkong_store::registry::{BlindIndex, INDEX_BYTES};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Keys the blind indexes; cloned per value (the keyed state is computed once).
#[derive(Clone)]
pub(crate) struct Indexer {
    mac: Hmac<Sha256>,
}

impl Indexer {
    pub(crate) fn new(key: &[u8; 32]) -> Indexer {
        Indexer { mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length") }
    }

    fn index(&self, domain: &[u8], value: &str) -> BlindIndex {
        let mut mac = self.mac.clone();
        mac.update(domain);
        mac.update(value.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; INDEX_BYTES];
        out.copy_from_slice(&full[..INDEX_BYTES]);
        out
    }

    /// The person index of an identity number already in its normal form.
    pub(crate) fn id_number(&self, normal: &str) -> BlindIndex {
        self.index(b"registry-id:", normal)
    }

    /// The blind index of a checked phone number.
    pub(crate) fn phone(&self, phone: &str) -> BlindIndex {
        self.index(b"registry-phone:", phone)
    }
}

/// The normal form of an identity number for the person index.
pub(crate) fn normal_id_number(text: &str, today: Day) -> String {
    fangkong_core::documents::check_resident_id(text, today).map_or_else(
        |_| text.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase(),
        |d| d.number,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_person_one_index_whatever_the_spelling() {
        let indexer = Indexer::new(&[7; 32]);
        let today = 20_000;
        let index = |text: &str| indexer.id_number(&normal_id_number(text, today));
        // An 18-digit number with a lower-case check character, with blanks, and its
        // 15-digit form are one person.
        assert_eq!(index("44030419900101002x"), index("44030419900101002X"));
        assert_eq!(index(" 440304 19900101002X "), index("44030419900101002X"));
        assert_eq!(index("440304900101003"), index("440304199001010038"));
        assert_ne!(index("440304900101003"), index("440304199001010046"));
        // Another key, another index.
        let other = Indexer::new(&[8; 32]);
        assert_ne!(other.id_number("440304199001010038"), index("440304199001010038"));
    }
}
