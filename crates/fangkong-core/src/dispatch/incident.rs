//! Incidents (警情): one model for every source — 110, 119, 122, alarm points, tips, patrols,
//! walk-ins, SOS buttons — with the units sent to them, the append-only timeline of what
//! happened, the duplicate rule and the response measures.
//!
//! The caller's name and phone are personal data and are not part of [`Incident`]: the
//! engine seals them in the store and opens them only for an audited read. The incident
//! carries at most the last four digits of the phone, so the board can tell callers apart.

use fangkong_geo::LatLon;

use super::{IncidentStatus, UnitStatus};
use crate::jurisdiction::Chain;
use crate::time::Timestamp;

/// Urban or suburban ground: the arrival target depends on it (5 and 10 minutes in the
/// plan). A property of a jurisdiction node, inherited by everything below it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum AreaClass {
    Urban,
    Suburban,
}

impl AreaClass {
    pub const ALL: [AreaClass; 2] = [AreaClass::Urban, AreaClass::Suburban];

    pub const fn as_str(self) -> &'static str {
        match self {
            AreaClass::Urban => "urban",
            AreaClass::Suburban => "suburban",
        }
    }

    pub fn parse(text: &str) -> Option<AreaClass> {
        AreaClass::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// Arrival targets by area class, in seconds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ResponseTargets {
    pub urban_s: i64,
    pub suburban_s: i64,
}

impl Default for ResponseTargets {
    fn default() -> ResponseTargets {
        ResponseTargets { urban_s: 300, suburban_s: 600 }
    }
}

impl ResponseTargets {
    pub fn for_class(&self, class: AreaClass) -> i64 {
        match class {
            AreaClass::Urban => self.urban_s,
            AreaClass::Suburban => self.suburban_s,
        }
    }
}

/// A unit sent to an incident, and when it reached each step. A unit sent twice (recalled
/// and sent again) has two assignments.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Assignment {
    pub unit: String,
    /// Where this assignment stands: `Dispatched`, `EnRoute`, `OnScene`, or (cleared)
    /// `Returning`/`Available`.
    pub status: UnitStatus,
    pub dispatched_at: Timestamp,
    pub en_route_at: Option<Timestamp>,
    pub on_scene_at: Option<Timestamp>,
    pub cleared_at: Option<Timestamp>,
}

impl Assignment {
    pub fn new(unit: impl Into<String>, at: Timestamp) -> Assignment {
        Assignment {
            unit: unit.into(),
            status: UnitStatus::Dispatched,
            dispatched_at: at,
            en_route_at: None,
            on_scene_at: None,
            cleared_at: None,
        }
    }

    /// Whether the unit is still working the incident.
    pub fn is_active(&self) -> bool {
        self.cleared_at.is_none()
    }

    /// Records the unit's new status on this assignment.
    pub fn advance(&mut self, status: UnitStatus, at: Timestamp) {
        self.status = status;
        match status {
            UnitStatus::EnRoute => self.en_route_at = self.en_route_at.or(Some(at)),
            UnitStatus::OnScene => self.on_scene_at = self.on_scene_at.or(Some(at)),
            UnitStatus::Dispatched => {}
            _ => self.cleared_at = self.cleared_at.or(Some(at)),
        }
    }
}

/// An incident as the board and the store hold it (without the caller's personal data).
#[derive(Clone, PartialEq, Debug)]
pub struct Incident {
    pub id: i64,
    /// A random, globally unique reference (32 hex digits) for exchange with other centres.
    pub uid: String,
    /// Incident source code (code table `incident_source`).
    pub source: String,
    /// Incident type code `AABBCC` (code table `incident_type`).
    pub type_code: String,
    /// 1 (most urgent) to 4.
    pub priority: u8,
    pub status: IncidentStatus,
    /// Disposition code (code table `disposition`) once closed.
    pub disposition: Option<String>,
    pub point: LatLon,
    pub address: String,
    pub chain: Chain,
    pub h3: Option<u64>,
    pub description: String,
    /// The caller's phone with all but the last four digits hidden, if a phone was given.
    pub caller_phone_masked: Option<String>,
    /// Open incidents this one may repeat (same category, near, recent), until a
    /// dispatcher merges or keeps it.
    pub possible_duplicates: Vec<i64>,
    pub merged_into: Option<i64>,
    pub area_class: AreaClass,
    /// The arrival target that applied when the call came, in seconds.
    pub arrival_target_s: i64,
    pub created_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Bumped by every change, so a client can ignore an older copy.
    pub revision: i64,
    /// When the first unit was sent, arrived; when resolved and closed.
    pub dispatched_at: Option<Timestamp>,
    pub arrived_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub assignments: Vec<Assignment>,
}

