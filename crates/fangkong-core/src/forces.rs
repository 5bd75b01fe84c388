//! The integrated force (联防力量): members, the units (teams) they patrol in, the beats
//! (巡区) units cover, the roster of shifts, and coverage — which minutes of which hour a
//! beat had an on-duty unit inside it, against the minutes the roster planned.
//!
//! The plan's force has four categories (police, security and joint-defence guards,
//! internal-unit guards, volunteers) on six modes of duty. A unit is on duty while one of
//! its shifts runs: the roster is the plan, positions are what happened.

use std::collections::BTreeMap;

use fangkong_geo::{Area, LatLon};

use crate::time::Timestamp;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum ForceCategory {
    Police,
    SecurityGuard,
    InternalGuard,
    Volunteer,
}

impl ForceCategory {
    pub const ALL: [ForceCategory; 4] =
        [ForceCategory::Police, ForceCategory::SecurityGuard, ForceCategory::InternalGuard, ForceCategory::Volunteer];

    pub const fn as_str(self) -> &'static str {
        match self {
            ForceCategory::Police => "police",
            ForceCategory::SecurityGuard => "security_guard",
            ForceCategory::InternalGuard => "internal_guard",
            ForceCategory::Volunteer => "volunteer",
        }
    }

    pub fn parse(text: &str) -> Option<ForceCategory> {
        ForceCategory::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum PatrolMode {
    Foot,
    Vehicle,
    Bicycle,
    PlainClothes,
    FixedPost,
    Checkpoint,
}

impl PatrolMode {
    pub const ALL: [PatrolMode; 6] = [
        PatrolMode::Foot,
        PatrolMode::Vehicle,
        PatrolMode::Bicycle,
        PatrolMode::PlainClothes,
        PatrolMode::FixedPost,
        PatrolMode::Checkpoint,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            PatrolMode::Foot => "foot",
            PatrolMode::Vehicle => "vehicle",
            PatrolMode::Bicycle => "bicycle",
            PatrolMode::PlainClothes => "plain_clothes",
            PatrolMode::FixedPost => "fixed_post",
            PatrolMode::Checkpoint => "checkpoint",
        }
    }

    pub fn parse(text: &str) -> Option<PatrolMode> {
        PatrolMode::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// A beat (巡区): the ground a unit patrols, under a police station.
#[derive(Clone, PartialEq, Debug)]
pub struct Beat {
    pub code: String,
    pub station: String,
    pub name: String,
    pub shape: Area,
}

/// A unit (team) of one category on one mode of duty, at a police station.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Unit {
    pub code: String,
    /// What the radio calls it (呼号).
    pub call_sign: String,
    pub station: String,
    pub category: ForceCategory,
    pub mode: PatrolMode,
    /// Radios, vehicles, batons…, as listed by the station.
    pub equipment: Vec<String>,
    /// Its usual beat.
    pub beat: Option<String>,
    /// What kinds of incident it is trained and equipped for beyond general patrol
    /// (`traffic`, `fire`, `medical`…): the dispatch configuration maps incident types to
    /// the capability they prefer.
    pub capabilities: Vec<String>,
}

/// A member of the force. Personal data: the store keeps name, identity number and phone
/// sealed, and finds a member by identity number through a keyed blind index.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Member {
    pub id: i64,
    pub category: ForceCategory,
    pub station: String,
    pub unit: Option<String>,
    pub name: String,
    pub id_number: String,
    pub phone: Option<String>,
    pub active: bool,
}

/// Whether `text` is a well-formed 18-character PRC identity number (GB 11643): 17 digits
/// and the ISO 7064 MOD 11-2 check character (`0`–`9` or `X`). The full rules (region,
/// birth date, 15-digit numbers) are [`crate::documents::check_resident_id`].
pub fn check_id_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 18
        && bytes[..17].iter().all(u8::is_ascii_digit)
        && bytes[17].to_ascii_uppercase() as char == crate::documents::check_character(&bytes[..17])
}

