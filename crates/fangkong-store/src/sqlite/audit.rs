//! The audit trail on SQLite. Appends run on the writer thread, so records are numbered and
//! chained in exactly the order they commit.

use fangkong_core::audit::{AuditEntry, AuditRecord, Seal, head_tag, seal_entry};
use fangkong_core::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::StoreError;
use crate::audit::{AUDIT_COLUMNS, AuditHead, AuditQuery, AuditRow, hash32};
use crate::outbox::Audited;

fn audit_row(row: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: row.get(0)?,
        at: row.get(1)?,
        actor_kind: row.get(2)?,
        actor_id: row.get(3)?,
        actor_name: row.get(4)?,
        actor_role: row.get(5)?,
        action: row.get(6)?,
        target_kind: row.get(7)?,
        target_id: row.get(8)?,
        outcome: row.get(9)?,
        ip: row.get(10)?,
        purpose: row.get(11)?,
        detail: row.get(12)?,
        prev_hash: row.get(13)?,
        hash: row.get(14)?,
    })
}

fn read_head(conn: &Connection) -> Result<AuditHead, StoreError> {
    let (seq, hash, tag): (i64, Vec<u8>, Vec<u8>) = conn
        .prepare_cached("SELECT seq, hash, tag FROM audit_head WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(AuditHead { seq, hash: hash32(&hash, "audit head hash")?, tag: hash32(&tag, "audit head tag")? })
}

/// Chains `entry` after the current head and stores it. Call inside a write.
pub(crate) fn append_entry(conn: &Connection, key: &[u8; 32], entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
    let head = read_head(conn)?;
    let record = seal_entry(key, head.seq, &head.hash, entry.clone());
    let e = &record.entry;
    conn.prepare_cached(&format!(
        "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?
    .execute(params![
        record.seq,
        e.at.as_millis(),
        e.actor_kind,
        e.actor_id,
        e.actor_name,
        e.actor_role,
        e.action,
        e.target_kind,
        e.target_id,
        e.outcome.as_str(),
        e.ip,
        e.purpose,
        e.detail,
        &record.prev_hash[..],
        &record.hash[..]
    ])?;
    let tag = head_tag(key, record.seq, &record.hash);
    conn.prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2, tag = ?3 WHERE id = 1")?.execute(params![
        record.seq,
        &record.hash[..],
        &tag[..]
    ])?;
    Ok(record)
}

/// Stores an audited write's audit record and its events. Call inside a write.
pub(crate) fn append_in(conn: &Connection, key: &[u8; 32], audited: &Audited) -> Result<AuditRecord, StoreError> {
    let record = append_entry(conn, key, &audited.audit)?;
    super::outbox::append_in(conn, &audited.outbox)?;
    Ok(record)
}

impl SqliteStore {
    pub async fn append_audit(&self, key: [u8; 32], entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        let entry = entry.clone();
        self.write(move |conn| append_entry(conn, &key, &entry)).await
    }

    pub async fn append_audits(&self, key: [u8; 32], entries: &[AuditEntry]) -> Result<Vec<AuditRecord>, StoreError> {
        let entries = entries.to_vec();
        self.write(move |conn| entries.iter().map(|entry| append_entry(conn, &key, entry)).collect()).await
    }

    pub async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1");
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            let mut filter = |clause: &str, value: rusqlite::types::Value| {
                values.push(value);
                sql.push_str(&format!(" AND {clause} ?{}", values.len()));
            };
            if let Some(seq) = query.before_seq {
                filter("seq <", seq.into());
            }
            if let Some(from) = query.from {
                filter("at >=", from.as_millis().into());
            }
            if let Some(to) = query.to {
                filter("at <", to.as_millis().into());
            }
            if let Some(actor) = &query.actor_name {
                filter("actor_name =", actor.clone().into());
            }
            if let Some(action) = &query.action {
                filter("action =", action.clone().into());
            }
            if let Some(outcome) = query.outcome {
                filter("outcome =", outcome.as_str().to_string().into());
            }
            if let Some(target) = &query.target_id {
                filter("target_id =", target.clone().into());
            }
            sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", query.limit));
            let mut statement = conn.prepare(&sql)?;
            let rows =
                statement.query_map(rusqlite::params_from_iter(values), audit_row)?.collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(AuditRow::into_domain).collect()
        })
        .await
    }

    pub async fn audit_page(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![after_seq, limit], audit_row)?.collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(AuditRow::into_domain).collect()
        })
        .await
    }

    pub async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        self.read(read_head).await
    }

    pub async fn latest_audit_seal(&self) -> Result<Option<Seal>, StoreError> {
        self.read(latest_seal).await
    }

    pub async fn purge_audit(
        &self,
        key: [u8; 32],
        before: Timestamp,
        sealed_at: Timestamp,
        entry: &AuditEntry,
    ) -> Result<Option<Seal>, StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            // The last record old enough to go, and how many there are after the last seal.
            let floor = latest_seal(conn)?.map_or(0, |seal| seal.through_seq);
            let last: Option<(i64, Vec<u8>)> = conn
                .query_row(
                    "SELECT seq, hash FROM audit_log WHERE at < ?1 AND seq > ?2 ORDER BY seq DESC LIMIT 1",
                    params![before.as_millis(), floor],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((through_seq, through_hash)) = last else { return Ok(None) };
            let purged: i64 =
                conn.query_row("SELECT COUNT(*) FROM audit_log WHERE seq <= ?1", [through_seq], |r| r.get(0))?;
            let seal = Seal::new(&key, through_seq, hash32(&through_hash, "audit hash")?, sealed_at, purged);
            conn.execute(
                "INSERT INTO audit_seals (through_seq, through_hash, sealed_at, purged, tag) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![seal.through_seq, &seal.through_hash[..], seal.sealed_at.as_millis(), seal.purged, &seal.tag[..]],
            )?;
            conn.execute("DELETE FROM audit_log WHERE seq <= ?1", [through_seq])?;
            let mut entry = entry;
            entry.detail = Some(format!("sealed through record {through_seq}; removed {purged} records"));
            append_entry(conn, &key, &entry)?;
            Ok(Some(seal))
        })
        .await
    }
}

fn latest_seal(conn: &Connection) -> Result<Option<Seal>, StoreError> {
    conn.prepare_cached(
        "SELECT through_seq, through_hash, sealed_at, purged, tag FROM audit_seals ORDER BY through_seq DESC LIMIT 1",
    )?
    .query_row([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Vec<u8>>(4)?,
        ))
    })
    .optional()?
    .map(|(through_seq, through_hash, sealed_at, purged, tag)| {
        Ok(Seal {
            through_seq,
            through_hash: hash32(&through_hash, "seal hash")?,
            sealed_at: Timestamp::from_millis(sealed_at),
            purged,
            tag: hash32(&tag, "seal tag")?,
        })
    })
    .transpose()
}