impl Incident {
    /// The two-digit category of the type (`01` criminal, `03` traffic…).
    pub fn category(&self) -> &str {
        self.type_code.get(0..2).unwrap_or("")
    }

    pub fn active_assignment(&self, unit: &str) -> Option<&Assignment> {
        self.assignments.iter().find(|a| a.unit == unit && a.is_active())
    }

    pub fn active_assignment_mut(&mut self, unit: &str) -> Option<&mut Assignment> {
        self.assignments.iter_mut().find(|a| a.unit == unit && a.is_active())
    }

    /// Sets the status from the assigned units (see [`super::status_from_units`]) and the
    /// first-dispatch and first-arrival times.
    pub fn follow_units(&mut self) {
        self.status =
            super::status_from_units(self.status, self.assignments.iter().filter(|a| a.is_active()).map(|a| a.status));
        if self.dispatched_at.is_none() {
            self.dispatched_at = self.assignments.iter().map(|a| a.dispatched_at).min();
        }
        if self.arrived_at.is_none() {
            self.arrived_at = self.assignments.iter().filter_map(|a| a.on_scene_at).min();
        }
    }

    /// The response times of this incident.
    pub fn measures(&self) -> ResponseTimes {
        let seconds = |from: Timestamp, to: Timestamp| to.millis_since(from) as f64 / 1000.0;
        let call_to_arrival_s = self.arrived_at.map(|a| seconds(self.created_at, a));
        ResponseTimes {
            call_to_dispatch_s: self.dispatched_at.map(|d| seconds(self.created_at, d)),
            dispatch_to_arrival_s: self.dispatched_at.zip(self.arrived_at).map(|(d, a)| seconds(d, a)),
            call_to_arrival_s,
            within_target: call_to_arrival_s.map(|s| s <= self.arrival_target_s as f64),
        }
    }
}

/// The caller's phone as the board may show it: `*******5678`.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let shown = digits.len().min(4);
    let hidden = digits.len() - shown;
    std::iter::repeat_n('*', hidden).chain(digits[hidden..].iter().copied()).collect()
}

/// One incident's response times, in seconds.
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub struct ResponseTimes {
    pub call_to_dispatch_s: Option<f64>,
    pub dispatch_to_arrival_s: Option<f64>,
    pub call_to_arrival_s: Option<f64>,
    /// Whether the first unit arrived within the target (`None` until one arrives).
    pub within_target: Option<bool>,
}

/// What kind of step a timeline entry records.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TimelineKind {
    Created,
    Updated,
    Dispatched,
    UnitStatus,
    Resolved,
    Closed,
    Reopened,
    Cancelled,
    Merged,
    MergedFrom,
    DuplicateKept,
    Note,
}

impl TimelineKind {
    pub const ALL: [TimelineKind; 12] = [
        TimelineKind::Created,
        TimelineKind::Updated,
        TimelineKind::Dispatched,
        TimelineKind::UnitStatus,
        TimelineKind::Resolved,
        TimelineKind::Closed,
        TimelineKind::Reopened,
        TimelineKind::Cancelled,
        TimelineKind::Merged,
        TimelineKind::MergedFrom,
        TimelineKind::DuplicateKept,
        TimelineKind::Note,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Created => "created",
            TimelineKind::Updated => "updated",
            TimelineKind::Dispatched => "dispatched",
            TimelineKind::UnitStatus => "unit_status",
            TimelineKind::Resolved => "resolved",
            TimelineKind::Closed => "closed",
            TimelineKind::Reopened => "reopened",
            TimelineKind::Cancelled => "cancelled",
            TimelineKind::Merged => "merged",
            TimelineKind::MergedFrom => "merged_from",
            TimelineKind::DuplicateKept => "duplicate_kept",
            TimelineKind::Note => "note",
        }
    }

    pub fn parse(text: &str) -> Option<TimelineKind> {
        TimelineKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One step in an incident's life: who did what, when. Never changed once written.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TimelineEntry {
    pub incident: i64,
    pub at: Timestamp,
    /// The user, device or system task that acted.
    pub actor: String,
    pub kind: TimelineKind,
    pub unit: Option<String>,
    pub detail: String,
}

