//! Code tables (代码表): the lists an administrator edits that give incidents their type,
//! their source and, when they close, their disposition.
//!
//! Incident types follow the six-digit hierarchical scheme of Chinese 110 systems, `AABBCC`:
//! `AA0000` is a category (01 刑事 criminal, 02 治安 public order, …), `AABB00` a type inside
//! it and `AABBCC` a subtype; `99` means "other" at any level. The hierarchy is read from
//! the digits, so a code's parent is never stored separately and can never disagree with
//! the code itself.
//!
//! Logic elsewhere must never test for a particular code: what a code means (its names, its
//! default priority, whether it is still in use) comes from the table, which the
//! administrator owns. The rules here only keep the table well-formed.

use std::collections::BTreeMap;
use std::fmt;

use crate::time::Timestamp;

/// Which code table an entry belongs to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum CodeKind {
    /// 警情类别: six-digit hierarchical incident type codes (`AABBCC`).
    IncidentType,
    /// 警情来源: where an incident came from (110, 119, 122, alarm point, tip, …).
    IncidentSource,
    /// 处置结果: how an incident was closed (resolved on scene, invalid call, …).
    Disposition,
}

impl CodeKind {
    pub const ALL: [CodeKind; 3] = [CodeKind::IncidentType, CodeKind::IncidentSource, CodeKind::Disposition];

    /// The stable name used in URLs, files and storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            CodeKind::IncidentType => "incident_type",
            CodeKind::IncidentSource => "incident_source",
            CodeKind::Disposition => "disposition",
        }
    }

    pub fn parse(text: &str) -> Option<CodeKind> {
        CodeKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Whether entries of this kind carry a default priority.
    pub const fn has_priority(self) -> bool {
        matches!(self, CodeKind::IncidentType)
    }
}

impl fmt::Display for CodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Incident priorities run from 1 (most urgent: life in danger, crime in progress) to 4.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<u8> = 1..=4;

/// Longest accepted display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// One row of a code table.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CodeEntry {
    pub kind: CodeKind,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    /// Default priority of an incident of this type; `None` for kinds without priority.
    pub priority: Option<u8>,
    /// Retired codes stay in the table so that old records keep their meaning, but new
    /// records may not use them.
    pub active: bool,
    pub updated_at: Timestamp,
}

/// Position of an incident type code in the hierarchy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CodeLevel {
    Category,
    Type,
    Subtype,
}

impl CodeEntry {
    /// The parent code of a hierarchical entry (`010301` → `010300` → `010000`), if any.
    pub fn parent_code(&self) -> Option<String> {
        match self.kind {
            CodeKind::IncidentType => incident_type_parent(&self.code),
            CodeKind::IncidentSource | CodeKind::Disposition => None,
        }
    }
}

/// Where a well-formed incident type code sits in the hierarchy; `None` if malformed.
pub fn incident_type_level(code: &str) -> Option<CodeLevel> {
    let bytes = code.as_bytes();
    if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match (&code[0..2], &code[2..4], &code[4..6]) {
        ("00", _, _) => None,
        (_, "00", "00") => Some(CodeLevel::Category),
        (_, "00", _) => None,
        (_, _, "00") => Some(CodeLevel::Type),
        _ => Some(CodeLevel::Subtype),
    }
}

fn incident_type_parent(code: &str) -> Option<String> {
    match incident_type_level(code)? {
        CodeLevel::Category => None,
        CodeLevel::Type => Some(format!("{}0000", &code[0..2])),
        CodeLevel::Subtype => Some(format!("{}00", &code[0..4])),
    }
}

