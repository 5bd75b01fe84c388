//! Jurisdictions, users, sessions and devices in the store. Every change that an audit
//! record describes is written in the same transaction as that record: both or neither.

use fangkong_core::audit::AuditRecord;

use fangkong_core::audit::AuditEntry;

use crate::outbox::{Audited, Outbox};
use fangkong_core::auth::account::{Device, Session, User};
use fangkong_core::auth::lockout::LoginState;
use fangkong_core::auth::{DeviceKind, Role};
use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_core::time::Timestamp;
use fangkong_geo::Area;

use crate::{Store, StoreError};

impl Store {
    pub async fn list_jurisdictions(&self) -> Result<Vec<Jurisdiction>, StoreError> {
        dispatch!(self.list_jurisdictions())
    }

    /// Inserts nodes (parents before children) and the audit record, all or nothing.
    pub async fn insert_jurisdictions(
        &self,
        nodes: &[Jurisdiction],
        at: Timestamp,
        entry: impl Into<Audited>,
    ) -> Result<AuditRecord, StoreError> {
        let added: Vec<_> = nodes.iter().map(|node| NodeWrite { node: node.clone(), shape: None }).collect();
        self.save_jurisdictions(&added, &[], at, entry).await
    }

    /// Inserts `added` (parents before children; a taken code is [`StoreError::Conflict`]),
    /// updates the names and, where given, the shapes of `changed` (a missing code is
    /// [`StoreError::NotFound`]), and appends the audit record: all or nothing.
    pub async fn save_jurisdictions(
        &self,
        added: &[NodeWrite],
        changed: &[NodeWrite],
        at: Timestamp,
        entry: impl Into<Audited>,
    ) -> Result<AuditRecord, StoreError> {
        let key = self.audit_key()?;
        let encode = |writes: &[NodeWrite]| -> Vec<EncodedNode> {
            writes.iter().map(|w| (w.node.clone(), w.shape.as_ref().map(Area::to_wkb))).collect()
        };
        let (added, changed) = (encode(added), encode(changed));
        let entry = &entry.into();
        dispatch!(self.save_jurisdictions(key, added, changed, at, entry))
    }

    /// Every stored shape, by node code. A blob that does not decode is
    /// [`StoreError::Corrupt`] naming the node.
    pub async fn list_jurisdiction_shapes(&self) -> Result<Vec<(String, Area)>, StoreError> {
        let rows: Vec<(String, Vec<u8>)> = dispatch!(self.list_jurisdiction_shapes())?;
        rows.into_iter()
            .map(|(code, bytes)| match Area::from_wkb(&bytes) {
                Ok(area) => Ok((code, area)),
                Err(error) => Err(StoreError::Corrupt(format!("jurisdiction {code} has a bad shape: {error}"))),
            })
            .collect()
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        dispatch!(self.list_users())
    }

    pub async fn get_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        dispatch!(self.get_user_by_username(username))
    }

    /// Inserts a user (its `id` is assigned) with its audit record; returns the stored user.
    /// A taken username is [`StoreError::Conflict`].
    pub async fn insert_user(&self, user: &User, entry: impl Into<Audited>) -> Result<User, StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.insert_user(key, user, entry))
    }

    /// Replaces a user's row if it is still as it was when read (its `updated_at` is
    /// `expected_updated_at`); with `revoke_sessions_at`, ends all their sessions too (lock,
    /// disable, password reset). The audit records are written in the same transaction.
    ///
    /// A row changed since it was read (by another process or node) is
    /// [`StoreError::Conflict`]: re-read and decide again, so that no change is overwritten
    /// by one decided on stale data.
    pub async fn update_user(
        &self,
        user: &User,
        expected_updated_at: Timestamp,
        revoke_sessions_at: Option<Timestamp>,
        entries: &[AuditEntry],
        outbox: Outbox,
    ) -> Result<(), StoreError> {
        let key = self.audit_key()?;
        // The events go with the first record (all are written in one transaction).
        let mut outbox = Some(outbox);
        let entries: Vec<Audited> =
            entries.iter().map(|entry| Audited::new(entry.clone(), outbox.take().unwrap_or_default())).collect();
        let entries = entries.as_slice();
        dispatch!(self.update_user(key, user, expected_updated_at, revoke_sessions_at, entries))
    }

    /// Sessions not revoked and created after `created_after` (older ones are past their
    /// absolute lifetime), for loading into memory at start.
    pub async fn list_live_sessions(&self, created_after: Timestamp) -> Result<Vec<Session>, StoreError> {
        dispatch!(self.list_live_sessions(created_after))
    }

    pub async fn insert_session(&self, session: &Session, entry: impl Into<Audited>) -> Result<(), StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.insert_session(key, session, entry))
    }

    /// Records when sessions were last used (batched: the idle clock needs minutes, not
    /// milliseconds, of precision across a restart).
    pub async fn touch_sessions(&self, touches: &[([u8; 32], Timestamp)]) -> Result<(), StoreError> {
        dispatch!(self.touch_sessions(touches))
    }

    pub async fn revoke_session(
        &self,
        token_hash: [u8; 32],
        at: Timestamp,
        entry: impl Into<Audited>,
    ) -> Result<(), StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.revoke_session(key, token_hash, at, entry))
    }

    pub async fn list_devices(&self) -> Result<Vec<Device>, StoreError> {
        dispatch!(self.list_devices())
    }

    /// Inserts a device (its `id` is assigned) with its audit record. A taken unique id is
    /// [`StoreError::Conflict`].
    pub async fn insert_device(&self, device: &Device, entry: impl Into<Audited>) -> Result<Device, StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.insert_device(key, device, entry))
    }

    pub async fn update_device(&self, device: &Device, entry: Option<Audited>) -> Result<(), StoreError> {
        let key = self.audit_key()?;
        let entry = entry.as_ref();
        dispatch!(self.update_device(key, device, entry))
    }

    /// Records that a device was heard from, touching nothing else (so a heartbeat can never
    /// undo a concurrent revocation).
    pub async fn touch_device(&self, device_id: i64, at: Timestamp) -> Result<(), StoreError> {
        dispatch!(self.touch_device(device_id, at))
    }
}

