//! Dispatch on SQLite.

use fangkong_core::dispatch::{AreaClass, Assignment, Incident, TimelineEntry, UnitState};
use fangkong_core::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::audit::append_in;
use fangkong_wire::NewIncidentEvent;

use crate::StoreError;
use crate::dispatch::{
    AssignmentRow, DispatchChange, INCIDENT_COLUMNS, IncidentRow, Inserted, NewIncident, announce_new, area_class,
    attach, chain_codes, history_cell, id_text, timeline_entry, unit_state,
};
use crate::error::is_sqlite_unique_violation;
use crate::outbox::Audited;

fn incident_row(r: &Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        id: r.get(0)?,
        uid: r.get(1)?,
        source: r.get(2)?,
        type_code: r.get(3)?,
        priority: r.get(4)?,
        status: r.get(5)?,
        disposition: r.get(6)?,
        lat: r.get(7)?,
        lon: r.get(8)?,
        address: r.get(9)?,
        h3: r.get(10)?,
        chain: [r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?, r.get(15)?, r.get(16)?, r.get(17)?],
        description: r.get(18)?,
        caller_phone_masked: r.get(19)?,
        possible_duplicates: r.get(20)?,
        merged_into: r.get(21)?,
        area_class: r.get(22)?,
        arrival_target_s: r.get(23)?,
        created_by: r.get(24)?,
        created_at: r.get(25)?,
        updated_at: r.get(26)?,
        revision: r.get(27)?,
        dispatched_at: r.get(28)?,
        arrived_at: r.get(29)?,
        resolved_at: r.get(30)?,
        closed_at: r.get(31)?,
    })
}

fn assignment_row(r: &Row<'_>) -> rusqlite::Result<AssignmentRow> {
    Ok(AssignmentRow {
        incident_id: r.get(0)?,
        unit: r.get(1)?,
        dispatched_at: r.get(2)?,
        status: r.get(3)?,
        en_route_at: r.get(4)?,
        on_scene_at: r.get(5)?,
        cleared_at: r.get(6)?,
    })
}

const ASSIGNMENT_COLUMNS: &str = "incident_id, unit, dispatched_at, status, en_route_at, on_scene_at, cleared_at";

fn millis(at: Option<Timestamp>) -> Option<i64> {
    at.map(Timestamp::as_millis)
}

fn update_incident(conn: &Connection, incident: &Incident) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE incidents SET source = ?2, type_code = ?3, priority = ?4, status = ?5, disposition = ?6,
                 address = ?7, description = ?8, possible_duplicates = ?9, merged_into = ?10, updated_at = ?11,
                 revision = ?12, dispatched_at = ?13, arrived_at = ?14, resolved_at = ?15, closed_at = ?16
             WHERE id = ?1 AND revision + 1 = ?12",
        )?
        .execute(params![
            incident.id,
            incident.source,
            incident.type_code,
            incident.priority,
            incident.status.as_str(),
            incident.disposition,
            incident.address,
            incident.description,
            id_text(&incident.possible_duplicates),
            incident.merged_into,
            incident.updated_at.as_millis(),
            incident.revision,
            millis(incident.dispatched_at),
            millis(incident.arrived_at),
            millis(incident.resolved_at),
            millis(incident.closed_at),
        ])?;
    if changed == 0 {
        let exists = conn
            .prepare_cached("SELECT 1 FROM incidents WHERE id = ?1")?
            .query_row([incident.id], |_| Ok(()))
            .optional()?
            .is_some();
        let key = incident.id.to_string();
        return Err(match exists {
            true => StoreError::Stale { entity: "incident", key },
            false => StoreError::NotFound { entity: "incident", key },
        });
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO incident_units (incident_id, unit, dispatched_at, status, en_route_at, on_scene_at, cleared_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (incident_id, unit, dispatched_at) DO UPDATE SET status = excluded.status,
             en_route_at = excluded.en_route_at, on_scene_at = excluded.on_scene_at, cleared_at = excluded.cleared_at",
    )?;
    for a in &incident.assignments {
        upsert.execute(params![
            incident.id,
            a.unit,
            a.dispatched_at.as_millis(),
            a.status.as_str(),
            millis(a.en_route_at),
            millis(a.on_scene_at),
            millis(a.cleared_at)
        ])?;
    }
    Ok(())
}

fn insert_timeline(conn: &Connection, entries: &[TimelineEntry], incident: Option<i64>) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO incident_timeline (incident_id, at, actor, kind, unit, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for e in entries {
        insert.execute(params![
            incident.unwrap_or(e.incident),
            e.at.as_millis(),
            e.actor,
            e.kind.as_str(),
            e.unit,
            e.detail
        ])?;
    }
    Ok(())
}

