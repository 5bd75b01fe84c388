//! Devices with their own credentials: trackers, alarm points, checkpoint terminals.
//!
//! An administrator issues a device's credential once (only a keyed hash is kept) and can
//! revoke it. A device authenticates with its unique id and secret and can then act only
//! on its own records.

use fangkong_core::audit::Outcome;
use fangkong_core::auth::account::{Device, check_unique_id};
use fangkong_core::auth::{Action, Actor, Denial, DeviceActor, DeviceKind};
use fangkong_core::event::{DeviceSummary, Event};
use fangkong_core::keys::hmac_sha256;
use fangkong_core::time::Timestamp;
use fangkong_geo::LatLon;
use fangkong_store::{Audited, Outbox};

use crate::crypto;
use crate::guard::{Record, Reference};
use crate::{Caller, Engine, EngineError};

/// A device to register.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDevice {
    pub unique_id: String,
    pub kind: DeviceKind,
    pub unit: Option<String>,
    pub jurisdiction: String,
    /// What people call the place of a fixed device (an alarm point's shop, a checkpoint).
    pub name: Option<String>,
    /// Where a fixed device stands: inside the city and inside its jurisdiction.
    pub location: Option<LatLon>,
}

/// A fixed device on the map — an alarm point (报警点) or a checkpoint (卡口) terminal — and
/// whether it is reporting: online while its last heartbeat (or fix) is more recent than
/// the supervision window ([`crate::avl::AvlConfig::device_offline_ms`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub unique_id: String,
    pub kind: DeviceKind,
    pub name: Option<String>,
    pub location: LatLon,
    pub jurisdiction: String,
    pub last_seen_at: Option<Timestamp>,
    pub online: bool,
}

/// The longest name a device's place may have, in characters.
const MAX_SITE_NAME: usize = 100;

impl Engine {
    fn secret_hash(&self, secret: &str) -> [u8; 32] {
        hmac_sha256(&self.config.keys.device_secrets(), secret.as_bytes())
    }

    fn existing_device(&self, unique_id: &str) -> Result<Device, EngineError> {
        self.identity
            .devices
            .read()
            .expect("devices lock")
            .get(unique_id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound { entity: "device", key: unique_id.into() })
    }

    /// Registers a device and returns it with its secret, which is shown this once.
    pub async fn add_device(&self, caller: &Caller, new: NewDevice) -> Result<(Device, String), EngineError> {
        if !check_unique_id(&new.unique_id) {
            return Err(EngineError::Invalid {
                field: "unique_id",
                message: "1–64 printable characters without spaces".into(),
            });
        }
        let place = self
            .chain_of(&new.jurisdiction)
            .ok_or_else(|| EngineError::NotFound { entity: "jurisdiction", key: new.jurisdiction.clone() })?;
        self.authorize(caller, Action::ManageDevices, Some(&place), "device.add", Some(("device", &new.unique_id)))
            .await?;
        // A tracker bound to a unit reports that unit's positions: a user may only name a
        // unit their jurisdiction holds. (An alarm point's `unit` names its site instead; the
        // operator at the terminal may register a tracker before its unit, as fleets are
        // often equipped first.)
        if let Some(unit) = &new.unit
            && new.kind == DeviceKind::Tracker
            && !matches!(caller.actor, Actor::System { .. })
        {
            let reference = Reference::new("unit", Record::PoliceUnit(unit), Action::ReadForces).or_not_found("unit");
            self.authorize_reference(caller, Action::ManageDevices, "device.add", reference).await?;
        }
        let name = new.name.map(|name| name.trim().to_string()).filter(|name| !name.is_empty());
        if name
            .as_ref()
            .is_some_and(|name| name.chars().count() > MAX_SITE_NAME || fangkong_core::text::has_hidden(name, false))
        {
            return Err(EngineError::Invalid {
                field: "name",
                message: format!("at most {MAX_SITE_NAME} characters, no control or invisible formatting characters"),
            });
        }
        if let Some(point) = new.location {
            self.check_site_location(point, &new.jurisdiction)?;
        }
        let secret = crypto::new_token();
        let _serial = self.admin_writes.lock().await;
        let now = self.now();
        let device = Device {
            id: 0,
            unique_id: new.unique_id,
            kind: new.kind,
            unit: new.unit,
            jurisdiction: new.jurisdiction,
            name,
            location: new.location,
            secret_hash: self.secret_hash(&secret),
            created_at: now,
            revoked_at: None,
            last_seen_at: None,
        };
        let entry = caller
            .entry(now, "device.add", Outcome::Allowed)
            .target("device", &device.unique_id)
            .detail(format!("{} in {}", device.kind, device.jurisdiction));
        let summary = DeviceSummary::from(&device);
        let outbox = Outbox::of_new_rows(now, move |ids| {
            vec![Event::DeviceChanged(DeviceSummary { device_id: ids[0], ..summary.clone() })]
        });
        let stored = self.store.insert_device(&device, Audited::new(entry, outbox)).await?;
        self.identity.devices.write().expect("devices lock").insert(stored.unique_id.clone(), stored.clone());
        self.publish(now, Event::DeviceChanged(DeviceSummary::from(&stored)));
        Ok((stored, secret))
    }

