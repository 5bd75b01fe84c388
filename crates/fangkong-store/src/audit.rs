//! The audit trail in the store: appends that chain each record to the last, inside the same
//! transaction as the change they describe, and the reads that verification and auditors
//! need.

use fangkong_core::audit::{AuditEntry, AuditRecord, Outcome, Seal};
use fangkong_core::time::Timestamp;

use crate::{Store, StoreError};

/// A page of the trail, for auditors. Newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records with a smaller sequence number (the cursor for the next page).
    pub before_seq: Option<i64>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub actor_name: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    pub target_id: Option<String>,
    pub limit: u32,
}

/// The tip of the chain as the database records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: [u8; 32],
    /// Keyed tag over `(seq, hash)` (see `fangkong_core::audit::head_tag`).
    pub tag: [u8; 32],
}

impl Store {
    /// Appends one record on its own (for events that change nothing else: reads, denials,
    /// failed logins).
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        let key = self.audit_key()?;
        dispatch!(self.append_audit(key, entry))
    }

    /// Appends several records in one transaction (a failed sign-in and the lockout it
    /// caused, for a name without an account: as many writes as for a real one).
    pub async fn append_audits(&self, entries: &[AuditEntry]) -> Result<Vec<AuditRecord>, StoreError> {
        let key = self.audit_key()?;
        dispatch!(self.append_audits(key, entries))
    }

    pub async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        dispatch!(self.audit_records(query))
    }

    /// Up to `limit` records after `after_seq`, oldest first (for verification).
    pub async fn audit_page(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        dispatch!(self.audit_page(after_seq, limit))
    }

    pub async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        dispatch!(self.audit_head())
    }

    pub async fn latest_audit_seal(&self) -> Result<Option<Seal>, StoreError> {
        dispatch!(self.latest_audit_seal())
    }

    /// Removes records older than `before`, after sealing the last one removed, and appends
    /// `entry` (describing the purge) to the chain, all in one transaction. `None` when
    /// nothing was old enough.
    pub async fn purge_audit(
        &self,
        before: Timestamp,
        sealed_at: Timestamp,
        entry: &AuditEntry,
    ) -> Result<Option<Seal>, StoreError> {
        let key = self.audit_key()?;
        dispatch!(self.purge_audit(key, before, sealed_at, entry))
    }
}

/// An audit row as both backends read it.
pub(crate) struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub actor_role: Option<String>,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
    pub purpose: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

pub(crate) fn hash32(bytes: &[u8], what: &str) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt(format!("{what} is {} bytes, not 32", bytes.len())))
}

impl AuditRow {
    pub fn into_domain(self) -> Result<AuditRecord, StoreError> {
        // An unknown outcome is kept verbatim as "failed"-looking text would change the
        // hash; refuse instead, verification will name the record anyway.
        let outcome = Outcome::parse(&self.outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("audit record {} has outcome {:?}", self.seq, self.outcome)))?;
        Ok(AuditRecord {
            seq: self.seq,
            prev_hash: hash32(&self.prev_hash, &format!("audit record {} prev_hash", self.seq))?,
            hash: hash32(&self.hash, &format!("audit record {} hash", self.seq))?,
            entry: AuditEntry {
                at: Timestamp::from_millis(self.at),
                actor_kind: self.actor_kind,
                actor_id: self.actor_id,
                actor_name: self.actor_name,
                actor_role: self.actor_role,
                action: self.action,
                target_kind: self.target_kind,
                target_id: self.target_id,
                outcome,
                ip: self.ip,
                purpose: self.purpose,
                detail: self.detail,
            },
        })
    }
}

pub(crate) const AUDIT_COLUMNS: &str = "seq, at, actor_kind, actor_id, actor_name, actor_role, action, target_kind, \
     target_id, outcome, ip, purpose, detail, prev_hash, hash";