/// Why an entry or a change to a code table was refused. Each variant names the code and
/// the rule, so an administrator can fix the row.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CodeError {
    #[error("{kind} code {code:?} is malformed: {rule}")]
    Malformed { kind: CodeKind, code: String, rule: &'static str },
    #[error("{kind} {code}: field {field} {rule}")]
    BadField { kind: CodeKind, code: String, field: &'static str, rule: String },
    #[error("{kind} {code} already exists")]
    Duplicate { kind: CodeKind, code: String },
    #[error("{kind} {code} does not exist")]
    Unknown { kind: CodeKind, code: String },
    #[error("{kind} {code} needs its parent {parent}, which does not exist")]
    MissingParent { kind: CodeKind, code: String, parent: String },
    #[error("{kind} {code} cannot be active while its parent {parent} is retired")]
    RetiredParent { kind: CodeKind, code: String, parent: String },
    #[error("{kind} {code} cannot be retired while {child} under it is active")]
    ActiveChild { kind: CodeKind, code: String, child: String },
}

/// Checks the parts of an entry that do not depend on the rest of the table.
pub fn validate_entry(entry: &CodeEntry) -> Result<(), CodeError> {
    let malformed = |rule| CodeError::Malformed { kind: entry.kind, code: entry.code.clone(), rule };
    match entry.kind {
        CodeKind::IncidentType => {
            if incident_type_level(&entry.code).is_none() {
                return Err(malformed(
                    "incident type codes are six digits AABBCC with AA ≠ 00, and CC = 00 whenever BB = 00",
                ));
            }
        }
        CodeKind::IncidentSource | CodeKind::Disposition => {
            let ok = (1..=32).contains(&entry.code.len())
                && entry.code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(malformed("codes are 1–32 characters of A–Z, a–z, 0–9, '_' or '-'"));
            }
        }
    }
    let bad_field = |field, rule: &str| CodeError::BadField {
        kind: entry.kind,
        code: entry.code.clone(),
        field,
        rule: rule.to_string(),
    };
    for (field, name) in [("name_zh", &entry.name_zh), ("name_en", &entry.name_en)] {
        if name.trim().is_empty() {
            return Err(bad_field(field, "must not be empty"));
        }
        if name.trim() != name {
            return Err(bad_field(field, "must not start or end with spaces"));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(bad_field(field, &format!("must be at most {MAX_NAME_CHARS} characters")));
        }
        if crate::text::has_hidden(name, false) {
            return Err(bad_field(field, "must not contain control or invisible formatting characters"));
        }
    }
    match (entry.kind.has_priority(), entry.priority) {
        (true, None) => Err(bad_field("priority", "is required for incident types (1 = most urgent … 4)")),
        (true, Some(p)) if !PRIORITY_RANGE.contains(&p) => {
            Err(bad_field("priority", &format!("must be between 1 and 4, got {p}")))
        }
        (false, Some(_)) => Err(bad_field("priority", "is only used by incident types")),
        _ => Ok(()),
    }
}

/// A complete, well-formed set of code tables, as held in memory by the engine.
#[derive(Clone, Default, Debug)]
pub struct CodeTable {
    entries: BTreeMap<(CodeKind, String), CodeEntry>,
}

impl CodeTable {
    /// Builds a table from entries in any order, checking every rule across the whole set.
    pub fn from_entries(entries: impl IntoIterator<Item = CodeEntry>) -> Result<CodeTable, CodeError> {
        let mut table = CodeTable::default();
        for entry in entries {
            validate_entry(&entry)?;
            let key = (entry.kind, entry.code.clone());
            if table.entries.contains_key(&key) {
                return Err(CodeError::Duplicate { kind: entry.kind, code: entry.code });
            }
            table.entries.insert(key, entry);
        }
        for entry in table.entries.values() {
            table.check_links(entry)?;
        }
        Ok(table)
    }

    pub fn get(&self, kind: CodeKind, code: &str) -> Option<&CodeEntry> {
        self.entries.get(&(kind, code.to_string()))
    }

    /// Entries of one kind in code order (which for incident types is hierarchy order).
    pub fn list(&self, kind: CodeKind) -> impl Iterator<Item = &CodeEntry> {
        self.entries.values().filter(move |entry| entry.kind == kind)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `code` names an active entry that new records may use.
    pub fn is_usable(&self, kind: CodeKind, code: &str) -> bool {
        self.get(kind, code).is_some_and(|entry| entry.active)
    }

    /// Checks that `entry` may be added as a new code.
    pub fn check_insert(&self, entry: &CodeEntry) -> Result<(), CodeError> {
        validate_entry(entry)?;
        if self.get(entry.kind, &entry.code).is_some() {
            return Err(CodeError::Duplicate { kind: entry.kind, code: entry.code.clone() });
        }
        self.check_links(entry)
    }

    /// Checks that `entry` may replace the existing entry with the same kind and code.
    pub fn check_update(&self, entry: &CodeEntry) -> Result<(), CodeError> {
        validate_entry(entry)?;
        if self.get(entry.kind, &entry.code).is_none() {
            return Err(CodeError::Unknown { kind: entry.kind, code: entry.code.clone() });
        }
        self.check_links(entry)
    }

    /// Puts a checked entry into the table (insert or replace).
    pub fn apply(&mut self, entry: CodeEntry) {
        self.entries.insert((entry.kind, entry.code.clone()), entry);
    }

    /// The rules that relate an entry to others: its parent exists and is active if it is,
    /// and it is not retired while a child is active.
    fn check_links(&self, entry: &CodeEntry) -> Result<(), CodeError> {
        if let Some(parent_code) = entry.parent_code() {
            match self.get(entry.kind, &parent_code) {
                None => {
                    return Err(CodeError::MissingParent {
                        kind: entry.kind,
                        code: entry.code.clone(),
                        parent: parent_code,
                    });
                }
                Some(parent) if entry.active && !parent.active => {
                    return Err(CodeError::RetiredParent {
                        kind: entry.kind,
                        code: entry.code.clone(),
                        parent: parent_code,
                    });
                }
                Some(_) => {}
            }
        }
        if !entry.active
            && let Some(child) = self
                .list(entry.kind)
                .find(|other| other.active && other.parent_code().as_deref() == Some(entry.code.as_str()))
        {
            return Err(CodeError::ActiveChild {
                kind: entry.kind,
                code: entry.code.clone(),
                child: child.code.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
