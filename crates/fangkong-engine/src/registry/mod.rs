//! The residence and rental-housing registry (流动人口和出租屋): registration and change of
//! properties, residents, tenancies, permits and visits; search; alerts; imports and
//! exports.
//!
//! Privacy: a resident's identity number and phone are sealed together (ChaCha20-Poly1305
//! under the personal-data key, bound to the resident's code) and found through keyed blind
//! indexes (HMAC-SHA256 under the blind-index key, truncated to 128 bits), so a lookup by
//! number reads an index and decrypts only the rows it finds. Reads of people are
//! authorised by role and by the record's community, and audited with their purpose before
//! anything is returned; identity numbers come back masked unless the role may read them
//! whole ([`Action::ReadIdentityNumbers`]).
//!
//! Every change writes a row of the durable change stream (`registry_changes`, read with
//! [`Engine::registry_changes`]) in its own transaction and publishes
//! [`Event::RegistryChanged`] on the bus.

mod files;
pub mod import;

use fangkong_core::audit::Outcome;
use fangkong_core::auth::{Action, Actor};
use fangkong_core::documents::{DocumentKind, check_document, check_phone};
use fangkong_core::event::{Event, SeenHow};
use fangkong_core::jurisdiction::{Chain, JurisdictionKind};
use fangkong_core::registry::{
    Alert, AlertKind, Building, Day, HousingUnit, Landlord, LandlordKind, OccupancyLimits, Permit, PermitKind,
    RecordError, Sex, Sighting, Tenancy, Visit, VisitOutcome, Workstation, check_code, check_permit_dates,
    check_person, check_tenancy_dates, check_text, mask_id_number, mask_phone, permit_alert, pledge_alert,
};
use fangkong_store::registry::{
    BlindIndex, Communities, RegistryChange, RegistryRecord, SealedLandlord, SealedResident,
};
use fangkong_store::{Audited, Outbox};

pub use files::{ExportFormat, ResidentWriter, write_residents};
pub use import::{ImportError, ImportFormat, ImportKind, ImportProgress, ImportReport};

use crate::guard::{Authorised, Record, Reference, Write};
use crate::person::{Indexer, normal_id_number};
use crate::{Caller, Engine, EngineError, crypto};

/// The registry's rules that a deployment sets.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryConfig {
    pub occupancy: OccupancyLimits,
    /// Permits expiring within this many days are listed.
    pub permit_warning_days: i64,
}

impl Default for RegistryConfig {
    fn default() -> RegistryConfig {
        RegistryConfig { occupancy: OccupancyLimits::default(), permit_warning_days: 30 }
    }
}

/// Most results a search or alert list returns.
pub const SEARCH_LIMIT: u32 = 200;

fn resident_context(code: &str) -> Vec<u8> {
    [b"registry-resident:".as_slice(), code.as_bytes()].concat()
}

fn landlord_context(code: &str) -> Vec<u8> {
    [b"registry-landlord:".as_slice(), code.as_bytes()].concat()
}

/// What the sealed blob of a resident holds.
pub(crate) fn resident_plain(id_number: &str, phone: Option<&str>) -> String {
    format!("{id_number}\n{}", phone.unwrap_or(""))
}

/// A resident to register (or re-register: the same code replaces the record).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewResident {
    pub code: String,
    pub document: Option<DocumentKind>,
    pub id_number: String,
    pub name: String,
    pub sex: Option<Sex>,
    pub birth: Option<Day>,
    pub phone: Option<String>,
    pub origin_province: Option<String>,
    pub origin_city: Option<String>,
    pub employer: Option<String>,
    /// Where they live (a registered unit); their community follows from it.
    pub unit: Option<String>,
    /// The grid, when no unit is given.
    pub grid: Option<String>,
}

/// A person as a reader sees them: identity number and phone whole or masked by role.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidentView {
    pub code: String,
    pub document: DocumentKind,
    pub id_number: String,
    pub id_number_masked: bool,
    pub name: String,
    pub sex: Sex,
    pub birth: Day,
    pub phone: Option<String>,
    pub phone_masked: bool,
    pub origin_province: Option<String>,
    pub origin_city: Option<String>,
    pub employer: Option<String>,
    pub unit: Option<String>,
    pub grid: String,
    pub community: String,
}

/// A resident with their tenancies and permit.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidentCard {
    pub resident: ResidentView,
    pub tenancies: Vec<Tenancy>,
    pub permit: Option<Permit>,
}

/// A property's card as a reader sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PropertyCardView {
    pub building: Building,
    pub units: Vec<HousingUnit>,
    pub landlords: Vec<Landlord>,
    pub tenancies: Vec<Tenancy>,
    pub residents: Vec<ResidentView>,
    pub permits: Vec<Permit>,
    pub visits: Vec<Visit>,
}

/// How to find residents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResidentQuery {
    IdNumber(String),
    /// An exact name, within the caller's jurisdiction (narrowed to a community if given).
    Name {
        name: String,
        community: Option<String>,
    },
    Phone(String),
}

/// A landlord to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLandlord {
    pub code: String,
    pub kind: LandlordKind,
    pub name: String,
    pub phone: Option<String>,
    pub safety_person: Option<String>,
    pub safety_phone: Option<String>,
    pub pledge_signed: Option<Day>,
    pub pledge_expires: Option<Day>,
    /// The community whose workstation keeps the landlord's file.
    pub community: String,
}

