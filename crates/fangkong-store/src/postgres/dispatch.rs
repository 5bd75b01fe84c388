//! Dispatch on PostgreSQL.

use deadpool_postgres::GenericClient;
use fangkong_core::dispatch::{AreaClass, Incident, TimelineEntry, UnitState};
use fangkong_core::time::Timestamp;
use tokio_postgres::Row;

use super::PgStore;
use super::audit::append_in;
use fangkong_wire::NewIncidentEvent;

use crate::StoreError;
use crate::dispatch::{
    AssignmentRow, DispatchChange, INCIDENT_COLUMNS, IncidentRow, Inserted, NewIncident, announce_new, area_class,
    attach, chain_codes, history_cell, id_text, timeline_entry, unit_state,
};
use crate::error::is_postgres_unique_violation;
use crate::outbox::Audited;

fn incident_row(r: &Row) -> IncidentRow {
    IncidentRow {
        id: r.get(0),
        uid: r.get(1),
        source: r.get(2),
        type_code: r.get(3),
        priority: r.get(4),
        status: r.get(5),
        disposition: r.get(6),
        lat: r.get(7),
        lon: r.get(8),
        address: r.get(9),
        h3: r.get(10),
        chain: [r.get(11), r.get(12), r.get(13), r.get(14), r.get(15), r.get(16), r.get(17)],
        description: r.get(18),
        caller_phone_masked: r.get(19),
        possible_duplicates: r.get(20),
        merged_into: r.get(21),
        area_class: r.get(22),
        arrival_target_s: r.get(23),
        created_by: r.get(24),
        created_at: r.get(25),
        updated_at: r.get(26),
        revision: r.get(27),
        dispatched_at: r.get(28),
        arrived_at: r.get(29),
        resolved_at: r.get(30),
        closed_at: r.get(31),
    }
}

fn assignment_row(r: &Row) -> AssignmentRow {
    AssignmentRow {
        incident_id: r.get(0),
        unit: r.get(1),
        dispatched_at: r.get(2),
        status: r.get(3),
        en_route_at: r.get(4),
        on_scene_at: r.get(5),
        cleared_at: r.get(6),
    }
}

const ASSIGNMENT_COLUMNS: &str = "incident_id, unit, dispatched_at, status, en_route_at, on_scene_at, cleared_at";

fn millis(at: Option<Timestamp>) -> Option<i64> {
    at.map(Timestamp::as_millis)
}

async fn update_incident(tx: &impl GenericClient, incident: &Incident) -> Result<(), StoreError> {
    let statement = tx
        .prepare_cached(
            "UPDATE incidents SET source = $2, type_code = $3, priority = $4, status = $5, disposition = $6,
                 address = $7, description = $8, possible_duplicates = $9, merged_into = $10, updated_at = $11,
                 revision = $12, dispatched_at = $13, arrived_at = $14, resolved_at = $15, closed_at = $16
             WHERE id = $1 AND revision + 1 = $12",
        )
        .await?;
    let changed = tx
        .execute(
            &statement,
            &[
                &incident.id,
                &incident.source,
                &incident.type_code,
                &i64::from(incident.priority),
                &incident.status.as_str(),
                &incident.disposition,
                &incident.address,
                &incident.description,
                &id_text(&incident.possible_duplicates),
                &incident.merged_into,
                &incident.updated_at.as_millis(),
                &incident.revision,
                &millis(incident.dispatched_at),
                &millis(incident.arrived_at),
                &millis(incident.resolved_at),
                &millis(incident.closed_at),
            ],
        )
        .await?;
    if changed == 0 {
        let exists = tx.query_opt("SELECT 1 FROM incidents WHERE id = $1", &[&incident.id]).await?.is_some();
        let key = incident.id.to_string();
        return Err(match exists {
            true => StoreError::Stale { entity: "incident", key },
            false => StoreError::NotFound { entity: "incident", key },
        });
    }
    let upsert = tx
        .prepare_cached(
            "INSERT INTO incident_units (incident_id, unit, dispatched_at, status, en_route_at, on_scene_at, cleared_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (incident_id, unit, dispatched_at) DO UPDATE SET status = excluded.status,
                 en_route_at = excluded.en_route_at, on_scene_at = excluded.on_scene_at,
                 cleared_at = excluded.cleared_at",
        )
        .await?;
    for a in &incident.assignments {
        tx.execute(
            &upsert,
            &[
                &incident.id,
                &a.unit,
                &a.dispatched_at.as_millis(),
                &a.status.as_str(),
                &millis(a.en_route_at),
                &millis(a.on_scene_at),
                &millis(a.cleared_at),
            ],
        )
        .await?;
    }
    Ok(())
}

