//! The audit trail's rules: what a record holds, how records are chained, and how a chain is
//! verified.
//!
//! Each record carries the hash of the one before it, and its own hash is an HMAC over its
//! sequence number, that previous hash and every field, under a key derived from the
//! deployment's master key (see [`crate::keys`]). Editing a record, deleting one or moving
//! one therefore breaks the chain at that record, and someone with write access to the
//! database but not the key file cannot forge a consistent replacement.
//!
//! Retention removes old records. Before it does, it writes a [`Seal`]: the sequence number
//! and hash of the last removed record, itself keyed. Verification then starts from the
//! seal instead of from the first record ever written.

use std::fmt;

use crate::auth::Actor;
use crate::keys::hmac_sha256;
use crate::time::Timestamp;

pub type Hash = [u8; 32];

/// The hash before the first record.
pub const GENESIS: Hash = [0u8; 32];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// The action was permitted and done.
    Allowed,
    /// Refused by the permission table or the jurisdiction.
    Denied,
    /// Attempted but failed (wrong password, invalid input, …).
    Failed,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        [Outcome::Allowed, Outcome::Denied, Outcome::Failed].into_iter().find(|o| o.as_str() == text)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, before it is numbered and chained. No personal data goes in `detail`:
/// the trail records *that* a person's record was read, by whom and why, not its contents.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// `user`, `device`, `system` or `anonymous`.
    pub actor_kind: String,
    /// The user's or device's id, where there is one.
    pub actor_id: Option<String>,
    /// Username, device unique id, or the system task's name; for a failed login, the
    /// username that was tried.
    pub actor_name: String,
    pub actor_role: Option<String>,
    /// Dotted name of the action: `auth.login`, `user.create`, `resident.read`, …
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Outcome,
    /// Where the request came from.
    pub ip: Option<String>,
    /// The stated purpose, for reads of personal data.
    pub purpose: Option<String>,
    pub detail: Option<String>,
}

impl AuditEntry {
    pub fn new(at: Timestamp, actor: &Actor, action: impl Into<String>, outcome: Outcome) -> AuditEntry {
        let (actor_kind, actor_id, actor_role) = match actor {
            Actor::User(user) => ("user", Some(user.user_id.to_string()), Some(user.role.as_str().to_string())),
            Actor::Device(device) => {
                ("device", Some(device.device_id.to_string()), Some(device.kind.as_str().to_string()))
            }
            Actor::System { .. } => ("system", None, None),
            Actor::Anonymous => ("anonymous", None, None),
        };
        AuditEntry {
            at,
            actor_kind: actor_kind.into(),
            actor_id,
            actor_name: actor.name(),
            actor_role,
            action: action.into(),
            target_kind: None,
            target_id: None,
            outcome,
            ip: None,
            purpose: None,
            detail: None,
        }
    }

    pub fn target(mut self, kind: impl Into<String>, id: impl Into<String>) -> AuditEntry {
        self.target_kind = Some(kind.into());
        self.target_id = Some(id.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> AuditEntry {
        self.detail = Some(detail.into());
        self
    }
}

/// A stored record: the entry, its place in the chain and its hash.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AuditRecord {
    pub seq: i64,
    pub entry: AuditEntry,
    pub prev_hash: Hash,
    pub hash: Hash,
}

/// Field-by-field encoding with length prefixes, so no two different records encode alike.
fn encode(seq: i64, prev_hash: &Hash, entry: &AuditEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"fangkong-audit-v1");
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(&entry.at.as_millis().to_be_bytes());
    let mut text = |value: Option<&str>| match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            out.extend_from_slice(&(value.len() as u64).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    };
    text(Some(&entry.actor_kind));
    text(entry.actor_id.as_deref());
    text(Some(&entry.actor_name));
    text(entry.actor_role.as_deref());
    text(Some(&entry.action));
    text(entry.target_kind.as_deref());
    text(entry.target_id.as_deref());
    text(Some(entry.outcome.as_str()));
    text(entry.ip.as_deref());
    text(entry.purpose.as_deref());
    text(entry.detail.as_deref());
    out
}

/// The hash of the record numbered `seq` that follows a record with hash `prev_hash`.
pub fn chain_hash(key: &[u8; 32], seq: i64, prev_hash: &Hash, entry: &AuditEntry) -> Hash {
    hmac_sha256(key, &encode(seq, prev_hash, entry))
}

/// Numbers and chains `entry` after the record `(prev_seq, prev_hash)`.
pub fn seal_entry(key: &[u8; 32], prev_seq: i64, prev_hash: &Hash, entry: AuditEntry) -> AuditRecord {
    let seq = prev_seq + 1;
    let hash = chain_hash(key, seq, prev_hash, &entry);
    AuditRecord { seq, entry, prev_hash: *prev_hash, hash }
}

/// What remains of records removed by retention.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Seal {
    /// The last removed record.
    pub through_seq: i64,
    pub through_hash: Hash,
    pub sealed_at: Timestamp,
    /// How many records the purge removed.
    pub purged: i64,
    pub tag: Hash,
}

