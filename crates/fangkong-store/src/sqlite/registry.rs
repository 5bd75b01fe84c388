//! The registry on SQLite.

use fangkong_core::registry::{Building, Day, HousingUnit, Permit, Sighting, Tenancy, Visit, Workstation};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::audit::append_in;
use super::registry_keys::{self, KeyKind, PendingKeys, ResidentKeys};
use super::{SqliteStore, WRITER_CACHE_KIB};
use crate::error::{is_sqlite_reference_violation, is_sqlite_unique_violation};
use crate::outbox::Audited;
use crate::registry::{
    BUILDING_COLUMNS, BlindIndex, Communities, ImportCounts, ImportFeed, LANDLORD_COLUMNS, Occupancy, PropertyCard,
    RESIDENT_COLUMNS, RegistryChange, RegistryRecord, ResidentRow, SIGHTING_COLUMNS, SealedLandlord, SealedResident,
    UNIT_COLUMNS, VISIT_COLUMNS, blind_index, building_kind, landlord_kind, permit_kind, unit_use, visit_outcome,
};
use crate::{StoreError, thread_cpu_seconds, thread_run_queue_seconds, wall_clock_millis};

/// The page cache of the writer while an import runs (the indexes of a large registry
/// take random inserts; kept in memory they do not each cost a read).
const IMPORT_CACHE_KIB: i64 = 1_048_576;

/// `community IN (…)` as a JSON array parameter, or true for all.
fn communities_json(communities: &Communities) -> Option<String> {
    communities.as_ref().map(|list| serde_json::to_string(list).expect("strings serialise"))
}

const IN_COMMUNITIES: &str = "(?1 IS NULL OR community IN (SELECT value FROM json_each(?1)))";

fn resident_row(r: &Row<'_>) -> rusqlite::Result<ResidentRow> {
    Ok(ResidentRow {
        code: r.get(0)?,
        document: r.get(1)?,
        sealed: r.get(2)?,
        id_index: r.get(3)?,
        phone_index: r.get(4)?,
        name: r.get(5)?,
        sex: r.get(6)?,
        birth: r.get(7)?,
        origin_province: r.get(8)?,
        origin_city: r.get(9)?,
        employer: r.get(10)?,
        unit: r.get(11)?,
        grid: r.get(12)?,
        community: r.get(13)?,
    })
}

/// The resident with this rowid.
fn resident_by_rowid(conn: &Connection, rowid: i64) -> Result<Option<SealedResident>, StoreError> {
    conn.prepare_cached(&format!("SELECT {RESIDENT_COLUMNS} FROM registry_residents WHERE id = ?1"))?
        .query_row([rowid], resident_row)
        .optional()?
        .map(ResidentRow::decode)
        .transpose()
}

/// Residents in the order searches return them (community, name, code), at most `limit`.
fn in_order(mut found: Vec<SealedResident>, limit: u32) -> Vec<SealedResident> {
    found.sort_by(|a, b| (&a.community, &a.name, &a.code).cmp(&(&b.community, &b.name, &b.code)));
    found.truncate(limit as usize);
    found
}

fn building_row(r: &Row<'_>) -> rusqlite::Result<(Building, String)> {
    let kind: String = r.get(6)?;
    Ok((
        Building {
            code: r.get(0)?,
            address: r.get(1)?,
            grid: r.get(2)?,
            community: r.get(3)?,
            lon: r.get(4)?,
            lat: r.get(5)?,
            kind: fangkong_core::registry::BuildingKind::Other,
            floors: r.get(7)?,
        },
        kind,
    ))
}

fn building(pair: (Building, String)) -> Result<Building, StoreError> {
    let (mut building, kind) = pair;
    building.kind = building_kind(&kind)?;
    Ok(building)
}

fn unit_row(r: &Row<'_>) -> rusqlite::Result<(HousingUnit, String)> {
    let usage: String = r.get(5)?;
    Ok((
        HousingUnit {
            code: r.get(0)?,
            building: r.get(1)?,
            floor: r.get(2)?,
            area_m2: r.get(3)?,
            rooms: r.get(4)?,
            usage: fangkong_core::registry::UnitUse::Residential,
            rent_yuan: r.get(6)?,
            rental: r.get(7)?,
            landlord: r.get(8)?,
            community: r.get(9)?,
        },
        usage,
    ))
}

fn unit(pair: (HousingUnit, String)) -> Result<HousingUnit, StoreError> {
    let (mut unit, usage) = pair;
    unit.usage = unit_use(&usage)?;
    Ok(unit)
}

fn landlord_row(r: &Row<'_>) -> rusqlite::Result<(SealedLandlord, String)> {
    let kind: String = r.get(1)?;
    Ok((
        SealedLandlord {
            code: r.get(0)?,
            kind: fangkong_core::registry::LandlordKind::Person,
            name: r.get(2)?,
            contact_sealed: r.get(3)?,
            safety_person: r.get(4)?,
            pledge_signed: r.get(5)?,
            pledge_expires: r.get(6)?,
            community: r.get(7)?,
        },
        kind,
    ))
}

fn landlord(pair: (SealedLandlord, String)) -> Result<SealedLandlord, StoreError> {
    let (mut landlord, kind) = pair;
    landlord.kind = landlord_kind(&kind)?;
    Ok(landlord)
}

fn permit_row(r: &Row<'_>) -> rusqlite::Result<(Permit, String)> {
    let kind: String = r.get(1)?;
    Ok((
        Permit {
            resident: r.get(0)?,
            kind: fangkong_core::registry::PermitKind::ResidencePermit,
            issued: r.get(2)?,
            expires: r.get(3)?,
            endorsed: r.get(4)?,
            community: r.get(5)?,
        },
        kind,
    ))
}

fn permit(pair: (Permit, String)) -> Result<Permit, StoreError> {
    let (mut permit, kind) = pair;
    permit.kind = permit_kind(&kind)?;
    Ok(permit)
}

fn visit_row(r: &Row<'_>) -> rusqlite::Result<(Visit, String)> {
    let outcome: String = r.get(5)?;
    Ok((
        Visit {
            id: r.get(0)?,
            unit: r.get(1)?,
            community: r.get(2)?,
            day: r.get(3)?,
            by: r.get(4)?,
            outcome: fangkong_core::registry::VisitOutcome::Verified,
            occupants: r.get(6)?,
            note: r.get(7)?,
        },
        outcome,
    ))
}

fn visit(pair: (Visit, String)) -> Result<Visit, StoreError> {
    let (mut visit, outcome) = pair;
    visit.outcome = visit_outcome(&outcome)?;
    Ok(visit)
}

fn sighting_row(r: &Row<'_>) -> rusqlite::Result<Sighting> {
    Ok(Sighting {
        id: r.get(0)?,
        resident: r.get(1)?,
        unit: r.get(2)?,
        community: r.get(3)?,
        day: r.get(4)?,
        by: r.get(5)?,
        note: r.get(6)?,
    })
}

fn exists(conn: &Connection, sql: &str, key: &str) -> Result<bool, StoreError> {
    Ok(conn.prepare_cached(sql)?.query_row([key], |_| Ok(())).optional()?.is_some())
}

