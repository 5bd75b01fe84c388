//! The force registry on SQLite.

use fangkong_core::audit::AuditRecord;
use fangkong_core::forces::{Beat, Shift, Unit};
use fangkong_core::time::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::audit::append_in;
use crate::StoreError;
use crate::error::is_sqlite_unique_violation;
use crate::forces::{SealedMember, category, equipment_list, equipment_text, mode, shape};
use crate::outbox::Audited;

impl SqliteStore {
    pub async fn save_beats(
        &self,
        key: [u8; 32],
        beats: Vec<Beat>,
        at: Timestamp,
        entry: &Audited,
    ) -> Result<AuditRecord, StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            for beat in &beats {
                conn.prepare_cached(
                    "INSERT INTO beats (code, station, name, shape, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (code) DO UPDATE SET station = excluded.station, name = excluded.name,
                     shape = excluded.shape, updated_at = excluded.updated_at",
                )?
                .execute(params![
                    beat.code,
                    beat.station,
                    beat.name,
                    beat.shape.to_wkb(),
                    at.as_millis()
                ])?;
            }
            append_in(conn, &key, &entry)
        })
        .await
    }

    pub async fn list_beats(&self) -> Result<Vec<Beat>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached("SELECT code, station, name, shape FROM beats ORDER BY code")?;
            let rows = statement
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, Vec<u8>>(3)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(code, station, name, bytes)| Ok(Beat { shape: shape(&code, &bytes)?, code, station, name }))
                .collect()
        })
        .await
    }

    pub async fn save_units(
        &self,
        key: [u8; 32],
        units: Vec<Unit>,
        at: Timestamp,
        entry: &Audited,
    ) -> Result<AuditRecord, StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            for unit in &units {
                conn.prepare_cached(
                    "INSERT INTO force_units (code, call_sign, station, category, mode, equipment, beat, updated_at,
                     capabilities)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (code) DO UPDATE SET call_sign = excluded.call_sign, station = excluded.station,
                     category = excluded.category, mode = excluded.mode, equipment = excluded.equipment,
                     beat = excluded.beat, updated_at = excluded.updated_at, capabilities = excluded.capabilities",
                )?
                .execute(params![
                    unit.code,
                    unit.call_sign,
                    unit.station,
                    unit.category.as_str(),
                    unit.mode.as_str(),
                    equipment_text(&unit.equipment),
                    unit.beat,
                    at.as_millis(),
                    equipment_text(&unit.capabilities)
                ])?;
            }
            append_in(conn, &key, &entry)
        })
        .await
    }

    pub async fn list_units(&self) -> Result<Vec<Unit>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT code, call_sign, station, category, mode, equipment, beat, capabilities FROM force_units
                 ORDER BY code",
            )?;
            let rows = statement
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, String>(7)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(code, call_sign, station, c, m, equipment, beat, capabilities)| {
                    Ok(Unit {
                        code,
                        call_sign,
                        station,
                        category: category(&c)?,
                        mode: mode(&m)?,
                        equipment: equipment_list(&equipment),
                        beat,
                        capabilities: equipment_list(&capabilities),
                    })
                })
                .collect()
        })
        .await
    }

    pub async fn insert_shifts(
        &self,
        key: [u8; 32],
        shifts: Vec<Shift>,
        entry: &Audited,
    ) -> Result<Vec<i64>, StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO shifts (unit, beat, starts_at, ends_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            )?;
            let mut ids = Vec::with_capacity(shifts.len());
            for shift in &shifts {
                ids.push(insert.query_row(
                    params![shift.unit, shift.beat, shift.starts_at.as_millis(), shift.ends_at.as_millis()],
                    |r| r.get(0),
                )?);
            }
            append_in(conn, &key, &entry.with_ids(&ids))?;
            Ok(ids)
        })
        .await
    }

    pub async fn shifts_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<(i64, Shift)>, StoreError> {
        self.read(move |conn| {
            // Shifts last at most a day, so those running in the window started at most a
            // day before it: the index on starts_at bounds the scan.
            let mut statement = conn.prepare_cached(
                "SELECT id, unit, beat, starts_at, ends_at FROM shifts
                 WHERE starts_at < ?2 AND starts_at >= ?1 - 86400000 AND ends_at > ?1 ORDER BY starts_at, id",
            )?;
            let rows = statement
                .query_map(params![from.as_millis(), to.as_millis()], |r| {
                    Ok((
                        r.get(0)?,
                        Shift {
                            unit: r.get(1)?,
                            beat: r.get(2)?,
                            starts_at: Timestamp::from_millis(r.get(3)?),
                            ends_at: Timestamp::from_millis(r.get(4)?),
                        },
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn shift(&self, id: i64) -> Result<Option<Shift>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT unit, beat, starts_at, ends_at FROM shifts WHERE id = ?1")?
                .query_row([id], |r| {
                    Ok(Shift {
                        unit: r.get(0)?,
                        beat: r.get(1)?,
                        starts_at: Timestamp::from_millis(r.get(2)?),
                        ends_at: Timestamp::from_millis(r.get(3)?),
                    })
                })
                .optional()?)
        })
        .await
    }

    pub async fn set_member_active(
        &self,
        key: [u8; 32],
        id: i64,
        active: bool,
        at: Timestamp,
        entry: &Audited,
    ) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("UPDATE force_members SET active = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![id, active, at.as_millis()])?;
            if changed == 0 {
                return Err(StoreError::NotFound { entity: "force member", key: id.to_string() });
            }
            append_in(conn, &key, &entry)?;
            Ok(())
        })
        .await
    }

    pub async fn delete_shift(&self, key: [u8; 32], id: i64, entry: &Audited) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            if conn.prepare_cached("DELETE FROM shifts WHERE id = ?1")?.execute(params![id])? == 0 {
                return Err(StoreError::NotFound { entity: "shift", key: id.to_string() });
            }
            append_in(conn, &key, &entry)?;
            Ok(())
        })
        .await
    }

    pub async fn insert_member(&self, key: [u8; 32], member: SealedMember, entry: &Audited) -> Result<i64, StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            let id: i64 = conn
                .prepare_cached(
                    "INSERT INTO force_members (category, station, unit, name_sealed, id_number_sealed, id_number_index,
                         phone_sealed, active, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
                )?
                .query_row(
                    params![
                        member.category.as_str(),
                        member.station,
                        member.unit,
                        member.name_sealed,
                        member.id_number_sealed,
                        &member.id_number_index[..],
                        member.phone_sealed,
                        member.active,
                        member.created_at.as_millis(),
                        member.updated_at.as_millis()
                    ],
                    |r| r.get(0),
                )
                .map_err(|e| {
                    if is_sqlite_unique_violation(&e) {
                        StoreError::Conflict { entity: "force member", key: "identity number".into() }
                    } else {
                        e.into()
                    }
                })?;
            append_in(conn, &key, &entry.with_ids(&[id]))?;
            Ok(id)
        })
        .await
    }

    pub async fn rekey_members(&self, members: Vec<SealedMember>) -> Result<(), StoreError> {
        self.write(move |conn| {
            let mut update = conn.prepare_cached(
                "UPDATE force_members SET id_number_index = ?2, name_sealed = ?3, id_number_sealed = ?4,
                     phone_sealed = ?5 WHERE id = ?1",
            )?;
            for m in &members {
                let changed = update.execute(params![
                    m.id,
                    m.id_number_index,
                    m.name_sealed,
                    m.id_number_sealed,
                    m.phone_sealed
                ])?;
                if changed == 0 {
                    return Err(StoreError::NotFound { entity: "member", key: m.id.to_string() });
                }
            }
            Ok(())
        })
        .await
    }

    pub async fn list_members(&self) -> Result<Vec<SealedMember>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT id, category, station, unit, name_sealed, id_number_sealed, id_number_index, phone_sealed,
                        active, created_at, updated_at FROM force_members ORDER BY id",
            )?;
            let rows = statement
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                        r.get::<_, Vec<u8>>(6)?,
                        r.get::<_, Option<Vec<u8>>>(7)?,
                        r.get::<_, bool>(8)?,
                        r.get::<_, i64>(9)?,
                        r.get::<_, i64>(10)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, c, station, unit, name, number, index, phone, active, created, updated)| {
                    Ok(SealedMember {
                        id,
                        category: category(&c)?,
                        station,
                        unit,
                        name_sealed: name,
                        id_number_sealed: number,
                        id_number_index: index,
                        phone_sealed: phone,
                        active,
                        created_at: Timestamp::from_millis(created),
                        updated_at: Timestamp::from_millis(updated),
                    })
                })
                .collect()
        })
        .await
    }
}
