//! Code tables on SQLite.

use fangkong_core::codes::{CodeEntry, CodeKind};
use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use super::audit::append_in;
use crate::error::is_sqlite_unique_violation;
use crate::outbox::Audited;
use crate::{CodeRow, StoreError};

const COLUMNS: &str = "kind, code, name_zh, name_en, priority, active, updated_at";

fn code_row(row: &Row<'_>) -> rusqlite::Result<CodeRow> {
    Ok(CodeRow {
        kind: row.get(0)?,
        code: row.get(1)?,
        name_zh: row.get(2)?,
        name_en: row.get(3)?,
        priority: row.get(4)?,
        active: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

impl SqliteStore {
    pub async fn list_codes(&self) -> Result<Vec<CodeEntry>, StoreError> {
        self.read(|conn| {
            let mut statement =
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM code_entries ORDER BY kind, code"))?;
            let rows = statement.query_map([], code_row)?.collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(CodeRow::into_domain).collect()
        })
        .await
    }

    pub async fn get_code(&self, kind: CodeKind, code: &str) -> Result<Option<CodeEntry>, StoreError> {
        let code = code.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM code_entries WHERE kind = ?1 AND code = ?2"))?
                .query_row(params![kind.as_str(), code], code_row)
                .optional()?
                .map(CodeRow::into_domain)
                .transpose()
        })
        .await
    }

    pub async fn insert_codes(
        &self,
        entries: &[CodeEntry],
        audit: Option<([u8; 32], Audited)>,
    ) -> Result<(), StoreError> {
        let entries = entries.to_vec();
        self.write(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!("INSERT INTO code_entries ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"))?;
            for entry in &entries {
                statement
                    .execute(params![
                        entry.kind.as_str(),
                        entry.code,
                        entry.name_zh,
                        entry.name_en,
                        entry.priority,
                        entry.active,
                        entry.updated_at.as_millis()
                    ])
                    .map_err(|error| match is_sqlite_unique_violation(&error) {
                        true => StoreError::Conflict { entity: "code", key: format!("{}/{}", entry.kind, entry.code) },
                        false => error.into(),
                    })?;
            }
            if let Some((key, entry)) = &audit {
                append_in(conn, key, entry)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn update_code(&self, entry: &CodeEntry, audit: Option<([u8; 32], Audited)>) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE code_entries SET name_zh = ?3, name_en = ?4, priority = ?5, active = ?6, updated_at = ?7
                     WHERE kind = ?1 AND code = ?2",
                )?
                .execute(params![
                    entry.kind.as_str(),
                    entry.code,
                    entry.name_zh,
                    entry.name_en,
                    entry.priority,
                    entry.active,
                    entry.updated_at.as_millis()
                ])?;
            if changed == 0 {
                return Err(StoreError::NotFound { entity: "code", key: format!("{}/{}", entry.kind, entry.code) });
            }
            if let Some((key, audit)) = &audit {
                append_in(conn, key, audit)?;
            }
            Ok(())
        })
        .await
    }
}
