//! Authorisation and the audit trail, as every use case applies them.
//!
//! * [`Engine::authorize`] asks the permission table (and the jurisdiction, when the
//!   command concerns a located record) and writes a `denied` record on refusal.
//! * [`Engine::audit_personal_read`] is called before personal data leaves the engine: it
//!   requires a stated purpose and writes the record; if the record cannot be written the
//!   read fails (fail closed).
//! * Auditors read the trail; the system verifies and purges it.

use fangkong_core::audit::{AuditRecord, Broken, ChainVerifier, Outcome};
use fangkong_core::auth::{Action, Actor};
use fangkong_core::jurisdiction::Chain;
use fangkong_core::time::Timestamp;
use fangkong_store::AuditQuery;

use crate::{Caller, EngineError, Kernel};

/// Records read per round trip when verifying.
const VERIFY_PAGE: u32 = 5_000;
const MILLIS_PER_DAY: i64 = 86_400_000;

/// What `verify_audit` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditVerification {
    /// Records checked (after the latest seal, if records were purged).
    pub checked: u64,
    /// The last record's number and hash: write them down somewhere else, and a later
    /// verification can prove nothing was removed from the end.
    pub head_seq: i64,
    pub head_hash: [u8; 32],
    /// Records before this number were purged by retention behind a seal.
    pub sealed_through: Option<i64>,
    /// `None` if the chain is intact; otherwise where and how it breaks.
    pub broken: Option<Broken>,
}