/// A unit's dispatch status and since when (the status timer).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UnitState {
    pub unit: String,
    pub status: UnitStatus,
    pub since: Timestamp,
    /// The incident it is working, while dispatched, en route or on scene.
    pub incident: Option<i64>,
    /// Counts the stored changes of the status (0: never stored, the unit is off duty). A
    /// change is written as the next revision and stored only if the stored status is
    /// still the one it was read from.
    pub revision: i64,
}

impl UnitState {
    /// The state that follows this one: the same unit, the next revision.
    pub fn next(&self, status: UnitStatus, since: Timestamp, incident: Option<i64>) -> UnitState {
        UnitState { unit: self.unit.clone(), status, since, incident, revision: self.revision + 1 }
    }
}

/// Possible duplicates listed on a new incident, at most: the most recent ones.
pub const MAX_POSSIBLE_DUPLICATES: usize = 10;

/// When a new incident may repeat an open one: same category, within `radius_m`, created
/// within `window_ms` before it.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct DuplicateRule {
    pub radius_m: f64,
    pub window_ms: i64,
}

impl Default for DuplicateRule {
    fn default() -> DuplicateRule {
        DuplicateRule { radius_m: 300.0, window_ms: 30 * 60_000 }
    }
}

impl DuplicateRule {
    /// Whether an incident of `category` at `point`, reported at `at`, may repeat `open`.
    pub fn matches(&self, category: &str, point: LatLon, at: Timestamp, open: &Incident) -> bool {
        open.status.is_open()
            && open.category() == category
            && at.millis_since(open.created_at) <= self.window_ms
            && open.created_at <= at
            && open.point.distance_m(point) <= self.radius_m
    }
}

/// Response measures of a group of incidents (a jurisdiction over a period).
#[derive(Clone, PartialEq, Debug, Default)]
pub struct GroupMeasures {
    pub incidents: u64,
    pub dispatched: u64,
    pub arrived: u64,
    pub within_target: u64,
    /// `within_target / arrived` (`None` before any arrival).
    pub share_within_target: Option<f64>,
    pub median_call_to_dispatch_s: Option<f64>,
    pub median_dispatch_to_arrival_s: Option<f64>,
    pub median_call_to_arrival_s: Option<f64>,
    pub p90_call_to_arrival_s: Option<f64>,
}

