//! Automatic vehicle location (AVL): position fixes from trackers and the rules that screen
//! them before they enter the live picture and the history.
//!
//! A fix is screened against the last fix accepted from the same device. Refused fixes are
//! not dropped silently: the engine records each with its [`Rejection`], so an operator can
//! see why a unit "stood still" or "jumped".

use crate::jurisdiction::Chain;
use crate::time::Timestamp;
use fangkong_geo::LatLon;

/// Metres per second in a knot (OsmAnd and NMEA speeds are in knots).
pub const MPS_PER_KNOT: f64 = 1852.0 / 3600.0;

/// One position report from a device, in SI units.
#[derive(Clone, PartialEq, Debug)]
pub struct Fix {
    /// When the device took the fix (device time).
    pub fixed_at: Timestamp,
    pub point: LatLon,
    /// The device's own verdict (`valid=false` from a receiver without a fix).
    pub valid: bool,
    pub speed_mps: Option<f64>,
    /// Degrees clockwise from true north.
    pub course_deg: Option<f64>,
    pub altitude_m: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub hdop: Option<f64>,
    /// Battery level, 0–100 %.
    pub battery_pct: Option<f64>,
    /// An alarm raised by the device (`sos`, `fall`…), lower-case.
    pub alarm: Option<String>,
    /// Every other key the device sent, kept as given.
    pub attributes: Vec<(String, String)>,
}

/// A fix the screen accepted: whose, when it came, and where it was placed when it came
/// (so that whoever applies it later places it the same, whatever shapes it holds).
#[derive(Clone, PartialEq, Debug)]
pub struct AcceptedFix {
    pub device_id: i64,
    /// The tracker's unique id.
    pub unique_id: String,
    /// The unit the tracker was with when the fix came.
    pub unit: Option<String>,
    pub received_at: Timestamp,
    pub fix: Fix,
    /// The jurisdictions holding the point (empty outside the city).
    pub chain: Chain,
    /// The point's H3 cell at the engine's resolution.
    pub h3: Option<u64>,
}

impl Fix {
    pub fn new(fixed_at: Timestamp, point: LatLon) -> Fix {
        Fix {
            fixed_at,
            point,
            valid: true,
            speed_mps: None,
            course_deg: None,
            altitude_m: None,
            accuracy_m: None,
            hdop: None,
            battery_pct: None,
            alarm: None,
            attributes: Vec::new(),
        }
    }

    /// Whether the device raised a panic alarm with this fix.
    pub fn is_panic(&self) -> bool {
        matches!(self.alarm.as_deref(), Some("sos" | "panic" | "alarm"))
    }
}

/// Why a fix was not accepted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Rejection {
    /// The device itself marked the fix invalid.
    Invalid,
    /// 0°, 0°: what receivers report when they have no fix.
    NullIsland,
    /// A fix with the same time as the last accepted one.
    Duplicate,
    /// Older than the last accepted fix.
    OutOfOrder,
    /// Later than the server's clock allows.
    InFuture,
    /// Farther from the last fix than any unit can travel in the time between.
    ImpossibleSpeed,
}

impl Rejection {
    pub const ALL: [Rejection; 6] = [
        Rejection::Invalid,
        Rejection::NullIsland,
        Rejection::Duplicate,
        Rejection::OutOfOrder,
        Rejection::InFuture,
        Rejection::ImpossibleSpeed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Invalid => "invalid",
            Rejection::NullIsland => "null_island",
            Rejection::Duplicate => "duplicate",
            Rejection::OutOfOrder => "out_of_order",
            Rejection::InFuture => "in_future",
            Rejection::ImpossibleSpeed => "impossible_speed",
        }
    }

    pub fn parse(text: &str) -> Option<Rejection> {
        Rejection::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// The limits of the screen.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct FilterPolicy {
    /// How far ahead of the server's clock a device clock may run.
    pub future_tolerance_ms: i64,
    /// The fastest any unit moves (default 300 km/h: a car on an expressway, with margin).
    pub max_speed_mps: f64,
    /// Jumps shorter than this are never "impossible" (GPS noise between close fixes).
    pub speed_slack_m: f64,
}

impl Default for FilterPolicy {
    fn default() -> FilterPolicy {
        FilterPolicy { future_tolerance_ms: 120_000, max_speed_mps: 300.0 / 3.6, speed_slack_m: 200.0 }
    }
}

