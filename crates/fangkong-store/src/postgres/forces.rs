//! The force registry on PostgreSQL.

use fangkong_core::audit::AuditRecord;
use fangkong_core::forces::{Beat, Shift, Unit};
use fangkong_core::time::Timestamp;

use super::PgStore;
use super::audit::append_in;
use crate::StoreError;
use crate::error::is_postgres_unique_violation;
use crate::forces::{SealedMember, category, equipment_list, equipment_text, mode, shape};
use crate::outbox::Audited;

impl PgStore {
    pub async fn save_beats(
        &self,
        key: [u8; 32],
        beats: Vec<Beat>,
        at: Timestamp,
        entry: &Audited,
    ) -> Result<AuditRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for beat in &beats {
            tx.execute(
                "INSERT INTO beats (code, station, name, shape, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (code) DO UPDATE SET station = excluded.station, name = excluded.name,
                 shape = excluded.shape, updated_at = excluded.updated_at",
                &[&beat.code, &beat.station, &beat.name, &beat.shape.to_wkb(), &at.as_millis()],
            )
            .await?;
        }
        let record = append_in(&tx, &key, entry).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn list_beats(&self) -> Result<Vec<Beat>, StoreError> {
        let client = self.client().await?;
        let rows = client.query("SELECT code, station, name, shape FROM beats ORDER BY code", &[]).await?;
        rows.iter()
            .map(|r| {
                let code: String = r.get(0);
                Ok(Beat { shape: shape(&code, r.get::<_, &[u8]>(3))?, station: r.get(1), name: r.get(2), code })
            })
            .collect()
    }

