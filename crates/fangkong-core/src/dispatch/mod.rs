//! Computer-aided dispatch rules: the life of an incident and of a unit's status, the timers
//! that make a status overdue, and the ranking of units by estimated time of arrival.
//!
//! An incident's status follows its units: it is `Dispatched` once a unit is sent,
//! `EnRoute` once one is on its way, `OnScene` once one has arrived. People decide the rest:
//! resolve (the work on scene is done), close with a disposition code (from the code table:
//! "invalid call", "mediated"…), reopen, cancel. A prank or invalid call is closed with a
//! disposition straight from `New`, never deleted.

mod incident;

pub use incident::{
    AreaClass, Assignment, DuplicateRule, GroupMeasures, Incident, MAX_POSSIBLE_DUPLICATES, ResponseTargets,
    ResponseTimes, TimelineEntry, TimelineKind, UnitState, group_measures, mask_phone, quantile,
};

use crate::forces::PatrolMode;
use crate::time::Timestamp;
use fangkong_geo::LatLon;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum IncidentStatus {
    New,
    Dispatched,
    EnRoute,
    OnScene,
    Resolved,
    Closed,
    Cancelled,
}

impl IncidentStatus {
    pub const ALL: [IncidentStatus; 7] = [
        IncidentStatus::New,
        IncidentStatus::Dispatched,
        IncidentStatus::EnRoute,
        IncidentStatus::OnScene,
        IncidentStatus::Resolved,
        IncidentStatus::Closed,
        IncidentStatus::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::New => "new",
            IncidentStatus::Dispatched => "dispatched",
            IncidentStatus::EnRoute => "en_route",
            IncidentStatus::OnScene => "on_scene",
            IncidentStatus::Resolved => "resolved",
            IncidentStatus::Closed => "closed",
            IncidentStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<IncidentStatus> {
        IncidentStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the incident still needs work (counts for duplicate detection and the board).
    pub const fn is_open(self) -> bool {
        !matches!(self, IncidentStatus::Closed | IncidentStatus::Cancelled)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum UnitStatus {
    Available,
    Dispatched,
    EnRoute,
    OnScene,
    Returning,
    OffDuty,
    OutOfService,
}

impl UnitStatus {
    pub const ALL: [UnitStatus; 7] = [
        UnitStatus::Available,
        UnitStatus::Dispatched,
        UnitStatus::EnRoute,
        UnitStatus::OnScene,
        UnitStatus::Returning,
        UnitStatus::OffDuty,
        UnitStatus::OutOfService,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Available => "available",
            UnitStatus::Dispatched => "dispatched",
            UnitStatus::EnRoute => "en_route",
            UnitStatus::OnScene => "on_scene",
            UnitStatus::Returning => "returning",
            UnitStatus::OffDuty => "off_duty",
            UnitStatus::OutOfService => "out_of_service",
        }
    }

    pub fn parse(text: &str) -> Option<UnitStatus> {
        UnitStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether a unit in this status may be sent to a new incident. A returning unit is
    /// free again: it has cleared its last scene.
    pub const fn can_be_dispatched(self) -> bool {
        matches!(self, UnitStatus::Available | UnitStatus::Returning)
    }

    /// Whether the unit is working an incident.
    pub const fn is_assigned(self) -> bool {
        matches!(self, UnitStatus::Dispatched | UnitStatus::EnRoute | UnitStatus::OnScene)
    }
}

/// Why a change was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("a {from} unit cannot become {to}")]
    UnitTransition { from: &'static str, to: &'static str },
    #[error("a {status} incident cannot be {action}")]
    IncidentTransition { status: &'static str, action: &'static str },
    #[error("closing needs a disposition code")]
    NoDisposition,
}

/// Whether a unit may go from `from` to `to` (a dispatcher or the unit itself changing it).
pub fn check_unit_transition(from: UnitStatus, to: UnitStatus) -> Result<(), DispatchError> {
    use UnitStatus::*;
    let allowed = match (from, to) {
        (a, b) if a == b => false,
        // Anyone may go off duty or out of service when not working an incident, and come
        // back available.
        (Available | Returning, OffDuty | OutOfService) | (OffDuty | OutOfService, Available) => true,
        (Available | Returning, Dispatched) => true,
        (Dispatched, EnRoute) | (EnRoute, OnScene) | (Dispatched, OnScene) => true,
        // Cleared: from the scene, or recalled before arriving.
        (Dispatched | EnRoute | OnScene, Returning | Available) => true,
        (Returning, Available) => true,
        _ => false,
    };
    if allowed { Ok(()) } else { Err(DispatchError::UnitTransition { from: from.as_str(), to: to.as_str() }) }
}

/// The incident's status as its assigned units make it: the furthest along of them, or
/// `New` without any (an incident that was resolved, closed or cancelled keeps that).
pub fn status_from_units(current: IncidentStatus, units: impl IntoIterator<Item = UnitStatus>) -> IncidentStatus {
    if !matches!(
        current,
        IncidentStatus::New | IncidentStatus::Dispatched | IncidentStatus::EnRoute | IncidentStatus::OnScene
    ) {
        return current;
    }
    let mut status = IncidentStatus::New;
    for unit in units {
        let from_unit = match unit {
            UnitStatus::Dispatched => IncidentStatus::Dispatched,
            UnitStatus::EnRoute => IncidentStatus::EnRoute,
            UnitStatus::OnScene => IncidentStatus::OnScene,
            _ => continue,
        };
        status = status.max(from_unit);
    }
    // Once a unit has been on scene the incident does not fall back when it clears.
    if current == IncidentStatus::OnScene { IncidentStatus::OnScene.max(status) } else { status }
}

/// What a person can do to an incident besides sending units.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IncidentAction {
    Resolve,
    Close,
    Reopen,
    Cancel,
}

impl IncidentAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            IncidentAction::Resolve => "resolved",
            IncidentAction::Close => "closed",
            IncidentAction::Reopen => "reopened",
            IncidentAction::Cancel => "cancelled",
        }
    }
}

