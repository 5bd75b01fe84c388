//! Code tables on PostgreSQL.

use fangkong_core::codes::{CodeEntry, CodeKind};
use tokio_postgres::Row;

use super::PgStore;
use super::audit::append_in;
use crate::error::is_postgres_unique_violation;
use crate::outbox::Audited;
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
        audit: Option<([u8; 32], Audited)>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One statement for the whole batch: the rows as arrays, unnested in the server
        // (one round trip and one executor run, not one per row).
        let statement = tx
            .prepare_cached(&format!(
                "INSERT INTO code_entries ({COLUMNS}) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], \
                 $4::text[], $5::smallint[], $6::bool[], $7::bigint[])"
            ))
            .await?;
        let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
        let codes: Vec<&str> = entries.iter().map(|e| e.code.as_str()).collect();
        let names_zh: Vec<&str> = entries.iter().map(|e| e.name_zh.as_str()).collect();
        let names_en: Vec<&str> = entries.iter().map(|e| e.name_en.as_str()).collect();
        let priorities: Vec<Option<i16>> = entries.iter().map(|e| e.priority.map(i16::from)).collect();
        let active: Vec<bool> = entries.iter().map(|e| e.active).collect();
        let millis: Vec<i64> = entries.iter().map(|e| e.updated_at.as_millis()).collect();
        tx.execute(&statement, &[&kinds, &codes, &names_zh, &names_en, &priorities, &active, &millis]).await.map_err(
            |error| match is_postgres_unique_violation(&error) {
                // The server names the first key it found taken: "Key (kind, code)=(k, c) already exists."
                true => {
                    let key = error
                        .as_db_error()
                        .and_then(|e| e.detail())
                        .and_then(|d| d.split_once(")=(").map(|(_, rest)| rest))
                        .and_then(|rest| rest.split_once(") already exists"))
                        .map_or_else(|| "a code of the batch".to_string(), |(key, _)| key.replacen(", ", "/", 1));
                    StoreError::Conflict { entity: "code", key }
                }
                false => error.into(),
            },
        )?;
        if let Some((key, entry)) = &audit {
            append_in(&tx, key, entry).await?;
        }
        // Dropping `tx` on an early return above rolls the whole batch back.
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_code(&self, entry: &CodeEntry, audit: Option<([u8; 32], Audited)>) -> Result<(), StoreError> {
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
