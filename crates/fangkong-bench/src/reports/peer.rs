//! The coverage report's peer: PostgreSQL answering the same report from the same presence
//! rows and shifts in one SQL query.

use fangkong_core::forces::Shift;
use fangkong_store::Presence;

use super::{Answer, HOUR_MS, PEER_WORK_MEM};
use crate::store::BenchSchema;

pub(super) struct Peer {
    pub(super) schema: BenchSchema,
    client: tokio_postgres::Client,
}

impl Peer {
    pub(super) async fn create(admin_url: &str, shifts: &[Shift]) -> anyhow::Result<Peer> {
        let schema = BenchSchema::create(admin_url).await?;
        let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE TABLE beat_presence (beat text NOT NULL, hour bigint NOT NULL, unit text NOT NULL,
                     minutes bigint NOT NULL, PRIMARY KEY (beat, hour, unit));
                 CREATE TABLE shifts (unit text NOT NULL, beat text NOT NULL, starts_at bigint NOT NULL,
                     ends_at bigint NOT NULL);",
            )
            .await?;
        for chunk in shifts.chunks(50_000) {
            let units: Vec<&str> = chunk.iter().map(|s| s.unit.as_str()).collect();
            let beats: Vec<&str> = chunk.iter().map(|s| s.beat.as_str()).collect();
            let starts: Vec<i64> = chunk.iter().map(|s| s.starts_at.as_millis()).collect();
            let ends: Vec<i64> = chunk.iter().map(|s| s.ends_at.as_millis()).collect();
            client
                .execute(
                    "INSERT INTO shifts SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])",
                    &[&units, &beats, &starts, &ends],
                )
                .await?;
        }
        // A unit's shifts near an hour, and a beat's shifts in a window.
        client
            .batch_execute(
                "CREATE INDEX shifts_by_unit ON shifts (unit, starts_at) INCLUDE (ends_at);
                 CREATE INDEX shifts_by_beat ON shifts (beat, starts_at) INCLUDE (ends_at);",
            )
            .await?;
        Ok(Peer { schema, client })
    }

    /// After the bulk load, as an expert would before asking: the tables vacuumed and
    /// analysed (the planner's statistics and the visibility map for index-only scans), and
    /// `work_mem` raised for the session so the report's aggregates stay in memory.
    pub(super) async fn settle(&self) -> anyhow::Result<()> {
        self.client.batch_execute("VACUUM (ANALYZE) beat_presence").await?;
        self.client.batch_execute("VACUUM (ANALYZE) shifts").await?;
        self.client.batch_execute(&format!("SET work_mem = '{PEER_WORK_MEM}'")).await?;
        Ok(())
    }

    pub(super) async fn load_presence(&self, rows: &[Presence]) -> anyhow::Result<()> {
        let beats: Vec<&str> = rows.iter().map(|r| r.beat.as_str()).collect();
        let hours: Vec<i64> = rows.iter().map(|r| r.hour.as_millis()).collect();
        let units: Vec<&str> = rows.iter().map(|r| r.unit.as_str()).collect();
        let minutes: Vec<i64> = rows.iter().map(|r| r.minutes as i64).collect();
        self.client
            .execute(
                "INSERT INTO beat_presence SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])
                 ON CONFLICT (beat, hour, unit) DO UPDATE SET minutes = beat_presence.minutes | excluded.minutes",
                &[&beats, &hours, &units, &minutes],
            )
            .await?;
        Ok(())
    }

    /// The report in one query: per beat and hour, covered = popcount(bit_or(minutes & the
    /// unit's duty minutes of that hour)), rostered = popcount(bit_or(the beat's shifts'
    /// minutes)). A shift's minutes in an hour are a run of bits: minute m counts when its
    /// middle lies in the shift.
    pub(super) async fn coverage(&self, beats: &[String], from: i64, to: i64) -> anyhow::Result<Answer> {
        // The hours the engine reports: those starting in `from..to`, at most 31 days.
        let first = from.div_euclid(HOUR_MS) * HOUR_MS;
        let end = first + ((to - first + HOUR_MS - 1) / HOUR_MS).min(24 * 31) * HOUR_MS;
        let rows = self
            .client
            .query(
                "WITH covered AS (
                    SELECT p.beat, p.hour, bit_or(p.minutes & d.mask) AS mask
                    FROM beat_presence p
                    JOIN shifts s ON s.unit = p.unit AND s.starts_at < p.hour + 3600000
                        AND s.starts_at > p.hour - 86400000 AND s.ends_at > p.hour
                    CROSS JOIN LATERAL (SELECT CASE WHEN hi >= lo THEN (1::bigint << (hi + 1)) - (1::bigint << lo) ELSE 0 END AS mask
                        FROM (SELECT greatest(0, ceil((s.starts_at - p.hour - 30000) / 60000.0))::int AS lo,
                                     least(59, ceil((s.ends_at - p.hour - 30000) / 60000.0)::int - 1) AS hi) b) d
                    WHERE p.beat = ANY($1) AND p.hour >= $2 AND p.hour < $3
                    GROUP BY p.beat, p.hour
                 ), rostered AS (
                    SELECT s.beat, h AS hour, bit_or(d.mask) AS mask
                    FROM shifts s
                    CROSS JOIN LATERAL generate_series(greatest(s.starts_at - s.starts_at % 3600000, $2::bigint),
                                                       least(s.ends_at - 1, $3::bigint - 1), 3600000::bigint) AS h
                    CROSS JOIN LATERAL (SELECT CASE WHEN hi >= lo THEN (1::bigint << (hi + 1)) - (1::bigint << lo) ELSE 0 END AS mask
                        FROM (SELECT greatest(0, ceil((s.starts_at - h - 30000) / 60000.0))::int AS lo,
                                     least(59, ceil((s.ends_at - h - 30000) / 60000.0)::int - 1) AS hi) b) d
                    WHERE s.beat = ANY($1) AND s.starts_at < $3 AND s.starts_at > $2 - 86400000 AND s.ends_at > $2
                    GROUP BY s.beat, h
                 )
                 SELECT coalesce(c.beat, r.beat), coalesce(c.hour, r.hour),
                        bit_count(coalesce(c.mask, 0)::bit(64))::int, bit_count(coalesce(r.mask, 0)::bit(64))::int
                 FROM covered c FULL JOIN rostered r ON r.beat = c.beat AND r.hour = c.hour",
                &[&beats, &first, &end],
            )
            .await?;
        let mut answer = Answer::new();
        for row in rows {
            let (covered, rostered): (i32, i32) = (row.get(2), row.get(3));
            if covered > 0 || rostered > 0 {
                answer.insert((row.get(0), row.get(1)), (covered as u32, rostered as u32));
            }
        }
        Ok(answer)
    }
}