async fn insert_timeline(
    tx: &impl GenericClient,
    entries: &[TimelineEntry],
    incident: Option<i64>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO incident_timeline (incident_id, at, actor, kind, unit, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    for e in entries {
        tx.execute(
            &insert,
            &[&incident.unwrap_or(e.incident), &e.at.as_millis(), &e.actor, &e.kind.as_str(), &e.unit, &e.detail],
        )
        .await?;
    }
    Ok(())
}

/// The incident `created_by` made with an idempotency key, and its request's hash.
async fn by_key(
    client: &impl GenericClient,
    created_by: &str,
    key: &str,
) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
    let row = client
        .query_opt(
            "SELECT id, idempotency_hash FROM incidents WHERE created_by = $1 AND idempotency_key = $2",
            &[&created_by, &key],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

impl PgStore {
    pub async fn insert_incident(&self, new: NewIncident, announced: NewIncidentEvent) -> Result<Inserted, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let i = &new.incident;
        let (key, hash) = match &new.idempotency {
            Some((key, hash)) => (Some(key.as_str()), Some(hash.to_vec())),
            None => (None, None),
        };
        if let Some(key) = key {
            // The row lock (or the unique index, for a concurrent first use) makes a retry
            // that races the first request wait for it and then find it.
            if let Some((id, request_hash)) = by_key(&tx, &i.created_by, key).await? {
                return Ok(Inserted::Existing { id, request_hash });
            }
        }
        let [city, district, subdistrict, community, grid, station, police_district] = chain_codes(&i.chain);
        let insert = tx
            .prepare_cached(
                "INSERT INTO incidents (uid, source, type_code, priority, status, disposition, lat, lon, address, h3,
                     cell_r7, city, district, subdistrict, community, grid, station, police_district, description,
                     caller_sealed, caller_phone_masked, possible_duplicates, merged_into, area_class,
                     arrival_target_s, created_by, created_at, updated_at, revision, idempotency_key,
                     idempotency_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                     $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31)
                 RETURNING id",
            )
            .await?;
        let row = tx
            .query_one(
                &insert,
                &[
                    &i.uid,
                    &i.source,
                    &i.type_code,
                    &i64::from(i.priority),
                    &i.status.as_str(),
                    &i.disposition,
                    &i.point.lat(),
                    &i.point.lon(),
                    &i.address,
                    &i.h3.map(|h| h as i64),
                    &history_cell(i.point),
                    &city,
                    &district,
                    &subdistrict,
                    &community,
                    &grid,
                    &station,
                    &police_district,
                    &i.description,
                    &new.caller_sealed,
                    &i.caller_phone_masked,
                    &id_text(&i.possible_duplicates),
                    &i.merged_into,
                    &i.area_class.as_str(),
                    &i.arrival_target_s,
                    &i.created_by,
                    &i.created_at.as_millis(),
                    &i.updated_at.as_millis(),
                    &i.revision,
                    &key,
                    &hash,
                ],
            )
            .await;
        let id: i64 = match row {
            Ok(row) => row.get(0),
            Err(error) if is_postgres_unique_violation(&error) => {
                drop(tx);
                // A concurrent request with the same key won: answer with its incident.
                if let Some(key) = key
                    && let Some((id, request_hash)) = by_key(&client, &i.created_by, key).await?
                {
                    return Ok(Inserted::Existing { id, request_hash });
                }
                return Err(StoreError::Conflict { entity: "incident", key: i.uid.clone() });
            }
            Err(error) => return Err(error.into()),
        };
        insert_timeline(&tx, &new.timeline, Some(id)).await?;
        super::outbox::append_in(&tx, &announce_new(i, &announced, id)).await?;
        tx.commit().await?;
        Ok(Inserted::New(id))
    }

    pub async fn write_dispatch(&self, change: DispatchChange) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for incident in &change.incidents {
            update_incident(&tx, incident).await?;
        }
        if !change.units.is_empty() {
            // A unit's first status is inserted; every later one replaces the revision it
            // was read at, and only that one.
            let insert = tx
                .prepare_cached(
                    "INSERT INTO unit_statuses (unit, status, since, incident_id, revision) VALUES ($1, $2, $3, $4, 1)
                     ON CONFLICT (unit) DO NOTHING",
                )
                .await?;
            let update = tx
                .prepare_cached(
                    "UPDATE unit_statuses SET status = $2, since = $3, incident_id = $4, revision = $5
                     WHERE unit = $1 AND revision + 1 = $5",
                )
                .await?;
            for u in &change.units {
                let (status, since) = (u.status.as_str(), u.since.as_millis());
                let changed = match u.revision {
                    1 => tx.execute(&insert, &[&u.unit, &status, &since, &u.incident]).await?,
                    _ => tx.execute(&update, &[&u.unit, &status, &since, &u.incident, &u.revision]).await?,
                };
                if changed == 0 {
                    return Err(StoreError::Stale { entity: "unit", key: u.unit.clone() });
                }
            }
        }
        insert_timeline(&tx, &change.timeline, None).await?;
        super::outbox::append_in(&tx, &change.outbox).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status NOT IN ('closed', 'cancelled') ORDER BY id"
                ),
                &[],
            )
            .await?;
        let assignments = client
            .query(
                &format!(
                    "SELECT {ASSIGNMENT_COLUMNS} FROM incident_units WHERE incident_id IN
                         (SELECT id FROM incidents WHERE status NOT IN ('closed', 'cancelled'))"
                ),
                &[],
            )
            .await?;
        let assignments = assignments.iter().map(|r| assignment_row(r).into_domain()).collect::<Result<Vec<_>, _>>()?;
        attach(rows.iter().map(incident_row).collect(), assignments)
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        let client = self.client().await?;
        let Some(row) =
            client.query_opt(&format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"), &[&id]).await?
        else {
            return Ok(None);
        };
        let assignments = client
            .query(&format!("SELECT {ASSIGNMENT_COLUMNS} FROM incident_units WHERE incident_id = $1"), &[&id])
            .await?
            .iter()
            .map(|r| assignment_row(r).into_domain())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(attach(vec![incident_row(&row)], assignments)?.pop())
    }

    pub async fn incident_by_idempotency(
        &self,
        created_by: String,
        key: String,
    ) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let client = self.client().await?;
        by_key(&client, &created_by, &key).await
    }

    pub async fn incident_caller(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let row = client.query_opt("SELECT caller_sealed FROM incidents WHERE id = $1", &[&id]).await?;
        row.map(|r| r.get(0)).ok_or_else(|| StoreError::NotFound { entity: "incident", key: id.to_string() })
    }

    pub async fn incident_timeline(&self, id: i64) -> Result<Vec<(i64, TimelineEntry)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, incident_id, at, actor, kind, unit, detail FROM incident_timeline
                 WHERE incident_id = $1 ORDER BY id",
                &[&id],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.get(0), timeline_entry(r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6))?)))
            .collect()
    }

    pub async fn incidents_in_cells(
        &self,
        cells: Vec<i64>,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE cell_r7 = ANY($1) AND created_at >= $2
                     ORDER BY created_at DESC, id DESC LIMIT $3"
                ),
                &[&cells, &since.as_millis(), &i64::from(limit)],
            )
            .await?;
        attach(rows.iter().map(incident_row).collect(), Vec::new())
    }

    pub async fn incidents_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
        with_assignments: bool,
    ) -> Result<Vec<Incident>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE created_at >= $1 AND created_at < $2
                     ORDER BY created_at, id LIMIT $3"
                ),
                &[&from.as_millis(), &to.as_millis(), &i64::from(limit)],
            )
            .await?;
        if !with_assignments {
            return attach(rows.iter().map(incident_row).collect(), Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let assignments = client
            .query(&format!("SELECT {ASSIGNMENT_COLUMNS} FROM incident_units WHERE incident_id = ANY($1)"), &[&ids])
            .await?
            .iter()
            .map(|r| assignment_row(r).into_domain())
            .collect::<Result<Vec<_>, _>>()?;
        attach(rows.iter().map(incident_row).collect(), assignments)
    }

    pub async fn unit_statuses(&self) -> Result<Vec<UnitState>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT unit, status, since, incident_id, revision FROM unit_statuses ORDER BY unit", &[])
            .await?;
        rows.iter().map(|r| unit_state(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect()
    }

    pub async fn area_classes(&self) -> Result<Vec<(String, AreaClass)>, StoreError> {
        let client = self.client().await?;
        let rows = client.query("SELECT code, area_class FROM area_classes ORDER BY code", &[]).await?;
        rows.iter()
            .map(|r| {
                let code: String = r.get(0);
                let class = area_class(&code, r.get(1))?;
                Ok((code, class))
            })
            .collect()
    }

    pub async fn save_area_class(
        &self,
        key: [u8; 32],
        code: String,
        class: Option<AreaClass>,
        at: Timestamp,
        entry: &Audited,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        match class {
            Some(class) => {
                tx.execute(
                    "INSERT INTO area_classes (code, area_class, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (code) DO UPDATE SET area_class = excluded.area_class, updated_at = excluded.updated_at",
                    &[&code, &class.as_str(), &at.as_millis()],
                )
                .await?
            }
            None => tx.execute("DELETE FROM area_classes WHERE code = $1", &[&code]).await?,
        };
        append_in(&tx, &key, entry).await?;
        tx.commit().await?;
        Ok(())
    }
}