/// After a refused reference: which field names a record that is not on the registry.
fn missing_reference(conn: &Connection, record: &RegistryRecord) -> Result<(&'static str, String), StoreError> {
    let unit = |code: &str| exists(conn, "SELECT 1 FROM registry_units WHERE code = ?1", code);
    let resident = |code: &str| exists(conn, "SELECT 1 FROM registry_residents WHERE code = ?1", code);
    let landlord = |code: &str| exists(conn, "SELECT 1 FROM registry_landlords WHERE code = ?1", code);
    let tenancy = |code: &str| exists(conn, "SELECT 1 FROM registry_tenancies WHERE code = ?1", code);
    let missing =
        |field: &'static str, what: &str, code: &str| (field, format!("{what} {code} is not on the registry"));
    Ok(match record {
        RegistryRecord::Unit(u) => {
            if !exists(conn, "SELECT 1 FROM registry_buildings WHERE code = ?1", &u.building)? {
                missing("building", "building", &u.building)
            } else if let Some(l) = u.landlord.as_deref().filter(|l| !landlord(l).unwrap_or(false)) {
                missing("landlord", "landlord", l)
            } else {
                ("unit", "refers to a record that is not on the registry".into())
            }
        }
        RegistryRecord::Tenancy(t) => {
            if !unit(&t.unit)? {
                missing("unit", "unit", &t.unit)
            } else if let Some(l) = t.landlord.as_deref().filter(|l| !landlord(l).unwrap_or(false)) {
                missing("landlord", "landlord", l)
            } else if let Some(m) = t.members.iter().find(|m| !resident(m).unwrap_or(false)) {
                missing(if *m == t.lessee { "lessee" } else { "members" }, "resident", m)
            } else {
                ("tenancy", "breaks a rule of the registry".into())
            }
        }
        RegistryRecord::MoveOut { tenancy: code, .. } if !tenancy(code)? => missing("tenancy", "tenancy", code),
        RegistryRecord::MoveOut { .. } => ("move_out", "is before move-in".into()),
        RegistryRecord::Permit(p) => {
            if resident(&p.resident)? {
                ("expires", "must be after the issue date".into())
            } else {
                missing("resident", "resident", &p.resident)
            }
        }
        RegistryRecord::Visit(v) => missing("unit", "unit", &v.unit),
        RegistryRecord::Sighting(s) if !resident(&s.resident)? => missing("resident", "resident", &s.resident),
        RegistryRecord::Sighting(s) => missing("unit", "unit", &s.unit),
        RegistryRecord::Resident(r) => match r.unit.as_deref() {
            Some(u) if !unit(u)? => missing("unit", "unit", u),
            _ => ("resident", "breaks a rule of the registry".into()),
        },
        other => (other.entity(), "breaks a rule of the registry".into()),
    })
}

/// Why a record was not applied.
enum Refused {
    /// A key another record holds (an identity number registered to someone else).
    Unique,
    /// A reference to a record that is not on the registry.
    Reference,
    Failed(StoreError),
}

impl From<rusqlite::Error> for Refused {
    fn from(error: rusqlite::Error) -> Refused {
        if is_sqlite_unique_violation(&error) {
            Refused::Unique
        } else if is_sqlite_reference_violation(&error) {
            Refused::Reference
        } else {
            Refused::Failed(error.into())
        }
    }
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Refused {
        Refused::Failed(error)
    }
}

/// Applies one record; a refusal names the field.
fn apply_checked(
    conn: &Connection,
    record: &RegistryRecord,
    now: i64,
    bulk: bool,
) -> Result<(), (&'static str, StoreError)> {
    apply(conn, record, now, bulk).map_err(|refused| classify(conn, record, refused))
}

/// The field a refusal names and the error it becomes.
fn classify(conn: &Connection, record: &RegistryRecord, refused: Refused) -> (&'static str, StoreError) {
    match refused {
        Refused::Unique => {
            let (field, message) = match record {
                RegistryRecord::Resident(_) => ("id_number", "is registered to another resident"),
                _ => ("code", "is taken"),
            };
            (field, StoreError::Conflict { entity: record.entity(), key: message.into() })
        }
        Refused::Reference => match missing_reference(conn, record) {
            Ok((field, message)) => (field, StoreError::Rejected { row: 0, field, message }),
            Err(error) => (record.entity(), error),
        },
        Refused::Failed(error) => (record.entity(), error),
    }
}

/// A refused reference, reported as SQLite reports a foreign key (the caller then finds
/// which field).
fn reference_missing() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY), None)
}

/// Checks that `key` names a record of `table` (the bulk tables declare no foreign keys;
/// see migration 0007).
fn require(conn: &Connection, table: Table, key: Option<&str>) -> rusqlite::Result<()> {
    let Some(key) = key else { return Ok(()) };
    let sql = match table {
        Table::Buildings => "SELECT 1 FROM registry_buildings WHERE code = ?1",
        Table::Landlords => "SELECT 1 FROM registry_landlords WHERE code = ?1",
        Table::Units => "SELECT 1 FROM registry_units WHERE code = ?1",
    };
    match conn.prepare_cached(sql)?.query_row([key], |_| Ok(())).optional()? {
        Some(()) => Ok(()),
        None => Err(reference_missing()),
    }
}

#[derive(Clone, Copy, Debug)]
enum Table {
    Buildings,
    Landlords,
    Units,
}

/// An upsert in two forms: `INSERT` in a savepoint, `INSERT OR ROLLBACK` in a bulk import
/// (a failed row fails the whole import anyway, and SQLite then needs no statement journal).
macro_rules! upsert {
    ($rest:literal) => {
        [concat!("INSERT", $rest), concat!("INSERT OR ROLLBACK", $rest)]
    };
}

const BUILDING_UPSERT: [&str; 2] = upsert!(
    " INTO registry_buildings (code, address, grid, community, lon, lat, kind, floors, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT (code) DO UPDATE SET address = excluded.address, grid = excluded.grid,
         community = excluded.community, lon = excluded.lon, lat = excluded.lat, kind = excluded.kind,
         floors = excluded.floors, updated_at = excluded.updated_at"
);

const UNIT_UPSERT: [&str; 2] = upsert!(
    " INTO registry_units (code, building, floor, area_m2, rooms, usage, rent_yuan, rental, landlord,
         community, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
     ON CONFLICT (code) DO UPDATE SET building = excluded.building, floor = excluded.floor,
         area_m2 = excluded.area_m2, rooms = excluded.rooms, usage = excluded.usage,
         rent_yuan = excluded.rent_yuan, rental = excluded.rental, landlord = excluded.landlord,
         community = excluded.community, updated_at = excluded.updated_at"
);

const LANDLORD_UPSERT: [&str; 2] = upsert!(
    " INTO registry_landlords (code, kind, name, contact_sealed, safety_person, pledge_signed,
         pledge_expires, community, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT (code) DO UPDATE SET kind = excluded.kind, name = excluded.name,
         contact_sealed = excluded.contact_sealed, safety_person = excluded.safety_person,
         pledge_signed = excluded.pledge_signed, pledge_expires = excluded.pledge_expires,
         community = excluded.community, updated_at = excluded.updated_at"
);

