//! Jurisdictions, users, sessions and devices on SQLite.

use fangkong_core::audit::AuditRecord;
use fangkong_core::auth::account::{Device, Session, User};
use fangkong_core::jurisdiction::Jurisdiction;
use fangkong_core::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::audit::append_in;
use crate::StoreError;
use crate::error::is_sqlite_unique_violation;
use crate::identity::{
    DEVICE_COLUMNS, DeviceRow, EncodedNode, JurisdictionRow, SESSION_COLUMNS, SessionRow, USER_COLUMNS, UserRow,
};
use crate::outbox::Audited;

fn user_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(0)?,
        username: row.get(1)?,
        display_name: row.get(2)?,
        role: row.get(3)?,
        jurisdiction: row.get(4)?,
        password_hash: row.get(5)?,
        password_changed_at: row.get(6)?,
        totp_secret: row.get(7)?,
        totp_pending: row.get(8)?,
        totp_last_step: row.get(9)?,
        failed_logins: row.get(10)?,
        locked_until: row.get(11)?,
        disabled: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
    })
}

fn session_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        token_hash: row.get(0)?,
        user_id: row.get(1)?,
        created_at: row.get(2)?,
        last_used_at: row.get(3)?,
        revoked_at: row.get(4)?,
        ip: row.get(5)?,
    })
}

fn device_row(row: &Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        id: row.get(0)?,
        unique_id: row.get(1)?,
        kind: row.get(2)?,
        unit: row.get(3)?,
        jurisdiction: row.get(4)?,
        secret_hash: row.get(5)?,
        created_at: row.get(6)?,
        revoked_at: row.get(7)?,
        last_seen_at: row.get(8)?,
        name: row.get(9)?,
        lat: row.get(10)?,
        lon: row.get(11)?,
    })
}

fn conflict(error: rusqlite::Error, entity: &'static str, key: &str) -> StoreError {
    if is_sqlite_unique_violation(&error) {
        StoreError::Conflict { entity, key: key.to_string() }
    } else {
        error.into()
    }
}

fn write_user(conn: &Connection, user: &User, expected_updated_at: Timestamp) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE users SET display_name = ?2, role = ?3, jurisdiction = ?4, password_hash = ?5,
                 password_changed_at = ?6, totp_secret = ?7, totp_pending = ?8, totp_last_step = ?9,
                 failed_logins = ?10, locked_until = ?11, disabled = ?12, updated_at = ?13
             WHERE id = ?1 AND updated_at = ?14",
        )?
        .execute(params![
            user.id,
            user.display_name,
            user.role.as_str(),
            user.jurisdiction,
            user.password_hash,
            user.password_changed_at.as_millis(),
            user.totp_secret,
            user.totp_pending,
            user.totp_last_step,
            user.login.failed_attempts,
            user.login.locked_until.map(Timestamp::as_millis),
            user.disabled,
            user.updated_at.as_millis(),
            expected_updated_at.as_millis()
        ])?)
}

