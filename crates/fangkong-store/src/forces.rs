//! The force registry in the store: beats, units, the roster, members (sealed).

use fangkong_core::audit::AuditRecord;

use crate::outbox::Audited;
use fangkong_core::forces::{Beat, ForceCategory, PatrolMode, Shift, Unit};
use fangkong_core::time::Timestamp;
use fangkong_geo::Area;

use crate::{Store, StoreError};

/// A member as stored: personal fields sealed by the engine, the identity number's keyed
/// blind index for lookups (the engine's person index; rows written before it was one
/// hold a 32-byte index until the engine re-keys them).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SealedMember {
    pub id: i64,
    pub category: ForceCategory,
    pub station: String,
    pub unit: Option<String>,
    pub name_sealed: Vec<u8>,
    pub id_number_sealed: Vec<u8>,
    pub id_number_index: Vec<u8>,
    pub phone_sealed: Option<Vec<u8>>,
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Store {
    /// Inserts or replaces a beat, with its audit record.
    pub async fn save_beat(
        &self,
        beat: &Beat,
        at: Timestamp,
        entry: impl Into<Audited>,
    ) -> Result<AuditRecord, StoreError> {
        self.save_beats(std::slice::from_ref(beat), at, entry).await
    }

    /// Inserts or replaces many beats in one transaction, with one audit record.
    pub async fn save_beats(
        &self,
        beats: &[Beat],
        at: Timestamp,
        entry: impl Into<Audited>,
    ) -> Result<AuditRecord, StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.save_beats(key, beats.to_vec(), at, entry))
    }

    pub async fn list_beats(&self) -> Result<Vec<Beat>, StoreError> {
        dispatch!(self.list_beats())
    }

    /// Inserts or replaces a unit, with its audit record.
    pub async fn save_unit(
        &self,
        unit: &Unit,
        at: Timestamp,
        entry: impl Into<Audited>,
    ) -> Result<AuditRecord, StoreError> {
        self.save_units(std::slice::from_ref(unit), at, entry).await
    }

    /// Inserts or replaces many units in one transaction, with one audit record.
    pub async fn save_units(
        &self,
        units: &[Unit],
        at: Timestamp,
        entry: impl Into<Audited>,
    ) -> Result<AuditRecord, StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.save_units(key, units.to_vec(), at, entry))
    }

    pub async fn list_units(&self) -> Result<Vec<Unit>, StoreError> {
        dispatch!(self.list_units())
    }

    /// Adds shifts to the roster (all or none) with one audit record; returns their ids.
    pub async fn insert_shifts(&self, shifts: &[Shift], entry: impl Into<Audited>) -> Result<Vec<i64>, StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.insert_shifts(key, shifts.to_vec(), entry))
    }

    /// Shifts running at some time in `from..to`, by start.
    pub async fn shifts_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<(i64, Shift)>, StoreError> {
        dispatch!(self.shifts_between(from, to))
    }

    /// One shift of the roster.
    pub async fn shift(&self, id: i64) -> Result<Option<Shift>, StoreError> {
        dispatch!(self.shift(id))
    }

    /// Marks a member active or not (one who left the force stays on record), with its
    /// audit record; [`StoreError::NotFound`] if there is no such member.
    pub async fn set_member_active(
        &self,
        id: i64,
        active: bool,
        at: Timestamp,
        entry: impl Into<Audited>,
    ) -> Result<(), StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.set_member_active(key, id, active, at, entry))
    }

    pub async fn delete_shift(&self, id: i64, entry: impl Into<Audited>) -> Result<(), StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.delete_shift(key, id, entry))
    }

    /// Inserts a member (its id is assigned); a taken identity number is a conflict.
    pub async fn insert_member(&self, member: &SealedMember, entry: impl Into<Audited>) -> Result<i64, StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.insert_member(key, member.clone(), entry))
    }

    pub async fn list_members(&self) -> Result<Vec<SealedMember>, StoreError> {
        dispatch!(self.list_members())
    }

    /// Replaces the identity index and the sealed fields of members (by id), all in one
    /// transaction: the engine's re-key of rows sealed under an older index.
    pub async fn rekey_members(&self, members: Vec<SealedMember>) -> Result<(), StoreError> {
        dispatch!(self.rekey_members(members))
    }
}

pub(crate) fn category(text: &str) -> Result<ForceCategory, StoreError> {
    ForceCategory::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown force category {text:?}")))
}

pub(crate) fn mode(text: &str) -> Result<PatrolMode, StoreError> {
    PatrolMode::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown patrol mode {text:?}")))
}

pub(crate) fn shape(code: &str, bytes: &[u8]) -> Result<Area, StoreError> {
    Area::from_wkb(bytes).map_err(|e| StoreError::Corrupt(format!("beat {code} has a bad shape: {e}")))
}

/// Equipment as stored: one item per line.
pub(crate) fn equipment_text(items: &[String]) -> String {
    items.join("\n")
}

pub(crate) fn equipment_list(text: &str) -> Vec<String> {
    text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}