/// A shift of the roster: a unit on a beat from `starts_at` to `ends_at` (half-open).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Shift {
    pub unit: String,
    pub beat: String,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
}

impl Shift {
    pub fn covers(&self, at: Timestamp) -> bool {
        self.starts_at <= at && at < self.ends_at
    }
}

/// Why a shift was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ShiftError {
    #[error("a shift must end after it starts")]
    Empty,
    #[error("a shift may last at most 24 hours")]
    TooLong,
    #[error("unit {unit} already has a shift from {starts_at} to {ends_at} overlapping this one")]
    Overlap { unit: String, starts_at: Timestamp, ends_at: Timestamp },
}

/// Checks `shift` against the unit's other shifts: non-empty, at most 24 h, no overlap.
pub fn check_shift<'a>(shift: &Shift, others: impl IntoIterator<Item = &'a Shift>) -> Result<(), ShiftError> {
    if shift.ends_at <= shift.starts_at {
        return Err(ShiftError::Empty);
    }
    if shift.ends_at.millis_since(shift.starts_at) > 24 * 3_600_000 {
        return Err(ShiftError::TooLong);
    }
    for other in others {
        if other.unit == shift.unit && other.starts_at < shift.ends_at && shift.starts_at < other.ends_at {
            return Err(ShiftError::Overlap {
                unit: other.unit.clone(),
                starts_at: other.starts_at,
                ends_at: other.ends_at,
            });
        }
    }
    Ok(())
}

/// One unit's known positions over a period, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub unit: String,
    pub fixes: Vec<(Timestamp, LatLon)>,
}

/// How long a fix stands for the unit's position when no newer one has come: a unit whose
/// tracker went quiet for longer is counted nowhere (not "still there").
pub const FIX_HOLD_MS: i64 = 5 * 60_000;

/// Where `trace` places its unit at `at`: the newest fix at or before `at`, if recent
/// enough.
fn position_at(trace: &Trace, at: Timestamp) -> Option<LatLon> {
    let index = trace.fixes.partition_point(|(t, _)| *t <= at);
    let (t, point) = trace.fixes.get(index.checked_sub(1)?)?;
    (at.millis_since(*t) <= FIX_HOLD_MS).then_some(*point)
}

/// A beat's hour.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct HourCoverage {
    /// Minutes (0–60) in which at least one on-duty unit was inside the beat.
    pub covered_minutes: u32,
    /// Minutes in which the roster had at least one unit on this beat.
    pub rostered_minutes: u32,
}

/// Coverage of `beat` (its shape) for each hour starting at `hours` (each the start of an
/// hour), from the roster and the units' traces. A minute counts as covered when, at its
/// midpoint, a unit on a shift that minute (on any beat: a unit passing through helps) was
/// inside the beat; as rostered when some shift on this beat ran at the midpoint.
pub fn coverage(
    beat_code: &str,
    beat: &Area,
    hours: &[Timestamp],
    shifts: &[Shift],
    traces: &[Trace],
) -> BTreeMap<Timestamp, HourCoverage> {
    let traces: BTreeMap<&str, &Trace> = traces.iter().map(|t| (t.unit.as_str(), t)).collect();
    let mut result = BTreeMap::new();
    for &hour in hours {
        let mut hour_coverage = HourCoverage::default();
        for minute in 0..60 {
            let at = hour.plus_millis(minute * 60_000 + 30_000);
            let on_duty = shifts.iter().filter(|s| s.covers(at));
            let mut covered = false;
            let mut rostered = false;
            for shift in on_duty {
                rostered |= shift.beat == beat_code;
                if !covered && let Some(point) = traces.get(shift.unit.as_str()).and_then(|t| position_at(t, at)) {
                    covered = beat.contains(point.lon(), point.lat());
                }
            }
            hour_coverage.covered_minutes += u32::from(covered);
            hour_coverage.rostered_minutes += u32::from(rostered);
        }
        result.insert(hour, hour_coverage);
    }
    result
}

