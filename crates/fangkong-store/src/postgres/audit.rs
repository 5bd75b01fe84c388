//! The audit trail on PostgreSQL. An append locks the head row, so concurrent audited
//! transactions are numbered and chained in the order they commit.

use deadpool_postgres::GenericClient;
use fangkong_core::audit::{AuditEntry, AuditRecord, Seal, head_tag, seal_entry};
use fangkong_core::time::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::StoreError;
use crate::audit::{AUDIT_COLUMNS, AuditHead, AuditQuery, AuditRow, hash32};
use crate::outbox::Audited;

fn audit_row(row: &Row) -> AuditRow {
    AuditRow {
        seq: row.get(0),
        at: row.get(1),
        actor_kind: row.get(2),
        actor_id: row.get(3),
        actor_name: row.get(4),
        actor_role: row.get(5),
        action: row.get(6),
        target_kind: row.get(7),
        target_id: row.get(8),
        outcome: row.get(9),
        ip: row.get(10),
        purpose: row.get(11),
        detail: row.get(12),
        prev_hash: row.get(13),
        hash: row.get(14),
    }
}

/// Chains `entry` after the current head and stores it. Call inside a transaction.
pub(crate) async fn append_entry(
    tx: &impl GenericClient,
    key: &[u8; 32],
    entry: &AuditEntry,
) -> Result<AuditRecord, StoreError> {
    let head = tx.query_one("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE", &[]).await?;
    let (seq, hash): (i64, Vec<u8>) = (head.get(0), head.get(1));
    let record = seal_entry(key, seq, &hash32(&hash, "audit head hash")?, entry.clone());
    let e = &record.entry;
    let at = e.at.as_millis();
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .await?;
    tx.execute(
        &statement,
        &[
            &record.seq,
            &at,
            &e.actor_kind,
            &e.actor_id,
            &e.actor_name,
            &e.actor_role,
            &e.action,
            &e.target_kind,
            &e.target_id,
            &e.outcome.as_str(),
            &e.ip,
            &e.purpose,
            &e.detail,
            &&record.prev_hash[..],
            &&record.hash[..],
        ],
    )
    .await?;
    let tag = head_tag(key, record.seq, &record.hash);
    tx.execute(
        "UPDATE audit_head SET seq = $1, hash = $2, tag = $3 WHERE id = 1",
        &[&record.seq, &&record.hash[..], &&tag[..]],
    )
    .await?;
    Ok(record)
}

/// Stores an audited write's audit record and its events. Call inside a transaction.
pub(crate) async fn append_in(
    tx: &impl GenericClient,
    key: &[u8; 32],
    audited: &Audited,
) -> Result<AuditRecord, StoreError> {
    let record = append_entry(tx, key, &audited.audit).await?;
    super::outbox::append_in(tx, &audited.outbox).await?;
    Ok(record)
}

async fn latest_seal(client: &impl GenericClient) -> Result<Option<Seal>, StoreError> {
    let row = client
        .query_opt(
            "SELECT through_seq, through_hash, sealed_at, purged, tag FROM audit_seals ORDER BY through_seq DESC LIMIT 1",
            &[],
        )
        .await?;
    row.map(|row| {
        Ok(Seal {
            through_seq: row.get(0),
            through_hash: hash32(row.get::<_, &[u8]>(1), "seal hash")?,
            sealed_at: Timestamp::from_millis(row.get(2)),
            purged: row.get(3),
            tag: hash32(row.get::<_, &[u8]>(4), "seal tag")?,
        })
    })
    .transpose()
}

impl PgStore {
    pub async fn append_audit(&self, key: [u8; 32], entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let record = append_entry(&tx, &key, entry).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn append_audits(&self, key: [u8; 32], entries: &[AuditEntry]) -> Result<Vec<AuditRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut records = Vec::with_capacity(entries.len());
        for entry in entries {
            records.push(append_entry(&tx, &key, entry).await?);
        }
        tx.commit().await?;
        Ok(records)
    }

    pub async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let client = self.client().await?;
        let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE TRUE");
        let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut filter = |clause: &str, value: Box<dyn ToSql + Sync + Send>| {
            values.push(value);
            sql.push_str(&format!(" AND {clause} ${}", values.len()));
        };
        if let Some(seq) = query.before_seq {
            filter("seq <", Box::new(seq));
        }
        if let Some(from) = query.from {
            filter("at >=", Box::new(from.as_millis()));
        }
        if let Some(to) = query.to {
            filter("at <", Box::new(to.as_millis()));
        }
        if let Some(actor) = &query.actor_name {
            filter("actor_name =", Box::new(actor.clone()));
        }
        if let Some(action) = &query.action {
            filter("action =", Box::new(action.clone()));
        }
        if let Some(outcome) = query.outcome {
            filter("outcome =", Box::new(outcome.as_str().to_string()));
        }
        if let Some(target) = &query.target_id {
            filter("target_id =", Box::new(target.clone()));
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", query.limit));
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = client.query(&sql, &params).await?;
        rows.iter().map(|row| audit_row(row).into_domain()).collect()
    }

    pub async fn audit_page(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"))
            .await?;
        let rows = client.query(&statement, &[&after_seq, &i64::from(limit)]).await?;
        rows.iter().map(|row| audit_row(row).into_domain()).collect()
    }

    pub async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        let client = self.client().await?;
        let row = client.query_one("SELECT seq, hash, tag FROM audit_head WHERE id = 1", &[]).await?;
        Ok(AuditHead {
            seq: row.get(0),
            hash: hash32(row.get::<_, &[u8]>(1), "audit head hash")?,
            tag: hash32(row.get::<_, &[u8]>(2), "audit head tag")?,
        })
    }

    pub async fn latest_audit_seal(&self) -> Result<Option<Seal>, StoreError> {
        latest_seal(&self.client().await?).await
    }

    pub async fn purge_audit(
        &self,
        key: [u8; 32],
        before: Timestamp,
        sealed_at: Timestamp,
        entry: &AuditEntry,
    ) -> Result<Option<Seal>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Lock the head first: purges and appends are serialised like appends are.
        tx.execute("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE", &[]).await?;
        let floor = latest_seal(&tx).await?.map_or(0, |seal| seal.through_seq);
        let last = tx
            .query_opt(
                "SELECT seq, hash FROM audit_log WHERE at < $1 AND seq > $2 ORDER BY seq DESC LIMIT 1",
                &[&before.as_millis(), &floor],
            )
            .await?;
        let Some(last) = last else { return Ok(None) };
        let through_seq: i64 = last.get(0);
        let through_hash = hash32(last.get::<_, &[u8]>(1), "audit hash")?;
        let purged: i64 = tx.query_one("SELECT COUNT(*) FROM audit_log WHERE seq <= $1", &[&through_seq]).await?.get(0);
        let seal = Seal::new(&key, through_seq, through_hash, sealed_at, purged);
        tx.execute(
            "INSERT INTO audit_seals (through_seq, through_hash, sealed_at, purged, tag) VALUES ($1, $2, $3, $4, $5)",
            &[&seal.through_seq, &&seal.through_hash[..], &seal.sealed_at.as_millis(), &seal.purged, &&seal.tag[..]],
        )
        .await?;
        tx.execute("DELETE FROM audit_log WHERE seq <= $1", &[&through_seq]).await?;
        let mut entry = entry.clone();
        entry.detail = Some(format!("sealed through record {through_seq}; removed {purged} records"));
        append_entry(&tx, &key, &entry).await?;
        tx.commit().await?;
        Ok(Some(seal))
    }
}
