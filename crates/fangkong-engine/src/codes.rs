//! Code-table use cases: read from memory, change through the store (with the audit record
//! in the same transaction), announce on the bus.

use fangkong_core::audit::Outcome;
use fangkong_core::auth::Action;
use fangkong_core::codes::{CodeEntry, CodeError, CodeKind, CodeTable};
use fangkong_core::event::Event;
use fangkong_store::{Audited, Outbox};

use crate::{Caller, Engine, EngineError, Kernel};

/// A code to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCode {
    pub kind: CodeKind,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub priority: Option<u8>,
}

/// New values for an existing code's editable fields; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeChange {
    pub name_zh: Option<String>,
    pub name_en: Option<String>,
    pub priority: Option<u8>,
    pub active: Option<bool>,
}

impl Kernel {
    pub(crate) async fn load_codes(&self) -> Result<(), EngineError> {
        let table = CodeTable::from_entries(self.store.list_codes().await?)?;
        *self.codes.write().expect("codes lock") = table;
        Ok(())
    }

    /// The entries of one code table, in code order.
    pub async fn codes(&self, caller: &Caller, kind: CodeKind) -> Result<Vec<CodeEntry>, EngineError> {
        self.authorize(caller, Action::ReadCodes, None, "code.list", None).await?;
        Ok(self.codes.read().expect("codes lock").list(kind).cloned().collect())
    }

    /// One code, or `None` if the table has no such code.
    pub async fn code(&self, caller: &Caller, kind: CodeKind, code: &str) -> Result<Option<CodeEntry>, EngineError> {
        self.authorize(caller, Action::ReadCodes, None, "code.read", None).await?;
        Ok(self.code_entry(kind, code))
    }

    /// A code as the engine's own rules see it (no caller: for validating other commands).
    pub fn code_entry(&self, kind: CodeKind, code: &str) -> Option<CodeEntry> {
        self.codes.read().expect("codes lock").get(kind, code).cloned()
    }
}

impl Engine {
    /// Adds a code. Refused if it exists, breaks a rule or lacks its parent.
    pub async fn create_code(&self, caller: &Caller, new: NewCode) -> Result<CodeEntry, EngineError> {
        let target = format!("{}/{}", new.kind, new.code);
        // The tables are the whole city's: a district's administrator would change every district's.
        let city = self.city_chain();
        self.authorize(caller, Action::ManageCodes, Some(&city), "code.create", Some(("code", &target))).await?;
        let _serial = self.admin_writes.lock().await;
        let entry = CodeEntry {
            kind: new.kind,
            code: new.code,
            name_zh: new.name_zh,
            name_en: new.name_en,
            priority: new.priority,
            active: true,
            updated_at: self.now(),
        };
        self.codes.read().expect("codes lock").check_insert(&entry)?;
        let audit = caller.entry(entry.updated_at, "code.create", Outcome::Allowed).target("code", &target);
        let created = Event::CodeCreated(entry.clone());
        let outbox = Outbox::new(entry.updated_at, [&created]);
        self.store.insert_codes(std::slice::from_ref(&entry), Some(Audited::new(audit, outbox))).await?;
        self.publish(entry.updated_at, created);
        Ok(entry)
    }

    /// Changes a code's names, priority or active flag. Codes are never deleted: retiring
    /// one (`active: Some(false)`) keeps old records readable.
    pub async fn update_code(
        &self,
        caller: &Caller,
        kind: CodeKind,
        code: &str,
        change: CodeChange,
    ) -> Result<CodeEntry, EngineError> {
        let target = format!("{kind}/{code}");
        let city = self.city_chain();
        self.authorize(caller, Action::ManageCodes, Some(&city), "code.update", Some(("code", &target))).await?;
        let _serial = self.admin_writes.lock().await;
        let current = self.code_entry(kind, code).ok_or_else(|| CodeError::Unknown { kind, code: code.to_string() })?;
        let entry = CodeEntry {
            name_zh: change.name_zh.unwrap_or(current.name_zh),
            name_en: change.name_en.unwrap_or(current.name_en),
            priority: change.priority.or(current.priority),
            active: change.active.unwrap_or(current.active),
            updated_at: self.now(),
            ..current
        };
        self.codes.read().expect("codes lock").check_update(&entry)?;
        let audit = caller.entry(entry.updated_at, "code.update", Outcome::Allowed).target("code", &target);
        let updated = Event::CodeUpdated(entry.clone());
        self.store.update_code(&entry, Some(Audited::new(audit, Outbox::new(entry.updated_at, [&updated])))).await?;
        self.publish(entry.updated_at, updated);
        Ok(entry)
    }
}