/// A tenancy to register (move-in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTenancy {
    pub code: String,
    pub unit: String,
    pub landlord: Option<String>,
    pub lessee: String,
    /// Co-residents (同住人), besides the lessee.
    pub co_residents: Vec<String>,
    pub move_in: Day,
}

/// A visit to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVisit {
    pub unit: String,
    pub day: Day,
    pub outcome: VisitOutcome,
    pub occupants: Option<u32>,
    pub note: String,
    /// Registered residents found living there without a tenancy saying so.
    pub found: Vec<String>,
}

fn invalid(error: RecordError) -> EngineError {
    EngineError::Invalid { field: error.field, message: error.rule }
}

fn optional_text(field: &'static str, text: &Option<String>, max: usize) -> Result<(), EngineError> {
    match text {
        Some(t) => check_text(field, t, max, false).map_err(invalid),
        None => Ok(()),
    }
}

impl Engine {
    pub(crate) fn indexer(&self) -> Indexer {
        Indexer::new(&self.config.keys.blind_index())
    }

    pub(crate) fn today(&self) -> Day {
        self.now().as_millis().div_euclid(86_400_000)
    }

    /// The chain and community of a grid (or a community) code.
    pub(crate) fn registry_place(&self, field: &'static str, code: &str) -> Result<(Chain, String), EngineError> {
        let chain = self.chain_of(code).ok_or_else(|| EngineError::Invalid {
            field,
            message: format!("{code} is not a jurisdiction of the city"),
        })?;
        let community = chain.get(JurisdictionKind::Community).map(str::to_string).ok_or_else(|| {
            EngineError::Invalid { field, message: format!("{code} is not a community or a grid within one") }
        })?;
        Ok((chain, community))
    }

    fn community_chain(&self, community: &str) -> Chain {
        self.chain_of(community).unwrap_or_default()
    }

    /// Whether the caller may take `action` on a record of `community` (or, when the
    /// record names its grid, of that grid).
    fn sees_place(&self, caller: &Caller, action: Action, place: &str) -> bool {
        self.chain_of(place).is_some_and(|chain| caller.actor.check_in(action, &chain).is_ok())
    }

    /// The communities a caller's queries look in: `None` for the whole city.
    pub(crate) fn caller_communities(&self, caller: &Caller) -> Communities {
        let Actor::User(user) = &caller.actor else { return None };
        if user.scope.kind == JurisdictionKind::City {
            return None;
        }
        let tree = self.jurisdictions.read().expect("jurisdictions lock");
        Some(
            tree.iter()
                .filter(|n| n.kind == JurisdictionKind::Community)
                .filter(|n| tree.chain_of(&n.code).is_some_and(|chain| user.scope.covers(&chain)))
                .map(|n| n.code.clone())
                .collect(),
        )
    }

    /// Every community of the city.
    fn all_communities(&self) -> Vec<String> {
        let tree = self.jurisdictions.read().expect("jurisdictions lock");
        tree.iter().filter(|n| n.kind == JurisdictionKind::Community).map(|n| n.code.clone()).collect()
    }

    /// Writes records with their change-stream row and audit record. It takes the
    /// guard's [`Authorised`]: no registry write without the write guard's checks.
    async fn record_registry(
        &self,
        authorised: Authorised,
        caller: &Caller,
        records: Vec<RegistryRecord>,
        community: &str,
        change: &str,
    ) -> Result<(), EngineError> {
        self.record_registry_with(authorised, caller, records, community, change, Vec::new()).await
    }

    /// [`Engine::record_registry`], announcing `also` (people seen) with the change.
    async fn record_registry_with(
        &self,
        authorised: Authorised,
        caller: &Caller,
        records: Vec<RegistryRecord>,
        community: &str,
        change: &str,
        also: Vec<Event>,
    ) -> Result<(), EngineError> {
        let now = self.now();
        let entity = records.first().map_or("registry", RegistryRecord::entity).to_string();
        let row = RegistryChange {
            seq: 0,
            at: now,
            entity: entity.clone(),
            code: authorised.key.clone(),
            community: community.to_string(),
            change: change.to_string(),
            actor: caller.actor.name(),
        };
        let entry =
            caller.entry(now, &authorised.audit_action, Outcome::Allowed).target(authorised.kind, &authorised.key);
        let mut events = vec![Event::RegistryChanged {
            entity,
            code: authorised.key,
            community: community.to_string(),
            change: change.to_string(),
        }];
        events.extend(also);
        self.store.write_registry(records, vec![row], Audited::new(entry, Outbox::new(now, &events))).await?;
        for event in events {
            self.publish(now, event);
        }
        Ok(())
    }

    // ---- properties ---------------------------------------------------------------------------

    pub async fn save_workstation(
        &self,
        caller: &Caller,
        workstation: Workstation,
    ) -> Result<Workstation, EngineError> {
        check_code("code", &workstation.code).map_err(invalid)?;
        check_text("name", &workstation.name, 64, true).map_err(invalid)?;
        check_text("address", &workstation.address, 128, false).map_err(invalid)?;
        let (chain, community) = self.registry_place("community", &workstation.community)?;
        let target = workstation.code.clone();
        let write = Write {
            action: Action::ManageRegistry,
            audit_action: "registry.workstation",
            record: Record::Workstation(&target),
            also: Vec::new(),
            to: &chain,
            references: Vec::new(),
        };
        let authorised = self.authorize_write(caller, write).await?;
        let workstation = Workstation { community: community.clone(), ..workstation };
        let records = vec![RegistryRecord::Workstation(workstation.clone())];
        self.record_registry(authorised, caller, records, &community, "saved").await?;
        Ok(workstation)
    }

