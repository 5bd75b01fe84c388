//! The outbox on SQLite: rows numbered by the single writer, in commit order.

use fangkong_core::time::Timestamp;
use rusqlite::{Connection, params};

use super::SqliteStore;
use crate::StoreError;
use crate::outbox::{Outbox, OutboxRecord, record};

/// Stores `outbox` after the last event. Call inside a write.
pub(crate) fn append_in(conn: &Connection, outbox: &Outbox) -> Result<(), StoreError> {
    debug_assert!(!outbox.awaits_ids(), "the events of new rows are made with their ids (`with_ids`)");
    if outbox.rows.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached("INSERT INTO outbox (at, kind, body) VALUES (?1, ?2, ?3)")?;
    for row in &outbox.rows {
        insert.execute(params![row.at, row.kind, row.body])?;
    }
    Ok(())
}

impl SqliteStore {
    pub async fn outbox_after(&self, after: i64, limit: u32) -> Result<Vec<OutboxRecord>, StoreError> {
        self.read(move |conn| {
            let mut statement =
                conn.prepare_cached("SELECT seq, at, kind, body FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
            let rows = statement
                .query_map(params![after, limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(|(seq, at, kind, body)| record(seq, at, &kind, body.as_bytes())).collect()
        })
        .await
    }

    pub async fn outbox_head(&self) -> Result<i64, StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM outbox", [], |r| r.get(0))?)).await
    }

    pub async fn purge_outbox(&self, before: Timestamp) -> Result<u64, StoreError> {
        // Never the newest row: SQLite would give its number to the next event.
        self.write(move |conn| {
            let deleted = conn.execute(
                "DELETE FROM outbox WHERE at < ?1 AND seq < (SELECT MAX(seq) FROM outbox)",
                params![before.as_millis()],
            )?;
            Ok(deleted as u64)
        })
        .await
    }
}
