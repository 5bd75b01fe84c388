//! Jurisdictions, users, sessions and devices on PostgreSQL.

use fangkong_core::audit::AuditRecord;
use fangkong_core::auth::account::{Device, Session, User};
use fangkong_core::jurisdiction::Jurisdiction;
use fangkong_core::time::Timestamp;
use tokio_postgres::Row;

use super::PgStore;
use super::audit::append_in;
use crate::StoreError;
use crate::error::is_postgres_unique_violation;
use crate::identity::{
    DEVICE_COLUMNS, DeviceRow, EncodedNode, JurisdictionRow, SESSION_COLUMNS, SessionRow, USER_COLUMNS, UserRow,
};
use crate::outbox::Audited;

fn user_row(row: &Row) -> UserRow {
    UserRow {
        id: row.get(0),
        username: row.get(1),
        display_name: row.get(2),
        role: row.get(3),
        jurisdiction: row.get(4),
        password_hash: row.get(5),
        password_changed_at: row.get(6),
        totp_secret: row.get(7),
        totp_pending: row.get(8),
        totp_last_step: row.get(9),
        failed_logins: i64::from(row.get::<_, i32>(10)),
        locked_until: row.get(11),
        disabled: row.get(12),
        created_at: row.get(13),
        updated_at: row.get(14),
    }
}

fn session_row(row: &Row) -> SessionRow {
    SessionRow {
        token_hash: row.get(0),
        user_id: row.get(1),
        created_at: row.get(2),
        last_used_at: row.get(3),
        revoked_at: row.get(4),
        ip: row.get(5),
    }
}

fn device_row(row: &Row) -> DeviceRow {
    DeviceRow {
        id: row.get(0),
        unique_id: row.get(1),
        kind: row.get(2),
        unit: row.get(3),
        jurisdiction: row.get(4),
        secret_hash: row.get(5),
        created_at: row.get(6),
        revoked_at: row.get(7),
        last_seen_at: row.get(8),
        name: row.get(9),
        lat: row.get(10),
        lon: row.get(11),
    }
}

fn conflict(error: tokio_postgres::Error, entity: &'static str, key: &str) -> StoreError {
    if is_postgres_unique_violation(&error) {
        StoreError::Conflict { entity, key: key.to_string() }
    } else {
        error.into()
    }
}

impl PgStore {
    pub async fn list_jurisdictions(&self) -> Result<Vec<Jurisdiction>, StoreError> {
        let client = self.client().await?;
        let rows =
            client.query("SELECT code, kind, parent, name_zh, name_en FROM jurisdictions ORDER BY code", &[]).await?;
        rows.iter()
            .map(|r| {
                JurisdictionRow {
                    code: r.get(0),
                    kind: r.get(1),
                    parent: r.get(2),
                    name_zh: r.get(3),
                    name_en: r.get(4),
                }
                .into_domain()
            })
            .collect()
    }