impl SqliteStore {
    pub async fn list_jurisdictions(&self) -> Result<Vec<Jurisdiction>, StoreError> {
        self.read(|conn| {
            let mut statement =
                conn.prepare_cached("SELECT code, kind, parent, name_zh, name_en FROM jurisdictions ORDER BY code")?;
            let rows = statement
                .query_map([], |r| {
                    Ok(JurisdictionRow {
                        code: r.get(0)?,
                        kind: r.get(1)?,
                        parent: r.get(2)?,
                        name_zh: r.get(3)?,
                        name_en: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(JurisdictionRow::into_domain).collect()
        })
        .await
    }

    pub async fn save_jurisdictions(
        &self,
        key: [u8; 32],
        added: Vec<EncodedNode>,
        changed: Vec<EncodedNode>,
        at: Timestamp,
        entry: &Audited,
    ) -> Result<AuditRecord, StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO jurisdictions (code, kind, parent, name_zh, name_en, shape, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (node, shape) in &added {
                insert
                    .execute(params![
                        node.code,
                        node.kind.as_str(),
                        node.parent,
                        node.name_zh,
                        node.name_en,
                        shape,
                        at.as_millis()
                    ])
                    .map_err(|e| conflict(e, "jurisdiction", &node.code))?;
            }
            let mut update = conn.prepare_cached(
                "UPDATE jurisdictions SET name_zh = ?2, name_en = ?3, shape = coalesce(?4, shape), updated_at = ?5
                 WHERE code = ?1",
            )?;
            for (node, shape) in &changed {
                if update.execute(params![node.code, node.name_zh, node.name_en, shape, at.as_millis()])? == 0 {
                    return Err(StoreError::NotFound { entity: "jurisdiction", key: node.code.clone() });
                }
            }
            append_in(conn, &key, &entry)
        })
        .await
    }

    pub async fn list_jurisdiction_shapes(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read(|conn| {
            let mut statement =
                conn.prepare_cached("SELECT code, shape FROM jurisdictions WHERE shape IS NOT NULL ORDER BY code")?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))?;
            let rows = statement.query_map([], user_row)?.collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(UserRow::into_domain).collect()
        })
        .await
    }