    pub async fn workstations(&self, caller: &Caller) -> Result<Vec<Workstation>, EngineError> {
        self.authorize(caller, Action::ReadRegistry, None, "registry.workstations", None).await?;
        Ok(self.store.workstations(self.caller_communities(caller)).await?)
    }

    /// Checks a building and fills in its community from its grid.
    pub(crate) fn check_building(&self, building: Building) -> Result<(Chain, Building), EngineError> {
        check_building_fields(&building)?;
        let (chain, community) = self.registry_place("grid", &building.grid)?;
        Ok((chain, Building { community, ..building }))
    }

    /// Registers (or replaces) a building with its units.
    pub async fn save_property(
        &self,
        caller: &Caller,
        building: Building,
        units: Vec<HousingUnit>,
    ) -> Result<(Building, Vec<HousingUnit>), EngineError> {
        let (chain, building) = self.check_building(building)?;
        let target = building.code.clone();
        // Each unit is a record of its own: one whose code is filed elsewhere is not taken
        // over, and a landlord it names must be one the caller may see.
        let write = Write {
            action: Action::ManageRegistry,
            audit_action: "registry.property",
            record: Record::Building(&target),
            also: units.iter().map(|unit| Record::HousingUnit(&unit.code)).collect(),
            to: &chain,
            references: units
                .iter()
                .filter_map(|unit| unit.landlord.as_deref())
                .map(|landlord| Reference::new("landlord", Record::Landlord(landlord), Action::ReadRegistry))
                .collect(),
        };
        let authorised = self.authorize_write(caller, write).await?;
        let mut records = vec![RegistryRecord::Building(building.clone())];
        let mut saved = Vec::with_capacity(units.len());
        for unit in units {
            if unit.building != building.code {
                return Err(EngineError::Invalid {
                    field: "building",
                    message: "units must be in the building".into(),
                });
            }
            check_unit_fields(&unit)?;
            let unit = HousingUnit { community: building.community.clone(), ..unit };
            records.push(RegistryRecord::Unit(unit.clone()));
            saved.push(unit);
        }
        let community = building.community.clone();
        self.record_registry(authorised, caller, records, &community, "saved").await?;
        Ok((building, saved))
    }

    fn open_landlord(&self, sealed: SealedLandlord, whole_phones: bool) -> Landlord {
        let (phone, safety_phone) = sealed
            .contact_sealed
            .as_deref()
            .and_then(|bytes| crypto::open(&self.config.keys.personal_data(), &landlord_context(&sealed.code), bytes))
            .and_then(|plain| String::from_utf8(plain).ok())
            .map(|plain| {
                let (a, b) = plain.split_once('\n').unwrap_or((&plain, ""));
                let shown = |p: &str| (!p.is_empty()).then(|| if whole_phones { p.to_string() } else { mask_phone(p) });
                (shown(a), shown(b))
            })
            .unwrap_or((None, None));
        Landlord {
            code: sealed.code,
            kind: sealed.kind,
            name: sealed.name,
            phone,
            safety_person: sealed.safety_person,
            safety_phone,
            pledge_signed: sealed.pledge_signed,
            pledge_expires: sealed.pledge_expires,
            community: sealed.community,
        }
    }

    pub async fn save_landlord(&self, caller: &Caller, new: NewLandlord) -> Result<(), EngineError> {
        let (chain, community) = self.registry_place("community", &new.community)?;
        let sealed =
            seal_landlord(&self.config.keys.personal_data(), &NewLandlord { community: community.clone(), ..new })?;
        let target = sealed.code.clone();
        let write = Write {
            action: Action::ManageRegistry,
            audit_action: "registry.landlord",
            record: Record::Landlord(&target),
            also: Vec::new(),
            to: &chain,
            references: Vec::new(),
        };
        let authorised = self.authorize_write(caller, write).await?;
        self.record_registry(authorised, caller, vec![RegistryRecord::Landlord(sealed)], &community, "saved").await
    }

    /// Buildings by code or address, in the caller's jurisdiction.
    pub async fn search_buildings(&self, caller: &Caller, text: &str) -> Result<Vec<Building>, EngineError> {
        self.authorize(caller, Action::ReadRegistry, None, "registry.buildings", None).await?;
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 64 {
            return Err(EngineError::Invalid { field: "q", message: "1–64 characters".into() });
        }
        let found = self.store.search_buildings(text, self.caller_communities(caller), SEARCH_LIMIT).await?;
        Ok(found.into_iter().filter(|b| self.sees_place(caller, Action::ReadRegistry, &b.grid)).collect())
    }

    /// A property's card (its residents are personal data: audited with the purpose).
    pub async fn property_card(&self, caller: &Caller, building: &str) -> Result<PropertyCardView, EngineError> {
        let found = self.store.building(building).await?;
        let found = found.ok_or_else(|| EngineError::NotFound { entity: "building", key: building.to_string() })?;
        let chain = self.chain_of(&found.grid).unwrap_or_default();
        self.authorize(caller, Action::ReadResidents, Some(&chain), "registry.card", Some(("building", building)))
            .await?;
        self.audit_personal_read(caller, "registry.card", ("building", building), None).await?;
        let card = self.store.property_card(building).await?;
        let whole_phones = caller.actor.check(Action::ManageRegistry).is_ok();
        let residents = card.residents.into_iter().map(|r| self.open_resident(caller, r)).collect::<Result<_, _>>()?;
        Ok(PropertyCardView {
            building: card.building.unwrap_or(found),
            units: card.units,
            landlords: card.landlords.into_iter().map(|l| self.open_landlord(l, whole_phones)).collect(),
            tenancies: card.tenancies,
            residents,
            permits: card.permits,
            visits: card.visits,
        })
    }

