//! The residence and rental-housing registry in the store.
//!
//! Every write — a coordinator's registration or a million-row import — goes through one
//! path: a list of [`RegistryRecord`]s applied in one transaction with the change-stream
//! rows and the audit record that describe it. An import streams its records in batches
//! over a channel ([`ImportFeed`]) into a single transaction: it commits whole or not at
//! all, so a failed import leaves the registry as it was.
//!
//! Residents arrive sealed ([`SealedResident`]): the identity number and phone are
//! encrypted by the engine and found by keyed blind indexes; the store never sees them.

use crate::outbox::Audited;
use fangkong_core::documents::DocumentKind;
use fangkong_core::registry::{
    Building, BuildingKind, Day, HousingUnit, LandlordKind, Permit, PermitKind, Sex, Sighting, Tenancy, UnitUse, Visit,
    VisitOutcome, Workstation,
};
use fangkong_core::time::Timestamp;

use crate::{Store, StoreError};

/// Bytes of a blind index (a truncated HMAC-SHA256: 128 bits keep collisions out of reach
/// at any registry size and halve the index).
pub const INDEX_BYTES: usize = 16;
pub type BlindIndex = [u8; INDEX_BYTES];

/// A resident as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SealedResident {
    pub code: String,
    pub document: DocumentKind,
    /// The identity number and phone, sealed together by the engine.
    pub sealed: Vec<u8>,
    pub id_index: BlindIndex,
    pub phone_index: Option<BlindIndex>,
    pub name: String,
    pub sex: Sex,
    pub birth: Day,
    pub origin_province: Option<String>,
    pub origin_city: Option<String>,
    pub employer: Option<String>,
    pub unit: Option<String>,
    pub grid: String,
    pub community: String,
}

/// A landlord as stored: the phones sealed.
#[derive(Clone, Debug, PartialEq)]
pub struct SealedLandlord {
    pub code: String,
    pub kind: LandlordKind,
    pub name: String,
    pub contact_sealed: Option<Vec<u8>>,
    pub safety_person: String,
    pub pledge_signed: Option<Day>,
    pub pledge_expires: Option<Day>,
    pub community: String,
}

/// One change to the registry.
#[derive(Clone, Debug, PartialEq)]
pub enum RegistryRecord {
    Workstation(Workstation),
    Building(Building),
    Unit(HousingUnit),
    Landlord(SealedLandlord),
    Resident(Box<SealedResident>),
    /// A new tenancy (or a replaced one) with its members.
    Tenancy(Tenancy),
    MoveOut {
        tenancy: String,
        day: Day,
    },
    Permit(Permit),
    Visit(Visit),
    Sighting(Sighting),
}

impl RegistryRecord {
    pub fn entity(&self) -> &'static str {
        match self {
            RegistryRecord::Workstation(_) => "workstation",
            RegistryRecord::Building(_) => "building",
            RegistryRecord::Unit(_) => "unit",
            RegistryRecord::Landlord(_) => "landlord",
            RegistryRecord::Resident(_) => "resident",
            RegistryRecord::Tenancy(_) | RegistryRecord::MoveOut { .. } => "tenancy",
            RegistryRecord::Permit(_) => "permit",
            RegistryRecord::Visit(_) => "visit",
            RegistryRecord::Sighting(_) => "sighting",
        }
    }
}

/// A row of the change stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryChange {
    pub seq: i64,
    pub at: Timestamp,
    pub entity: String,
    pub code: String,
    pub community: String,
    /// `created`, `updated`, `moved_out`, `imported:N`…
    pub change: String,
    pub actor: String,
}

/// What an import sends the store: batches of numbered records (the number is the source
/// row, for error messages), or word that the import failed and must be rolled back.
#[derive(Debug)]
pub enum ImportFeed {
    Batch(Vec<(u64, RegistryRecord)>),
    Abort(String),
}

/// A property's card: the building and everything on the registry about it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PropertyCard {
    pub building: Option<Building>,
    pub units: Vec<HousingUnit>,
    pub landlords: Vec<SealedLandlord>,
    pub tenancies: Vec<Tenancy>,
    pub residents: Vec<SealedResident>,
    pub permits: Vec<Permit>,
    pub visits: Vec<Visit>,
}

/// A unit with the people its open tenancies list (for the occupancy alert).
#[derive(Clone, Debug, PartialEq)]
pub struct Occupancy {
    pub unit: String,
    pub community: String,
    pub area_m2: f64,
    pub rooms: u32,
    pub persons: u32,
}

/// Which communities a query may look in: `None` is all of them.
pub type Communities = Option<Vec<String>>;

/// Counts of an import, by entity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub rows: u64,
}

