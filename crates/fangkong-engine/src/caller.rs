//! Who is asking, from where, and why: passed to every command and query that is
//! authorised or audited.

use fangkong_core::audit::{AuditEntry, Outcome};
use fangkong_core::auth::Actor;
use fangkong_core::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub actor: Actor,
    /// The client's address, as the server saw it.
    pub ip: Option<String>,
    /// The purpose stated for a read of personal data (`X-Purpose` on the API).
    pub purpose: Option<String>,
}

impl Caller {
    pub fn new(actor: Actor) -> Caller {
        Caller { actor, ip: None, purpose: None }
    }

    /// The operator at the command line or a background task.
    pub fn system(name: impl Into<String>) -> Caller {
        Caller::new(Actor::System { name: name.into() })
    }

    pub fn with_ip(mut self, ip: impl Into<String>) -> Caller {
        self.ip = Some(ip.into());
        self
    }

    pub fn with_purpose(mut self, purpose: impl Into<String>) -> Caller {
        self.purpose = Some(purpose.into());
        self
    }

    /// An audit entry for an action of this caller, with its address and purpose.
    pub fn entry(&self, at: Timestamp, action: &str, outcome: Outcome) -> AuditEntry {
        let mut entry = AuditEntry::new(at, &self.actor, action, outcome);
        entry.ip = self.ip.clone();
        entry.purpose = self.purpose.clone();
        entry
    }
}