    // ---- residents ----------------------------------------------------------------------------

    /// What the caller may see of a stored resident.
    fn open_resident(&self, caller: &Caller, sealed: SealedResident) -> Result<ResidentView, EngineError> {
        open_sealed(&self.config.keys.personal_data(), &Sight::of(caller), sealed)
    }

    /// Registers (or re-registers) a resident; their place follows from their unit.
    pub async fn register_resident(&self, caller: &Caller, new: NewResident) -> Result<ResidentView, EngineError> {
        let grid = match (&new.unit, &new.grid) {
            (Some(unit), _) => {
                let found = self.store.housing_unit(unit).await?;
                let found = found.ok_or_else(|| EngineError::Invalid {
                    field: "unit",
                    message: format!("unit {unit} is not on the registry"),
                })?;
                let building = self.store.building(&found.building).await?;
                building.map(|b| b.grid).unwrap_or(found.community)
            }
            (None, Some(grid)) => grid.clone(),
            (None, None) => {
                return Err(EngineError::Invalid { field: "unit", message: "a unit (or a grid) is required".into() });
            }
        };
        let (chain, community) = self.registry_place("grid", &grid)?;
        let write = Write {
            action: Action::ManageRegistry,
            audit_action: "registry.resident",
            record: Record::Resident(&new.code),
            also: Vec::new(),
            to: &chain,
            references: Vec::new(),
        };
        let authorised = self.authorize_write(caller, write).await?;
        let change = if authorised.existed { "updated" } else { "registered" };
        let key = self.config.keys.personal_data();
        let sealed = seal_resident(&key, &self.indexer(), new, grid, community.clone(), self.today())?;
        let seen = Event::PersonSeen {
            person: sealed.id_index,
            how: SeenHow::ResidentRegistered,
            record: sealed.code.clone(),
            community: community.clone(),
        };
        self.record_registry_with(
            authorised,
            caller,
            vec![RegistryRecord::Resident(Box::new(sealed.clone()))],
            &community,
            change,
            vec![seen],
        )
        .await?;
        self.open_resident(caller, sealed)
    }

    /// Which resident (code and community) holds this identity number, found by the person
    /// index without decrypting anything: for matching (a hotel guest, a checkpoint
    /// inspection, a duplicate registration). A question about a person: the caller must
    /// read residents and state a purpose, the match is audited (never the number), and a
    /// resident outside the caller's jurisdiction is not found.
    pub async fn match_id_number(
        &self,
        caller: &Caller,
        id_number: &str,
    ) -> Result<Option<(String, String)>, EngineError> {
        self.authorize(caller, Action::ReadResidents, None, "registry.match", None).await?;
        let found = self.store.resident_by_id_index(&self.person_index(id_number)).await?;
        let seen = found.filter(|r| self.sees_community(caller, &r.community));
        let detail = Some(if seen.is_some() { "found" } else { "not found" }.to_string());
        self.audit_personal_read(caller, "registry.match", ("resident", "by identity number"), detail).await?;
        Ok(seen.map(|r| (r.code, r.community)))
    }

    /// The person index of an identity number as typed (see [`crate::person`]).
    pub(crate) fn person_index(&self, id_number: &str) -> BlindIndex {
        self.indexer().id_number(&normal_id_number(id_number, self.today()))
    }

    /// Whether the caller's jurisdiction holds the community.
    fn sees_community(&self, caller: &Caller, community: &str) -> bool {
        self.chain_of(community).is_some_and(|chain| caller.actor.check_in(Action::ReadResidents, &chain).is_ok())
    }

    /// Finds residents (personal data: authorised, scoped and audited with the purpose).
    pub async fn search_residents(
        &self,
        caller: &Caller,
        query: &ResidentQuery,
    ) -> Result<Vec<ResidentView>, EngineError> {
        self.authorize(caller, Action::ReadResidents, None, "registry.search", None).await?;
        let how = match query {
            ResidentQuery::IdNumber(_) => "by identity number",
            ResidentQuery::Name { .. } => "by name",
            ResidentQuery::Phone(_) => "by phone",
        };
        self.audit_personal_read(caller, "registry.search", ("resident", how), None).await?;
        let indexer = self.indexer();
        let communities = self.caller_communities(caller);
        let found = match query {
            ResidentQuery::IdNumber(number) => {
                let number = normal_id_number(number, self.today());
                self.store.resident_by_id_index(&indexer.id_number(&number)).await?.into_iter().collect()
            }
            ResidentQuery::Name { name, community } => {
                check_text("name", name, 32, true).map_err(invalid)?;
                let communities = match (community, communities) {
                    (Some(c), _) => vec![c.clone()],
                    (None, Some(list)) => list,
                    (None, None) => self.all_communities(),
                };
                self.store.residents_by_name(name.trim(), communities, SEARCH_LIMIT).await?
            }
            ResidentQuery::Phone(phone) => {
                let phone =
                    check_phone(phone).map_err(|e| EngineError::Invalid { field: "phone", message: e.to_string() })?;
                self.store.residents_by_phone_index(&indexer.phone(&phone), communities, SEARCH_LIMIT).await?
            }
        };
        found
            .into_iter()
            .filter(|r| self.sees_place(caller, Action::ReadResidents, &r.grid))
            .map(|r| self.open_resident(caller, r))
            .collect()
    }