    pub async fn save_jurisdictions(
        &self,
        key: [u8; 32],
        added: Vec<EncodedNode>,
        changed: Vec<EncodedNode>,
        at: Timestamp,
        entry: &Audited,
    ) -> Result<AuditRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO jurisdictions (code, kind, parent, name_zh, name_en, shape, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await?;
        // Parents come before children, so rows are inserted one after another (a
        // pipelined child could otherwise reach the server before its parent's row).
        for (node, shape) in &added {
            tx.execute(
                &insert,
                &[&node.code, &node.kind.as_str(), &node.parent, &node.name_zh, &node.name_en, shape, &at.as_millis()],
            )
            .await
            .map_err(|e| conflict(e, "jurisdiction", &node.code))?;
        }
        let update = tx
            .prepare_cached(
                "UPDATE jurisdictions SET name_zh = $2, name_en = $3, shape = coalesce($4, shape), updated_at = $5
                 WHERE code = $1",
            )
            .await?;
        for (node, shape) in &changed {
            if tx.execute(&update, &[&node.code, &node.name_zh, &node.name_en, shape, &at.as_millis()]).await? == 0 {
                return Err(StoreError::NotFound { entity: "jurisdiction", key: node.code.clone() });
            }
        }
        let record = append_in(&tx, &key, entry).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn list_jurisdiction_shapes(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let client = self.client().await?;
        let rows =
            client.query("SELECT code, shape FROM jurisdictions WHERE shape IS NOT NULL ORDER BY code", &[]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"), &[]).await?;
        rows.iter().map(|row| user_row(row).into_domain()).collect()
    }

    pub async fn get_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1")).await?;
        client.query_opt(&statement, &[&username]).await?.map(|row| user_row(&row).into_domain()).transpose()
    }

    pub async fn insert_user(&self, key: [u8; 32], user: &User, entry: &Audited) -> Result<User, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let failed = i32::try_from(user.login.failed_attempts).unwrap_or(i32::MAX);
        let row = tx
            .query_one(
                "INSERT INTO users (username, display_name, role, jurisdiction, password_hash, password_changed_at,
                     totp_secret, totp_pending, totp_last_step, failed_logins, locked_until, disabled, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                &[
                    &user.username,
                    &user.display_name,
                    &user.role.as_str(),
                    &user.jurisdiction,
                    &user.password_hash,
                    &user.password_changed_at.as_millis(),
                    &user.totp_secret,
                    &user.totp_pending,
                    &user.totp_last_step,
                    &failed,
                    &user.login.locked_until.map(Timestamp::as_millis),
                    &user.disabled,
                    &user.created_at.as_millis(),
                    &user.updated_at.as_millis(),
                ],
            )
            .await
            .map_err(|e| conflict(e, "user", &user.username))?;
        let stored = User { id: row.get(0), ..user.clone() };
        append_in(&tx, &key, &entry.with_ids(&[stored.id])).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub async fn update_user(
        &self,
        key: [u8; 32],
        user: &User,
        expected_updated_at: Timestamp,
        revoke_sessions_at: Option<Timestamp>,
        entries: &[Audited],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let failed = i32::try_from(user.login.failed_attempts).unwrap_or(i32::MAX);
        let changed = tx
            .execute(
                "UPDATE users SET display_name = $2, role = $3, jurisdiction = $4, password_hash = $5,
                     password_changed_at = $6, totp_secret = $7, totp_pending = $8, totp_last_step = $9,
                     failed_logins = $10, locked_until = $11, disabled = $12, updated_at = $13
                 WHERE id = $1 AND updated_at = $14",
                &[
                    &user.id,
                    &user.display_name,
                    &user.role.as_str(),
                    &user.jurisdiction,
                    &user.password_hash,
                    &user.password_changed_at.as_millis(),
                    &user.totp_secret,
                    &user.totp_pending,
                    &user.totp_last_step,
                    &failed,
                    &user.login.locked_until.map(Timestamp::as_millis),
                    &user.disabled,
                    &user.updated_at.as_millis(),
                    &expected_updated_at.as_millis(),
                ],
            )
            .await?;
        if changed == 0 {
            let exists = tx.query_opt("SELECT 1 FROM users WHERE id = $1", &[&user.id]).await?.is_some();
            return Err(match exists {
                true => StoreError::Conflict { entity: "user", key: user.username.clone() },
                false => StoreError::NotFound { entity: "user", key: user.username.clone() },
            });
        }
        if let Some(at) = revoke_sessions_at {
            tx.execute(
                "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
                &[&user.id, &at.as_millis()],
            )
            .await?;
        }
        for entry in entries {
            append_in(&tx, &key, entry).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_live_sessions(&self, created_after: Timestamp) -> Result<Vec<Session>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE revoked_at IS NULL AND created_at > $1"),
                &[&created_after.as_millis()],
            )
            .await?;
        rows.iter().map(|row| session_row(row).into_domain()).collect()
    }

    pub async fn insert_session(&self, key: [u8; 32], session: &Session, entry: &Audited) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            &format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
            &[
                &&session.token_hash[..],
                &session.user_id,
                &session.created_at.as_millis(),
                &session.last_used_at.as_millis(),
                &session.revoked_at.map(Timestamp::as_millis),
                &session.ip,
            ],
        )
        .await?;
        append_in(&tx, &key, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn touch_sessions(&self, touches: &[([u8; 32], Timestamp)]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let statement = tx
            .prepare_cached("UPDATE sessions SET last_used_at = GREATEST(last_used_at, $2) WHERE token_hash = $1")
            .await?;
        for (hash, at) in touches {
            tx.execute(&statement, &[&&hash[..], &at.as_millis()]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn revoke_session(
        &self,
        key: [u8; 32],
        token_hash: [u8; 32],
        at: Timestamp,
        entry: &Audited,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "UPDATE sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
            &[&&token_hash[..], &at.as_millis()],
        )
        .await?;
        append_in(&tx, &key, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_devices(&self) -> Result<Vec<Device>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(&format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY id"), &[]).await?;
        rows.iter().map(|row| device_row(row).into_domain()).collect()
    }

    pub async fn insert_device(&self, key: [u8; 32], device: &Device, entry: &Audited) -> Result<Device, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "INSERT INTO devices (unique_id, kind, unit, jurisdiction, secret_hash, created_at, revoked_at, last_seen_at,
                                      name, lat, lon)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                &[
                    &device.unique_id,
                    &device.kind.as_str(),
                    &device.unit,
                    &device.jurisdiction,
                    &&device.secret_hash[..],
                    &device.created_at.as_millis(),
                    &device.revoked_at.map(Timestamp::as_millis),
                    &device.last_seen_at.map(Timestamp::as_millis),
                    &device.name,
                    &device.location.map(|p| p.lat()),
                    &device.location.map(|p| p.lon()),
                ],
            )
            .await
            .map_err(|e| conflict(e, "device", &device.unique_id))?;
        let stored = Device { id: row.get(0), ..device.clone() };
        append_in(&tx, &key, &entry.with_ids(&[stored.id])).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub async fn update_device(
        &self,
        key: [u8; 32],
        device: &Device,
        entry: Option<&Audited>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE devices SET unit = $2, jurisdiction = $3, secret_hash = $4, revoked_at = $5, last_seen_at = $6,
                                    name = $7, lat = $8, lon = $9
                 WHERE id = $1",
                &[
                    &device.id,
                    &device.unit,
                    &device.jurisdiction,
                    &&device.secret_hash[..],
                    &device.revoked_at.map(Timestamp::as_millis),
                    &device.last_seen_at.map(Timestamp::as_millis),
                    &device.name,
                    &device.location.map(|p| p.lat()),
                    &device.location.map(|p| p.lon()),
                ],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound { entity: "device", key: device.unique_id.clone() });
        }
        if let Some(entry) = entry {
            append_in(&tx, &key, entry).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn touch_device(&self, device_id: i64, at: Timestamp) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE devices SET last_seen_at = GREATEST(COALESCE(last_seen_at, 0), $2) WHERE id = $1",
                &[&device_id, &at.as_millis()],
            )
            .await?;
        Ok(())
    }
}