/// Screens `fix` (received at `received_at`) against the last accepted fix of its device.
pub fn screen(
    previous: Option<&Fix>,
    fix: &Fix,
    received_at: Timestamp,
    policy: &FilterPolicy,
) -> Result<(), Rejection> {
    if !fix.valid {
        return Err(Rejection::Invalid);
    }
    if fix.point.lat() == 0.0 && fix.point.lon() == 0.0 {
        return Err(Rejection::NullIsland);
    }
    if fix.fixed_at.as_millis() > received_at.as_millis() + policy.future_tolerance_ms {
        return Err(Rejection::InFuture);
    }
    let Some(previous) = previous else { return Ok(()) };
    let gap_ms = fix.fixed_at.as_millis() - previous.fixed_at.as_millis();
    if gap_ms == 0 {
        return Err(Rejection::Duplicate);
    }
    if gap_ms < 0 {
        return Err(Rejection::OutOfOrder);
    }
    let distance = previous.point.distance_m(fix.point);
    let slack = policy.speed_slack_m + fix.accuracy_m.unwrap_or(0.0) + previous.accuracy_m.unwrap_or(0.0);
    // At least a second between fixes: device clocks tick in seconds.
    let seconds = (gap_ms as f64 / 1000.0).max(1.0);
    if distance > slack && distance / seconds > policy.max_speed_mps {
        return Err(Rejection::ImpossibleSpeed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

    fn fix(seconds: i64, lat: f64, lon: f64) -> Fix {
        Fix::new(T0.plus_seconds(seconds), LatLon::new(lat, lon).unwrap())
    }

    fn check(previous: Option<&Fix>, next: &Fix) -> Result<(), Rejection> {
        screen(previous, next, T0.plus_seconds(3_600), &FilterPolicy::default())
    }

    #[test]
    fn a_plausible_track_passes() {
        let a = fix(0, 22.5431, 114.0579);
        assert_eq!(check(None, &a), Ok(()));
        // ~110 m in 10 s (40 km/h).
        assert_eq!(check(Some(&a), &fix(10, 22.5441, 114.0579)), Ok(()));
        // A car at 120 km/h over a minute: 2 km.
        assert_eq!(check(Some(&a), &fix(60, 22.5611, 114.0579)), Ok(()));
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let a = fix(100, 22.5431, 114.0579);
        let mut invalid = fix(110, 22.5431, 114.0579);
        invalid.valid = false;
        assert_eq!(check(Some(&a), &invalid), Err(Rejection::Invalid));
        assert_eq!(check(Some(&a), &fix(110, 0.0, 0.0)), Err(Rejection::NullIsland));
        assert_eq!(check(Some(&a), &fix(100, 22.5432, 114.0579)), Err(Rejection::Duplicate));
        assert_eq!(check(Some(&a), &fix(90, 22.5432, 114.0579)), Err(Rejection::OutOfOrder));
        // Two hours ahead of a server clock at T0 + 1 h.
        assert_eq!(check(Some(&a), &fix(3 * 3_600, 22.5432, 114.0579)), Err(Rejection::InFuture));
        // Nanshan to Longgang (~40 km) in 60 s.
        assert_eq!(check(Some(&a), &fix(160, 22.72, 114.25)), Err(Rejection::ImpossibleSpeed));
        // Within the tolerance ahead of the clock is fine.
        assert_eq!(check(None, &fix(3_600 + 60, 22.5, 114.0)), Ok(()));
    }

    #[test]
    fn jitter_between_close_fixes_is_not_speed() {
        let a = fix(0, 22.5431, 114.0579);
        // 150 m within the same second: noise, within the slack.
        assert_eq!(check(Some(&a), &fix(1, 22.54445, 114.0579)), Ok(()));
        // A poor fix (accuracy 500 m) may jump further.
        let mut poor = fix(2, 22.5481, 114.0579);
        poor.accuracy_m = Some(500.0);
        assert_eq!(check(Some(&a), &poor), Ok(()));
    }

    #[test]
    fn rejections_have_stable_names() {
        for rejection in Rejection::ALL {
            assert_eq!(Rejection::parse(rejection.as_str()), Some(rejection));
        }
    }
}