    /// Revokes a device's credential for good (register it again for a new one).
    pub async fn revoke_device(&self, caller: &Caller, unique_id: &str) -> Result<Device, EngineError> {
        // The role first, so callers without it learn nothing about which devices exist.
        self.authorize(caller, Action::ManageDevices, None, "device.revoke", Some(("device", unique_id))).await?;
        let device = self.existing_device(unique_id)?;
        let place = self
            .chain_of(&device.jurisdiction)
            .ok_or_else(|| EngineError::NotFound { entity: "jurisdiction", key: device.jurisdiction.clone() })?;
        self.authorize(caller, Action::ManageDevices, Some(&place), "device.revoke", Some(("device", unique_id)))
            .await?;
        let _serial = self.admin_writes.lock().await;
        let now = self.now();
        let device = self.existing_device(unique_id)?;
        if device.revoked_at.is_some() {
            return Ok(device);
        }
        let updated = Device { revoked_at: Some(now), ..device };
        let entry = caller.entry(now, "device.revoke", Outcome::Allowed).target("device", unique_id);
        let changed = Event::DeviceChanged(DeviceSummary::from(&updated));
        self.store.update_device(&updated, Some(Audited::new(entry, Outbox::new(now, [&changed])))).await?;
        self.identity.devices.write().expect("devices lock").insert(updated.unique_id.clone(), updated.clone());
        self.publish(now, changed);
        Ok(updated)
    }

    /// The devices in the caller's jurisdiction.
    pub async fn devices(&self, caller: &Caller) -> Result<Vec<Device>, EngineError> {
        self.authorize(caller, Action::ReadDevices, None, "device.list", None).await?;
        let mut devices: Vec<Device> = self.identity.devices.read().expect("devices lock").values().cloned().collect();
        devices.retain(|device| {
            self.chain_of(&device.jurisdiction)
                .is_some_and(|chain| caller.actor.check_in(Action::ReadDevices, &chain).is_ok())
        });
        devices.sort_by_key(|device| device.id);
        Ok(devices)
    }

    /// A fixed device must stand in the city and inside its own jurisdiction, or the
    /// board would draw it where nobody responsible for it looks.
    fn check_site_location(&self, point: LatLon, jurisdiction: &str) -> Result<(), EngineError> {
        let Some(location) = self.place(point) else {
            return Err(EngineError::Invalid { field: "location", message: format!("{point} is outside the city") });
        };
        let Some(node) = self.jurisdiction(jurisdiction) else {
            return Err(EngineError::NotFound { entity: "jurisdiction", key: jurisdiction.to_string() });
        };
        // Police stations and districts have no shapes of their own here; the check is
        // made on the administrative tree, where the point's chain says something.
        match location.chain.get(node.kind) {
            Some(code) if code != jurisdiction => Err(EngineError::Invalid {
                field: "location",
                message: format!("{point} lies in {code}, outside the device's jurisdiction {jurisdiction}"),
            }),
            _ => Ok(()),
        }
    }