impl Kernel {
    /// Checks that the caller may take `action` (on a record at `place`, if given). A
    /// refusal is written to the audit trail as `audit_action` with the target.
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        place: Option<&Chain>,
        audit_action: &str,
        target: Option<(&str, &str)>,
    ) -> Result<(), EngineError> {
        let decision = match place {
            Some(chain) => caller.actor.check_in(action, chain),
            None => caller.actor.check(action),
        };
        let Err(denial) = decision else { return Ok(()) };
        let mut entry = caller.entry(self.now(), audit_action, Outcome::Denied).detail(denial.to_string());
        if let Some((kind, id)) = target {
            entry = entry.target(kind, id);
        }
        self.store.append_audit(&entry).await?;
        Err(EngineError::Denied(denial))
    }

    /// Writes the record of a read of personal data; refuses (and records the refusal) if
    /// the caller stated no purpose.
    pub(crate) async fn audit_personal_read(
        &self,
        caller: &Caller,
        audit_action: &str,
        target: (&str, &str),
        detail: Option<String>,
    ) -> Result<(), EngineError> {
        let stated = caller.purpose.as_deref().is_some_and(|p| !p.trim().is_empty());
        let outcome = if stated { Outcome::Allowed } else { Outcome::Denied };
        let mut entry = caller.entry(self.now(), audit_action, outcome).target(target.0, target.1);
        entry.detail = if stated { detail } else { Some("no purpose stated".into()) };
        self.store.append_audit(&entry).await?;
        if stated { Ok(()) } else { Err(EngineError::PurposeRequired) }
    }

    /// A page of the trail, newest first. Only auditors (and the system) may read it, and
    /// the reading is itself recorded.
    pub async fn audit_records(&self, caller: &Caller, query: &AuditQuery) -> Result<Vec<AuditRecord>, EngineError> {
        self.authorize(caller, Action::ReadAudit, None, "audit.read", None).await?;
        let query = AuditQuery { limit: query.limit.clamp(1, 1_000), ..query.clone() };
        let records = self.store.audit_records(&query).await?;
        let entry =
            caller.entry(self.now(), "audit.read", Outcome::Allowed).detail(format!("{} records", records.len()));
        self.store.append_audit(&entry).await?;
        Ok(records)
    }

    /// Checks the whole chain, page by page, from the latest seal (or the first record) to
    /// the head the database records.
    pub async fn verify_audit(&self, caller: &Caller) -> Result<AuditVerification, EngineError> {
        self.authorize(caller, Action::ReadAudit, None, "audit.verify", None).await?;
        // A retention purge (here or in another process) between reading the seal and the
        // first page would look like deleted records; if the seal moved, verify again.
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            let result = self.verify_once().await?;
            let seal_moved = self.store.latest_audit_seal().await?.map(|s| s.through_seq) != result.sealed_through;
            if !(seal_moved && result.broken.is_some() && attempts < 3) {
                break result;
            }
        };
        let outcome = if result.broken.is_none() { Outcome::Allowed } else { Outcome::Failed };
        let detail = match &result.broken {
            None => format!("{} records verified through {}", result.checked, result.head_seq),
            Some(broken) => broken.to_string(),
        };
        // Recording the verification appends a record after the verified head.
        self.store.append_audit(&caller.entry(self.now(), "audit.verify", outcome).detail(detail)).await?;
        Ok(result)
    }

    async fn verify_once(&self) -> Result<AuditVerification, EngineError> {
        let seal = self.store.latest_audit_seal().await?;
        let head = self.store.audit_head().await?;
        let key = self.config.keys.audit_chain();
        let sealed_through = seal.as_ref().map(|s| s.through_seq);
        let mut result =
            AuditVerification { checked: 0, head_seq: head.seq, head_hash: head.hash, sealed_through, broken: None };
        let mut verifier = match ChainVerifier::new(&key, seal.as_ref()) {
            Ok(verifier) => verifier,
            Err(broken) => {
                result.broken = Some(broken);
                return Ok(result);
            }
        };
        let mut after = sealed_through.unwrap_or(0);
        'pages: loop {
            let page = match self.store.audit_page(after, VERIFY_PAGE).await {
                Ok(page) => page,
                // A row that does not even decode (wrong hash length, unknown outcome) was
                // tampered with too: report it as a break, not as an internal error.
                Err(fangkong_store::StoreError::Corrupt(reason)) => {
                    result.broken = Some(Broken::Unreadable { after: verifier.head().0, reason });
                    break;
                }
                Err(error) => return Err(error.into()),
            };
            let Some(last) = page.last() else { break };
            after = last.seq;
            for record in &page {
                // Records appended while we verify lie beyond the head we read: not ours.
                if record.seq > head.seq {
                    break 'pages;
                }
                if let Err(broken) = verifier.check(record) {
                    result.broken = Some(broken);
                    break 'pages;
                }
            }
        }
        if result.broken.is_none()
            && let Err(broken) = verifier.finish(head.seq, &head.hash, &head.tag)
        {
            result.broken = Some(broken);
        }
        result.checked = verifier.checked();
        Ok(result)
    }

    /// Purges records older than the retention period, behind a seal. Returns how many were
    /// removed.
    pub(crate) async fn enforce_audit_retention(&self) -> Result<i64, EngineError> {
        let now = self.now();
        let cutoff = now.plus_millis(-(i64::from(self.config.audit_retention_days) * MILLIS_PER_DAY));
        let caller = Caller::system("retention");
        let entry = caller.entry(now, "audit.purge", Outcome::Allowed);
        match self.store.purge_audit(cutoff, now, &entry).await? {
            Some(seal) => {
                tracing::info!(through = seal.through_seq, purged = seal.purged, "audit retention purge");
                Ok(seal.purged)
            }
            None => Ok(0),
        }
    }

    /// The audit entry for an anonymous event (a failed login before anyone is known).
    pub(crate) fn anonymous_entry(
        &self,
        at: Timestamp,
        username: &str,
        ip: Option<&str>,
        action: &str,
        outcome: Outcome,
    ) -> fangkong_core::audit::AuditEntry {
        let mut entry = fangkong_core::audit::AuditEntry::new(at, &Actor::Anonymous, action, outcome);
        entry.actor_name = username.to_string();
        entry.ip = ip.map(str::to_string);
        entry
    }
}
