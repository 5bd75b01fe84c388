//! The registry on SQLite.

use fangkong_core::audit::AuditEntry;
use fangkong_core::registry::{Building, Day, HousingUnit, Permit, Sighting, Tenancy, Visit, Workstation};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::audit::append_in;
use crate::error::{is_sqlite_reference_violation, is_sqlite_unique_violation};
use crate::registry::{
    BUILDING_COLUMNS, BlindIndex, Communities, ImportCounts, ImportFeed, LANDLORD_COLUMNS, Occupancy, PERMIT_COLUMNS,
    PropertyCard, RESIDENT_COLUMNS, RegistryChange, RegistryRecord, ResidentRow, SIGHTING_COLUMNS, SealedLandlord,
    SealedResident, UNIT_COLUMNS, VISIT_COLUMNS, building_kind, landlord_kind, permit_kind, unit_use, visit_outcome,
};
use crate::{StoreError, wall_clock_millis};

/// The page cache of the writer while an import runs (the indexes of a large registry
/// take random inserts; kept in memory they do not each cost a read).
const IMPORT_CACHE_KIB: i64 = 1_048_576;
/// The writer's page cache otherwise (as `Writer::start` sets it).
const WRITER_CACHE_KIB: i64 = 262_144;

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

/// Applies one record; a refusal names the field.
fn apply_checked(
    conn: &Connection,
    record: &RegistryRecord,
    now: i64,
    bulk: bool,
) -> Result<(), (&'static str, StoreError)> {
    match apply(conn, record, now, bulk) {
        Ok(()) => Ok(()),
        Err(error) if is_sqlite_unique_violation(&error) => {
            let (field, message) = match record {
                RegistryRecord::Resident(_) => ("id_number", "is registered to another resident"),
                _ => ("code", "is taken"),
            };
            Err((field, StoreError::Conflict { entity: record.entity(), key: message.into() }))
        }
        Err(error) if is_sqlite_reference_violation(&error) => {
            let (field, message) = missing_reference(conn, record).map_err(|e| (record.entity(), e))?;
            Err((field, StoreError::Rejected { row: 0, field, message }))
        }
        Err(error) => Err((record.entity(), error.into())),
    }
}

/// A refused reference, reported as SQLite reports a foreign key (the caller then finds
/// which field).
fn reference_missing() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY), None)
}

fn require(conn: &Connection, table: &str, key: Option<&str>) -> rusqlite::Result<()> {
    let Some(key) = key else { return Ok(()) };
    let sql = format!("SELECT 1 FROM {table} WHERE code = ?1");
    match conn.prepare_cached(&sql)?.query_row([key], |_| Ok(())).optional()? {
        Some(()) => Ok(()),
        None => Err(reference_missing()),
    }
}

/// `INSERT` in a savepoint; `INSERT OR ROLLBACK` in a bulk import (a failed row fails the
/// whole transaction anyway, and SQLite then needs no statement journal).
fn insert(bulk: bool) -> &'static str {
    if bulk { "INSERT OR ROLLBACK" } else { "INSERT" }
}