/// The status after `action`, or why not.
pub fn apply_action(status: IncidentStatus, action: IncidentAction) -> Result<IncidentStatus, DispatchError> {
    use IncidentStatus::*;
    let next = match (status, action) {
        (Dispatched | EnRoute | OnScene, IncidentAction::Resolve) => Some(Resolved),
        // An invalid or prank call is closed from New, with its disposition.
        (New | Resolved, IncidentAction::Close) => Some(Closed),
        (Resolved | Closed, IncidentAction::Reopen) => Some(New),
        (New | Dispatched | EnRoute, IncidentAction::Cancel) => Some(Cancelled),
        _ => None,
    };
    next.ok_or(DispatchError::IncidentTransition { status: status.as_str(), action: action.as_str() })
}

/// How long a unit may stay in a status before it is overdue (raises an alert). `None`: no
/// limit.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StatusTimers {
    pub dispatched_ms: Option<i64>,
    pub en_route_ms: Option<i64>,
    pub on_scene_ms: Option<i64>,
    pub returning_ms: Option<i64>,
    pub out_of_service_ms: Option<i64>,
}

impl Default for StatusTimers {
    fn default() -> StatusTimers {
        StatusTimers {
            // Acknowledge a dispatch within a minute.
            dispatched_ms: Some(60_000),
            // The suburban arrival target; the urban one (5 min) is measured per incident.
            en_route_ms: Some(10 * 60_000),
            on_scene_ms: Some(60 * 60_000),
            returning_ms: Some(30 * 60_000),
            out_of_service_ms: Some(4 * 3_600_000),
        }
    }
}

impl StatusTimers {
    pub fn limit(&self, status: UnitStatus) -> Option<i64> {
        match status {
            UnitStatus::Dispatched => self.dispatched_ms,
            UnitStatus::EnRoute => self.en_route_ms,
            UnitStatus::OnScene => self.on_scene_ms,
            UnitStatus::Returning => self.returning_ms,
            UnitStatus::OutOfService => self.out_of_service_ms,
            UnitStatus::Available | UnitStatus::OffDuty => None,
        }
    }

    /// Whether a unit in `status` since `since` is overdue at `now`.
    pub fn is_overdue(&self, status: UnitStatus, since: Timestamp, now: Timestamp) -> bool {
        self.limit(status).is_some_and(|limit| now.millis_since(since) > limit)
    }
}

// ---- recommendation ------------------------------------------------------------------------

/// Travel speeds by mode, metres per second, and the road factor (road distance over the
/// straight line). Defaults for a dense city: vehicles 30 km/h door to door, bicycles 15,
/// on foot 5.
#[derive(Clone, PartialEq, Debug)]
pub struct TravelModel {
    pub vehicle_mps: f64,
    pub bicycle_mps: f64,
    pub foot_mps: f64,
    pub road_factor: f64,
    /// Seconds taken off a unit's estimate when its beat holds the place (it knows the
    /// ground): a tie-breaker, not a trump card.
    pub beat_bonus_s: f64,
}

impl Default for TravelModel {
    fn default() -> TravelModel {
        TravelModel {
            vehicle_mps: 30.0 / 3.6,
            bicycle_mps: 15.0 / 3.6,
            foot_mps: 5.0 / 3.6,
            road_factor: 1.4,
            beat_bonus_s: 60.0,
        }
    }
}