impl Store {
    /// Applies `records` in one transaction with the change rows and the audit record.
    pub async fn write_registry(
        &self,
        records: Vec<RegistryRecord>,
        changes: Vec<RegistryChange>,
        entry: impl Into<Audited>,
    ) -> Result<(), StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.write_registry(key, records, changes, entry))
    }

    /// Applies everything `feed` sends in one transaction, then `change` and the audit
    /// record (whose events, if made by [`crate::Outbox::of_new_rows`], are given the number
    /// of rows stored as their one "id"); commits only if the feed ends without [`ImportFeed::Abort`] and every record
    /// applied. A refused record fails the whole import with [`StoreError::Rejected`].
    pub async fn import_registry(
        &self,
        feed: tokio::sync::mpsc::Receiver<ImportFeed>,
        change: RegistryChange,
        entry: impl Into<Audited>,
    ) -> Result<ImportCounts, StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.import_registry(key, feed, change, entry))
    }

    /// The resident whose identity number has this blind index. On SQLite this runs on
    /// the calling thread (an indexed point query takes microseconds; a thread hop would
    /// take longer than the query).
    pub async fn resident_by_id_index(&self, index: &BlindIndex) -> Result<Option<SealedResident>, StoreError> {
        dispatch!(self.resident_by_id_index(*index))
    }

    pub async fn resident(&self, code: &str) -> Result<Option<SealedResident>, StoreError> {
        dispatch!(self.resident(code.to_string()))
    }

    pub async fn residents_by_phone_index(
        &self,
        index: &BlindIndex,
        communities: Communities,
        limit: u32,
    ) -> Result<Vec<SealedResident>, StoreError> {
        dispatch!(self.residents_by_phone_index(*index, communities, limit))
    }

    /// Residents of exactly this name in these communities (a name is looked up within the
    /// communities a reader may see, never across the whole registry at once).
    pub async fn residents_by_name(
        &self,
        name: &str,
        communities: Vec<String>,
        limit: u32,
    ) -> Result<Vec<SealedResident>, StoreError> {
        dispatch!(self.residents_by_name(name.to_string(), communities, limit))
    }

    /// Residents in `communities` after the one with id `after`, in id order (for export).
    pub async fn residents_page(
        &self,
        communities: Communities,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, SealedResident)>, StoreError> {
        dispatch!(self.residents_page(communities, after, limit))
    }

    /// Buildings whose code is `text` or whose address contains it.
    pub async fn search_buildings(
        &self,
        text: &str,
        communities: Communities,
        limit: u32,
    ) -> Result<Vec<Building>, StoreError> {
        dispatch!(self.search_buildings(text.to_string(), communities, limit))
    }

    pub async fn building(&self, code: &str) -> Result<Option<Building>, StoreError> {
        dispatch!(self.building(code.to_string()))
    }

    pub async fn housing_unit(&self, code: &str) -> Result<Option<HousingUnit>, StoreError> {
        dispatch!(self.housing_unit(code.to_string()))
    }

    pub async fn landlord(&self, code: &str) -> Result<Option<SealedLandlord>, StoreError> {
        dispatch!(self.landlord(code.to_string()))
    }

    pub async fn tenancy(&self, code: &str) -> Result<Option<Tenancy>, StoreError> {
        dispatch!(self.tenancy(code.to_string()))
    }

    /// Tenancies that list the resident (open ones first).
    pub async fn tenancies_of(&self, resident: &str) -> Result<Vec<Tenancy>, StoreError> {
        dispatch!(self.tenancies_of(resident.to_string()))
    }

    pub async fn permit(&self, resident: &str) -> Result<Option<Permit>, StoreError> {
        dispatch!(self.permit(resident.to_string()))
    }

    pub async fn workstations(&self, communities: Communities) -> Result<Vec<Workstation>, StoreError> {
        dispatch!(self.workstations(communities))
    }

    pub async fn workstation(&self, code: &str) -> Result<Option<Workstation>, StoreError> {
        dispatch!(self.workstation(code.to_string()))
    }

    /// A building and its units, landlords, tenancies, residents, permits and visits.
    pub async fn property_card(&self, building: &str) -> Result<PropertyCard, StoreError> {
        dispatch!(self.property_card(building.to_string()))
    }

    /// Permits expiring on or before `before`, soonest first.
    pub async fn permits_due(
        &self,
        communities: Communities,
        before: Day,
        limit: u32,
    ) -> Result<Vec<Permit>, StoreError> {
        dispatch!(self.permits_due(communities, before, limit))
    }

    /// Units with open tenancies and how many people those list.
    pub async fn occupancies(&self, communities: Communities, limit: u32) -> Result<Vec<Occupancy>, StoreError> {
        dispatch!(self.occupancies(communities, limit))
    }

    /// Sightings of residents at units where no open tenancy lists them.
    pub async fn unmatched_sightings(&self, communities: Communities, limit: u32) -> Result<Vec<Sighting>, StoreError> {
        dispatch!(self.unmatched_sightings(communities, limit))
    }

    /// Landlords whose pledge expires before `today` or who never signed one.
    pub async fn lapsed_pledges(
        &self,
        communities: Communities,
        today: Day,
        limit: u32,
    ) -> Result<Vec<SealedLandlord>, StoreError> {
        dispatch!(self.lapsed_pledges(communities, today, limit))
    }

    /// The change stream after `seq`.
    pub async fn registry_changes(&self, after: i64, limit: u32) -> Result<Vec<RegistryChange>, StoreError> {
        dispatch!(self.registry_changes(after, limit))
    }

    /// Residents on the registry (for metrics and the bench).
    pub async fn count_residents(&self) -> Result<u64, StoreError> {
        dispatch!(self.count_residents())
    }
}