fn assignments_of(conn: &Connection, ids: &[i64]) -> Result<Vec<(i64, Assignment)>, StoreError> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {ASSIGNMENT_COLUMNS} FROM incident_units WHERE incident_id = ?1"))?;
    let mut all = Vec::new();
    for id in ids {
        for row in statement.query_map([id], assignment_row)? {
            all.push(row?.into_domain()?);
        }
    }
    Ok(all)
}

impl SqliteStore {
    pub async fn insert_incident(&self, new: NewIncident, announced: NewIncidentEvent) -> Result<Inserted, StoreError> {
        self.write(move |conn| {
            let i = &new.incident;
            let (key, hash) = match &new.idempotency {
                Some((key, hash)) => (Some(key.as_str()), Some(&hash[..])),
                None => (None, None),
            };
            if let Some(key) = key {
                let existing: Option<(i64, Vec<u8>)> = conn
                    .prepare_cached(
                        "SELECT id, idempotency_hash FROM incidents WHERE created_by = ?1 AND idempotency_key = ?2",
                    )?
                    .query_row(params![i.created_by, key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((id, request_hash)) = existing {
                    return Ok(Inserted::Existing { id, request_hash });
                }
            }
            let [city, district, subdistrict, community, grid, station, police_district] = chain_codes(&i.chain);
            let id: i64 = conn
                .prepare_cached(
                    "INSERT INTO incidents (uid, source, type_code, priority, status, disposition, lat, lon, address, h3,
                         cell_r7, city, district, subdistrict, community, grid, station, police_district, description,
                         caller_sealed, caller_phone_masked, possible_duplicates, merged_into, area_class,
                         arrival_target_s, created_by, created_at, updated_at, revision, idempotency_key,
                         idempotency_hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                         ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)
                     RETURNING id",
                )?
                .query_row(
                    params![
                        i.uid,
                        i.source,
                        i.type_code,
                        i.priority,
                        i.status.as_str(),
                        i.disposition,
                        i.point.lat(),
                        i.point.lon(),
                        i.address,
                        i.h3.map(|h| h as i64),
                        history_cell(i.point),
                        city,
                        district,
                        subdistrict,
                        community,
                        grid,
                        station,
                        police_district,
                        i.description,
                        new.caller_sealed,
                        i.caller_phone_masked,
                        id_text(&i.possible_duplicates),
                        i.merged_into,
                        i.area_class.as_str(),
                        i.arrival_target_s,
                        i.created_by,
                        i.created_at.as_millis(),
                        i.updated_at.as_millis(),
                        i.revision,
                        key,
                        hash,
                    ],
                    |r| r.get(0),
                )
                .map_err(|e| {
                    if is_sqlite_unique_violation(&e) {
                        StoreError::Conflict { entity: "incident", key: i.uid.clone() }
                    } else {
                        e.into()
                    }
                })?;
            insert_timeline(conn, &new.timeline, Some(id))?;
            super::outbox::append_in(conn, &announce_new(i, &announced, id))?;
            Ok(Inserted::New(id))
        })
        .await
    }

    pub async fn write_dispatch(&self, change: DispatchChange) -> Result<(), StoreError> {
        self.write(move |conn| {
            for incident in &change.incidents {
                update_incident(conn, incident)?;
            }
            // A unit's first status is inserted; every later one replaces the revision it
            // was read at, and only that one.
            let mut insert = conn.prepare_cached(
                "INSERT INTO unit_statuses (unit, status, since, incident_id, revision) VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (unit) DO NOTHING",
            )?;
            let mut update = conn.prepare_cached(
                "UPDATE unit_statuses SET status = ?2, since = ?3, incident_id = ?4, revision = ?5
                 WHERE unit = ?1 AND revision + 1 = ?5",
            )?;
            for u in &change.units {
                let (status, since) = (u.status.as_str(), u.since.as_millis());
                let changed = match u.revision {
                    1 => insert.execute(params![u.unit, status, since, u.incident])?,
                    _ => update.execute(params![u.unit, status, since, u.incident, u.revision])?,
                };
                if changed == 0 {
                    return Err(StoreError::Stale { entity: "unit", key: u.unit.clone() });
                }
            }
            insert_timeline(conn, &change.timeline, None)?;
            super::outbox::append_in(conn, &change.outbox)
        })
        .await
    }

    pub async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .prepare(&format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status NOT IN ('closed', 'cancelled') ORDER BY id"
                ))?
                .query_map([], incident_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let assignments = conn
                .prepare(&format!(
                    "SELECT {ASSIGNMENT_COLUMNS} FROM incident_units WHERE incident_id IN
                         (SELECT id FROM incidents WHERE status NOT IN ('closed', 'cancelled'))"
                ))?
                .query_map([], assignment_row)?
                .map(|r| r.map_err(StoreError::from).and_then(AssignmentRow::into_domain))
                .collect::<Result<Vec<_>, _>>()?;
            attach(rows, assignments)
        })
        .await
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"))?
                .query_row([id], incident_row)
                .optional()?;
            let Some(row) = row else { return Ok(None) };
            let assignments = assignments_of(conn, &[id])?;
            Ok(attach(vec![row], assignments)?.pop())
        })
        .await
    }

    pub async fn incident_by_idempotency(
        &self,
        created_by: String,
        key: String,
    ) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT id, idempotency_hash FROM incidents WHERE created_by = ?1 AND idempotency_key = ?2",
                )?
                .query_row(params![created_by, key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        })
        .await
    }

    pub async fn incident_caller(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |conn| {
            let sealed: Option<Option<Vec<u8>>> = conn
                .prepare_cached("SELECT caller_sealed FROM incidents WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            sealed.ok_or_else(|| StoreError::NotFound { entity: "incident", key: id.to_string() })
        })
        .await
    }

    pub async fn incident_timeline(&self, id: i64) -> Result<Vec<(i64, TimelineEntry)>, StoreError> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT id, incident_id, at, actor, kind, unit, detail FROM incident_timeline
                     WHERE incident_id = ?1 ORDER BY id",
                )?
                .query_map([id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(n, incident, at, actor, kind, unit, detail)| {
                    Ok((n, timeline_entry(incident, at, actor, kind, unit, detail)?))
                })
                .collect()
        })
        .await
    }

    pub async fn incidents_in_cells(
        &self,
        cells: Vec<i64>,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE cell_r7 = ?1 AND created_at >= ?2
                 ORDER BY created_at DESC LIMIT ?3"
            ))?;
            let mut rows = Vec::new();
            for cell in cells {
                for row in statement.query_map(params![cell, since.as_millis(), limit], incident_row)? {
                    rows.push(row?);
                }
            }
            rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
            rows.truncate(limit as usize);
            attach(rows, Vec::new())
        })
        .await
    }

    pub async fn incidents_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
        with_assignments: bool,
    ) -> Result<Vec<Incident>, StoreError> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE created_at >= ?1 AND created_at < ?2
                     ORDER BY created_at, id LIMIT ?3"
                ))?
                .query_map(params![from.as_millis(), to.as_millis(), limit], incident_row)?
                .collect::<Result<Vec<_>, _>>()?;
            if !with_assignments {
                return attach(rows, Vec::new());
            }
            let assignments = conn
                .prepare_cached(&format!(
                    "SELECT {ASSIGNMENT_COLUMNS} FROM incident_units WHERE incident_id IN
                         (SELECT id FROM incidents WHERE created_at >= ?1 AND created_at < ?2 ORDER BY created_at, id LIMIT ?3)"
                ))?
                .query_map(params![from.as_millis(), to.as_millis(), limit], assignment_row)?
                .map(|r| r.map_err(StoreError::from).and_then(AssignmentRow::into_domain))
                .collect::<Result<Vec<_>, _>>()?;
            attach(rows, assignments)
        })
        .await
    }

    pub async fn unit_statuses(&self) -> Result<Vec<UnitState>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached("SELECT unit, status, since, incident_id, revision FROM unit_statuses ORDER BY unit")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<Vec<(String, String, i64, Option<i64>, i64)>, _>>()?;
            rows.into_iter()
                .map(|(unit, status, since, incident, revision)| unit_state(unit, status, since, incident, revision))
                .collect()
        })
        .await
    }

    pub async fn area_classes(&self) -> Result<Vec<(String, AreaClass)>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached("SELECT code, area_class FROM area_classes ORDER BY code")?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(code, class)| {
                    let class = area_class(&code, &class)?;
                    Ok((code, class))
                })
                .collect()
        })
        .await
    }

    pub async fn save_area_class(
        &self,
        key: [u8; 32],
        code: String,
        class: Option<AreaClass>,
        at: Timestamp,
        entry: &Audited,
    ) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            match class {
                Some(class) => conn
                    .prepare_cached(
                        "INSERT INTO area_classes (code, area_class, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (code) DO UPDATE SET area_class = excluded.area_class,
                             updated_at = excluded.updated_at",
                    )?
                    .execute(params![code, class.as_str(), at.as_millis()])?,
                None => conn.prepare_cached("DELETE FROM area_classes WHERE code = ?1")?.execute([&code])?,
            };
            append_in(conn, &key, &entry)?;
            Ok(())
        })
        .await
    }
}