    /// One resident with their tenancies and permit (audited).
    pub async fn resident_card(&self, caller: &Caller, code: &str) -> Result<ResidentCard, EngineError> {
        let sealed = self.store.resident(code).await?;
        let sealed = sealed.ok_or_else(|| EngineError::NotFound { entity: "resident", key: code.to_string() })?;
        let chain = self.chain_of(&sealed.grid).unwrap_or_default();
        self.authorize(caller, Action::ReadResidents, Some(&chain), "registry.resident.read", Some(("resident", code)))
            .await?;
        self.audit_personal_read(caller, "registry.resident.read", ("resident", code), None).await?;
        let tenancies = self.store.tenancies_of(code).await?;
        let permit = self.store.permit(code).await?;
        Ok(ResidentCard { resident: self.open_resident(caller, sealed)?, tenancies, permit })
    }

    /// The resident's place, for writes that concern them; `NotFound` if they are not
    /// registered.
    async fn resident_place(&self, field: &'static str, code: &str) -> Result<SealedResident, EngineError> {
        self.store
            .resident(code)
            .await?
            .ok_or_else(|| EngineError::Invalid { field, message: format!("resident {code} is not on the registry") })
    }

    pub async fn save_permit(
        &self,
        caller: &Caller,
        resident: &str,
        kind: PermitKind,
        issued: Day,
        expires: Day,
        endorsed: Option<Day>,
    ) -> Result<Permit, EngineError> {
        check_permit_dates(issued, expires, endorsed, self.today()).map_err(invalid)?;
        let person = self.resident_place("resident", resident).await?;
        let chain = self.chain_of(&person.grid).unwrap_or_default();
        let write = Write {
            action: Action::ManageRegistry,
            audit_action: "registry.permit",
            record: Record::Resident(resident),
            also: Vec::new(),
            to: &chain,
            references: Vec::new(),
        };
        let authorised = self.authorize_write(caller, write).await?;
        let permit = Permit {
            resident: resident.to_string(),
            kind,
            issued,
            expires,
            endorsed,
            community: person.community.clone(),
        };
        self.record_registry(
            authorised,
            caller,
            vec![RegistryRecord::Permit(permit.clone())],
            &person.community,
            "permit",
        )
        .await?;
        Ok(permit)
    }

    // ---- tenancies ----------------------------------------------------------------------------

    /// Registers a move-in: the unit, its landlord, the lessee and the co-residents.
    pub async fn move_in(&self, caller: &Caller, new: NewTenancy) -> Result<Tenancy, EngineError> {
        check_code("code", &new.code).map_err(invalid)?;
        check_tenancy_dates(new.move_in, None, self.today()).map_err(invalid)?;
        let unit = self.store.housing_unit(&new.unit).await?.ok_or_else(|| EngineError::Invalid {
            field: "unit",
            message: format!("unit {} is not on the registry", new.unit),
        })?;
        let chain = self.community_chain(&unit.community);
        let landlord = new.landlord.clone().or(unit.landlord.clone());
        // The people it lists and its landlord are read onto the property card: each must
        // be a record the caller may read.
        let mut references = vec![Reference::new("lessee", Record::Resident(&new.lessee), Action::ReadResidents)];
        for member in &new.co_residents {
            references.push(Reference::new("co_residents", Record::Resident(member), Action::ReadResidents));
        }
        if let Some(landlord) = &landlord {
            references.push(Reference::new("landlord", Record::Landlord(landlord), Action::ReadRegistry));
        }
        let write = Write {
            action: Action::ManageRegistry,
            audit_action: "registry.move_in",
            record: Record::Tenancy(&new.code),
            also: Vec::new(),
            to: &chain,
            references,
        };
        let authorised = self.authorize_write(caller, write).await?;
        if authorised.existed {
            return Err(EngineError::Store(fangkong_store::StoreError::Conflict {
                entity: "tenancy",
                key: new.code.clone(),
            }));
        }
        let mut members = vec![new.lessee.clone()];
        for member in &new.co_residents {
            if !members.contains(member) {
                members.push(member.clone());
            }
        }
        let tenancy = Tenancy {
            code: new.code.clone(),
            unit: new.unit.clone(),
            landlord,
            lessee: new.lessee.clone(),
            members,
            move_in: new.move_in,
            move_out: None,
            community: unit.community.clone(),
        };
        // Each person of the tenancy was seen there (by the person index their record holds).
        let mut seen = Vec::new();
        for member in &tenancy.members {
            if let Some(resident) = self.store.resident(member).await? {
                seen.push(Event::PersonSeen {
                    person: resident.id_index,
                    how: SeenHow::TenancyBegan,
                    record: tenancy.code.clone(),
                    community: tenancy.community.clone(),
                });
            }
        }
        self.record_registry_with(
            authorised,
            caller,
            vec![RegistryRecord::Tenancy(tenancy.clone())],
            &unit.community,
            "moved_in",
            seen,
        )
        .await?;
        Ok(tenancy)
    }