/// How a unit moves (from its patrol mode).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mobility {
    Vehicle,
    Bicycle,
    Foot,
}

impl Mobility {
    /// How a unit on this mode of duty gets to a scene: fixed posts, checkpoints and
    /// plain-clothes teams respond on foot.
    pub const fn of(mode: PatrolMode) -> Mobility {
        match mode {
            PatrolMode::Vehicle => Mobility::Vehicle,
            PatrolMode::Bicycle => Mobility::Bicycle,
            PatrolMode::Foot | PatrolMode::PlainClothes | PatrolMode::FixedPost | PatrolMode::Checkpoint => {
                Mobility::Foot
            }
        }
    }
}

/// A unit the recommendation may choose.
#[derive(Clone, PartialEq, Debug)]
pub struct Candidate {
    pub unit: String,
    pub position: LatLon,
    pub mobility: Mobility,
    /// Whether the unit's beat holds the incident's place.
    pub owns_beat: bool,
    /// Whether the unit suits the incident (e.g. a traffic unit for a traffic incident).
    pub suitable: bool,
}

/// A recommended unit.
#[derive(Clone, PartialEq, Debug)]
pub struct Recommendation {
    pub unit: String,
    pub distance_m: f64,
    /// Estimated seconds to arrive (before any beat bonus).
    pub eta_s: f64,
    pub owns_beat: bool,
    pub suitable: bool,
}

impl TravelModel {
    pub fn speed(&self, mobility: Mobility) -> f64 {
        match mobility {
            Mobility::Vehicle => self.vehicle_mps,
            Mobility::Bicycle => self.bicycle_mps,
            Mobility::Foot => self.foot_mps,
        }
    }

    pub fn eta_s(&self, distance_m: f64, mobility: Mobility) -> f64 {
        distance_m * self.road_factor / self.speed(mobility)
    }

    /// The ranking score: the estimate less the beat bonus for the beat's own unit.
    pub fn score(&self, eta_s: f64, owns_beat: bool) -> f64 {
        eta_s - if owns_beat { self.beat_bonus_s } else { 0.0 }
    }

    /// The lowest score any unit at least `distance_m` away can have: the fastest mode,
    /// with the beat bonus. A search may stop once this exceeds the scores it holds.
    pub fn score_bound(&self, distance_m: f64) -> f64 {
        let fastest = self.vehicle_mps.max(self.bicycle_mps).max(self.foot_mps);
        distance_m * self.road_factor / fastest - self.beat_bonus_s
    }
}

/// The order of recommendations: suitable units first, then by score, then by unit code.
pub fn recommendation_order(a: &Recommendation, b: &Recommendation, model: &TravelModel) -> std::cmp::Ordering {
    (!a.suitable)
        .cmp(&!b.suitable)
        .then(model.score(a.eta_s, a.owns_beat).total_cmp(&model.score(b.eta_s, b.owns_beat)))
        .then_with(|| a.unit.cmp(&b.unit))
}

