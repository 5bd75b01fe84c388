//! Code tables on PostgreSQL.

use fangkong_core::codes::{CodeEntry, CodeKind};
use tokio_postgres::Row;

use fangkong_core::audit::AuditEntry;

use super::PgStore;
use super::audit::append_in;
use crate::error::is_postgres_unique_violation;
use crate::{CodeRow, StoreError};

const COLUMNS: &str = "kind, code, name_zh, name_en, priority, active, updated_at";

fn code_row(row: &Row) -> CodeRow {
    CodeRow {
        kind: row.get(0),
        code: row.get(1),
        name_zh: row.get(2),
        name_en: row.get(3),
        priority: row.get::<_, Option<i16>>(4).map(i64::from),
        active: row.get(5),
        updated_at: row.get(6),
    }
}

impl PgStore {
    pub async fn list_codes(&self) -> Result<Vec<CodeEntry>, StoreError> {
        let client = self.client().await?;
        let statement =
            client.prepare_cached(&format!("SELECT {COLUMNS} FROM code_entries ORDER BY kind, code")).await?;
        client.query(&statement, &[]).await?.iter().map(|row| code_row(row).into_domain()).collect()
    }

    pub async fn get_code(&self, kind: CodeKind, code: &str) -> Result<Option<CodeEntry>, StoreError> {
        let client = self.client().await?;
        let statement =
            client.prepare_cached(&format!("SELECT {COLUMNS} FROM code_entries WHERE kind = $1 AND code = $2")).await?;
        client
            .query_opt(&statement, &[&kind.as_str(), &code])
            .await?
            .map(|row| code_row(&row).into_domain())
            .transpose()
    }

    pub async fn insert_codes(
        &self,
        entries: &[CodeEntry],
        audit: Option<([u8; 32], AuditEntry)>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let statement = tx
            .prepare_cached(&format!("INSERT INTO code_entries ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .await?;
        // All rows are sent without waiting for each answer (tokio-postgres pipelines
        // concurrent queries on one connection): one round trip per batch, not per row.
        // Answers arrive in order, so the first error is the first failing row's.
        let priorities: Vec<Option<i16>> = entries.iter().map(|e| e.priority.map(i16::from)).collect();
        let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
        let millis: Vec<i64> = entries.iter().map(|e| e.updated_at.as_millis()).collect();
        let inserts = entries.iter().enumerate().map(|(i, entry)| {
            let statement = &statement;
            let tx = &tx;
            let (kind, priority, updated_at) = (&kinds[i], &priorities[i], &millis[i]);
            async move {
                tx.execute(
                    statement,
                    &[kind, &entry.code, &entry.name_zh, &entry.name_en, priority, &entry.active, updated_at],
                )
                .await
                .map_err(|error| match is_postgres_unique_violation(&error) {
                    true => StoreError::Conflict { entity: "code", key: format!("{}/{}", entry.kind, entry.code) },
                    false => error.into(),
                })
            }
        });
        futures_util::future::try_join_all(inserts).await?;
        if let Some((key, entry)) = &audit {
            append_in(&tx, key, entry).await?;
        }
        // Dropping `tx` on an early return above rolls the whole batch back.
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_code(
        &self,
        entry: &CodeEntry,
        audit: Option<([u8; 32], AuditEntry)>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let client = client.transaction().await?;
        let statement = client
            .prepare_cached(
                "UPDATE code_entries SET name_zh = $3, name_en = $4, priority = $5, active = $6, updated_at = $7
                 WHERE kind = $1 AND code = $2",
            )
            .await?;
        let priority = entry.priority.map(i16::from);
        let changed = client
            .execute(
                &statement,
                &[
                    &entry.kind.as_str(),
                    &entry.code,
                    &entry.name_zh,
                    &entry.name_en,
                    &priority,
                    &entry.active,
                    &entry.updated_at.as_millis(),
                ],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound { entity: "code", key: format!("{}/{}", entry.kind, entry.code) });
        }
        if let Some((key, audit)) = &audit {
            append_in(&client, key, audit).await?;
        }
        client.commit().await?;
        Ok(())
    }
}