// ---- shared row conversions ------------------------------------------------------------------

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("registry: {what} {value:?}"))
}

pub(crate) fn building_kind(text: &str) -> Result<BuildingKind, StoreError> {
    BuildingKind::parse(text).ok_or_else(|| corrupt("building kind", text))
}

pub(crate) fn unit_use(text: &str) -> Result<UnitUse, StoreError> {
    UnitUse::parse(text).ok_or_else(|| corrupt("unit use", text))
}

pub(crate) fn landlord_kind(text: &str) -> Result<LandlordKind, StoreError> {
    LandlordKind::parse(text).ok_or_else(|| corrupt("landlord kind", text))
}

pub(crate) fn sex(text: &str) -> Result<Sex, StoreError> {
    Sex::parse(text).ok_or_else(|| corrupt("sex", text))
}

pub(crate) fn document(text: &str) -> Result<DocumentKind, StoreError> {
    DocumentKind::parse(text).ok_or_else(|| corrupt("document kind", text))
}

pub(crate) fn permit_kind(text: &str) -> Result<PermitKind, StoreError> {
    PermitKind::parse(text).ok_or_else(|| corrupt("permit kind", text))
}

pub(crate) fn visit_outcome(text: &str) -> Result<VisitOutcome, StoreError> {
    VisitOutcome::parse(text).ok_or_else(|| corrupt("visit outcome", text))
}

pub(crate) fn blind_index(bytes: &[u8]) -> Result<BlindIndex, StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt(format!("registry: a blind index of {} bytes", bytes.len())))
}

/// Columns of `registry_residents` in the order the row readers take them.
pub(crate) const RESIDENT_COLUMNS: &str = "code, document, sealed, id_index, phone_index, name, sex, birth, \
    origin_province, origin_city, employer, unit, grid, community";

/// A resident row's raw values, decoded by [`ResidentRow::decode`].
pub(crate) struct ResidentRow {
    pub code: String,
    pub document: String,
    pub sealed: Vec<u8>,
    pub id_index: Vec<u8>,
    pub phone_index: Option<Vec<u8>>,
    pub name: String,
    pub sex: String,
    pub birth: i64,
    pub origin_province: Option<String>,
    pub origin_city: Option<String>,
    pub employer: Option<String>,
    pub unit: Option<String>,
    pub grid: String,
    pub community: String,
}

impl ResidentRow {
    pub(crate) fn decode(self) -> Result<SealedResident, StoreError> {
        Ok(SealedResident {
            document: document(&self.document)?,
            id_index: blind_index(&self.id_index)?,
            phone_index: self.phone_index.as_deref().map(blind_index).transpose()?,
            sex: sex(&self.sex)?,
            code: self.code,
            sealed: self.sealed,
            name: self.name,
            birth: self.birth,
            origin_province: self.origin_province,
            origin_city: self.origin_city,
            employer: self.employer,
            unit: self.unit,
            grid: self.grid,
            community: self.community,
        })
    }
}

pub(crate) const BUILDING_COLUMNS: &str = "code, address, grid, community, lon, lat, kind, floors";
pub(crate) const UNIT_COLUMNS: &str =
    "code, building, floor, area_m2, rooms, usage, rent_yuan, rental, landlord, community";
pub(crate) const LANDLORD_COLUMNS: &str =
    "code, kind, name, contact_sealed, safety_person, pledge_signed, pledge_expires, community";
pub(crate) const PERMIT_COLUMNS: &str = "resident, kind, issued, expires, endorsed, community";
pub(crate) const VISIT_COLUMNS: &str = "id, unit, community, day, by_user, outcome, occupants, note";
pub(crate) const SIGHTING_COLUMNS: &str = "id, resident, unit, community, day, by_user, note";
