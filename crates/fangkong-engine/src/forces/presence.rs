//! Beat presence (巡区在岗): which minutes of each hour each unit was inside each beat,
//! recorded as fixes arrive, so the coverage report reads a row per beat, hour and unit
//! instead of every tracker's history.
//!
//! The rule is the coverage rule of `fangkong_core::forces`: at the middle of a minute, a
//! unit is where its newest fix puts it, if that fix is at most [`FIX_HOLD_MS`] old. A fix
//! therefore stands from its own time until the device's next fix (or for the hold, if that
//! comes sooner). When a device's next fix is accepted, the interval of the one before is
//! known, and its minutes are marked in every beat holding its point. The newest fix of each
//! device is still open: the report adds it from the live index. (A unit with two trackers
//! counts where either puts it.)
//!
//! Marks collect in memory and the position history writer adds them to the store after
//! each batch (`Store::record_presence`, a bitwise OR, so a replayed or concurrent write
//! only ever adds minutes). A beat drawn anew counts from then on; the last fix a device
//! sent before a restart is not counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use fangkong_core::forces::{Beat, FIX_HOLD_MS};
use fangkong_core::time::Timestamp;
use fangkong_geo::{LatLon, PreparedArea};
use fangkong_store::Presence;

/// Cell size of the beat lookup.
const BEAT_CELL_DEG: f64 = 0.02;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// Beats by a coarse grid of their boxes, to find the beats holding a point (beats may
/// overlap: a point can lie in several).
#[derive(Debug, Default)]
pub(crate) struct BeatIndex {
    beats: Vec<(String, PreparedArea)>,
    numbers: HashMap<String, u32>,
    cells: HashMap<(i32, i32), Vec<u32>>,
}

impl BeatIndex {
    pub(crate) fn new(beats: &[Beat]) -> BeatIndex {
        let mut index = BeatIndex::default();
        for beat in beats {
            let bbox = beat.shape.bbox();
            let n = index.beats.len() as u32;
            let cell = |v: f64| (v / BEAT_CELL_DEG).floor() as i32;
            for x in cell(bbox.min_lon)..=cell(bbox.max_lon) {
                for y in cell(bbox.min_lat)..=cell(bbox.max_lat) {
                    index.cells.entry((x, y)).or_default().push(n);
                }
            }
            index.numbers.insert(beat.code.clone(), n);
            index.beats.push((beat.code.clone(), PreparedArea::new(&beat.shape)));
        }
        index
    }

    /// A beat's number in this index (`u32::MAX`: none).
    pub(crate) fn number(&self, code: Option<&str>) -> u32 {
        code.and_then(|c| self.numbers.get(c)).copied().unwrap_or(u32::MAX)
    }

    pub(crate) fn code(&self, number: u32) -> &str {
        &self.beats[number as usize].0
    }

    /// The numbers of the beats holding `point`.
    pub(crate) fn containing(&self, point: LatLon) -> Vec<u32> {
        let key = ((point.lon() / BEAT_CELL_DEG).floor() as i32, (point.lat() / BEAT_CELL_DEG).floor() as i32);
        let Some(list) = self.cells.get(&key) else { return Vec::new() };
        list.iter().copied().filter(|&n| self.beats[n as usize].1.contains(point.lon(), point.lat())).collect()
    }
}

/// The minutes, by hour, whose middle a fix taken at `from` covers when the device's next
/// fix came at `until`: middles in `from ..= from + hold`, before `until`.
pub(crate) fn minute_marks(from: Timestamp, until: Timestamp) -> Vec<(i64, u64)> {
    let end = until.as_millis().min(from.as_millis() + FIX_HOLD_MS + 1);
    let mut marks: Vec<(i64, u64)> = Vec::new();
    // The first minute whose middle is at or after `from`.
    let mut minute = (from.as_millis() - MINUTE_MS / 2).div_euclid(MINUTE_MS);
    if minute * MINUTE_MS + MINUTE_MS / 2 < from.as_millis() {
        minute += 1;
    }
    while minute * MINUTE_MS + MINUTE_MS / 2 < end {
        let start = minute * MINUTE_MS;
        let hour = start.div_euclid(HOUR_MS) * HOUR_MS;
        let bit = 1u64 << ((start - hour) / MINUTE_MS);
        match marks.last_mut() {
            Some((h, bits)) if *h == hour => *bits |= bit,
            _ => marks.push((hour, bit)),
        }
        minute += 1;
    }
    marks
}

/// Marks not yet stored, keyed by beat, unit and hour.
type Marks = HashMap<(String, String, i64), u64>;

/// The beats' lookup and the marks waiting for the store.
#[derive(Debug, Default)]
pub(crate) struct PresenceState {
    /// Every beat, as saved (the index is rebuilt from them when some change).
    beats: Mutex<BTreeMap<String, Beat>>,
    index: RwLock<Arc<BeatIndex>>,
    marks: Mutex<Marks>,
}