/// The value at quantile `q` (0–1) of `values` (nearest rank), or `None` if empty.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// Measures over `incidents` (merged duplicates and invalid calls count as incidents but
/// never as dispatched or arrived unless a unit was sent).
pub fn group_measures<'a>(incidents: impl IntoIterator<Item = &'a Incident>) -> GroupMeasures {
    let mut measures = GroupMeasures::default();
    let (mut to_dispatch, mut to_arrival, mut call_to_arrival) = (Vec::new(), Vec::new(), Vec::new());
    for incident in incidents {
        measures.incidents += 1;
        let times = incident.measures();
        if let Some(s) = times.call_to_dispatch_s {
            measures.dispatched += 1;
            to_dispatch.push(s);
        }
        if let Some(s) = times.dispatch_to_arrival_s {
            to_arrival.push(s);
        }
        if let Some(s) = times.call_to_arrival_s {
            measures.arrived += 1;
            call_to_arrival.push(s);
        }
        if times.within_target == Some(true) {
            measures.within_target += 1;
        }
    }
    measures.share_within_target =
        (measures.arrived > 0).then(|| measures.within_target as f64 / measures.arrived as f64);
    measures.median_call_to_dispatch_s = quantile(&mut to_dispatch, 0.5);
    measures.median_dispatch_to_arrival_s = quantile(&mut to_arrival, 0.5);
    measures.median_call_to_arrival_s = quantile(&mut call_to_arrival, 0.5);
    measures.p90_call_to_arrival_s = quantile(&mut call_to_arrival, 0.9);
    measures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(id: i64, type_code: &str, lat: f64, created_s: i64) -> Incident {
        Incident {
            id,
            uid: format!("{id:032x}"),
            source: "110".into(),
            type_code: type_code.into(),
            priority: 2,
            status: IncidentStatus::New,
            disposition: None,
            point: LatLon::new(lat, 114.05).unwrap(),
            address: String::new(),
            chain: Chain::default(),
            h3: None,
            description: String::new(),
            caller_phone_masked: None,
            possible_duplicates: Vec::new(),
            merged_into: None,
            area_class: AreaClass::Urban,
            arrival_target_s: 300,
            created_by: "d".into(),
            created_at: Timestamp::from_millis(created_s * 1000),
            updated_at: Timestamp::from_millis(created_s * 1000),
            revision: 1,
            dispatched_at: None,
            arrived_at: None,
            resolved_at: None,
            closed_at: None,
            assignments: Vec::new(),
        }
    }

    #[test]
    fn phones_show_only_their_last_four_digits() {
        assert_eq!(mask_phone("13812345678"), "*******5678");
        assert_eq!(mask_phone("+86 138-1234-5678"), "*********5678");
        assert_eq!(mask_phone("110"), "110");
    }

    #[test]
    fn a_duplicate_is_the_same_category_near_and_recent() {
        let rule = DuplicateRule::default();
        let open = incident(1, "010301", 22.54, 1_000);
        let near = LatLon::new(22.5418, 114.05).unwrap(); // ~200 m north
        let far = LatLon::new(22.545, 114.05).unwrap(); // ~556 m
        let at = |s: i64| Timestamp::from_millis(s * 1000);
        assert!(rule.matches("01", near, at(1_600), &open));
        assert!(!rule.matches("02", near, at(1_600), &open), "another category");
        assert!(!rule.matches("01", far, at(1_600), &open), "too far");
        assert!(!rule.matches("01", near, at(1_000 + 31 * 60), &open), "too late");
        let closed = Incident { status: IncidentStatus::Closed, ..open.clone() };
        assert!(!rule.matches("01", near, at(1_600), &closed), "closed incidents are not repeated");
    }

    #[test]
    fn an_incident_follows_its_units_and_keeps_its_first_times() {
        let mut incident = incident(1, "010301", 22.54, 1_000);
        let at = |s: i64| Timestamp::from_millis(s * 1000);
        incident.assignments.push(Assignment::new("A", at(1_030)));
        incident.follow_units();
        assert_eq!((incident.status, incident.dispatched_at), (IncidentStatus::Dispatched, Some(at(1_030))));
        incident.active_assignment_mut("A").unwrap().advance(UnitStatus::EnRoute, at(1_040));
        incident.active_assignment_mut("A").unwrap().advance(UnitStatus::OnScene, at(1_250));
        incident.follow_units();
        assert_eq!((incident.status, incident.arrived_at), (IncidentStatus::OnScene, Some(at(1_250))));
        incident.active_assignment_mut("A").unwrap().advance(UnitStatus::Returning, at(1_900));
        incident.follow_units();
        assert_eq!(incident.status, IncidentStatus::OnScene, "a unit clearing does not undo the arrival");
        assert!(incident.assignments[0].cleared_at.is_some() && incident.active_assignment("A").is_none());
        let times = incident.measures();
        assert_eq!(times.call_to_dispatch_s, Some(30.0));
        assert_eq!(times.dispatch_to_arrival_s, Some(220.0));
        assert_eq!(times.call_to_arrival_s, Some(250.0));
        assert_eq!(times.within_target, Some(true));
    }

    #[test]
    fn group_measures_count_the_share_within_target_of_arrivals() {
        let at = |s: i64| Timestamp::from_millis(s * 1000);
        let with = |id, arrive_after: Option<i64>| {
            let mut i = incident(id, "010301", 22.54, 0);
            if let Some(after) = arrive_after {
                i.dispatched_at = Some(at(10));
                i.arrived_at = Some(at(after));
            }
            i
        };
        let incidents = [with(1, Some(200)), with(2, Some(299)), with(3, Some(301)), with(4, Some(900)), with(5, None)];
        let m = group_measures(&incidents);
        assert_eq!((m.incidents, m.dispatched, m.arrived, m.within_target), (5, 4, 4, 2));
        assert_eq!(m.share_within_target, Some(0.5));
        assert_eq!(m.median_call_to_arrival_s, Some(299.0));
        assert_eq!(m.p90_call_to_arrival_s, Some(900.0));
        assert_eq!(m.median_call_to_dispatch_s, Some(10.0));
        assert_eq!(group_measures(&[]).share_within_target, None);
    }
}
