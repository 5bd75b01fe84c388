//! The outbox on PostgreSQL: numbers from `outbox_head`, held by the writing transaction
//! until it commits, so they are given in commit order and without gaps.

use deadpool_postgres::GenericClient;
use fangkong_core::time::Timestamp;

use super::PgStore;
use crate::StoreError;
use crate::outbox::{Outbox, OutboxRecord, record};

/// Stores `outbox` after the last event. Call inside a transaction.
pub(crate) async fn append_in(tx: &impl GenericClient, outbox: &Outbox) -> Result<(), StoreError> {
    debug_assert!(!outbox.awaits_ids(), "the events of new rows are made with their ids (`with_ids`)");
    if outbox.rows.is_empty() {
        return Ok(());
    }
    let count = outbox.rows.len() as i64;
    let last: i64 =
        tx.query_one("UPDATE outbox_head SET seq = seq + $1 WHERE id = 1 RETURNING seq", &[&count]).await?.get(0);
    let first = last - count + 1;
    let (seqs, ats, kinds, bodies): (Vec<i64>, Vec<i64>, Vec<&str>, Vec<&str>) = outbox.rows.iter().enumerate().fold(
        Default::default(),
        |(mut seqs, mut ats, mut kinds, mut bodies), (i, row)| {
            seqs.push(first + i as i64);
            ats.push(row.at);
            kinds.push(row.kind);
            bodies.push(row.body.as_str());
            (seqs, ats, kinds, bodies)
        },
    );
    let insert = tx
        .prepare_cached(
            "INSERT INTO outbox (seq, at, kind, body)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]::jsonb[])",
        )
        .await?;
    tx.execute(&insert, &[&seqs, &ats, &kinds, &bodies]).await?;
    Ok(())
}

impl PgStore {
    pub async fn outbox_after(&self, after: i64, limit: u32) -> Result<Vec<OutboxRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, at, kind, body::text FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &i64::from(limit)],
            )
            .await?;
        rows.iter().map(|r| record(r.get(0), r.get(1), r.get::<_, &str>(2), r.get::<_, &str>(3).as_bytes())).collect()
    }

    pub async fn outbox_head(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        Ok(client.query_one("SELECT seq FROM outbox_head WHERE id = 1", &[]).await?.get(0))
    }

    pub async fn purge_outbox(&self, before: Timestamp) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM outbox WHERE at < $1", &[&before.as_millis()]).await?)
    }
}