/// Patrol time in each of `cells` (H3 cells at `resolution`) between `from` and `to`: each
/// fix stands for its unit until the next fix, for at most [`FIX_HOLD_MS`], and counts in
/// the cell it lies in. Milliseconds by cell; cells nobody visited are absent.
pub fn time_in_cells(
    traces: &[Trace],
    cells: &std::collections::HashSet<u64>,
    resolution: u8,
    from: Timestamp,
    to: Timestamp,
) -> BTreeMap<u64, i64> {
    let mut time: BTreeMap<u64, i64> = BTreeMap::new();
    for trace in traces {
        for (i, (at, point)) in trace.fixes.iter().enumerate() {
            let Some(cell) = point.h3_cell(resolution).filter(|c| cells.contains(c)) else { continue };
            let until = trace.fixes.get(i + 1).map_or(to, |(next, _)| *next).min(at.plus_millis(FIX_HOLD_MS)).min(to);
            let start = (*at).max(from);
            if until > start {
                *time.entry(cell).or_default() += until.millis_since(start);
            }
        }
    }
    time
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-11-28T00:00:00Z, a whole hour.
    const H0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

    fn minutes(m: i64) -> Timestamp {
        H0.plus_millis(m * 60_000)
    }

    fn point(lat: f64, lon: f64) -> LatLon {
        LatLon::new(lat, lon).unwrap()
    }

    /// A square beat 22.50–22.51 N, 114.00–114.01 E.
    fn beat() -> Area {
        Area::from_rings(vec![vec![vec![
            [114.0, 22.5],
            [114.01, 22.5],
            [114.01, 22.51],
            [114.0, 22.51],
            [114.0, 22.5],
        ]]])
        .unwrap()
    }

    fn shift(unit: &str, beat: &str, from: i64, to: i64) -> Shift {
        Shift { unit: unit.into(), beat: beat.into(), starts_at: minutes(from), ends_at: minutes(to) }
    }

    const INSIDE: (f64, f64) = (22.505, 114.005);
    const OUTSIDE: (f64, f64) = (22.52, 114.005);

    /// A unit reporting every minute: inside for minutes 0–19, outside 20–39, inside 40–59.
    fn trace(unit: &str) -> Trace {
        let fixes = (0..60)
            .map(|m| {
                let (lat, lon) = if (20..40).contains(&m) { OUTSIDE } else { INSIDE };
                (minutes(m), point(lat, lon))
            })
            .collect();
        Trace { unit: unit.into(), fixes }
    }

    #[test]
    fn covered_minutes_follow_the_track_and_the_roster() {
        // On duty the whole hour: inside for 40 of the 60 minutes.
        let shifts = [shift("U1", "B1", 0, 60)];
        let result = coverage("B1", &beat(), &[H0], &shifts, &[trace("U1")]);
        assert_eq!(result[&H0], HourCoverage { covered_minutes: 40, rostered_minutes: 60 });

        // On duty only for minutes 0–29: inside during 0–19 only.
        let shifts = [shift("U1", "B1", 0, 30)];
        let result = coverage("B1", &beat(), &[H0], &shifts, &[trace("U1")]);
        assert_eq!(result[&H0], HourCoverage { covered_minutes: 20, rostered_minutes: 30 });
    }

    #[test]
    fn off_duty_units_and_stale_fixes_do_not_count() {
        // No shift at all: the unit's presence is not coverage, and nothing was rostered.
        let result = coverage("B1", &beat(), &[H0], &[], &[trace("U1")]);
        assert_eq!(result[&H0], HourCoverage { covered_minutes: 0, rostered_minutes: 0 });
        // One fix inside at minute 0, then silence: it stands for five minutes only.
        let quiet = Trace { unit: "U1".into(), fixes: vec![(minutes(0), point(INSIDE.0, INSIDE.1))] };
        let result = coverage("B1", &beat(), &[H0], &[shift("U1", "B1", 0, 60)], &[quiet]);
        assert_eq!(result[&H0].covered_minutes, 5, "minutes 0–4 (midpoints 0:30 … 4:30)");
    }

    #[test]
    fn a_unit_of_another_beat_passing_through_covers_but_is_not_rostered_here() {
        let shifts = [shift("U2", "B2", 0, 60)];
        let result = coverage("B1", &beat(), &[H0], &shifts, &[trace("U2")]);
        assert_eq!(result[&H0], HourCoverage { covered_minutes: 40, rostered_minutes: 0 });
    }

    #[test]
    fn two_units_cover_the_union_of_their_minutes() {
        // U1 inside 0–19 and 40–59; U3 inside only 20–39 (the mirror of U1).
        let mirror = Trace {
            unit: "U3".into(),
            fixes: (0..60)
                .map(|m| {
                    let (lat, lon) = if (20..40).contains(&m) { INSIDE } else { OUTSIDE };
                    (minutes(m), point(lat, lon))
                })
                .collect(),
        };
        let shifts = [shift("U1", "B1", 0, 60), shift("U3", "B1", 0, 60)];
        let result = coverage("B1", &beat(), &[H0, minutes(60)], &shifts, &[trace("U1"), mirror]);
        assert_eq!(result[&H0], HourCoverage { covered_minutes: 60, rostered_minutes: 60 });
        // The next hour: shifts over, a blank hour.
        assert_eq!(result[&minutes(60)], HourCoverage { covered_minutes: 0, rostered_minutes: 0 });
    }

    #[test]
    fn identity_numbers_have_their_check_character() {
        assert!(check_id_number("11010519491231002X"));
        assert!(check_id_number("11010519491231002x"));
        assert!(check_id_number("440524188001010014"));
        assert!(!check_id_number("440524188001010015"));
        assert!(!check_id_number("44052418800101001"));
        assert!(!check_id_number("4405241880010100A4"));
    }

    #[test]
    fn shifts_are_checked() {
        let existing = [shift("U1", "B1", 0, 60)];
        assert_eq!(check_shift(&shift("U1", "B1", 60, 120), &existing), Ok(()));
        assert_eq!(check_shift(&shift("U2", "B1", 30, 90), &existing), Ok(()), "another unit may overlap");
        assert!(matches!(check_shift(&shift("U1", "B2", 30, 90), &existing), Err(ShiftError::Overlap { .. })));
        assert_eq!(check_shift(&shift("U1", "B1", 10, 10), &[]), Err(ShiftError::Empty));
        assert_eq!(check_shift(&shift("U1", "B1", 0, 25 * 60), &[]), Err(ShiftError::TooLong));
    }

    #[test]
    fn time_in_cells_counts_each_fix_until_the_next_for_at_most_five_minutes() {
        let at = |m: i64| Timestamp::from_millis(m * 60_000);
        let here = LatLon::new(22.54, 114.05).unwrap();
        let there = LatLon::new(22.60, 114.20).unwrap();
        let cell = here.h3_cell(9).unwrap();
        let cells: std::collections::HashSet<u64> = [cell].into();
        // 2 min here, then 3 min there, then back here and silent (5 min at most), all
        // within a 60-minute window; a second unit here for 4 minutes before the window.
        let one = Trace { unit: "A".into(), fixes: vec![(at(10), here), (at(12), there), (at(15), here)] };
        let two = Trace { unit: "B".into(), fixes: vec![(at(-2), here), (at(2), here)] };
        let time = time_in_cells(&[one, two], &cells, 9, at(0), at(60));
        // A: 2 + 5 minutes; B: the 2 minutes after 0:00 of its first fix, then 5 after 0:02.
        assert_eq!(time.get(&cell), Some(&((2 + 5 + 2 + 5) * 60_000)));
        let none = time_in_cells(&[], &cells, 9, at(0), at(60));
        assert!(none.is_empty());
    }
}