    /// Registers a move-out: the tenancy ends on `day` (on or after its move-in).
    pub async fn move_out(&self, caller: &Caller, code: &str, day: Day) -> Result<Tenancy, EngineError> {
        let tenancy = self.store.tenancy(code).await?;
        let tenancy = tenancy.ok_or_else(|| EngineError::NotFound { entity: "tenancy", key: code.to_string() })?;
        let chain = self.community_chain(&tenancy.community);
        let write = Write {
            action: Action::ManageRegistry,
            audit_action: "registry.move_out",
            record: Record::Tenancy(code),
            also: Vec::new(),
            to: &chain,
            references: Vec::new(),
        };
        let authorised = self.authorize_write(caller, write).await?;
        if tenancy.move_out.is_some() {
            return Err(EngineError::Invalid { field: "move_out", message: "the tenancy has already ended".into() });
        }
        check_tenancy_dates(tenancy.move_in, Some(day), self.today()).map_err(invalid)?;
        self.record_registry(
            authorised,
            caller,
            vec![RegistryRecord::MoveOut { tenancy: code.to_string(), day }],
            &tenancy.community,
            "moved_out",
        )
        .await?;
        Ok(Tenancy { move_out: Some(day), ..tenancy })
    }

    // ---- visits and sightings -----------------------------------------------------------------

    /// Records a verification visit; residents found living there without a tenancy are
    /// reported (each becomes an alert until a tenancy lists them).
    pub async fn record_visit(&self, caller: &Caller, new: NewVisit) -> Result<Visit, EngineError> {
        check_text("note", &new.note, 500, false).map_err(invalid)?;
        if new.day > self.today() {
            return Err(EngineError::Invalid { field: "day", message: "is in the future".into() });
        }
        let unit = self.store.housing_unit(&new.unit).await?.ok_or_else(|| EngineError::Invalid {
            field: "unit",
            message: format!("unit {} is not on the registry", new.unit),
        })?;
        let chain = self.community_chain(&unit.community);
        let references = new
            .found
            .iter()
            .map(|resident| Reference::new("found", Record::Resident(resident), Action::ReadResidents))
            .collect();
        let write = Write {
            action: Action::ManageRegistry,
            audit_action: "registry.visit",
            record: Record::HousingUnit(&new.unit),
            also: Vec::new(),
            to: &chain,
            references,
        };
        let authorised = self.authorize_write(caller, write).await?;
        let by = caller.actor.name();
        let visit = Visit {
            id: 0,
            unit: new.unit.clone(),
            community: unit.community.clone(),
            day: new.day,
            by: by.clone(),
            outcome: new.outcome,
            occupants: new.occupants,
            note: new.note.clone(),
        };
        let mut records = vec![RegistryRecord::Visit(visit.clone())];
        for resident in &new.found {
            records.push(RegistryRecord::Sighting(Sighting {
                id: 0,
                resident: resident.clone(),
                unit: new.unit.clone(),
                community: unit.community.clone(),
                day: new.day,
                by: by.clone(),
                note: format!("found on a visit ({})", new.outcome),
            }));
        }
        self.record_registry(authorised, caller, records, &unit.community, "visited").await?;
        Ok(visit)
    }

    /// Reports that a registered resident lives at a unit (a tip, a hotel check…).
    pub async fn report_sighting(
        &self,
        caller: &Caller,
        resident: &str,
        unit: &str,
        note: &str,
    ) -> Result<(), EngineError> {
        check_text("note", note, 500, false).map_err(invalid)?;
        let found = self.store.housing_unit(unit).await?.ok_or_else(|| EngineError::Invalid {
            field: "unit",
            message: format!("unit {unit} is not on the registry"),
        })?;
        let chain = self.community_chain(&found.community);
        let write = Write {
            action: Action::ManageRegistry,
            audit_action: "registry.sighting",
            record: Record::HousingUnit(unit),
            also: Vec::new(),
            to: &chain,
            references: vec![Reference::new("resident", Record::Resident(resident), Action::ReadResidents)],
        };
        let authorised = self.authorize_write(caller, write).await?;
        let sighting = Sighting {
            id: 0,
            resident: resident.to_string(),
            unit: unit.to_string(),
            community: found.community.clone(),
            day: self.today(),
            by: caller.actor.name(),
            note: note.to_string(),
        };
        self.record_registry(authorised, caller, vec![RegistryRecord::Sighting(sighting)], &found.community, "sighting")
            .await
    }

    // ---- alerts and the change stream ----------------------------------------------------------

    /// What needs attention in the caller's jurisdiction (or one community of it).
    pub async fn registry_alerts(
        &self,
        caller: &Caller,
        kind: Option<AlertKind>,
        community: Option<&str>,
    ) -> Result<Vec<Alert>, EngineError> {
        self.authorize(caller, Action::ReadRegistry, None, "registry.alerts", None).await?;
        let communities = match community {
            Some(c) => {
                let (chain, community) = self.registry_place("community", c)?;
                self.authorize(caller, Action::ReadRegistry, Some(&chain), "registry.alerts", None).await?;
                Some(vec![community])
            }
            None => self.caller_communities(caller),
        };
        let today = self.today();
        let wants = |k: AlertKind| kind.is_none_or(|want| want == k);
        let mut alerts = Vec::new();
        if wants(AlertKind::PermitExpired) || wants(AlertKind::PermitExpiring) {
            let due = today + self.config.registry.permit_warning_days;
            for permit in self.store.permits_due(communities.clone(), due, SEARCH_LIMIT * 5).await? {
                if let Some(alert) = permit_alert(&permit, today, self.config.registry.permit_warning_days)
                    && wants(alert.kind)
                {
                    alerts.push(alert);
                }
            }
        }
        if wants(AlertKind::Overcrowded) {
            for o in self.store.occupancies(communities.clone(), 100_000).await? {
                if let Some(detail) = self.config.registry.occupancy.exceeded(o.area_m2, o.rooms, o.persons) {
                    alerts.push(Alert {
                        kind: AlertKind::Overcrowded,
                        community: o.community,
                        subject: o.unit,
                        due: None,
                        detail,
                    });
                }
            }
        }
        if wants(AlertKind::UnregisteredResident) {
            for s in self.store.unmatched_sightings(communities.clone(), SEARCH_LIMIT * 5).await? {
                alerts.push(Alert {
                    kind: AlertKind::UnregisteredResident,
                    community: s.community,
                    subject: s.resident,
                    due: Some(s.day),
                    detail: format!("reported at unit {} with no tenancy there", s.unit),
                });
            }
        }
        if wants(AlertKind::PledgeLapsed) {
            for landlord in self.store.lapsed_pledges(communities, today, SEARCH_LIMIT * 5).await? {
                if let Some(alert) = pledge_alert(&self.open_landlord(landlord, false), today) {
                    alerts.push(alert);
                }
            }
        }
        alerts.retain(|a| self.sees_place(caller, Action::ReadRegistry, &a.community));
        alerts.truncate(SEARCH_LIMIT as usize * 5);
        Ok(alerts)
    }

