//! Tracker history: accepted fixes and the fixes the screen refused, written in batches.

use fangkong_core::avl::{Fix, Rejection};
use fangkong_core::time::Timestamp;
use fangkong_geo::LatLon;

use crate::{Store, StoreError};

/// An accepted fix as stored: the device, when it arrived, its H3 cell.
#[derive(Clone, PartialEq, Debug)]
pub struct StoredFix {
    pub device_id: i64,
    pub received_at: Timestamp,
    pub h3: Option<u64>,
    pub fix: Fix,
}

/// A fix the screen refused, with the reason.
#[derive(Clone, PartialEq, Debug)]
pub struct RejectedFix {
    pub device_id: i64,
    pub received_at: Timestamp,
    pub fixed_at: Timestamp,
    pub point: LatLon,
    pub reason: Rejection,
}

/// The minutes of an hour in which a unit was inside a beat (bit m: minute m, 0–59).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Presence {
    pub beat: String,
    pub unit: String,
    /// The hour's start.
    pub hour: Timestamp,
    pub minutes: u64,
}

/// Bits 0–59: the minutes of an hour.
pub const HOUR_MINUTES: u64 = (1 << 60) - 1;

impl Store {
    /// Adds minutes of presence: each row's minutes are OR-ed into what is stored for its
    /// beat, hour and unit, in one transaction (a row repeated or replayed adds nothing).
    /// Bits beyond minute 59 are refused by the database.
    pub async fn record_presence(&self, rows: Vec<Presence>) -> Result<(), StoreError> {
        dispatch!(self.record_presence(rows))
    }

    /// The presence rows of `beats` for the hours starting in `from..to`.
    pub async fn presence(
        &self,
        beats: Vec<String>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Presence>, StoreError> {
        dispatch!(self.presence(beats, from, to))
    }

    /// Deletes presence of hours that started before `before`; returns how many rows.
    pub async fn purge_presence(&self, before: Timestamp) -> Result<u64, StoreError> {
        dispatch!(self.purge_presence(before))
    }

    /// Writes a batch of accepted and refused fixes in one transaction. A fix whose device
    /// and time are already stored is skipped (a batch retried after a crash writes nothing
    /// twice) — but `outbox` is always stored with the batch. Returns the number of accepted
    /// fixes newly stored.
    pub async fn write_positions(
        &self,
        accepted: Vec<StoredFix>,
        rejected: Vec<RejectedFix>,
        outbox: crate::Outbox,
    ) -> Result<u64, StoreError> {
        dispatch!(self.write_positions(accepted, rejected, outbox))
    }

    /// A device's fixes with `from <= fixed_at < to`, oldest first, at most `limit`.
    pub async fn track(
        &self,
        device_id: i64,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<StoredFix>, StoreError> {
        dispatch!(self.track(device_id, from, to, limit))
    }

    /// A device's refused fixes received in `from..to`, newest first, at most `limit`.
    pub async fn rejections(
        &self,
        device_id: i64,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<RejectedFix>, StoreError> {
        dispatch!(self.rejections(device_id, from, to, limit))
    }

    /// Deletes a device's fixes (and refused fixes) older than `before`; returns how many.
    pub async fn purge_positions(&self, device_id: i64, before: Timestamp) -> Result<u64, StoreError> {
        dispatch!(self.purge_positions(device_id, before))
    }
}

// ---- the row form shared by both backends ----------------------------------------------------

/// The keys of the attributes column that are fields of [`Fix`].
const HDOP: &str = "hdop";
const ALARM: &str = "alarm";

/// The JSON object stored in `attributes`: the fix's free attributes plus `hdop` and `alarm`.
pub(crate) fn attributes_json(fix: &Fix) -> Option<String> {
    let mut object = serde_json::Map::new();
    for (key, value) in &fix.attributes {
        object.insert(key.clone(), serde_json::Value::String(value.clone()));
    }
    if let Some(hdop) = fix.hdop {
        object.insert(HDOP.into(), serde_json::json!(hdop));
    }
    if let Some(alarm) = &fix.alarm {
        object.insert(ALARM.into(), serde_json::Value::String(alarm.clone()));
    }
    (!object.is_empty()).then(|| serde_json::Value::Object(object).to_string())
}

pub(crate) struct PositionRow {
    pub device_id: i64,
    pub fixed_at: i64,
    pub received_at: i64,
    pub lat: f64,
    pub lon: f64,
    pub speed: Option<f64>,
    pub course: Option<f64>,
    pub altitude: Option<f64>,
    pub accuracy: Option<f64>,
    pub battery: Option<f64>,
    pub h3: Option<i64>,
    pub attributes: Option<String>,
}

pub(crate) const POSITION_COLUMNS: &str =
    "device_id, fixed_at, received_at, lat, lon, speed, course, altitude, accuracy, battery, h3, attributes";

impl PositionRow {
    pub fn into_domain(self) -> Result<StoredFix, StoreError> {
        let corrupt = |what: String| {
            StoreError::Corrupt(format!("position of device {} at {}: {what}", self.device_id, self.fixed_at))
        };
        let point = LatLon::new(self.lat, self.lon).map_err(|e| corrupt(e.to_string()))?;
        let mut fix = Fix::new(Timestamp::from_millis(self.fixed_at), point);
        fix.speed_mps = self.speed;
        fix.course_deg = self.course;
        fix.altitude_m = self.altitude;
        fix.accuracy_m = self.accuracy;
        fix.battery_pct = self.battery;
        if let Some(text) = &self.attributes {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
            let object = value.as_object().ok_or_else(|| corrupt("attributes are not an object".into()))?;
            for (key, value) in object {
                match (key.as_str(), value) {
                    (HDOP, value) => fix.hdop = value.as_f64(),
                    (ALARM, serde_json::Value::String(alarm)) => fix.alarm = Some(alarm.clone()),
                    (_, serde_json::Value::String(text)) => fix.attributes.push((key.clone(), text.clone())),
                    (_, other) => fix.attributes.push((key.clone(), other.to_string())),
                }
            }
        }
        Ok(StoredFix {
            device_id: self.device_id,
            received_at: Timestamp::from_millis(self.received_at),
            h3: self.h3.map(|h| h as u64),
            fix,
        })
    }

    pub fn from_domain(stored: &StoredFix) -> PositionRow {
        let fix = &stored.fix;
        PositionRow {
            device_id: stored.device_id,
            fixed_at: fix.fixed_at.as_millis(),
            received_at: stored.received_at.as_millis(),
            lat: fix.point.lat(),
            lon: fix.point.lon(),
            speed: fix.speed_mps,
            course: fix.course_deg,
            altitude: fix.altitude_m,
            accuracy: fix.accuracy_m,
            battery: fix.battery_pct,
            h3: stored.h3.map(|h| h as i64),
            attributes: attributes_json(fix),
        }
    }
}

pub(crate) fn rejection_from_row(
    device_id: i64,
    received_at: i64,
    fixed_at: i64,
    lat: f64,
    lon: f64,
    reason: &str,
) -> Result<RejectedFix, StoreError> {
    let corrupt =
        |what: String| StoreError::Corrupt(format!("refused fix of device {device_id} at {received_at}: {what}"));
    Ok(RejectedFix {
        device_id,
        received_at: Timestamp::from_millis(received_at),
        fixed_at: Timestamp::from_millis(fixed_at),
        point: LatLon::new(lat, lon).map_err(|e| corrupt(e.to_string()))?,
        reason: Rejection::parse(reason).ok_or_else(|| corrupt(format!("unknown reason {reason:?}")))?,
    })
}
