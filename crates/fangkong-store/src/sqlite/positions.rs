//! Tracker history on SQLite: one prepared statement per row inside one transaction (the
//! writer thread's), which is what SQLite does fastest.

use fangkong_core::time::Timestamp;
use rusqlite::params;

use super::SqliteStore;
use crate::StoreError;
use crate::positions::{POSITION_COLUMNS, PositionRow, Presence, RejectedFix, StoredFix, rejection_from_row};

impl SqliteStore {
    pub async fn write_positions(
        &self,
        mut accepted: Vec<StoredFix>,
        rejected: Vec<RejectedFix>,
        outbox: crate::Outbox,
    ) -> Result<u64, StoreError> {
        // In key order, each insert lands next to the previous one: the B-tree descends
        // through pages already in hand instead of jumping across the table.
        accepted.sort_unstable_by_key(|stored| (stored.device_id, stored.fix.fixed_at));
        self.write(move |conn| {
            let mut inserted = 0u64;
            let mut insert = conn.prepare_cached(&format!(
                "INSERT INTO positions ({POSITION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (device_id, fixed_at) DO NOTHING"
            ))?;
            for stored in &accepted {
                let r = PositionRow::from_domain(stored);
                inserted += insert.execute(params![
                    r.device_id,
                    r.fixed_at,
                    r.received_at,
                    r.lat,
                    r.lon,
                    r.speed,
                    r.course,
                    r.altitude,
                    r.accuracy,
                    r.battery,
                    r.h3,
                    r.attributes
                ])? as u64;
            }
            let mut refused = conn.prepare_cached(
                "INSERT INTO position_rejections (device_id, received_at, fixed_at, lat, lon, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in &rejected {
                refused.execute(params![
                    r.device_id,
                    r.received_at.as_millis(),
                    r.fixed_at.as_millis(),
                    r.point.lat(),
                    r.point.lon(),
                    r.reason.as_str()
                ])?;
            }
            super::outbox::append_in(conn, &outbox)?;
            Ok(inserted)
        })
        .await
    }

    pub async fn track(
        &self,
        device_id: i64,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<StoredFix>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {POSITION_COLUMNS} FROM positions
                 WHERE device_id = ?1 AND fixed_at >= ?2 AND fixed_at < ?3 ORDER BY fixed_at LIMIT ?4"
            ))?;
            let rows = statement
                .query_map(params![device_id, from.as_millis(), to.as_millis(), limit], |r| {
                    Ok(PositionRow {
                        device_id: r.get(0)?,
                        fixed_at: r.get(1)?,
                        received_at: r.get(2)?,
                        lat: r.get(3)?,
                        lon: r.get(4)?,
                        speed: r.get(5)?,
                        course: r.get(6)?,
                        altitude: r.get(7)?,
                        accuracy: r.get(8)?,
                        battery: r.get(9)?,
                        h3: r.get(10)?,
                        attributes: r.get(11)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(PositionRow::into_domain).collect()
        })
        .await
    }

    pub async fn rejections(
        &self,
        device_id: i64,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<RejectedFix>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT device_id, received_at, fixed_at, lat, lon, reason FROM position_rejections
                 WHERE device_id = ?1 AND received_at >= ?2 AND received_at < ?3
                 ORDER BY received_at DESC LIMIT ?4",
            )?;
            let rows = statement
                .query_map(params![device_id, from.as_millis(), to.as_millis(), limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, String>(5)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(d, rec, fix, lat, lon, reason)| rejection_from_row(d, rec, fix, lat, lon, &reason))
                .collect()
        })
        .await
    }

    pub async fn purge_positions(&self, device_id: i64, before: Timestamp) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let fixes = conn
                .prepare_cached("DELETE FROM positions WHERE device_id = ?1 AND fixed_at < ?2")?
                .execute(params![device_id, before.as_millis()])?;
            let refused = conn
                .prepare_cached("DELETE FROM position_rejections WHERE device_id = ?1 AND received_at < ?2")?
                .execute(params![device_id, before.as_millis()])?;
            Ok((fixes + refused) as u64)
        })
        .await
    }

    pub async fn record_presence(&self, rows: Vec<Presence>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let mut upsert = conn.prepare_cached(
                "INSERT INTO beat_presence (beat, hour, unit, minutes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (beat, hour, unit) DO UPDATE SET minutes = minutes | excluded.minutes",
            )?;
            for row in &rows {
                upsert.execute(params![row.beat, row.hour.as_millis(), row.unit, row.minutes as i64])?;
            }
            Ok(())
        })
        .await
    }

    pub async fn presence(
        &self,
        beats: Vec<String>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Presence>, StoreError> {
        let beats = serde_json::to_string(&beats).expect("strings serialise");
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT beat, hour, unit, minutes FROM beat_presence
                 WHERE beat IN (SELECT value FROM json_each(?1)) AND hour >= ?2 AND hour < ?3",
            )?;
            let rows = statement.query_map(params![beats, from.as_millis(), to.as_millis()], |r| {
                Ok(Presence {
                    beat: r.get(0)?,
                    hour: Timestamp::from_millis(r.get(1)?),
                    unit: r.get(2)?,
                    minutes: r.get::<_, i64>(3)? as u64,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn purge_presence(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.write(move |conn| {
            Ok(conn.prepare_cached("DELETE FROM beat_presence WHERE hour < ?1")?.execute([before.as_millis()])? as u64)
        })
        .await
    }
}