impl Seal {
    pub fn new(key: &[u8; 32], through_seq: i64, through_hash: Hash, sealed_at: Timestamp, purged: i64) -> Seal {
        let tag = seal_tag(key, through_seq, &through_hash, sealed_at, purged);
        Seal { through_seq, through_hash, sealed_at, purged, tag }
    }
}

fn seal_tag(key: &[u8; 32], through_seq: i64, through_hash: &Hash, sealed_at: Timestamp, purged: i64) -> Hash {
    let mut message = b"fangkong-audit-seal-v1".to_vec();
    message.extend_from_slice(&through_seq.to_be_bytes());
    message.extend_from_slice(through_hash);
    message.extend_from_slice(&sealed_at.as_millis().to_be_bytes());
    message.extend_from_slice(&purged.to_be_bytes());
    hmac_sha256(key, &message)
}

/// The keyed tag of the chain's head `(seq, hash)`, stored beside it.
pub fn head_tag(key: &[u8; 32], seq: i64, hash: &Hash) -> Hash {
    if seq == 0 {
        return GENESIS;
    }
    let mut message = b"fangkong-audit-head-v1".to_vec();
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(hash);
    hmac_sha256(key, &message)
}

/// Where and how the chain is broken.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Broken {
    #[error("the retention seal was altered")]
    Seal,
    #[error("record {expected} is missing (the next record found is {found}): records were deleted")]
    Missing { expected: i64, found: i64 },
    #[error("record {seq} does not follow record {previous}: records were deleted, inserted or reordered")]
    Relinked { seq: i64, previous: i64 },
    #[error("record {seq} was altered: its fields, number or position differ from when it was written")]
    Altered { seq: i64 },
    #[error(
        "the trail ends at record {last} but the expected head is record {expected}: records were removed from the end"
    )]
    Truncated { last: i64, expected: i64 },
    #[error("the recorded head (record {seq}) was altered: records were probably removed from the end")]
    HeadAltered { seq: i64 },
    #[error("the record after {after} cannot be read: {reason}")]
    Unreadable { after: i64, reason: String },
}

impl Broken {
    /// The sequence number of the first broken record, when there is one.
    pub fn record(&self) -> Option<i64> {
        match self {
            Broken::Seal => None,
            Broken::Missing { expected, .. } => Some(*expected),
            Broken::Relinked { seq, .. } | Broken::Altered { seq } => Some(*seq),
            Broken::Truncated { last, .. } => Some(*last + 1),
            Broken::HeadAltered { seq } => Some(*seq),
            Broken::Unreadable { after, .. } => Some(*after + 1),
        }
    }
}

/// Checks records one at a time, in sequence order, so a trail of any length is verified
/// in constant memory.
#[derive(Debug)]
pub struct ChainVerifier {
    key: [u8; 32],
    expected_seq: i64,
    prev_hash: Hash,
    checked: u64,
}

impl ChainVerifier {
    /// Starts at the beginning of the trail, or just after `seal` if records were purged.
    pub fn new(key: &[u8; 32], seal: Option<&Seal>) -> Result<ChainVerifier, Broken> {
        let (expected_seq, prev_hash) = match seal {
            None => (1, GENESIS),
            Some(seal) => {
                let tag = seal_tag(key, seal.through_seq, &seal.through_hash, seal.sealed_at, seal.purged);
                if tag != seal.tag {
                    return Err(Broken::Seal);
                }
                (seal.through_seq + 1, seal.through_hash)
            }
        };
        Ok(ChainVerifier { key: *key, expected_seq, prev_hash, checked: 0 })
    }

    pub fn check(&mut self, record: &AuditRecord) -> Result<(), Broken> {
        if record.seq > self.expected_seq {
            return Err(Broken::Missing { expected: self.expected_seq, found: record.seq });
        }
        if record.seq < self.expected_seq || record.prev_hash != self.prev_hash {
            return Err(Broken::Relinked { seq: record.seq, previous: self.expected_seq - 1 });
        }
        if chain_hash(&self.key, record.seq, &record.prev_hash, &record.entry) != record.hash {
            return Err(Broken::Altered { seq: record.seq });
        }
        self.expected_seq += 1;
        self.prev_hash = record.hash;
        self.checked += 1;
        Ok(())
    }

    /// Checks that the head the database records is genuine and that the trail reached it.
    pub fn finish(&self, head_seq: i64, head_hash: &Hash, head_tag: &Hash) -> Result<(), Broken> {
        if self::head_tag(&self.key, head_seq, head_hash) != *head_tag {
            return Err(Broken::HeadAltered { seq: head_seq });
        }
        let last = self.expected_seq - 1;
        if last < head_seq {
            return Err(Broken::Truncated { last, expected: head_seq });
        }
        if last == head_seq && self.prev_hash != *head_hash {
            return Err(Broken::HeadAltered { seq: head_seq });
        }
        Ok(())
    }

    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The last verified record's number and hash.
    pub fn head(&self) -> (i64, Hash) {
        (self.expected_seq - 1, self.prev_hash)
    }
}

#[cfg(test)]
mod tests;