// ---- rows shared by both backends --------------------------------------------------------

/// A jurisdiction to insert or update, with its shape (WGS84) when it has one.
#[derive(Clone, Debug)]
pub struct NodeWrite {
    pub node: Jurisdiction,
    pub shape: Option<Area>,
}

/// A node and its shape as WKB, as the backends write it.
pub(crate) type EncodedNode = (Jurisdiction, Option<Vec<u8>>);

pub(crate) struct JurisdictionRow {
    pub code: String,
    pub kind: String,
    pub parent: Option<String>,
    pub name_zh: String,
    pub name_en: Option<String>,
}

impl JurisdictionRow {
    pub fn into_domain(self) -> Result<Jurisdiction, StoreError> {
        let kind = JurisdictionKind::parse(&self.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("jurisdiction {} has kind {:?}", self.code, self.kind)))?;
        Ok(Jurisdiction { code: self.code, kind, parent: self.parent, name_zh: self.name_zh, name_en: self.name_en })
    }
}

pub(crate) const USER_COLUMNS: &str = "id, username, display_name, role, jurisdiction, password_hash, \
     password_changed_at, totp_secret, totp_pending, totp_last_step, failed_logins, locked_until, disabled, \
     created_at, updated_at";

pub(crate) struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub jurisdiction: String,
    pub password_hash: String,
    pub password_changed_at: i64,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_pending: bool,
    pub totp_last_step: Option<i64>,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRow {
    pub fn into_domain(self) -> Result<User, StoreError> {
        let role = Role::parse(&self.role)
            .ok_or_else(|| StoreError::Corrupt(format!("user {} has role {:?}", self.username, self.role)))?;
        Ok(User {
            id: self.id,
            username: self.username,
            display_name: self.display_name,
            role,
            jurisdiction: self.jurisdiction,
            password_hash: self.password_hash,
            password_changed_at: Timestamp::from_millis(self.password_changed_at),
            totp_secret: self.totp_secret,
            totp_pending: self.totp_pending,
            totp_last_step: self.totp_last_step,
            login: LoginState {
                failed_attempts: u32::try_from(self.failed_logins).unwrap_or(u32::MAX),
                locked_until: self.locked_until.map(Timestamp::from_millis),
            },
            disabled: self.disabled,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

pub(crate) const SESSION_COLUMNS: &str = "token_hash, user_id, created_at, last_used_at, revoked_at, ip";

pub(crate) struct SessionRow {
    pub token_hash: Vec<u8>,
    pub user_id: i64,
    pub created_at: i64,
    pub last_used_at: i64,
    pub revoked_at: Option<i64>,
    pub ip: Option<String>,
}

impl SessionRow {
    pub fn into_domain(self) -> Result<Session, StoreError> {
        Ok(Session {
            token_hash: crate::audit::hash32(&self.token_hash, "session token hash")?,
            user_id: self.user_id,
            created_at: Timestamp::from_millis(self.created_at),
            last_used_at: Timestamp::from_millis(self.last_used_at),
            revoked_at: self.revoked_at.map(Timestamp::from_millis),
            ip: self.ip,
        })
    }
}

pub(crate) const DEVICE_COLUMNS: &str =
    "id, unique_id, kind, unit, jurisdiction, secret_hash, created_at, revoked_at, last_seen_at, name, lat, lon";

pub(crate) struct DeviceRow {
    pub id: i64,
    pub unique_id: String,
    pub kind: String,
    pub unit: Option<String>,
    pub jurisdiction: String,
    pub secret_hash: Vec<u8>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub name: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

impl DeviceRow {
    pub fn into_domain(self) -> Result<Device, StoreError> {
        let kind = DeviceKind::parse(&self.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("device {} has kind {:?}", self.unique_id, self.kind)))?;
        let location = match (self.lat, self.lon) {
            (Some(lat), Some(lon)) => Some(
                fangkong_geo::LatLon::new(lat, lon)
                    .map_err(|e| StoreError::Corrupt(format!("device {} location: {e}", self.unique_id)))?,
            ),
            _ => None,
        };
        Ok(Device {
            id: self.id,
            unique_id: self.unique_id,
            name: self.name,
            location,
            kind,
            unit: self.unit,
            jurisdiction: self.jurisdiction,
            secret_hash: crate::audit::hash32(&self.secret_hash, "device secret hash")?,
            created_at: Timestamp::from_millis(self.created_at),
            revoked_at: self.revoked_at.map(Timestamp::from_millis),
            last_seen_at: self.last_seen_at.map(Timestamp::from_millis),
        })
    }
}