/// The best `limit` candidates for a place: suitable units first, then by estimated arrival
/// (less the beat bonus for the beat's own units), then by unit code for a stable order.
pub fn rank(place: LatLon, candidates: &[Candidate], model: &TravelModel, limit: usize) -> Vec<Recommendation> {
    let mut ranked: Vec<Recommendation> = candidates
        .iter()
        .map(|c| {
            let distance_m = c.position.distance_m(place);
            Recommendation {
                unit: c.unit.clone(),
                distance_m,
                eta_s: model.eta_s(distance_m, c.mobility),
                owns_beat: c.owns_beat,
                suitable: c.suitable,
            }
        })
        .collect();
    ranked.sort_by(|a, b| recommendation_order(a, b, model));
    ranked.truncate(limit);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_move_through_their_statuses() {
        use UnitStatus::*;
        for (from, to) in [
            (Available, Dispatched),
            (Dispatched, EnRoute),
            (EnRoute, OnScene),
            (Dispatched, OnScene),
            (OnScene, Returning),
            (Returning, Available),
            (Returning, Dispatched),
            (EnRoute, Available),
            (Available, OffDuty),
            (OffDuty, Available),
            (Available, OutOfService),
        ] {
            assert_eq!(check_unit_transition(from, to), Ok(()), "{from:?} → {to:?}");
        }
        for (from, to) in [
            (OffDuty, Dispatched),
            (OnScene, Dispatched),
            (Available, OnScene),
            (EnRoute, OffDuty),
            (Available, Available),
        ] {
            assert!(check_unit_transition(from, to).is_err(), "{from:?} → {to:?}");
        }
        assert!(Returning.can_be_dispatched() && !OnScene.can_be_dispatched() && !OffDuty.can_be_dispatched());
    }

    #[test]
    fn an_incident_follows_its_furthest_unit_and_never_falls_back_from_the_scene() {
        use IncidentStatus as I;
        use UnitStatus as U;
        assert_eq!(status_from_units(I::New, []), I::New);
        assert_eq!(status_from_units(I::New, [U::Dispatched]), I::Dispatched);
        assert_eq!(status_from_units(I::Dispatched, [U::Dispatched, U::EnRoute]), I::EnRoute);
        assert_eq!(status_from_units(I::EnRoute, [U::OnScene, U::Dispatched]), I::OnScene);
        assert_eq!(status_from_units(I::OnScene, [U::Returning]), I::OnScene, "cleared units do not undo arrival");
        assert_eq!(status_from_units(I::Dispatched, [U::Available]), I::New, "recalled before arriving");
        assert_eq!(status_from_units(I::Resolved, [U::OnScene]), I::Resolved, "people's decisions stand");
    }

    #[test]
    fn people_resolve_close_reopen_and_cancel() {
        use IncidentAction::*;
        use IncidentStatus as I;
        assert_eq!(apply_action(I::OnScene, Resolve), Ok(I::Resolved));
        assert_eq!(apply_action(I::Resolved, Close), Ok(I::Closed));
        assert_eq!(apply_action(I::New, Close), Ok(I::Closed), "an invalid call is closed, not deleted");
        assert_eq!(apply_action(I::Closed, Reopen), Ok(I::New));
        assert_eq!(apply_action(I::EnRoute, Cancel), Ok(I::Cancelled));
        assert!(apply_action(I::New, Resolve).is_err());
        assert!(apply_action(I::OnScene, Cancel).is_err(), "resolve what has been attended");
        assert!(apply_action(I::Cancelled, Reopen).is_err());
        assert!(apply_action(I::OnScene, Close).is_err(), "resolve first");
    }

    #[test]
    fn statuses_become_overdue_after_their_limit() {
        let timers = StatusTimers::default();
        let t0 = Timestamp::from_millis(1_000_000);
        assert!(!timers.is_overdue(UnitStatus::Dispatched, t0, t0.plus_seconds(60)));
        assert!(timers.is_overdue(UnitStatus::Dispatched, t0, t0.plus_seconds(61)));
        assert!(!timers.is_overdue(UnitStatus::Available, t0, t0.plus_seconds(1_000_000)));
        let strict = StatusTimers { on_scene_ms: Some(1_000), ..StatusTimers::default() };
        assert!(strict.is_overdue(UnitStatus::OnScene, t0, t0.plus_seconds(2)));
    }

    fn candidate(unit: &str, lat: f64, mobility: Mobility, owns_beat: bool, suitable: bool) -> Candidate {
        Candidate { unit: unit.into(), position: LatLon::new(lat, 114.05).unwrap(), mobility, owns_beat, suitable }
    }

    #[test]
    fn units_are_ranked_by_arrival_time_not_distance() {
        let place = LatLon::new(22.54, 114.05).unwrap();
        let model = TravelModel::default();
        // A car 2.2 km away (~370 s) beats a walker 1.1 km away (~1,100 s).
        let ranked = rank(
            place,
            &[
                candidate("walker", 22.55, Mobility::Foot, false, true),
                candidate("car", 22.56, Mobility::Vehicle, false, true),
            ],
            &model,
            5,
        );
        assert_eq!(ranked.iter().map(|r| r.unit.as_str()).collect::<Vec<_>>(), ["car", "walker"]);
        assert!((ranked[0].distance_m - 2_224.0).abs() < 5.0, "{}", ranked[0].distance_m);
        assert!((ranked[0].eta_s - 2_224.0 * 1.4 / (30.0 / 3.6)).abs() < 1.0);
    }

    #[test]
    fn suitability_first_and_the_beat_breaks_near_ties() {
        let place = LatLon::new(22.54, 114.05).unwrap();
        let model = TravelModel::default();
        let ranked = rank(
            place,
            &[
                candidate("near-unsuitable", 22.541, Mobility::Vehicle, false, false),
                candidate("far-suitable", 22.58, Mobility::Vehicle, false, true),
                // ~45 s slower than "other" but owns the beat (60 s bonus).
                candidate("beat-owner", 22.5455, Mobility::Vehicle, true, true),
                candidate("other", 22.543, Mobility::Vehicle, false, true),
            ],
            &model,
            3,
        );
        assert_eq!(ranked.iter().map(|r| r.unit.as_str()).collect::<Vec<_>>(), ["beat-owner", "other", "far-suitable"]);
    }
}
