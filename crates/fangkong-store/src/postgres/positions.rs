//! Tracker history on PostgreSQL: a batch is one `INSERT … SELECT FROM unnest(…)` (one
//! round trip, one plan), not a statement per row.

use fangkong_core::time::Timestamp;
use tokio_postgres::Row;

use super::PgStore;
use crate::StoreError;
use crate::positions::{POSITION_COLUMNS, PositionRow, Presence, RejectedFix, StoredFix, rejection_from_row};

fn position_row(r: &Row) -> PositionRow {
    PositionRow {
        device_id: r.get(0),
        fixed_at: r.get(1),
        received_at: r.get(2),
        lat: r.get(3),
        lon: r.get(4),
        speed: r.get(5),
        course: r.get(6),
        altitude: r.get(7),
        accuracy: r.get(8),
        battery: r.get(9),
        h3: r.get(10),
        attributes: r.get(11),
    }
}

impl PgStore {
    pub async fn write_positions(
        &self,
        accepted: Vec<StoredFix>,
        rejected: Vec<RejectedFix>,
        outbox: crate::Outbox,
    ) -> Result<u64, StoreError> {
        let rows: Vec<PositionRow> = accepted.iter().map(PositionRow::from_domain).collect();
        let column = |f: &dyn Fn(&PositionRow) -> Option<f64>| rows.iter().map(f).collect::<Vec<Option<f64>>>();
        let device: Vec<i64> = rows.iter().map(|r| r.device_id).collect();
        let fixed: Vec<i64> = rows.iter().map(|r| r.fixed_at).collect();
        let received: Vec<i64> = rows.iter().map(|r| r.received_at).collect();
        let lat: Vec<f64> = rows.iter().map(|r| r.lat).collect();
        let lon: Vec<f64> = rows.iter().map(|r| r.lon).collect();
        let (speed, course, altitude) = (column(&|r| r.speed), column(&|r| r.course), column(&|r| r.altitude));
        let (accuracy, battery) = (column(&|r| r.accuracy), column(&|r| r.battery));
        let h3: Vec<Option<i64>> = rows.iter().map(|r| r.h3).collect();
        let attributes: Vec<Option<String>> = rows.iter().map(|r| r.attributes.clone()).collect();

        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let inserted = if rows.is_empty() {
            0
        } else {
            tx.execute(
                &format!(
                    "INSERT INTO positions ({POSITION_COLUMNS})
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::float8[],
                                          $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::float8[],
                                          $11::bigint[], $12::text[])
                     ON CONFLICT (device_id, fixed_at) DO NOTHING"
                ),
                &[
                    &device,
                    &fixed,
                    &received,
                    &lat,
                    &lon,
                    &speed,
                    &course,
                    &altitude,
                    &accuracy,
                    &battery,
                    &h3,
                    &attributes,
                ],
            )
            .await?
        };
        if !rejected.is_empty() {
            let device: Vec<i64> = rejected.iter().map(|r| r.device_id).collect();
            let received: Vec<i64> = rejected.iter().map(|r| r.received_at.as_millis()).collect();
            let fixed: Vec<i64> = rejected.iter().map(|r| r.fixed_at.as_millis()).collect();
            let lat: Vec<f64> = rejected.iter().map(|r| r.point.lat()).collect();
            let lon: Vec<f64> = rejected.iter().map(|r| r.point.lon()).collect();
            let reason: Vec<&str> = rejected.iter().map(|r| r.reason.as_str()).collect();
            tx.execute(
                "INSERT INTO position_rejections (device_id, received_at, fixed_at, lat, lon, reason)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::float8[], $6::text[])",
                &[&device, &received, &fixed, &lat, &lon, &reason],
            )
            .await?;
        }
        super::outbox::append_in(&tx, &outbox).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    pub async fn track(
        &self,
        device_id: i64,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<StoredFix>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {POSITION_COLUMNS} FROM positions
                 WHERE device_id = $1 AND fixed_at >= $2 AND fixed_at < $3 ORDER BY fixed_at LIMIT $4"
            ))
            .await?;
        let rows =
            client.query(&statement, &[&device_id, &from.as_millis(), &to.as_millis(), &i64::from(limit)]).await?;
        rows.iter().map(|r| position_row(r).into_domain()).collect()
    }

    pub async fn rejections(
        &self,
        device_id: i64,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<RejectedFix>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT device_id, received_at, fixed_at, lat, lon, reason FROM position_rejections
                 WHERE device_id = $1 AND received_at >= $2 AND received_at < $3
                 ORDER BY received_at DESC LIMIT $4",
                &[&device_id, &from.as_millis(), &to.as_millis(), &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| rejection_from_row(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get::<_, &str>(5)))
            .collect()
    }

    pub async fn purge_positions(&self, device_id: i64, before: Timestamp) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let fixes = tx
            .execute("DELETE FROM positions WHERE device_id = $1 AND fixed_at < $2", &[&device_id, &before.as_millis()])
            .await?;
        let refused = tx
            .execute(
                "DELETE FROM position_rejections WHERE device_id = $1 AND received_at < $2",
                &[&device_id, &before.as_millis()],
            )
            .await?;
        tx.commit().await?;
        Ok(fixes + refused)
    }

    pub async fn record_presence(&self, rows: Vec<Presence>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let beat: Vec<&str> = rows.iter().map(|r| r.beat.as_str()).collect();
        let hour: Vec<i64> = rows.iter().map(|r| r.hour.as_millis()).collect();
        let unit: Vec<&str> = rows.iter().map(|r| r.unit.as_str()).collect();
        let minutes: Vec<i64> = rows.iter().map(|r| r.minutes as i64).collect();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO beat_presence (beat, hour, unit, minutes)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])
                 ON CONFLICT (beat, hour, unit) DO UPDATE SET minutes = beat_presence.minutes | excluded.minutes",
                &[&beat, &hour, &unit, &minutes],
            )
            .await?;
        Ok(())
    }

    pub async fn presence(
        &self,
        beats: Vec<String>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Presence>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT beat, hour, unit, minutes FROM beat_presence WHERE beat = ANY($1) AND hour >= $2 AND hour < $3",
                &[&beats, &from.as_millis(), &to.as_millis()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Presence {
                beat: r.get(0),
                hour: Timestamp::from_millis(r.get(1)),
                unit: r.get(2),
                minutes: r.get::<_, i64>(3) as u64,
            })
            .collect())
    }

    pub async fn purge_presence(&self, before: Timestamp) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM beat_presence WHERE hour < $1", &[&before.as_millis()]).await?)
    }
}