    /// The alarm points and checkpoint terminals in the caller's jurisdiction that have a
    /// location, with whether each is reporting — for the board's map and the supervision
    /// of the 110 centre. No credentials, nothing personal: those who may see the live
    /// positions of the force may see these.
    pub async fn sites(&self, caller: &Caller) -> Result<Vec<Site>, EngineError> {
        self.authorize(caller, Action::ReadPositions, None, "site.list", None).await?;
        let now = self.now();
        let window = self.config.avl.device_offline_ms;
        let devices: Vec<Device> = self.identity.devices.read().expect("devices lock").values().cloned().collect();
        let mut sites: Vec<Site> = devices
            .into_iter()
            .filter(|device| device.kind != DeviceKind::Tracker && device.revoked_at.is_none())
            .filter_map(|device| {
                let location = device.location?;
                let chain = self.chain_of(&device.jurisdiction)?;
                caller.actor.check_in(Action::ReadPositions, &chain).ok()?;
                let online = device.last_seen_at.is_some_and(|seen| now.millis_since(seen) <= window);
                Some(Site {
                    unique_id: device.unique_id,
                    kind: device.kind,
                    name: device.name,
                    location,
                    jurisdiction: device.jurisdiction,
                    last_seen_at: device.last_seen_at,
                    online,
                })
            })
            .collect();
        sites.sort_by(|a, b| a.unique_id.cmp(&b.unique_id));
        Ok(sites)
    }

    /// Checks a device's credential. Unknown ids and wrong secrets are one answer;
    /// a revoked device is told so. Failures are audited.
    pub async fn authenticate_device(
        &self,
        unique_id: &str,
        secret: &str,
        ip: Option<&str>,
    ) -> Result<DeviceActor, EngineError> {
        let device = self.identity.devices.read().expect("devices lock").get(unique_id).cloned();
        let verdict = match &device {
            Some(device) if crypto::constant_time_eq(&device.secret_hash, &self.secret_hash(secret)) => {
                match device.revoked_at {
                    Some(_) => Err(("revoked credential", EngineError::DeviceRevoked)),
                    None => {
                        Ok(DeviceActor { device_id: device.id, unique_id: device.unique_id.clone(), kind: device.kind })
                    }
                }
            }
            Some(_) => Err(("wrong secret", EngineError::Unauthenticated)),
            None => Err(("unknown device", EngineError::Unauthenticated)),
        };
        match verdict {
            Ok(actor) => Ok(actor),
            Err((reason, error)) => {
                let entry =
                    self.anonymous_entry(self.now(), unique_id, ip, "device.auth", Outcome::Failed).detail(reason);
                self.store.append_audit(&entry).await?;
                Err(error)
            }
        }
    }

    /// A device reports that it is alive. A device may only report for itself.
    pub async fn device_heartbeat(&self, caller: &Caller, unique_id: &str) -> Result<Device, EngineError> {
        let Actor::Device(actor) = &caller.actor else {
            return Err(EngineError::Denied(Denial::NotAUser));
        };
        if actor.unique_id != unique_id {
            let entry = caller
                .entry(self.now(), "device.heartbeat", Outcome::Denied)
                .target("device", unique_id)
                .detail(Denial::NotOwnDevice.to_string());
            self.store.append_audit(&entry).await?;
            return Err(EngineError::Denied(Denial::NotOwnDevice));
        }
        let device = self.existing_device(unique_id)?;
        if device.revoked_at.is_some() {
            return Err(EngineError::DeviceRevoked);
        }
        let now = self.now();
        self.store.touch_device(device.id, now).await?;
        let seen = {
            let mut devices = self.identity.devices.write().expect("devices lock");
            let stored = devices.get_mut(unique_id).ok_or(EngineError::DeviceRevoked)?;
            stored.last_seen_at = Some(now.max(stored.last_seen_at.unwrap_or(now)));
            stored.clone()
        };
        self.publish(now, Event::DeviceSeen { unique_id: unique_id.to_string(), at: now });
        Ok(seen)
    }
}