/// A resident registered or re-registered (their permit, if any, stays).
const RESIDENT_UPSERT: &str = "INSERT INTO registry_residents (code, document, sealed, id_index, phone_index,
         name, sex, birth, origin_province, origin_city, employer, unit, grid, community, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
     ON CONFLICT (code) DO UPDATE SET document = excluded.document, sealed = excluded.sealed,
         id_index = excluded.id_index, phone_index = excluded.phone_index, name = excluded.name,
         sex = excluded.sex, birth = excluded.birth, origin_province = excluded.origin_province,
         origin_city = excluded.origin_city, employer = excluded.employer, unit = excluded.unit,
         grid = excluded.grid, community = excluded.community, updated_at = excluded.updated_at";

/// A resident new to the registry, with their permit, in a bulk import; nothing if the code
/// is taken (the import then updates that resident instead).
const RESIDENT_INSERT_BULK: &str = "INSERT OR IGNORE INTO registry_residents (code, document, sealed, id_index,
         phone_index, name, sex, birth, origin_province, origin_city, employer, unit, grid, community,
         updated_at, permit_kind, permit_issued, permit_expires, permit_endorsed)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";

/// A registered resident's own fields, by rowid (?16).
const RESIDENT_UPDATE: &str = "UPDATE registry_residents SET code = ?1, document = ?2, sealed = ?3,
         id_index = ?4, phone_index = ?5, name = ?6, sex = ?7, birth = ?8, origin_province = ?9,
         origin_city = ?10, employer = ?11, unit = ?12, grid = ?13, community = ?14, updated_at = ?15
     WHERE id = ?16";

/// A resident's permit (a permit lives in its resident's row).
const PERMIT_UPDATE: &str = "UPDATE registry_residents SET permit_kind = ?2, permit_issued = ?3,
         permit_expires = ?4, permit_endorsed = ?5, updated_at = ?6
     WHERE code = ?1";

/// The columns of a permit, read from its resident's row, in the order `permit_row` takes.
const PERMIT_OF_RESIDENT: &str = "code, permit_kind, permit_issued, permit_expires, permit_endorsed, community";

/// A resident's fields as `RESIDENT_UPSERT` binds them (`?1`–`?15`), then any more given.
macro_rules! resident_params {
    ($r:expr, $now:expr $(, $more:expr)*) => {
        params![
            $r.code,
            $r.document.as_str(),
            $r.sealed,
            &$r.id_index[..],
            $r.phone_index.as_ref().map(|i| &i[..]),
            $r.name,
            $r.sex.as_str(),
            $r.birth,
            $r.origin_province,
            $r.origin_city,
            $r.employer,
            $r.unit,
            $r.grid,
            $r.community,
            $now
            $(, $more)*
        ]
    };
}

macro_rules! unit_params {
    ($u:expr, $now:expr) => {
        params![
            $u.code,
            $u.building,
            $u.floor,
            $u.area_m2,
            $u.rooms,
            $u.usage.as_str(),
            $u.rent_yuan,
            $u.rental,
            $u.landlord,
            $u.community,
            $now
        ]
    };
}

macro_rules! building_params {
    ($b:expr, $now:expr) => {
        params![$b.code, $b.address, $b.grid, $b.community, $b.lon, $b.lat, $b.kind.as_str(), $b.floors, $now]
    };
}