fn apply(conn: &Connection, record: &RegistryRecord, now: i64, bulk: bool) -> rusqlite::Result<()> {
    let verb = insert(bulk);
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
            conn.prepare_cached(&format!(
                "{verb} INTO registry_buildings (code, address, grid, community, lon, lat, kind, floors, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (code) DO UPDATE SET address = excluded.address, grid = excluded.grid,
                     community = excluded.community, lon = excluded.lon, lat = excluded.lat, kind = excluded.kind,
                     floors = excluded.floors, updated_at = excluded.updated_at"
            ))?
            .execute(params![
                b.code,
                b.address,
                b.grid,
                b.community,
                b.lon,
                b.lat,
                b.kind.as_str(),
                b.floors,
                now
            ])?;
        }
        RegistryRecord::Unit(u) => {
            require(conn, "registry_buildings", Some(&u.building))?;
            require(conn, "registry_landlords", u.landlord.as_deref())?;
            conn.prepare_cached(&format!(
                "{verb} INTO registry_units (code, building, floor, area_m2, rooms, usage, rent_yuan, rental, landlord,
                     community, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (code) DO UPDATE SET building = excluded.building, floor = excluded.floor,
                     area_m2 = excluded.area_m2, rooms = excluded.rooms, usage = excluded.usage,
                     rent_yuan = excluded.rent_yuan, rental = excluded.rental, landlord = excluded.landlord,
                     community = excluded.community, updated_at = excluded.updated_at"
            ))?
            .execute(params![
                u.code,
                u.building,
                u.floor,
                u.area_m2,
                u.rooms,
                u.usage.as_str(),
                u.rent_yuan,
                u.rental,
                u.landlord,
                u.community,
                now
            ])?;
        }
        RegistryRecord::Landlord(l) => {
            conn.prepare_cached(&format!(
                "{verb} INTO registry_landlords (code, kind, name, contact_sealed, safety_person, pledge_signed,
                     pledge_expires, community, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (code) DO UPDATE SET kind = excluded.kind, name = excluded.name,
                     contact_sealed = excluded.contact_sealed, safety_person = excluded.safety_person,
                     pledge_signed = excluded.pledge_signed, pledge_expires = excluded.pledge_expires,
                     community = excluded.community, updated_at = excluded.updated_at"
            ))?
            .execute(params![
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
            require(conn, "registry_units", r.unit.as_deref())?;
            conn.prepare_cached(&format!(
                "{verb} INTO registry_residents (code, document, sealed, id_index, phone_index, name, sex, birth,
                     origin_province, origin_city, employer, unit, grid, community, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT (code) DO UPDATE SET document = excluded.document, sealed = excluded.sealed,
                     id_index = excluded.id_index, phone_index = excluded.phone_index, name = excluded.name,
                     sex = excluded.sex, birth = excluded.birth, origin_province = excluded.origin_province,
                     origin_city = excluded.origin_city, employer = excluded.employer, unit = excluded.unit,
                     grid = excluded.grid, community = excluded.community, updated_at = excluded.updated_at"
            ))?
            .execute(params![
                r.code,
                r.document.as_str(),
                r.sealed,
                &r.id_index[..],
                r.phone_index.as_ref().map(|i| &i[..]),
                r.name,
                r.sex.as_str(),
                r.birth,
                r.origin_province,
                r.origin_city,
                r.employer,
                r.unit,
                r.grid,
                r.community,
                now
            ])?;
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
                return Err(reference_missing());
            }
        }
        RegistryRecord::Permit(p) => {
            require(conn, "registry_residents", Some(&p.resident))?;
            conn.prepare_cached(&format!(
                "{verb} INTO registry_permits (resident, kind, issued, expires, endorsed, community, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (resident) DO UPDATE SET kind = excluded.kind, issued = excluded.issued,
                     expires = excluded.expires, endorsed = excluded.endorsed, community = excluded.community,
                     updated_at = excluded.updated_at"
            ))?
            .execute(params![
                p.resident,
                p.kind.as_str(),
                p.issued,
                p.expires,
                p.endorsed,
                p.community,
                now
            ])?;
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
        entry: &AuditEntry,
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

    pub async fn import_registry(
        &self,
        key: [u8; 32],
        mut feed: tokio::sync::mpsc::Receiver<ImportFeed>,
        change: RegistryChange,
        entry: &AuditEntry,
    ) -> Result<ImportCounts, StoreError> {
        let mut entry = entry.clone();
        self.write_alone(move |conn| {
            conn.execute_batch(&format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}"))?;
            let result = (|| {
                let now = wall_clock_millis();
                let mut counts = ImportCounts::default();
                let (started, mut waited) = (std::time::Instant::now(), std::time::Duration::ZERO);
                // The writer thread is not async: it waits for each batch.
                loop {
                    let asked = std::time::Instant::now();
                    let Some(message) = feed.blocking_recv() else { break };
                    waited += asked.elapsed();
                    match message {
                        ImportFeed::Batch(records) => {
                            for (row, record) in &records {
                                apply_checked(conn, record, now, true).map_err(|(field, error)| match error {
                                    StoreError::Rejected { message, .. } => {
                                        StoreError::Rejected { row: *row, field, message }
                                    }
                                    StoreError::Conflict { key, .. } => {
                                        StoreError::Rejected { row: *row, field, message: key }
                                    }
                                    other => other,
                                })?;
                            }
                            counts.rows += records.len() as u64;
                        }
                        ImportFeed::Abort(reason) => {
                            return Err(StoreError::Rejected { row: 0, field: "file", message: reason });
                        }
                    }
                }
                let change = RegistryChange { change: format!("{}:{}", change.change, counts.rows), ..change };
                insert_change(conn, &change)?;
                entry.detail = Some(format!("{} rows", counts.rows));
                append_in(conn, &key, &entry)?;
                tracing::info!(
                    records = counts.rows,
                    applying_s = (started.elapsed() - waited).as_secs_f64(),
                    waiting_for_rows_s = waited.as_secs_f64(),
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
            conn.prepare_cached(&format!("SELECT {RESIDENT_COLUMNS} FROM registry_residents WHERE id_index = ?1"))?
                .query_row([&index[..]], resident_row)
                .optional()?
                .map(ResidentRow::decode)
                .transpose()
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

    fn residents_where(
        conn: &Connection,
        condition: &str,
        communities: &Communities,
        value: &dyn rusqlite::ToSql,
        limit: u32,
    ) -> Result<Vec<SealedResident>, StoreError> {
        let sql = format!(
            "SELECT {RESIDENT_COLUMNS} FROM registry_residents WHERE {condition} AND {IN_COMMUNITIES} \
             ORDER BY community, name, code LIMIT ?3"
        );
        let rows = conn
            .prepare_cached(&sql)?
            .query_map(params![communities_json(communities), value, limit], resident_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(ResidentRow::decode).collect()
    }

    pub async fn residents_by_phone_index(
        &self,
        index: BlindIndex,
        communities: Communities,
        limit: u32,
    ) -> Result<Vec<SealedResident>, StoreError> {
        self.read(move |conn| Self::residents_where(conn, "phone_index = ?2", &communities, &&index[..], limit)).await
    }

    pub async fn residents_by_name(
        &self,
        name: String,
        communities: Communities,
        limit: u32,
    ) -> Result<Vec<SealedResident>, StoreError> {
        self.read(move |conn| Self::residents_where(conn, "name = ?2", &communities, &name, limit)).await
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
            conn.prepare_cached(&format!("SELECT {PERMIT_COLUMNS} FROM registry_permits WHERE resident = ?1"))?
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
            let residents = conn
                .prepare_cached(&format!(
                    "SELECT {RESIDENT_COLUMNS} FROM registry_residents WHERE code IN ({members})
                        OR unit IN (SELECT code FROM registry_units WHERE building = ?1) ORDER BY code"
                ))?
                .query_map([&code], resident_row)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(ResidentRow::decode)
                .collect::<Result<Vec<_>, _>>()?;
            let permits = conn
                .prepare_cached(&format!(
                    "SELECT {PERMIT_COLUMNS} FROM registry_permits WHERE resident IN ({members})
                        OR resident IN (SELECT code FROM registry_residents WHERE unit IN
                            (SELECT code FROM registry_units WHERE building = ?1)) ORDER BY resident"
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
            let sql = format!(
                "SELECT {PERMIT_COLUMNS} FROM registry_permits WHERE expires <= ?2 AND {IN_COMMUNITIES}
                 ORDER BY expires, resident LIMIT ?3"
            );
            conn.prepare_cached(&sql)?
                .query_map(params![communities_json(&communities), before, limit], permit_row)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(permit)
                .collect()
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
