//! The write guard: the one place where a command that changes a stored record is
//! authorised.
//!
//! Authorising only the place a record is being saved *to* lets a caller take over a record
//! of another jurisdiction by its code: save it with your own grid and it is overwritten and
//! moved to you. So a write is allowed only when the caller may take its action
//!
//! * where the record **will be** (the place the command names),
//! * where the record **is now**, if a record with that key is already stored — the guard
//!   looks it up itself from the key, so a command cannot pass a place of its choosing —
//! * and every record the write **refers to** (a lessee, a co-resident, a landlord, a housing
//!   unit, a beat, a police unit) must exist and be readable by the caller where it is: a
//!   reference would otherwise copy, or show, a record the caller may not read.
//!
//! Writers that change the registry take the [`Authorised`] this returns, so a new command
//! cannot write without passing through here. Refusals are audited like every other.

use fangkong_core::auth::Action;
use fangkong_core::jurisdiction::Chain;
use fangkong_store::{Store, StoreError};

use crate::{Caller, Engine, EngineError};

/// A stored record, named by its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Resident(&'a str),
    Building(&'a str),
    HousingUnit(&'a str),
    Landlord(&'a str),
    Workstation(&'a str),
    Tenancy(&'a str),
    /// A patrol beat (巡区).
    Beat(&'a str),
    /// A police (patrol) unit, not a dwelling.
    PoliceUnit(&'a str),
    /// A node of the jurisdiction tree (a grid a beat is made of).
    Jurisdiction(&'a str),
}

impl<'a> Record<'a> {
    /// The kind's name, as audit records and errors name it.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Record::Resident(_) => "resident",
            Record::Building(_) => "building",
            Record::HousingUnit(_) => "unit",
            Record::Landlord(_) => "landlord",
            Record::Workstation(_) => "workstation",
            Record::Tenancy(_) => "tenancy",
            Record::Beat(_) => "beat",
            Record::PoliceUnit(_) => "police_unit",
            Record::Jurisdiction(_) => "jurisdiction",
        }
    }

    pub(crate) fn key(self) -> &'a str {
        match self {
            Record::Resident(k)
            | Record::Building(k)
            | Record::HousingUnit(k)
            | Record::Landlord(k)
            | Record::Workstation(k)
            | Record::Tenancy(k)
            | Record::Beat(k)
            | Record::PoliceUnit(k)
            | Record::Jurisdiction(k) => k,
        }
    }
}

/// A record a write refers to: the field that names it and the action that reads it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reference<'a> {
    pub field: &'static str,
    pub record: Record<'a>,
    pub read: Action,
    /// Answer a record that does not exist as `NotFound` of this entity (the force
    /// registry's way) rather than as an invalid field.
    pub not_found: Option<&'static str>,
}

impl<'a> Reference<'a> {
    pub(crate) fn new(field: &'static str, record: Record<'a>, read: Action) -> Reference<'a> {
        Reference { field, record, read, not_found: None }
    }

    pub(crate) fn or_not_found(self, entity: &'static str) -> Reference<'a> {
        Reference { not_found: Some(entity), ..self }
    }
}

/// A write to authorise: what it does, to which record, where it puts it, and what it
/// refers to.
#[derive(Debug)]
pub(crate) struct Write<'a> {
    pub action: Action,
    pub audit_action: &'a str,
    pub record: Record<'a>,
    /// Records written with it to the same place (a building's units): each may be new, and
    /// each, if stored, must lie where the caller may write too.
    pub also: Vec<Record<'a>>,
    /// Where the record will be.
    pub to: &'a Chain,
    pub references: Vec<Reference<'a>>,
}

/// Proof that a write passed [`Engine::authorize_write`]; the registry's writer takes it.
#[derive(Debug)]
#[must_use]
pub(crate) struct Authorised {
    /// Whether a record with the key was already stored (an update, not a new record).
    pub existed: bool,
    /// What the audit record of the write says: its action and its target.
    pub audit_action: String,
    pub kind: &'static str,
    pub key: String,
}

/// The code of the place a stored record is filed under — a grid, a community or a police
/// station — or `None` if nothing is stored under the key. For the records the store holds;
/// the import's reading thread uses it too.
pub(crate) async fn stored_place(store: &Store, record: Record<'_>) -> Result<Option<String>, StoreError> {
    Ok(match record {
        Record::Resident(code) => store.resident(code).await?.map(|r| r.grid),
        Record::Building(code) => store.building(code).await?.map(|b| b.grid),
        Record::HousingUnit(code) => store.housing_unit(code).await?.map(|u| u.community),
        Record::Landlord(code) => store.landlord(code).await?.map(|l| l.community),
        Record::Workstation(code) => store.workstation(code).await?.map(|w| w.community),
        Record::Tenancy(code) => store.tenancy(code).await?.map(|t| t.community),
        Record::Beat(_) | Record::PoliceUnit(_) | Record::Jurisdiction(_) => None,
    })
}

impl Engine {
    /// Where a stored record is now (its jurisdiction chain), or `None` if no record has
    /// this key. A record filed under a place the tree no longer has gets an empty chain,
    /// which only a city-wide caller covers.
    pub(crate) async fn stored_place_of(&self, record: Record<'_>) -> Result<Option<Chain>, EngineError> {
        let code = match record {
            Record::Beat(code) => self.forces.read().expect("forces lock").beat_station(code),
            Record::PoliceUnit(code) => self.forces.read().expect("forces lock").unit_station(code),
            Record::Jurisdiction(code) => return Ok(self.chain_of(code)),
            _ => stored_place(&self.store, record).await?,
        };
        Ok(code.map(|code| self.chain_of(&code).unwrap_or_default()))
    }

    /// Authorises a write where the record will be, where it is now and for everything it
    /// refers to (see the module's documentation). A refusal is audited and answered as
    /// `Denied`; a reference to a record that does not exist as `Invalid`, naming the field.
    pub(crate) async fn authorize_write(&self, caller: &Caller, write: Write<'_>) -> Result<Authorised, EngineError> {
        let target = Some((write.record.kind(), write.record.key()));
        // The role first, so a caller who may not write at all learns nothing about records.
        self.authorize(caller, write.action, None, write.audit_action, target).await?;
        self.authorize(caller, write.action, Some(write.to), write.audit_action, target).await?;
        let now = self.stored_place_of(write.record).await?;
        if let Some(chain) = &now {
            self.authorize(caller, write.action, Some(chain), write.audit_action, target).await?;
        }
        for record in &write.also {
            if let Some(chain) = self.stored_place_of(*record).await? {
                let target = Some((record.kind(), record.key()));
                self.authorize(caller, write.action, Some(&chain), write.audit_action, target).await?;
            }
        }
        for reference in write.references {
            self.authorize_reference(caller, write.action, write.audit_action, reference).await?;
        }
        Ok(Authorised {
            existed: now.is_some(),
            audit_action: write.audit_action.to_string(),
            kind: write.record.kind(),
            key: write.record.key().to_string(),
        })
    }

    /// Authorises naming a record in a write: it must exist, and the caller may read it
    /// where it is (or take the write's own action there).
    pub(crate) async fn authorize_reference(
        &self,
        caller: &Caller,
        action: Action,
        audit_action: &str,
        reference: Reference<'_>,
    ) -> Result<(), EngineError> {
        let record = reference.record;
        let place = self.stored_place_of(record).await?.ok_or_else(|| match reference.not_found {
            Some(entity) => EngineError::NotFound { entity, key: record.key().to_string() },
            None => EngineError::Invalid {
                field: reference.field,
                message: format!("{} {} is not on record", record.kind(), record.key()),
            },
        })?;
        // Whoever may write a record where the reference lies may also name it.
        if caller.actor.check_in(action, &place).is_ok() {
            return Ok(());
        }
        self.authorize(caller, reference.read, Some(&place), audit_action, Some((record.kind(), record.key()))).await
    }
}