    pub async fn get_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let username = username.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"))?
                .query_row([username], user_row)
                .optional()?
                .map(UserRow::into_domain)
                .transpose()
        })
        .await
    }

    pub async fn insert_user(&self, key: [u8; 32], user: &User, entry: &Audited) -> Result<User, StoreError> {
        let (user, entry) = (user.clone(), entry.clone());
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO users (username, display_name, role, jurisdiction, password_hash, password_changed_at,
                     totp_secret, totp_pending, totp_last_step, failed_logins, locked_until, disabled, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                user.username,
                user.display_name,
                user.role.as_str(),
                user.jurisdiction,
                user.password_hash,
                user.password_changed_at.as_millis(),
                user.totp_secret,
                user.totp_pending,
                user.totp_last_step,
                user.login.failed_attempts,
                user.login.locked_until.map(Timestamp::as_millis),
                user.disabled,
                user.created_at.as_millis(),
                user.updated_at.as_millis()
            ])
            .map_err(|e| conflict(e, "user", &user.username))?;
            let stored = User { id: conn.last_insert_rowid(), ..user };
            append_in(conn, &key, &entry.with_ids(&[stored.id]))?;
            Ok(stored)
        })
        .await
    }

    pub async fn update_user(
        &self,
        key: [u8; 32],
        user: &User,
        expected_updated_at: Timestamp,
        revoke_sessions_at: Option<Timestamp>,
        entries: &[Audited],
    ) -> Result<(), StoreError> {
        let (user, entries) = (user.clone(), entries.to_vec());
        self.write(move |conn| {
            if write_user(conn, &user, expected_updated_at)? == 0 {
                let exists = conn.prepare_cached("SELECT 1 FROM users WHERE id = ?1")?.exists([user.id])?;
                return Err(match exists {
                    true => StoreError::Conflict { entity: "user", key: user.username.clone() },
                    false => StoreError::NotFound { entity: "user", key: user.username.clone() },
                });
            }
            if let Some(at) = revoke_sessions_at {
                conn.prepare_cached("UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL")?
                    .execute(params![user.id, at.as_millis()])?;
            }
            for entry in &entries {
                append_in(conn, &key, entry)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn list_live_sessions(&self, created_after: Timestamp) -> Result<Vec<Session>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE revoked_at IS NULL AND created_at > ?1"
            ))?;
            let rows = statement.query_map([created_after.as_millis()], session_row)?.collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(SessionRow::into_domain).collect()
        })
        .await
    }

    pub async fn insert_session(&self, key: [u8; 32], session: &Session, entry: &Audited) -> Result<(), StoreError> {
        let (session, entry) = (session.clone(), entry.clone());
        self.write(move |conn| {
            conn.prepare_cached(&format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"))?
                .execute(params![
                    &session.token_hash[..],
                    session.user_id,
                    session.created_at.as_millis(),
                    session.last_used_at.as_millis(),
                    session.revoked_at.map(Timestamp::as_millis),
                    session.ip
                ])?;
            append_in(conn, &key, &entry)?;
            Ok(())
        })
        .await
    }

    pub async fn touch_sessions(&self, touches: &[([u8; 32], Timestamp)]) -> Result<(), StoreError> {
        let touches = touches.to_vec();
        self.write(move |conn| {
            let mut statement =
                conn.prepare_cached("UPDATE sessions SET last_used_at = MAX(last_used_at, ?2) WHERE token_hash = ?1")?;
            for (hash, at) in &touches {
                statement.execute(params![&hash[..], at.as_millis()])?;
            }
            Ok(())
        })
        .await
    }

    pub async fn revoke_session(
        &self,
        key: [u8; 32],
        token_hash: [u8; 32],
        at: Timestamp,
        entry: &Audited,
    ) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.write(move |conn| {
            conn.prepare_cached("UPDATE sessions SET revoked_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL")?
                .execute(params![&token_hash[..], at.as_millis()])?;
            append_in(conn, &key, &entry)?;
            Ok(())
        })
        .await
    }

    pub async fn list_devices(&self) -> Result<Vec<Device>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(&format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY id"))?;
            let rows = statement.query_map([], device_row)?.collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(DeviceRow::into_domain).collect()
        })
        .await
    }

    pub async fn insert_device(&self, key: [u8; 32], device: &Device, entry: &Audited) -> Result<Device, StoreError> {
        let (device, entry) = (device.clone(), entry.clone());
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO devices (unique_id, kind, unit, jurisdiction, secret_hash, created_at, revoked_at, last_seen_at,
                                      name, lat, lon)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                device.unique_id,
                device.kind.as_str(),
                device.unit,
                device.jurisdiction,
                &device.secret_hash[..],
                device.created_at.as_millis(),
                device.revoked_at.map(Timestamp::as_millis),
                device.last_seen_at.map(Timestamp::as_millis),
                device.name,
                device.location.map(|p| p.lat()),
                device.location.map(|p| p.lon())
            ])
            .map_err(|e| conflict(e, "device", &device.unique_id))?;
            let stored = Device { id: conn.last_insert_rowid(), ..device };
            append_in(conn, &key, &entry.with_ids(&[stored.id]))?;
            Ok(stored)
        })
        .await
    }

    pub async fn update_device(
        &self,
        key: [u8; 32],
        device: &Device,
        entry: Option<&Audited>,
    ) -> Result<(), StoreError> {
        let (device, entry) = (device.clone(), entry.cloned());
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE devices SET unit = ?2, jurisdiction = ?3, secret_hash = ?4, revoked_at = ?5, last_seen_at = ?6,
                                        name = ?7, lat = ?8, lon = ?9
                     WHERE id = ?1",
                )?
                .execute(params![
                    device.id,
                    device.unit,
                    device.jurisdiction,
                    &device.secret_hash[..],
                    device.revoked_at.map(Timestamp::as_millis),
                    device.last_seen_at.map(Timestamp::as_millis),
                    device.name,
                    device.location.map(|p| p.lat()),
                    device.location.map(|p| p.lon())
                ])?;
            if changed == 0 {
                return Err(StoreError::NotFound { entity: "device", key: device.unique_id.clone() });
            }
            if let Some(entry) = &entry {
                append_in(conn, &key, entry)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn touch_device(&self, device_id: i64, at: Timestamp) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached("UPDATE devices SET last_seen_at = MAX(COALESCE(last_seen_at, 0), ?2) WHERE id = ?1")?
                .execute(params![device_id, at.as_millis()])?;
            Ok(())
        })
        .await
    }
}