impl PresenceState {
    /// Takes in beats saved (new or changed), and indexes them with the others.
    pub(crate) fn put_beats(&self, saved: &[Beat]) {
        let mut beats = self.beats.lock().expect("presence beats lock");
        for beat in saved {
            beats.insert(beat.code.clone(), beat.clone());
        }
        let all: Vec<Beat> = beats.values().cloned().collect();
        *self.index.write().expect("presence index lock") = Arc::new(BeatIndex::new(&all));
    }

    /// Marks where a fix of `unit` at `point`, taken at `from`, held it until `until`.
    pub(crate) fn mark(&self, unit: &str, point: LatLon, from: Timestamp, until: Timestamp) {
        let mut marks = Marks::new();
        self.marks_of(unit, point, from, until, &mut marks);
        if marks.is_empty() {
            return;
        }
        let mut waiting = self.marks.lock().expect("presence marks lock");
        for (key, bits) in marks {
            *waiting.entry(key).or_default() |= bits;
        }
    }

    /// Adds the marks of one fix to `into`.
    pub(crate) fn marks_of(&self, unit: &str, point: LatLon, from: Timestamp, until: Timestamp, into: &mut Marks) {
        let minutes = minute_marks(from, until);
        if minutes.is_empty() {
            return;
        }
        let index = Arc::clone(&self.index.read().expect("presence index lock"));
        for number in index.containing(point) {
            for &(hour, bits) in &minutes {
                *into.entry((index.code(number).to_string(), unit.to_string(), hour)).or_default() |= bits;
            }
        }
    }

    /// Takes every waiting mark, for the store.
    pub(crate) fn take(&self) -> Vec<Presence> {
        let marks = std::mem::take(&mut *self.marks.lock().expect("presence marks lock"));
        marks
            .into_iter()
            .map(|((beat, unit, hour), minutes)| Presence { beat, unit, hour: Timestamp::from_millis(hour), minutes })
            .collect()
    }

    /// Puts back marks the store did not take.
    pub(crate) fn put_back(&self, rows: Vec<Presence>) {
        let mut waiting = self.marks.lock().expect("presence marks lock");
        for row in rows {
            *waiting.entry((row.beat, row.unit, row.hour.as_millis())).or_default() |= row.minutes;
        }
    }

    /// The presence of `beats` in hours starting in `from..to` that the store does not have
    /// yet: the marks waiting for the history writer, and those of each tracker's newest fix
    /// (`open`: unit, point, time), which stands until the next fix or the hold — counted as
    /// far as `now`, never beyond.
    pub(crate) fn unstored<'a>(
        &self,
        open: impl IntoIterator<Item = (&'a str, LatLon, Timestamp)>,
        now: Timestamp,
        beats: &HashSet<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<Presence> {
        let mut marks = self.marks.lock().expect("presence marks lock").clone();
        for (unit, point, fixed_at) in open {
            self.marks_of(unit, point, fixed_at, now.plus_millis(1), &mut marks);
        }
        marks
            .into_iter()
            .filter(|((beat, _, hour), _)| {
                beats.contains(beat.as_str()) && (from.as_millis()..to.as_millis()).contains(hour)
            })
            .map(|((beat, unit, hour), minutes)| Presence { beat, unit, hour: Timestamp::from_millis(hour), minutes })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H0: i64 = 1_764_288_000_000;

    fn at(minutes: f64) -> Timestamp {
        Timestamp::from_millis(H0 + (minutes * 60_000.0) as i64)
    }

    fn minutes_of(marks: &[(i64, u64)]) -> Vec<i64> {
        let mut found = Vec::new();
        for &(hour, bits) in marks {
            for m in 0..60 {
                if bits & (1 << m) != 0 {
                    found.push((hour - H0) / MINUTE_MS + m);
                }
            }
        }
        found
    }

    #[test]
    fn a_fix_covers_the_middles_of_minutes_until_the_next_fix_or_the_hold() {
        // A fix at 10:00.0 and the next at 12:00.0: the middles 10:30 and 11:30.
        assert_eq!(minutes_of(&minute_marks(at(10.0), at(12.0))), [10, 11]);
        // A middle exactly at the fix counts; one exactly at the next fix is the next fix's.
        assert_eq!(minutes_of(&minute_marks(at(10.5), at(11.5))), [10]);
        // No next fix soon: the hold (5 minutes, inclusive) ends it.
        assert_eq!(minutes_of(&minute_marks(at(10.5), at(60.0))), [10, 11, 12, 13, 14, 15]);
        // Across the hour: the marks fall in two hours.
        let marks = minute_marks(at(58.0), at(62.0));
        assert_eq!(marks.len(), 2);
        assert_eq!(minutes_of(&marks), [58, 59, 60, 61]);
        // Fixes closer than a minute's middle mark nothing.
        assert!(minute_marks(at(10.6), at(10.9)).is_empty());
    }
}
