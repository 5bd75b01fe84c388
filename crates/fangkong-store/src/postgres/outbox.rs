//! The outbox on PostgreSQL: numbers from an identity column, increasing in the order
//! writers store their events (see migration 0013 for why not in commit order).

use deadpool_postgres::GenericClient;
use fangkong_core::time::Timestamp;

use super::PgStore;
use crate::StoreError;
use crate::outbox::{Outbox, OutboxRecord, record};

/// Stores `outbox` after the events stored before it. Call inside a transaction.
pub(crate) async fn append_in(tx: &impl GenericClient, outbox: &Outbox) -> Result<(), StoreError> {
    debug_assert!(!outbox.awaits_ids(), "the events of new rows are made with their ids (`with_ids`)");
    if outbox.rows.is_empty() {
        return Ok(());
    }
    let (ats, kinds, bodies): (Vec<i64>, Vec<&str>, Vec<&str>) =
        outbox.rows.iter().fold(Default::default(), |(mut ats, mut kinds, mut bodies), row| {
            ats.push(row.at);
            kinds.push(row.kind);
            bodies.push(row.body.as_str());
            (ats, kinds, bodies)
        });
    // One statement; the identity column numbers the rows in the arrays' order.
    let insert = tx
        .prepare_cached(
            "INSERT INTO outbox (at, kind, body)
             SELECT at, kind, body FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY
                 AS e(at, kind, body, n) ORDER BY n",
        )
        .await?;
    tx.execute(&insert, &[&ats, &kinds, &bodies]).await?;
    Ok(())
}

impl PgStore {
    pub async fn outbox_after(&self, after: i64, limit: u32) -> Result<Vec<OutboxRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, at, kind, body FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &i64::from(limit)],
            )
            .await?;
        rows.iter().map(|r| record(r.get(0), r.get(1), r.get::<_, &str>(2), r.get::<_, &str>(3).as_bytes())).collect()
    }

    pub async fn outbox_head(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        Ok(client.query_one("SELECT COALESCE(MAX(seq), 0) FROM outbox", &[]).await?.get(0))
    }

    pub async fn purge_outbox(&self, before: Timestamp) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM outbox WHERE at < $1", &[&before.as_millis()]).await?)
    }
}