    pub async fn save_units(
        &self,
        key: [u8; 32],
        units: Vec<Unit>,
        at: Timestamp,
        entry: &Audited,
    ) -> Result<AuditRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for unit in &units {
            tx.execute(
                "INSERT INTO force_units (code, call_sign, station, category, mode, equipment, beat, updated_at,
                 capabilities)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (code) DO UPDATE SET call_sign = excluded.call_sign, station = excluded.station,
                 category = excluded.category, mode = excluded.mode, equipment = excluded.equipment,
                 beat = excluded.beat, updated_at = excluded.updated_at, capabilities = excluded.capabilities",
                &[
                    &unit.code,
                    &unit.call_sign,
                    &unit.station,
                    &unit.category.as_str(),
                    &unit.mode.as_str(),
                    &equipment_text(&unit.equipment),
                    &unit.beat,
                    &at.as_millis(),
                    &equipment_text(&unit.capabilities),
                ],
            )
            .await?;
        }
        let record = append_in(&tx, &key, entry).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn list_units(&self) -> Result<Vec<Unit>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT code, call_sign, station, category, mode, equipment, beat, capabilities FROM force_units ORDER BY code",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Unit {
                    code: r.get(0),
                    call_sign: r.get(1),
                    station: r.get(2),
                    category: category(r.get(3))?,
                    mode: mode(r.get(4))?,
                    equipment: equipment_list(r.get(5)),
                    beat: r.get(6),
                    capabilities: equipment_list(r.get(7)),
                })
            })
            .collect()
    }

    pub async fn insert_shifts(
        &self,
        key: [u8; 32],
        shifts: Vec<Shift>,
        entry: &Audited,
    ) -> Result<Vec<i64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare_cached("INSERT INTO shifts (unit, beat, starts_at, ends_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .await?;
        let mut ids = Vec::with_capacity(shifts.len());
        for shift in &shifts {
            let row = tx
                .query_one(
                    &insert,
                    &[&shift.unit, &shift.beat, &shift.starts_at.as_millis(), &shift.ends_at.as_millis()],
                )
                .await?;
            ids.push(row.get(0));
        }
        append_in(&tx, &key, &entry.with_ids(&ids)).await?;
        tx.commit().await?;
        Ok(ids)
    }

    pub async fn shifts_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<(i64, Shift)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, unit, beat, starts_at, ends_at FROM shifts
                 WHERE starts_at < $2::bigint AND starts_at >= $1::bigint - 86400000 AND ends_at > $1::bigint ORDER BY starts_at, id",
                &[&from.as_millis(), &to.as_millis()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    Shift {
                        unit: r.get(1),
                        beat: r.get(2),
                        starts_at: Timestamp::from_millis(r.get(3)),
                        ends_at: Timestamp::from_millis(r.get(4)),
                    },
                )
            })
            .collect())
    }

    pub async fn shift(&self, id: i64) -> Result<Option<Shift>, StoreError> {
        let client = self.client().await?;
        let row = client.query_opt("SELECT unit, beat, starts_at, ends_at FROM shifts WHERE id = $1", &[&id]).await?;
        Ok(row.map(|r| Shift {
            unit: r.get(0),
            beat: r.get(1),
            starts_at: Timestamp::from_millis(r.get(2)),
            ends_at: Timestamp::from_millis(r.get(3)),
        }))
    }

    pub async fn set_member_active(
        &self,
        key: [u8; 32],
        id: i64,
        active: bool,
        at: Timestamp,
        entry: &Audited,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE force_members SET active = $2, updated_at = $3 WHERE id = $1",
                &[&id, &active, &at.as_millis()],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound { entity: "force member", key: id.to_string() });
        }
        append_in(&tx, &key, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_shift(&self, key: [u8; 32], id: i64, entry: &Audited) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if tx.execute("DELETE FROM shifts WHERE id = $1", &[&id]).await? == 0 {
            return Err(StoreError::NotFound { entity: "shift", key: id.to_string() });
        }
        append_in(&tx, &key, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_member(&self, key: [u8; 32], member: SealedMember, entry: &Audited) -> Result<i64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "INSERT INTO force_members (category, station, unit, name_sealed, id_number_sealed, id_number_index,
                     phone_sealed, active, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                &[
                    &member.category.as_str(),
                    &member.station,
                    &member.unit,
                    &member.name_sealed,
                    &member.id_number_sealed,
                    &&member.id_number_index[..],
                    &member.phone_sealed,
                    &member.active,
                    &member.created_at.as_millis(),
                    &member.updated_at.as_millis(),
                ],
            )
            .await
            .map_err(|e| {
                if is_postgres_unique_violation(&e) {
                    StoreError::Conflict { entity: "force member", key: "identity number".into() }
                } else {
                    e.into()
                }
            })?;
        let id: i64 = row.get(0);
        append_in(&tx, &key, &entry.with_ids(&[id])).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn rekey_members(&self, members: Vec<SealedMember>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let update = tx
            .prepare_cached(
                "UPDATE force_members SET id_number_index = $2, name_sealed = $3, id_number_sealed = $4,
                     phone_sealed = $5 WHERE id = $1",
            )
            .await?;
        for m in &members {
            let changed = tx
                .execute(&update, &[&m.id, &m.id_number_index, &m.name_sealed, &m.id_number_sealed, &m.phone_sealed])
                .await?;
            if changed == 0 {
                return Err(StoreError::NotFound { entity: "member", key: m.id.to_string() });
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_members(&self) -> Result<Vec<SealedMember>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, category, station, unit, name_sealed, id_number_sealed, id_number_index, phone_sealed,
                        active, created_at, updated_at FROM force_members ORDER BY id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SealedMember {
                    id: r.get(0),
                    category: category(r.get(1))?,
                    station: r.get(2),
                    unit: r.get(3),
                    name_sealed: r.get(4),
                    id_number_sealed: r.get(5),
                    id_number_index: r.get(6),
                    phone_sealed: r.get(7),
                    active: r.get(8),
                    created_at: Timestamp::from_millis(r.get(9)),
                    updated_at: Timestamp::from_millis(r.get(10)),
                })
            })
            .collect()
    }
}