    /// The durable change stream after `after` (records named by code and community), in
    /// the caller's jurisdiction.
    pub async fn registry_changes(
        &self,
        caller: &Caller,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RegistryChange>, EngineError> {
        self.authorize(caller, Action::ReadRegistry, None, "registry.changes", None).await?;
        let changes = self.store.registry_changes(after, limit.clamp(1, 1_000)).await?;
        Ok(changes.into_iter().filter(|c| self.sees_place(caller, Action::ReadRegistry, &c.community)).collect())
    }

    /// Streams the residents of the caller's jurisdiction (or one community), as the caller
    /// may see them, in `format` to `out`, a chunk per page; audited before the first row.
    ///
    /// An export is a report: it holds a place on the report pool and has its time budget;
    /// the opening and writing of each page run on a report thread (lower CPU priority than
    /// intake), and the export stops with [`EngineError::ReportAbandoned`] when `out` is
    /// closed (the client went away) or with the budget when the client reads too slowly.
    pub async fn export_residents(
        &self,
        caller: &Caller,
        community: Option<&str>,
        format: ExportFormat,
        out: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<u64, EngineError> {
        self.authorize(caller, Action::ExportRegistry, None, "registry.export", None).await?;
        let communities = match community {
            Some(c) => {
                let (chain, community) = self.registry_place("community", c)?;
                self.authorize(caller, Action::ExportRegistry, Some(&chain), "registry.export", None).await?;
                Some(vec![community])
            }
            None => self.caller_communities(caller),
        };
        self.audit_personal_read(caller, "registry.export", ("community", community.unwrap_or("*")), None).await?;
        let key = self.config.keys.personal_data();
        let sight = Sight::of(caller);
        let failed = |e: std::io::Error| EngineError::Invalid { field: "export", message: e.to_string() };
        self.run_bounded("export", async {
            let mut writer = ResidentWriter::new(format, Vec::new());
            let mut after = 0;
            let mut written = 0u64;
            loop {
                let page = self.store.residents_page(communities.clone(), after, 5_000).await?;
                let Some((last, _)) = page.last() else { break };
                after = *last;
                let visible: Vec<SealedResident> = page
                    .into_iter()
                    .map(|(_, sealed)| sealed)
                    .filter(|sealed| self.sees_place(caller, Action::ExportRegistry, &sealed.grid))
                    .collect();
                written += visible.len() as u64;
                // The writer travels to the report thread with its page and comes back.
                let (back, chunk) = self
                    .on_report_thread(move || -> Result<_, EngineError> {
                        for sealed in visible {
                            writer.write(&open_sealed(&key, &sight, sealed)?).map_err(failed)?;
                        }
                        let chunk = writer.take_written().map_err(failed)?;
                        Ok((writer, chunk))
                    })
                    .await??;
                writer = back;
                if !chunk.is_empty() {
                    out.send(chunk).await.map_err(|_| EngineError::ReportAbandoned)?;
                }
            }
            let rest = self.on_report_thread(move || writer.finish()).await?.map_err(failed)?;
            out.send(rest).await.map_err(|_| EngineError::ReportAbandoned)?;
            Ok(written)
        })
        .await
    }
}

/// Checks and seals a resident whose place (`grid`, `community`) is known.
pub(crate) fn seal_resident(
    key: &[u8; 32],
    indexer: &Indexer,
    new: NewResident,
    grid: String,
    community: String,
    today: Day,
) -> Result<SealedResident, EngineError> {
    check_code("code", &new.code).map_err(invalid)?;
    check_text("name", &new.name, 32, true).map_err(invalid)?;
    optional_text("origin_province", &new.origin_province, 16)?;
    optional_text("origin_city", &new.origin_city, 32)?;
    optional_text("employer", &new.employer, 64)?;
    let kind = new.document.unwrap_or(DocumentKind::ResidentId);
    let document = check_document(kind, &new.id_number, today)
        .map_err(|e| EngineError::Invalid { field: "id_number", message: e.to_string() })?;
    let (birth, sex) = check_person(&document, new.birth, new.sex, today).map_err(invalid)?;
    let phone = new
        .phone
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(check_phone)
        .transpose()
        .map_err(|e| EngineError::Invalid { field: "phone", message: e.to_string() })?;
    let plain = resident_plain(&document.number, phone.as_deref());
    let sealed = crypto::seal(key, &resident_context(&new.code), plain.as_bytes());
    let trimmed = new.name.trim();
    let name = if trimmed.len() == new.name.len() { new.name } else { trimmed.to_string() };
    Ok(SealedResident {
        code: new.code,
        document: kind,
        sealed,
        id_index: indexer.id_number(&document.number),
        phone_index: phone.as_deref().map(|p| indexer.phone(p)),
        name,
        sex,
        birth,
        origin_province: new.origin_province,
        origin_city: new.origin_city,
        employer: new.employer,
        unit: new.unit,
        grid,
        community,
    })
}

pub(crate) fn seal_landlord(key: &[u8; 32], new: &NewLandlord) -> Result<SealedLandlord, EngineError> {
    check_code("code", &new.code).map_err(invalid)?;
    check_text("name", &new.name, 64, true).map_err(invalid)?;
    let phone = new
        .phone
        .as_deref()
        .map(check_phone)
        .transpose()
        .map_err(|e| EngineError::Invalid { field: "phone", message: e.to_string() })?;
    let safety_phone = new
        .safety_phone
        .as_deref()
        .map(check_phone)
        .transpose()
        .map_err(|e| EngineError::Invalid { field: "safety_phone", message: e.to_string() })?;
    if let (Some(signed), Some(expires)) = (new.pledge_signed, new.pledge_expires)
        && expires <= signed
    {
        return Err(EngineError::Invalid { field: "pledge_expires", message: "must be after signing".into() });
    }
    let safety_person = new.safety_person.clone().unwrap_or_else(|| new.name.clone());
    check_text("safety_person", &safety_person, 64, true).map_err(invalid)?;
    let contact_sealed = (phone.is_some() || safety_phone.is_some()).then(|| {
        let plain = format!("{}\n{}", phone.as_deref().unwrap_or(""), safety_phone.as_deref().unwrap_or(""));
        crypto::seal(key, &landlord_context(&new.code), plain.as_bytes())
    });
    Ok(SealedLandlord {
        code: new.code.clone(),
        kind: new.kind,
        name: new.name.clone(),
        contact_sealed,
        safety_person,
        pledge_signed: new.pledge_signed,
        pledge_expires: new.pledge_expires,
        community: new.community.clone(),
    })
}

/// A building's own fields (its place is checked against the tree by the caller).
pub(crate) fn check_building_fields(building: &Building) -> Result<(), EngineError> {
    check_code("code", &building.code).map_err(invalid)?;
    check_text("address", &building.address, 128, true).map_err(invalid)?;
    let located = building.lat.is_finite()
        && building.lon.is_finite()
        && (-90.0..=90.0).contains(&building.lat)
        && (-180.0..=180.0).contains(&building.lon);
    if !located {
        return Err(EngineError::Invalid { field: "lat", message: "a WGS 84 latitude and longitude".into() });
    }
    if building.floors == 0 || building.floors > 200 {
        return Err(EngineError::Invalid { field: "floors", message: "1–200".into() });
    }
    Ok(())
}

pub(crate) fn check_unit_fields(unit: &HousingUnit) -> Result<(), EngineError> {
    check_code("code", &unit.code).map_err(invalid)?;
    check_code("building", &unit.building).map_err(invalid)?;
    if !(unit.area_m2.is_finite() && unit.area_m2 > 0.0 && unit.area_m2 < 100_000.0) {
        return Err(EngineError::Invalid { field: "area_m2", message: "a positive area in m²".into() });
    }
    if !(-10..=200).contains(&unit.floor) {
        return Err(EngineError::Invalid { field: "floor", message: "-10–200".into() });
    }
    if unit.rooms == 0 || unit.rooms > 500 {
        return Err(EngineError::Invalid { field: "rooms", message: "1–500".into() });
    }
    Ok(())
}

/// The number as registered: 15-digit resident numbers become 18, case and spaces do not
/// matter.
#[cfg(test)]
mod tests;

/// What of a resident's sealed fields a caller sees whole.
#[derive(Clone, Copy, Debug)]
struct Sight {
    whole_number: bool,
    whole_phone: bool,
}

impl Sight {
    fn of(caller: &Caller) -> Sight {
        Sight {
            whole_number: caller.actor.check(Action::ReadIdentityNumbers).is_ok(),
            whole_phone: caller.actor.check(Action::ManageRegistry).is_ok(),
        }
    }
}

/// Opens a sealed resident as a caller with `sight` may see it (a free function, so an
/// export can run it on a report thread).
fn open_sealed(key: &[u8; 32], sight: &Sight, sealed: SealedResident) -> Result<ResidentView, EngineError> {
    let plain = crypto::open(key, &resident_context(&sealed.code), &sealed.sealed)
        .and_then(|p| String::from_utf8(p).ok())
        .ok_or_else(|| {
            EngineError::Store(fangkong_store::StoreError::Corrupt(format!("resident {} does not open", sealed.code)))
        })?;
    let (number, phone) = plain.split_once('\n').unwrap_or((&plain, ""));
    let Sight { whole_number, whole_phone } = *sight;
    Ok(ResidentView {
        code: sealed.code,
        document: sealed.document,
        id_number: if whole_number { number.to_string() } else { mask_id_number(number) },
        id_number_masked: !whole_number,
        name: sealed.name,
        sex: sealed.sex,
        birth: sealed.birth,
        phone: (!phone.is_empty()).then(|| if whole_phone { phone.to_string() } else { mask_phone(phone) }),
        phone_masked: !whole_phone,
        origin_province: sealed.origin_province,
        origin_city: sealed.origin_city,
        employer: sealed.employer,
        unit: sealed.unit,
        grid: sealed.grid,
        community: sealed.community,
    })
}