/// A registered resident's rowid and the keys they are filed under.
fn resident_keys_of(conn: &Connection, code: &str) -> Result<Option<(i64, ResidentKeys)>, StoreError> {
    let row = conn
        .prepare_cached("SELECT id, id_index, phone_index, community, name FROM registry_residents WHERE code = ?1")?
        .query_row([code], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .optional()?;
    row.map(|(rowid, id_index, phone_index, community, name)| {
        let phone = phone_index.as_deref().map(blind_index).transpose()?;
        Ok((rowid, ResidentKeys::new(blind_index(&id_index)?, phone, &community, &name)))
    })
    .transpose()
}

fn keys_of(r: &SealedResident) -> ResidentKeys {
    ResidentKeys::new(r.id_index, r.phone_index, &r.community, &r.name)
}

fn apply(conn: &Connection, record: &RegistryRecord, now: i64, bulk: bool) -> Result<(), Refused> {
    let form = usize::from(bulk);
    match record {
        RegistryRecord::Workstation(w) => {
            conn.prepare_cached(
                "INSERT INTO registry_workstations (code, community, name, address, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (code) DO UPDATE SET community = excluded.community, name = excluded.name,
                     address = excluded.address, updated_at = excluded.updated_at",
            )?
            .execute(params![w.code, w.community, w.name, w.address, now])?;
        }
        RegistryRecord::Building(b) => {
            conn.prepare_cached(BUILDING_UPSERT[form])?.execute(building_params!(b, now))?;
        }
        RegistryRecord::Unit(u) => {
            require(conn, Table::Buildings, Some(&u.building))?;
            require(conn, Table::Landlords, u.landlord.as_deref())?;
            conn.prepare_cached(UNIT_UPSERT[form])?.execute(unit_params!(u, now))?;
        }
        RegistryRecord::Landlord(l) => {
            conn.prepare_cached(LANDLORD_UPSERT[form])?.execute(params![
                l.code,
                l.kind.as_str(),
                l.name,
                l.contact_sealed,
                l.safety_person,
                l.pledge_signed,
                l.pledge_expires,
                l.community,
                now
            ])?;
        }
        RegistryRecord::Resident(r) => {
            require(conn, Table::Units, r.unit.as_deref())?;
            let old = resident_keys_of(conn, &r.code)?;
            conn.prepare_cached(RESIDENT_UPSERT)?.execute(resident_params!(r, now))?;
            let rowid = old.as_ref().map_or_else(|| conn.last_insert_rowid(), |(rowid, _)| *rowid);
            if registry_keys::replace(conn, rowid, old.as_ref().map(|(_, keys)| keys), &keys_of(r))?.is_err() {
                return Err(Refused::Unique);
            }
        }
        RegistryRecord::Tenancy(t) => {
            conn.prepare_cached(
                "INSERT INTO registry_tenancies (code, unit, landlord, lessee, move_in, move_out, community, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (code) DO UPDATE SET unit = excluded.unit, landlord = excluded.landlord,
                     lessee = excluded.lessee, move_in = excluded.move_in, move_out = excluded.move_out,
                     community = excluded.community, updated_at = excluded.updated_at",
            )?
            .execute(params![t.code, t.unit, t.landlord, t.lessee, t.move_in, t.move_out, t.community, now])?;
            conn.prepare_cached("DELETE FROM registry_tenancy_members WHERE tenancy = ?1")?.execute([&t.code])?;
            let mut insert = conn.prepare_cached(
                "INSERT INTO registry_tenancy_members (tenancy, resident) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
            for member in &t.members {
                insert.execute([&t.code, member])?;
            }
        }
        RegistryRecord::MoveOut { tenancy, day } => {
            let changed = conn
                .prepare_cached("UPDATE registry_tenancies SET move_out = ?2, updated_at = ?3 WHERE code = ?1")?
                .execute(params![tenancy, day, now])?;
            if changed == 0 {
                // Reported as a missing reference by the caller.
                return Err(Refused::Reference);
            }
        }
        RegistryRecord::Permit(p) => {
            let changed = conn.prepare_cached(PERMIT_UPDATE)?.execute(params![
                p.resident,
                p.kind.as_str(),
                p.issued,
                p.expires,
                p.endorsed,
                now
            ])?;
            if changed == 0 {
                return Err(Refused::Reference);
            }
        }
        RegistryRecord::Visit(v) => {
            conn.prepare_cached(
                "INSERT INTO registry_visits (unit, community, day, by_user, outcome, occupants, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                v.unit,
                v.community,
                v.day,
                v.by,
                v.outcome.as_str(),
                v.occupants,
                v.note
            ])?;
        }
        RegistryRecord::Sighting(s) => {
            conn.prepare_cached(
                "INSERT INTO registry_sightings (resident, unit, community, day, by_user, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![s.resident, s.unit, s.community, s.day, s.by, s.note])?;
        }
    }
    Ok(())
}

/// A bulk import in progress: its statements prepared once, the references it has already
/// checked, the keys it will file at the end, and which source row wrote which resident.
struct Bulk<'c> {
    conn: &'c Connection,
    now: i64,
    insert_resident: rusqlite::Statement<'c>,
    insert_unit: rusqlite::Statement<'c>,
    insert_building: rusqlite::Statement<'c>,
    /// Residents with a higher rowid were written by this import.
    last_rowid_before: i64,
    /// The last building, landlord and unit known to be on the registry: rows come grouped
    /// (a building's units follow it, a unit's residents follow each other), so most
    /// references need no query.
    known: [String; 3],
    /// Units of the current batch known to be on the registry ([`Bulk::find_units`]).
    units_here: SortedCodes,
    /// Keys to take off the buckets (residents written again); the keys added are
    /// collected by a [`KeyCollector`] from `written`.
    keys: PendingKeys,
    /// The rowid of each resident of the current batch, in the batch's order.
    written: Vec<i64>,
    rows: RowMap,
    /// What `insert_resident`'s text parameters are bound to.
    bound: BoundTexts,
}

impl<'c> Bulk<'c> {
    fn new(conn: &'c Connection, now: i64) -> Result<Bulk<'c>, StoreError> {
        Ok(Bulk {
            conn,
            now,
            insert_resident: {
                // The import's time is the same for every row: bound once.
                let mut insert = conn.prepare(RESIDENT_INSERT_BULK)?;
                insert.raw_bind_parameter(15, now)?;
                insert
            },
            insert_unit: conn.prepare(UNIT_UPSERT[1])?,
            insert_building: conn.prepare(BUILDING_UPSERT[1])?,
            last_rowid_before: conn
                .query_row("SELECT coalesce(max(id), 0) FROM registry_residents", [], |r| r.get(0))?,
            known: Default::default(),
            units_here: SortedCodes::default(),
            keys: PendingKeys::default(),
            written: Vec::new(),
            rows: RowMap::default(),
            bound: BoundTexts::default(),
        })
    }

    /// `require`, remembering the last code found.
    fn require(&mut self, table: Table, key: Option<&str>) -> Result<(), Refused> {
        let Some(key) = key else { return Ok(()) };
        let known = &mut self.known[table as usize];
        if known != key {
            require(self.conn, table, Some(key))?;
            key.clone_into(known);
        }
        Ok(())
    }

    /// Applies a batch; a refusal names its row and field. Returns the rowid of each
    /// resident of the batch, in order.
    fn apply(&mut self, records: &[(u64, RegistryRecord)]) -> Result<Vec<i64>, StoreError> {
        self.written = Vec::with_capacity(records.len());
        self.find_units(records)?;
        let mut i = 0;
        while let Some((row, record)) = records.get(i) {
            let row = *row;
            let outcome = match record {
                RegistryRecord::Resident(r) => {
                    // The permit of the same row joins the resident's insert.
                    let permit = match records.get(i + 1) {
                        Some((next, RegistryRecord::Permit(p))) if *next == row && p.resident == r.code => {
                            i += 1;
                            Some(p)
                        }
                        _ => None,
                    };
                    self.resident(row, r, permit)
                }
                RegistryRecord::Building(b) => {
                    self.insert_building.execute(building_params!(b, self.now)).map(|_| ()).map_err(Refused::from)
                }
                RegistryRecord::Unit(u) => self.unit(u),
                other => apply(self.conn, other, self.now, true),
            };
            outcome.map_err(|refused| self.refusal(row, record, refused))?;
            if let RegistryRecord::Building(b) = record {
                b.code.clone_into(&mut self.known[Table::Buildings as usize]);
            }
            i += 1;
        }
        Ok(std::mem::take(&mut self.written))
    }

    /// The units the batch's residents live in that are on the registry, read in one range
    /// scan when they are close together (an import's rows come sorted by unit), so that
    /// most residents' unit needs no query of its own.
    fn find_units(&mut self, records: &[(u64, RegistryRecord)]) -> Result<(), StoreError> {
        self.units_here.clear();
        let mut units = records.iter().filter_map(|(_, record)| match record {
            RegistryRecord::Resident(r) => r.unit.as_deref(),
            _ => None,
        });
        let Some(first) = units.next() else { return Ok(()) };
        let (low, high) = units.fold((first, first), |(low, high), unit| (low.min(unit), high.max(unit)));
        let most = 4 * records.len() as i64;
        let mut statement = self
            .conn
            .prepare_cached("SELECT code FROM registry_units WHERE code >= ?1 AND code <= ?2 ORDER BY code LIMIT ?3")?;
        let mut found = statement.query(params![low, high, most])?;
        while let Some(row) = found.next()? {
            self.units_here.push(row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?);
        }
        Ok(())
    }

    fn unit(&mut self, u: &HousingUnit) -> Result<(), Refused> {
        self.require(Table::Buildings, Some(&u.building))?;
        self.require(Table::Landlords, u.landlord.as_deref())?;
        self.insert_unit.execute(unit_params!(u, self.now))?;
        Ok(())
    }

    fn resident(&mut self, row: u64, r: &SealedResident, permit: Option<&Permit>) -> Result<(), Refused> {
        if !r.unit.as_ref().is_some_and(|u| self.units_here.contains(u)) {
            self.require(Table::Units, r.unit.as_deref())?;
        }
        let inserted = self.insert_resident(r, permit)?;
        if inserted == 1 {
            let rowid = self.conn.last_insert_rowid();
            self.written.push(rowid);
            self.rows.inserted(rowid, row);
            return Ok(());
        }
        // On the registry already (before the import, or from an earlier row of this file:
        // the later row wins, as a registration would): updated in place, filed anew.
        let Some((rowid, old)) = resident_keys_of(self.conn, &r.code)? else {
            return Err(Refused::Failed(StoreError::Corrupt(format!("resident {} vanished", r.code))));
        };
        self.conn.prepare_cached(RESIDENT_UPDATE)?.execute(resident_params!(r, self.now, rowid))?;
        if let Some(p) = permit {
            apply(self.conn, &RegistryRecord::Permit(p.clone()), self.now, true)?;
        }
        if rowid > self.last_rowid_before || self.rows.updated.contains_key(&rowid) {
            self.keys.retract(rowid, &old);
        } else {
            self.keys.remove(rowid, &old);
        }
        self.written.push(rowid);
        self.rows.updated(rowid, row);
        Ok(())
    }

    /// Runs the bulk insert for one resident (and its permit), binding afresh only the
    /// parameters that differ from the last resident's: neighbouring rows share their unit,
    /// grid, community and more, and binding is a copy into SQLite (measured: ~13 % of the
    /// writer's time when every parameter was bound for every row). SQLite keeps a bound
    /// value until it is bound again.
    fn insert_resident(&mut self, r: &SealedResident, permit: Option<&Permit>) -> rusqlite::Result<usize> {
        let statement = &mut self.insert_resident;
        let shared = &mut self.bound;
        statement.raw_bind_parameter(1, &r.code)?;
        shared.text(statement, 2, Some(r.document.as_str()))?;
        statement.raw_bind_parameter(3, &r.sealed)?;
        statement.raw_bind_parameter(4, &r.id_index[..])?;
        statement.raw_bind_parameter(5, r.phone_index.as_ref().map(|i| &i[..]))?;
        statement.raw_bind_parameter(6, &r.name)?;
        shared.text(statement, 7, Some(r.sex.as_str()))?;
        statement.raw_bind_parameter(8, r.birth)?;
        shared.text(statement, 9, r.origin_province.as_deref())?;
        shared.text(statement, 10, r.origin_city.as_deref())?;
        shared.text(statement, 11, r.employer.as_deref())?;
        shared.text(statement, 12, r.unit.as_deref())?;
        shared.text(statement, 13, Some(&r.grid))?;
        shared.text(statement, 14, Some(&r.community))?;
        shared.text(statement, 16, permit.map(|p| p.kind.as_str()))?;
        statement.raw_bind_parameter(17, permit.map(|p| p.issued))?;
        statement.raw_bind_parameter(18, permit.map(|p| p.expires))?;
        statement.raw_bind_parameter(19, permit.and_then(|p| p.endorsed))?;
        statement.raw_execute()
    }

    fn refusal(&self, row: u64, record: &RegistryRecord, refused: Refused) -> StoreError {
        if let Refused::Failed(rejected @ StoreError::Rejected { .. }) = refused {
            return rejected;
        }
        match classify(self.conn, record, refused) {
            (field, StoreError::Rejected { message, .. } | StoreError::Conflict { key: message, .. }) => {
                StoreError::Rejected { row, field, message }
            }
            (_, other) => other,
        }
    }

    /// Files the collected keys (`added`, from the import's [`KeyCollector`]); a clash of
    /// identity numbers names the row that wrote it.
    fn finish(self, added: PendingKeys) -> Result<(), StoreError> {
        let Bulk { conn, keys, rows, .. } = self;
        match added.join(keys).file(conn)? {
            Ok(()) => Ok(()),
            Err(clash) => Err(StoreError::Rejected {
                row: rows.row_of(clash.rowid).unwrap_or(0),
                field: "id_number",
                message: "is registered to another resident".into(),
            }),
        }
    }
}

/// A batch of an import's records, applied, with the rowid of each of its residents.
type AppliedBatch = (Vec<(u64, RegistryRecord)>, Vec<i64>);

/// The keys of the residents an import wrote, collected on a thread of its own from each
/// batch and its rowids, which then frees the batch: hashing names and growing the lists of
/// tens of millions of keys is not the writer's work (profiled at 4 M residents: ~7 % of the
/// writer's time, most of it page faults of the growing lists).
struct KeyCollector {
    batches: std::sync::mpsc::SyncSender<AppliedBatch>,
    thread: std::thread::JoinHandle<PendingKeys>,
}

impl KeyCollector {
    fn start() -> Result<KeyCollector, StoreError> {
        // A few batches in flight: if the collector falls behind, the writer waits rather
        // than the batches piling up in memory.
        let (batches, received) = std::sync::mpsc::sync_channel::<AppliedBatch>(16);
        let thread = std::thread::Builder::new()
            .name("registry-import-keys".into())
            .spawn(move || {
                let mut keys = PendingKeys::default();
                for (records, rowids) in received {
                    let residents = records.iter().filter_map(|(_, record)| match record {
                        RegistryRecord::Resident(r) => Some(r),
                        _ => None,
                    });
                    for (r, rowid) in residents.zip(rowids) {
                        keys.add(rowid, &keys_of(r));
                    }
                }
                keys
            })
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(KeyCollector { batches, thread })
    }

    /// Hands over a batch applied and the rowid of each of its residents, in order.
    fn collect(&self, records: Vec<(u64, RegistryRecord)>, rowids: Vec<i64>) -> Result<(), StoreError> {
        self.batches.send((records, rowids)).map_err(|_| StoreError::Unavailable("the key collector stopped".into()))
    }

    /// The keys collected, once every batch handed over has been.
    fn finish(self) -> Result<PendingKeys, StoreError> {
        let KeyCollector { batches, thread } = self;
        drop(batches);
        thread.join().map_err(|_| StoreError::Unavailable("the key collector failed".into()))
    }
}

/// The text values a statement's parameters are bound to, by parameter index, so that an
/// unchanged one is not bound again. `None`: never bound (or unknown).
#[derive(Debug, Default)]
struct BoundTexts {
    texts: [Option<Option<String>>; 20],
}

impl BoundTexts {
    /// Binds `value` to parameter `index` unless it is bound to it already.
    fn text(
        &mut self,
        statement: &mut rusqlite::Statement<'_>,
        index: usize,
        value: Option<&str>,
    ) -> rusqlite::Result<()> {
        let bound = &mut self.texts[index];
        if bound.as_ref().is_some_and(|b| b.as_deref() == value) {
            return Ok(());
        }
        // Forgotten first: if binding fails, the parameter's value is not known.
        *bound = None;
        statement.raw_bind_parameter(index, value)?;
        *bound = Some(value.map(str::to_owned));
        Ok(())
    }
}

/// Codes in ascending order, end to end in one string: a batch's units read by one range
/// scan, without a string and a hash per unit. Profiled at 1 M residents, the hash set
/// this replaced took ~8 % of the import's writer thread (filling it and asking it);
/// this takes ~3.4 %. SQLite orders text bytewise, as `str` compares.
#[derive(Debug, Default)]
struct SortedCodes {
    text: String,
    /// Where each code lies in `text`.
    spans: Vec<(usize, usize)>,
    /// Where the last code looked for was found: the residents of a batch come sorted by
    /// unit, so the next one is usually there or just after.
    cursor: usize,
}

impl SortedCodes {
    fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.cursor = 0;
    }

    /// Adds a code greater than every code already added.
    fn push(&mut self, code: &str) {
        let start = self.text.len();
        self.text.push_str(code);
        self.spans.push((start, self.text.len()));
    }

    fn contains(&mut self, code: &str) -> bool {
        let text = &self.text;
        let at = |&(start, end): &(usize, usize)| &text[start..end];
        let found = [self.cursor, self.cursor + 1]
            .into_iter()
            .find(|&i| self.spans.get(i).is_some_and(|span| at(span) == code))
            .or_else(|| self.spans.binary_search_by(|span| at(span).cmp(code)).ok());
        if let Some(i) = found {
            self.cursor = i;
        }
        found.is_some()
    }
}

/// Which source row wrote which resident: runs of consecutive rowids from consecutive rows
/// (an import inserts in row order), and the residents it updated.
#[derive(Debug, Default)]
struct RowMap {
    runs: Vec<(i64, u64, u64)>,
    updated: std::collections::HashMap<i64, u64>,
}

impl RowMap {
    fn inserted(&mut self, rowid: i64, row: u64) {
        match self.runs.last_mut() {
            Some((first, first_row, len)) if *first + *len as i64 == rowid && *first_row + *len == row => *len += 1,
            _ => self.runs.push((rowid, row, 1)),
        }
    }

    fn updated(&mut self, rowid: i64, row: u64) {
        self.updated.insert(rowid, row);
    }

    fn row_of(&self, rowid: i64) -> Option<u64> {
        if let Some(row) = self.updated.get(&rowid) {
            return Some(*row);
        }
        let at = self.runs.partition_point(|(first, ..)| *first <= rowid).checked_sub(1)?;
        let (first, first_row, len) = self.runs[at];
        (rowid < first + len as i64).then(|| first_row + (rowid - first) as u64)
    }
}

fn insert_change(conn: &Connection, change: &RegistryChange) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO registry_changes (at, entity, code, community, change, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        change.at.as_millis(),
        change.entity,
        change.code,
        change.community,
        change.change,
        change.actor
    ])?;
    Ok(())
}

impl SqliteStore {
    pub async fn write_registry(
        &self,
        key: [u8; 32],
        records: Vec<RegistryRecord>,
        changes: Vec<RegistryChange>,
        entry: &Audited,
    ) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            let now = wall_clock_millis();
            for record in &records {
                apply_checked(conn, record, now, false).map_err(|(_, error)| error)?;
            }
            for change in &changes {
                insert_change(conn, change)?;
            }
            append_in(conn, &key, &entry)?;
            Ok(())
        })
        .await
    }

    /// An import in one transaction of its own, with a page cache of [`IMPORT_CACHE_KIB`]
    /// while it runs.
    ///
    /// Tried and dropped (2026-12-06): writing the dirty pages to the WAL as the import
    /// goes (`sqlite3_db_cacheflush` every 131,072 records, or a 256 MiB cache that spills
    /// them), so that the commit has less to write. Once a transaction has frames in the
    /// WAL, a page written again overwrites its frame in place, and the commit then re-reads
    /// every frame from the first overwritten one to recompute the checksum chain and
    /// rewrites their headers, which dirties most of the WAL's pages again for the sync: at
    /// 10 M residents the commit took 6.1 s and the import was slower (215.6 k against
    /// 229.2 k rows/s together). The same happens, less, when a 1 GiB cache spills a page
    /// that is written again later.
    ///
    /// Also tried and dropped (2026-12-06, scale 1, alternating): a cache of ~11 GiB that
    /// holds the whole import, so that nothing spills and the commit re-reads nothing. The
    /// writer's CPU before the commit fell from 177 to 165 s, but the commit, now writing
    /// every frame at once (two `pwrite`s each), took 33 s instead of 15, the import was
    /// slower (118 k against 123 k rows/s together) and the peak memory rose from 3.5 to
    /// 12.3 GiB. (`PRAGMA cache_spill = OFF` would do the same, and only takes effect when
    /// set outside a transaction.)
    pub async fn import_registry(
        &self,
        key: [u8; 32],
        mut feed: tokio::sync::mpsc::Receiver<ImportFeed>,
        change: RegistryChange,
        entry: &Audited,
    ) -> Result<ImportCounts, StoreError> {
        let mut entry = entry.clone();
        self.write_alone(move |conn| {
            conn.execute_batch(&format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}"))?;
            let result = (|| {
                let now = wall_clock_millis();
                let mut bulk = Bulk::new(conn, now)?;
                let mut counts = ImportCounts::default();
                let (started, mut waited) = (std::time::Instant::now(), std::time::Duration::ZERO);
                let cpu_before = thread_cpu_seconds();
                let run_queue_before = thread_run_queue_seconds();
                let mut handing_over = std::time::Duration::ZERO;
                // A batch applied goes to the key collector, which then frees it: its
                // millions of strings are not the writer's work either (measured: ~4 % of the
                // writer's time).
                let collector = KeyCollector::start()?;
                // The writer thread is not async: it waits for each batch.
                loop {
                    let asked = std::time::Instant::now();
                    let Some(message) = feed.blocking_recv() else { break };
                    waited += asked.elapsed();
                    match message {
                        ImportFeed::Batch(records) => {
                            let rowids = bulk.apply(&records)?;
                            counts.rows += records.len() as u64;
                            let handed = std::time::Instant::now();
                            collector.collect(records, rowids)?;
                            handing_over += handed.elapsed();
                        }
                        ImportFeed::Abort(reason) => {
                            return Err(StoreError::Rejected { row: 0, field: "file", message: reason });
                        }
                    }
                }
                let filing = std::time::Instant::now();
                bulk.finish(collector.finish()?)?;
                let filing_s = filing.elapsed().as_secs_f64();
                let change = RegistryChange { change: format!("{}:{}", change.change, counts.rows), ..change };
                insert_change(conn, &change)?;
                entry.audit.detail = Some(format!("{} rows", counts.rows));
                // The import's events are made with the number of rows it stored.
                append_in(conn, &key, &entry.with_ids(&[counts.rows as i64]))?;
                tracing::info!(
                    records = counts.rows,
                    applying_s = (started.elapsed() - waited).as_secs_f64(),
                    waiting_for_rows_s = waited.as_secs_f64(),
                    filing_keys_s = filing_s,
                    writer_cpu_s = thread_cpu_seconds() - cpu_before,
                    // Waiting for a core, and for the key collector to take a batch.
                    writer_run_queue_s = thread_run_queue_seconds() - run_queue_before,
                    waiting_for_collector_s = handing_over.as_secs_f64(),
                    "registry import applied; committing"
                );
                Ok(counts)
            })();
            conn.execute_batch(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB}"))?;
            result
        })
        .await
    }

    pub async fn resident_by_id_index(&self, index: BlindIndex) -> Result<Option<SealedResident>, StoreError> {
        self.read_inline(move |conn| {
            let rowid = registry_keys::lookup(conn, KeyKind::IdNumber, &index)?.into_iter().next();
            let Some(rowid) = rowid else { return Ok(None) };
            let found = resident_by_rowid(conn, rowid)?;
            // The bucket and the row agree, or the registry is damaged.
            Ok(found.filter(|r| r.id_index == index))
        })
        .await
    }

    pub async fn resident(&self, code: String) -> Result<Option<SealedResident>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {RESIDENT_COLUMNS} FROM registry_residents WHERE code = ?1"))?
                .query_row([&code], resident_row)
                .optional()?
                .map(ResidentRow::decode)
                .transpose()
        })
        .await
    }

    pub async fn residents_by_phone_index(
        &self,
        index: BlindIndex,
        communities: Communities,
        limit: u32,
    ) -> Result<Vec<SealedResident>, StoreError> {
        self.read(move |conn| {
            let mut found = Vec::new();
            for rowid in registry_keys::lookup(conn, KeyKind::Phone, &index)? {
                found.extend(resident_by_rowid(conn, rowid)?.filter(|r| {
                    r.phone_index == Some(index) && communities.as_ref().is_none_or(|list| list.contains(&r.community))
                }));
            }
            Ok(in_order(found, limit))
        })
        .await
    }

    pub async fn residents_by_name(
        &self,
        name: String,
        communities: Vec<String>,
        limit: u32,
    ) -> Result<Vec<SealedResident>, StoreError> {
        self.read(move |conn| {
            let mut found = Vec::new();
            for community in &communities {
                let key = registry_keys::name_key(community, &name);
                for rowid in registry_keys::lookup(conn, KeyKind::Name, &key)? {
                    found.extend(
                        resident_by_rowid(conn, rowid)?.filter(|r| r.name == name && r.community == *community),
                    );
                }
            }
            Ok(in_order(found, limit))
        })
        .await
    }

    pub async fn residents_page(
        &self,
        communities: Communities,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, SealedResident)>, StoreError> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT {RESIDENT_COLUMNS}, id FROM registry_residents WHERE id > ?2 AND {IN_COMMUNITIES} \
                 ORDER BY id LIMIT ?3"
            );
            let rows = conn
                .prepare_cached(&sql)?
                .query_map(params![communities_json(&communities), after, limit], |r| {
                    Ok((r.get::<_, i64>(14)?, resident_row(r)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(|(id, row)| Ok((id, row.decode()?))).collect()
        })
        .await
    }

    pub async fn search_buildings(
        &self,
        text: String,
        communities: Communities,
        limit: u32,
    ) -> Result<Vec<Building>, StoreError> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT {BUILDING_COLUMNS} FROM registry_buildings
                 WHERE (code = ?2 OR instr(address, ?2) > 0) AND {IN_COMMUNITIES} ORDER BY code LIMIT ?3"
            );
            let rows = conn
                .prepare_cached(&sql)?
                .query_map(params![communities_json(&communities), text, limit], building_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(building).collect()
        })
        .await
    }

    pub async fn building(&self, code: String) -> Result<Option<Building>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {BUILDING_COLUMNS} FROM registry_buildings WHERE code = ?1"))?
                .query_row([&code], building_row)
                .optional()?
                .map(building)
                .transpose()
        })
        .await
    }

    pub async fn housing_unit(&self, code: String) -> Result<Option<HousingUnit>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {UNIT_COLUMNS} FROM registry_units WHERE code = ?1"))?
                .query_row([&code], unit_row)
                .optional()?
                .map(unit)
                .transpose()
        })
        .await
    }

    pub async fn landlord(&self, code: String) -> Result<Option<SealedLandlord>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {LANDLORD_COLUMNS} FROM registry_landlords WHERE code = ?1"))?
                .query_row([&code], landlord_row)
                .optional()?
                .map(landlord)
                .transpose()
        })
        .await
    }

    pub async fn tenancy(&self, code: String) -> Result<Option<Tenancy>, StoreError> {
        self.read(move |conn| Ok(tenancies(conn, "code = ?1", &code)?.pop())).await
    }

    pub async fn tenancies_of(&self, resident: String) -> Result<Vec<Tenancy>, StoreError> {
        self.read(move |conn| {
            tenancies(conn, "code IN (SELECT tenancy FROM registry_tenancy_members WHERE resident = ?1)", &resident)
        })
        .await
    }

    pub async fn permit(&self, resident: String) -> Result<Option<Permit>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {PERMIT_OF_RESIDENT} FROM registry_residents WHERE code = ?1 AND permit_expires IS NOT NULL"
            ))?
            .query_row([&resident], permit_row)
            .optional()?
            .map(permit)
            .transpose()
        })
        .await
    }

    pub async fn workstations(&self, communities: Communities) -> Result<Vec<Workstation>, StoreError> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT code, community, name, address FROM registry_workstations WHERE {IN_COMMUNITIES} ORDER BY code"
            );
            Ok(conn
                .prepare_cached(&sql)?
                .query_map(params![communities_json(&communities)], |r| {
                    Ok(Workstation { code: r.get(0)?, community: r.get(1)?, name: r.get(2)?, address: r.get(3)? })
                })?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn workstation(&self, code: String) -> Result<Option<Workstation>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT code, community, name, address FROM registry_workstations WHERE code = ?1")?
                .query_row([&code], |r| {
                    Ok(Workstation { code: r.get(0)?, community: r.get(1)?, name: r.get(2)?, address: r.get(3)? })
                })
                .optional()?)
        })
        .await
    }

    pub async fn property_card(&self, code: String) -> Result<PropertyCard, StoreError> {
        self.read(move |conn| {
            let Some(found) = conn
                .prepare_cached(&format!("SELECT {BUILDING_COLUMNS} FROM registry_buildings WHERE code = ?1"))?
                .query_row([&code], building_row)
                .optional()?
            else {
                return Ok(PropertyCard::default());
            };
            let units = conn
                .prepare_cached(&format!(
                    "SELECT {UNIT_COLUMNS} FROM registry_units WHERE building = ?1 ORDER BY code"
                ))?
                .query_map([&code], unit_row)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(unit)
                .collect::<Result<Vec<_>, _>>()?;
            let landlords = conn
                .prepare_cached(&format!(
                    "SELECT {LANDLORD_COLUMNS} FROM registry_landlords WHERE code IN
                     (SELECT landlord FROM registry_units WHERE building = ?1) ORDER BY code"
                ))?
                .query_map([&code], landlord_row)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(landlord)
                .collect::<Result<Vec<_>, _>>()?;
            let tenancies = tenancies(conn, "unit IN (SELECT code FROM registry_units WHERE building = ?1)", &code)?;
            let members = "SELECT resident FROM registry_tenancy_members WHERE tenancy IN
                 (SELECT code FROM registry_tenancies WHERE unit IN
                     (SELECT code FROM registry_units WHERE building = ?1))";
            // Who the tenancies list, and who is registered at a unit of the building.
            let people = format!(
                "SELECT id FROM registry_residents WHERE code IN ({members})
                 UNION SELECT id FROM registry_residents WHERE unit IN
                     (SELECT code FROM registry_units WHERE building = ?1)"
            );
            let residents = conn
                .prepare_cached(&format!(
                    "SELECT {RESIDENT_COLUMNS} FROM registry_residents WHERE id IN ({people}) ORDER BY code"
                ))?
                .query_map([&code], resident_row)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(ResidentRow::decode)
                .collect::<Result<Vec<_>, _>>()?;
            let permits = conn
                .prepare_cached(&format!(
                    "SELECT {PERMIT_OF_RESIDENT} FROM registry_residents
                     WHERE id IN ({people}) AND permit_expires IS NOT NULL ORDER BY code"
                ))?
                .query_map([&code], permit_row)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(permit)
                .collect::<Result<Vec<_>, _>>()?;
            let visits = conn
                .prepare_cached(&format!(
                    "SELECT {VISIT_COLUMNS} FROM registry_visits WHERE unit IN
                     (SELECT code FROM registry_units WHERE building = ?1) ORDER BY day DESC, id DESC LIMIT 200"
                ))?
                .query_map([&code], visit_row)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(visit)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(PropertyCard {
                building: Some(building(found)?),
                units,
                landlords,
                tenancies,
                residents,
                permits,
                visits,
            })
        })
        .await
    }

    pub async fn permits_due(
        &self,
        communities: Communities,
        before: Day,
        limit: u32,
    ) -> Result<Vec<Permit>, StoreError> {
        self.read(move |conn| {
            let rows = match &communities {
                // Each community from the index of permits due, then merged.
                Some(list) => {
                    let mut statement = conn.prepare_cached(&format!(
                        "SELECT {PERMIT_OF_RESIDENT} FROM registry_residents
                         WHERE community = ?1 AND permit_expires IS NOT NULL AND permit_expires <= ?2
                         ORDER BY permit_expires, code LIMIT ?3"
                    ))?;
                    let mut rows = Vec::new();
                    for community in list {
                        rows.extend(
                            statement
                                .query_map(params![community, before, limit], permit_row)?
                                .collect::<Result<Vec<_>, _>>()?,
                        );
                    }
                    rows.sort_by(|(a, _), (b, _)| (a.expires, &a.resident).cmp(&(b.expires, &b.resident)));
                    rows.truncate(limit as usize);
                    rows
                }
                None => conn
                    .prepare_cached(&format!(
                        "SELECT {PERMIT_OF_RESIDENT} FROM registry_residents
                         WHERE permit_expires IS NOT NULL AND permit_expires <= ?1
                         ORDER BY permit_expires, code LIMIT ?2"
                    ))?
                    .query_map(params![before, limit], permit_row)?
                    .collect::<Result<Vec<_>, _>>()?,
            };
            rows.into_iter().map(permit).collect()
        })
        .await
    }

    pub async fn occupancies(&self, communities: Communities, limit: u32) -> Result<Vec<Occupancy>, StoreError> {
        self.read(move |conn| {
            let sql = "SELECT u.code, u.community, u.area_m2, u.rooms, count(DISTINCT m.resident)
                 FROM registry_units u
                 JOIN registry_tenancies t ON t.unit = u.code AND t.move_out IS NULL
                 JOIN registry_tenancy_members m ON m.tenancy = t.code
                 WHERE (?1 IS NULL OR u.community IN (SELECT value FROM json_each(?1)))
                 GROUP BY u.code ORDER BY u.code LIMIT ?2";
            Ok(conn
                .prepare_cached(sql)?
                .query_map(params![communities_json(&communities), limit], |r| {
                    Ok(Occupancy {
                        unit: r.get(0)?,
                        community: r.get(1)?,
                        area_m2: r.get(2)?,
                        rooms: r.get(3)?,
                        persons: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn unmatched_sightings(&self, communities: Communities, limit: u32) -> Result<Vec<Sighting>, StoreError> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT {SIGHTING_COLUMNS} FROM registry_sightings s WHERE {IN_COMMUNITIES} AND NOT EXISTS
                     (SELECT 1 FROM registry_tenancy_members m JOIN registry_tenancies t ON t.code = m.tenancy
                      WHERE m.resident = s.resident AND t.unit = s.unit AND t.move_out IS NULL)
                 ORDER BY day DESC, id DESC LIMIT ?2"
            );
            Ok(conn
                .prepare_cached(&sql)?
                .query_map(params![communities_json(&communities), limit], sighting_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn lapsed_pledges(
        &self,
        communities: Communities,
        today: Day,
        limit: u32,
    ) -> Result<Vec<SealedLandlord>, StoreError> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT {LANDLORD_COLUMNS} FROM registry_landlords
                 WHERE (pledge_expires IS NULL OR pledge_expires < ?2) AND {IN_COMMUNITIES}
                 ORDER BY pledge_expires, code LIMIT ?3"
            );
            conn.prepare_cached(&sql)?
                .query_map(params![communities_json(&communities), today, limit], landlord_row)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(landlord)
                .collect()
        })
        .await
    }

    pub async fn registry_changes(&self, after: i64, limit: u32) -> Result<Vec<RegistryChange>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT seq, at, entity, code, community, change, actor FROM registry_changes
                     WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?
                .query_map(params![after, limit], |r| {
                    Ok(RegistryChange {
                        seq: r.get(0)?,
                        at: fangkong_core::time::Timestamp::from_millis(r.get(1)?),
                        entity: r.get(2)?,
                        code: r.get(3)?,
                        community: r.get(4)?,
                        change: r.get(5)?,
                        actor: r.get(6)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn count_residents(&self) -> Result<u64, StoreError> {
        let count: i64 =
            self.read(|conn| Ok(conn.query_row("SELECT count(*) FROM registry_residents", [], |r| r.get(0))?)).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

/// Tenancies matching `condition` (on `?1`) with their members, open ones first.
fn tenancies(conn: &Connection, condition: &str, value: &str) -> Result<Vec<Tenancy>, StoreError> {
    let sql = format!(
        "SELECT code, unit, landlord, lessee, move_in, move_out, community FROM registry_tenancies
         WHERE {condition} ORDER BY move_out IS NOT NULL, move_in DESC, code"
    );
    let mut rows = conn
        .prepare_cached(&sql)?
        .query_map([value], |r| {
            Ok(Tenancy {
                code: r.get(0)?,
                unit: r.get(1)?,
                landlord: r.get(2)?,
                lessee: r.get(3)?,
                members: Vec::new(),
                move_in: r.get(4)?,
                move_out: r.get(5)?,
                community: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut members =
        conn.prepare_cached("SELECT resident FROM registry_tenancy_members WHERE tenancy = ?1 ORDER BY resident")?;
    for tenancy in &mut rows {
        let mut list: Vec<String> = members.query_map([&tenancy.code], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?;
        // The lessee first.
        if let Some(at) = list.iter().position(|m| *m == tenancy.lessee) {
            let lessee = list.remove(at);
            list.insert(0, lessee);
        }
        tenancy.members = list;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(list: &[&str]) -> SortedCodes {
        let mut codes = SortedCodes::default();
        list.iter().for_each(|code| codes.push(code));
        codes
    }

    #[test]
    fn sorted_codes_find_what_was_added_in_any_order_of_asking() {
        let mut units = codes(&["B1U001", "B1U002", "B1U010", "B2U001"]);
        // In order (the cursor's path), out of order (the binary search), and repeated.
        for code in ["B1U001", "B1U001", "B1U002", "B2U001", "B1U010", "B1U001", "B2U001"] {
            assert!(units.contains(code), "{code}");
        }
        for code in ["", "B1U", "B1U0011", "B1U003", "B3U001", "A"] {
            assert!(!units.contains(code), "{code}");
        }
        units.clear();
        assert!(!units.contains("B1U001"));
        units.push("C1");
        assert!(units.contains("C1") && !units.contains("B1U001"));
    }

    #[test]
    fn row_map_names_the_row_of_inserted_and_updated_residents() {
        let mut rows = RowMap::default();
        rows.inserted(10, 2);
        rows.inserted(11, 3);
        rows.inserted(12, 5);
        rows.updated(4, 4);
        assert_eq!(
            [9, 10, 11, 12, 13, 4].map(|rowid| rows.row_of(rowid)),
            [None, Some(2), Some(3), Some(5), None, Some(4)]
        );
    }
}
