//! The force registry: beats, units, the roster, members (personal data), and the coverage
//! report that compares the roster with where on-duty units actually were.
//!
//! Beats and units are few (thousands) and read often: they live in memory and are written
//! through to the store. Shifts are read by time window from the store. Members are
//! personal data: their name, identity number and phone are sealed under the personal-data
//! key (bound to the member's blind index, so a sealed value moved to another row does not
//! open), the identity number is found by a keyed blind index, and every read is audited
//! with its purpose.

use std::collections::BTreeMap;
use std::sync::RwLock;

use fangkong_core::audit::Outcome;
use fangkong_core::auth::Action;
use fangkong_core::event::Event;
use fangkong_core::forces::{Beat, ForceCategory, HourCoverage, Member, Shift, Trace, Unit, check_shift};
use fangkong_core::jurisdiction::{Chain, JurisdictionKind};
use fangkong_core::time::Timestamp;
use fangkong_geo::Area;
use fangkong_store::{Audited, Outbox, SealedMember};
use geo::BooleanOps;

use crate::feature::Feature;
use crate::guard::{Record, Reference, Write};

mod presence;
use crate::{Caller, Engine, EngineError, crypto};
pub(crate) use presence::{BeatIndex, PresenceState};

/// What the engine holds of the registry.
#[derive(Debug, Default)]
pub(crate) struct ForceState {
    beats: BTreeMap<String, Beat>,
    units: BTreeMap<String, Unit>,
}

/// A beat to save: drawn (`shape`) or made of grids (`grids`, their union).
#[derive(Clone, Debug)]
pub struct NewBeat {
    pub code: String,
    pub station: String,
    pub name: String,
    pub shape: Option<Area>,
    pub grids: Vec<String>,
}

/// A member to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMember {
    pub category: ForceCategory,
    pub station: String,
    pub unit: Option<String>,
    pub name: String,
    pub id_number: String,
    pub phone: Option<String>,
}

/// A unit on duty: its shift and where its trackers are.
#[derive(Clone, Debug, PartialEq)]
pub struct OnDuty {
    pub unit: Unit,
    pub shift: Shift,
    pub positions: Vec<crate::avl::LivePosition>,
}

/// A hotspot cell: its incidents in a period and the patrol time spent inside it.
#[derive(Clone, Debug, PartialEq)]
pub struct HotspotCoverage {
    /// The H3 cell (at the engine's resolution).
    pub cell: u64,
    pub incidents: u64,
    pub patrol_minutes: f64,
}

/// One beat's coverage over a period, hour by hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeatCoverage {
    pub beat: String,
    pub station: String,
    pub hours: Vec<(Timestamp, HourCoverage)>,
}

const HOUR_MS: i64 = 3_600_000;

/// The minutes of the hour starting at `hour` (bit m: minute m) at whose middle one of
/// `shifts` ran (`Shift::covers`: from its start, up to but not including its end). Worked
/// out from each shift's ends, not minute by minute: the report does this for every beat-hour
/// and unit-hour of a month.
fn shift_minutes(shifts: &[&Shift], hour: i64) -> u64 {
    // The first minute whose middle is at or after `at`, within 0..=60.
    let first_at_or_after = |at: i64| (at - hour - 30_000 + 59_999).div_euclid(60_000).clamp(0, 60);
    let mut bits = 0u64;
    for shift in shifts {
        let from = first_at_or_after(shift.starts_at.as_millis());
        let to = first_at_or_after(shift.ends_at.as_millis());
        if from < to {
            bits |= ((1u64 << (to - from)) - 1) << from;
        }
    }
    bits
}

fn check_code(field: &'static str, code: &str) -> Result<(), EngineError> {
    if (1..=32).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(())
    } else {
        Err(EngineError::Invalid { field, message: "1–32 letters, digits, - or _".into() })
    }
}

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), EngineError> {
    if text.trim().is_empty() || text.chars().count() > max || fangkong_core::text::has_hidden(text, false) {
        Err(EngineError::Invalid { field, message: format!("1–{max} characters, no control characters") })
    } else {
        Ok(())
    }
}

impl ForceState {
    pub(crate) fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    pub(crate) fn beats(&self) -> impl Iterator<Item = &Beat> {
        self.beats.values()
    }

    /// The police station a beat is under, if the beat exists.
    pub(crate) fn beat_station(&self, code: &str) -> Option<String> {
        self.beats.get(code).map(|b| b.station.clone())
    }

    /// The police station of a unit, if the unit exists.
    pub(crate) fn unit_station(&self, code: &str) -> Option<String> {
        self.units.get(code).map(|u| u.station.clone())
    }
}

/// The registry's units and beats as the events say (the roster and the members are read
/// from the store, not held).
impl Feature for RwLock<ForceState> {
    fn apply(&self, _at: Timestamp, event: &Event) {
        match event {
            Event::UnitsSaved(units) => {
                let mut state = self.write().expect("forces lock");
                for unit in units {
                    state.units.insert(unit.code.clone(), unit.clone());
                }
            }
            Event::BeatsSaved(beats) => {
                let mut state = self.write().expect("forces lock");
                for beat in beats {
                    state.beats.insert(beat.code.clone(), beat.clone());
                }
            }
            _ => {}
        }
    }
}

impl Engine {
    pub(crate) async fn load_forces(&self) -> Result<(), EngineError> {
        let beats = self.store.list_beats().await?;
        let units = self.store.list_units().await?;
        self.avl.presence.put_beats(&beats);
        let mut state = self.forces.write().expect("forces lock");
        state.beats = beats.into_iter().map(|b| (b.code.clone(), b)).collect();
        state.units = units.into_iter().map(|u| (u.code.clone(), u)).collect();
        Ok(())
    }

    /// The chain of a police station, which must exist.
    fn station_chain(&self, station: &str) -> Result<Chain, EngineError> {
        match self.jurisdiction(station) {
            Some(node) if node.kind == JurisdictionKind::PoliceStation => {
                Ok(self.chain_of(station).unwrap_or_default())
            }
            Some(node) => Err(EngineError::Invalid {
                field: "station",
                message: format!("{station} is a {}, not a police station", node.kind),
            }),
            None => Err(EngineError::NotFound { entity: "jurisdiction", key: station.into() }),
        }
    }

    /// Saves (adds or replaces) a beat under a police station in the caller's jurisdiction.
    pub async fn save_beat(&self, caller: &Caller, new: NewBeat) -> Result<Beat, EngineError> {
        Ok(self.save_beats(caller, vec![new]).await?.pop().expect("one beat saved"))
    }

    /// Saves many beats in one transaction (with one audit record), all or none.
    pub async fn save_beats(&self, caller: &Caller, news: Vec<NewBeat>) -> Result<Vec<Beat>, EngineError> {
        if news.is_empty() || news.len() > 10_000 {
            return Err(EngineError::Invalid { field: "beats", message: "1–10,000 beats".into() });
        }
        let mut beats = Vec::with_capacity(news.len());
        for new in news {
            check_code("code", &new.code)?;
            check_text("name", &new.name, 64)?;
            let place = self.station_chain(&new.station)?;
            // A beat made of grids may only be made of grids the caller may see.
            let write = Write {
                action: Action::ManageForces,
                audit_action: "beat.save",
                record: Record::Beat(&new.code),
                also: Vec::new(),
                to: &place,
                references: new
                    .grids
                    .iter()
                    .map(|grid| {
                        Reference::new("grids", Record::Jurisdiction(grid), Action::ReadForces).or_not_found("grid")
                    })
                    .collect(),
            };
            let _authorised = self.authorize_write(caller, write).await?;
            let shape = match (new.shape, new.grids.is_empty()) {
                (Some(shape), true) => shape,
                (None, false) => self.union_of_grids(&new.grids)?,
                _ => {
                    return Err(EngineError::Invalid {
                        field: "shape",
                        message: "give either a shape or grids".into(),
                    });
                }
            };
            crate::boundaries::check_area(&shape)
                .map_err(|message| EngineError::Invalid { field: "shape", message })?;
            if beats.iter().any(|b: &Beat| b.code == new.code) {
                return Err(EngineError::Invalid { field: "code", message: format!("{} is listed twice", new.code) });
            }
            beats.push(Beat { code: new.code, station: new.station, name: new.name, shape });
        }
        let _serial = self.admin_writes.lock().await;
        let mut entry = caller.entry(self.now(), "beat.save", Outcome::Allowed);
        entry = match beats.as_slice() {
            [one] => entry.target("beat", &one.code),
            many => entry.detail(format!("{} beats", many.len())),
        };
        let now = self.now();
        let saved = Event::BeatsSaved(beats.clone());
        self.store.save_beats(&beats, now, Audited::new(entry, Outbox::new(now, [&saved]))).await?;
        self.publish(now, saved);
        Ok(beats)
    }

    fn union_of_grids(&self, grids: &[String]) -> Result<Area, EngineError> {
        let atlas = self.atlas();
        let mut union: Option<geo::MultiPolygon<f64>> = None;
        for code in grids {
            let shape = atlas.shape(code).ok_or_else(|| EngineError::NotFound { entity: "grid", key: code.clone() })?;
            let shape = crate::boundaries::to_geo(shape);
            union = Some(match union {
                None => shape,
                Some(sum) => sum.union(&shape),
            });
        }
        let union = union.ok_or_else(|| EngineError::Invalid { field: "grids", message: "no grids".into() })?;
        crate::boundaries::from_geo(&union).map_err(|message| EngineError::Invalid { field: "grids", message })
    }

    /// Beats under the police stations in the caller's jurisdiction.
    pub async fn beats(&self, caller: &Caller) -> Result<Vec<Beat>, EngineError> {
        self.authorize(caller, Action::ReadForces, None, "beat.list", None).await?;
        let state = self.forces.read().expect("forces lock");
        Ok(state.beats.values().filter(|b| self.sees(caller, Action::ReadForces, &b.station)).cloned().collect())
    }

    fn sees(&self, caller: &Caller, action: Action, station: &str) -> bool {
        self.chain_of(station).is_some_and(|chain| caller.actor.check_in(action, &chain).is_ok())
    }

    /// Saves (adds or replaces) a unit at a police station in the caller's jurisdiction.
    pub async fn save_unit(&self, caller: &Caller, unit: Unit) -> Result<Unit, EngineError> {
        Ok(self.save_units(caller, vec![unit]).await?.pop().expect("one unit saved"))
    }

    /// Saves many units in one transaction (with one audit record), all or none.
    pub async fn save_units(&self, caller: &Caller, units: Vec<Unit>) -> Result<Vec<Unit>, EngineError> {
        if units.is_empty() || units.len() > 10_000 {
            return Err(EngineError::Invalid { field: "units", message: "1–10,000 units".into() });
        }
        for (n, unit) in units.iter().enumerate() {
            check_code("code", &unit.code)?;
            check_text("call_sign", &unit.call_sign, 32)?;
            if unit.equipment.len() > 64 || unit.equipment.iter().any(|e| check_text("equipment", e, 64).is_err()) {
                return Err(EngineError::Invalid {
                    field: "equipment",
                    message: "at most 64 items of 1–64 characters".into(),
                });
            }
            if unit.capabilities.len() > 16 || unit.capabilities.iter().any(|c| check_code("capabilities", c).is_err())
            {
                return Err(EngineError::Invalid {
                    field: "capabilities",
                    message: "at most 16, each 1–32 letters, digits, - or _".into(),
                });
            }
            if units[..n].iter().any(|u| u.code == unit.code) {
                return Err(EngineError::Invalid { field: "code", message: format!("{} is listed twice", unit.code) });
            }
            let place = self.station_chain(&unit.station)?;
            let write = Write {
                action: Action::ManageForces,
                audit_action: "unit.save",
                record: Record::PoliceUnit(&unit.code),
                also: Vec::new(),
                to: &place,
                references: unit
                    .beat
                    .iter()
                    .map(|beat| Reference::new("beat", Record::Beat(beat), Action::ReadForces).or_not_found("beat"))
                    .collect(),
            };
            let _authorised = self.authorize_write(caller, write).await?;
        }
        let _serial = self.admin_writes.lock().await;
        let mut entry = caller.entry(self.now(), "unit.save", Outcome::Allowed);
        entry = match units.as_slice() {
            [one] => entry.target("unit", &one.code),
            many => entry.detail(format!("{} units", many.len())),
        };
        let now = self.now();
        let saved = Event::UnitsSaved(units.clone());
        self.store.save_units(&units, now, Audited::new(entry, Outbox::new(now, [&saved]))).await?;
        self.publish(now, saved);
        Ok(units)
    }

    /// Units at the police stations in the caller's jurisdiction.
    pub async fn units(&self, caller: &Caller) -> Result<Vec<Unit>, EngineError> {
        self.authorize(caller, Action::ReadForces, None, "unit.list", None).await?;
        let state = self.forces.read().expect("forces lock");
        Ok(state.units.values().filter(|u| self.sees(caller, Action::ReadForces, &u.station)).cloned().collect())
    }

    /// The trackers registered with a unit (no authorisation: for showing a unit the caller
    /// was already allowed to see).
    pub fn unit_devices(&self, unit: &str) -> Vec<String> {
        let devices = self.identity.devices.read().expect("devices lock");
        let mut ids: Vec<String> = devices
            .values()
            .filter(|d| d.unit.as_deref() == Some(unit) && d.revoked_at.is_none())
            .map(|d| d.unique_id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The units on duty at `at` (on a shift of the roster) that the caller may see, with
    /// their shift and the latest position of their trackers.
    pub async fn on_duty(&self, caller: &Caller, at: Timestamp) -> Result<Vec<OnDuty>, EngineError> {
        let shifts = self.roster(caller, at, at.plus_millis(1)).await?;
        let units = self.forces.read().expect("forces lock").units.clone();
        Ok(shifts
            .into_iter()
            .filter_map(|(_, shift)| {
                let unit = units.get(&shift.unit)?.clone();
                let positions = self
                    .unit_devices(&unit.code)
                    .iter()
                    .filter_map(|device| self.live_position_of(caller, device))
                    .collect();
                Some(OnDuty { unit, shift, positions })
            })
            .collect())
    }

    /// Adds shifts to the roster, all or none: each unit and beat must exist, the unit's
    /// station lie in the caller's jurisdiction, and no shift overlap another of its unit.
    pub async fn add_shifts(&self, caller: &Caller, shifts: Vec<Shift>) -> Result<Vec<i64>, EngineError> {
        if shifts.is_empty() || shifts.len() > 10_000 {
            return Err(EngineError::Invalid { field: "shifts", message: "1–10,000 shifts".into() });
        }
        let stations: Vec<String> = {
            let state = self.forces.read().expect("forces lock");
            shifts
                .iter()
                .map(|shift| {
                    if !state.beats.contains_key(&shift.beat) {
                        return Err(EngineError::NotFound { entity: "beat", key: shift.beat.clone() });
                    }
                    state
                        .units
                        .get(&shift.unit)
                        .map(|u| u.station.clone())
                        .ok_or_else(|| EngineError::NotFound { entity: "unit", key: shift.unit.clone() })
                })
                .collect::<Result<_, _>>()?
        };
        for (shift, station) in shifts.iter().zip(&stations) {
            let place = self.chain_of(station).unwrap_or_default();
            let write = Write {
                action: Action::ManageForces,
                audit_action: "roster.add",
                record: Record::PoliceUnit(&shift.unit),
                also: Vec::new(),
                to: &place,
                references: vec![
                    Reference::new("beat", Record::Beat(&shift.beat), Action::ReadForces).or_not_found("beat"),
                ],
            };
            let _authorised = self.authorize_write(caller, write).await?;
        }
        let _serial = self.admin_writes.lock().await;
        let from = shifts.iter().map(|s| s.starts_at).min().unwrap_or_default();
        let to = shifts.iter().map(|s| s.ends_at).max().unwrap_or_default();
        let mut known: Vec<Shift> = self.store.shifts_between(from, to).await?.into_iter().map(|(_, s)| s).collect();
        for shift in &shifts {
            check_shift(shift, &known).map_err(|e| EngineError::Invalid { field: "shifts", message: e.to_string() })?;
            known.push(shift.clone());
        }
        let entry = caller.entry(self.now(), "roster.add", Outcome::Allowed).detail(format!(
            "{} shifts, {} to {}",
            shifts.len(),
            from,
            to
        ));
        let now = self.now();
        let added = shifts.clone();
        let outbox = Outbox::of_new_rows(now, move |ids| {
            vec![Event::ShiftsAdded(ids.iter().copied().zip(added.iter().cloned()).collect())]
        });
        let ids = self.store.insert_shifts(&shifts, Audited::new(entry, outbox)).await?;
        self.publish(now, Event::ShiftsAdded(ids.iter().copied().zip(shifts).collect()));
        Ok(ids)
    }

    /// Removes a shift from the roster (a unit's station in the caller's jurisdiction).
    pub async fn delete_shift(&self, caller: &Caller, id: i64) -> Result<(), EngineError> {
        // The role first: a caller who may not change the roster learns nothing of its ids.
        let target = id.to_string();
        self.authorize(caller, Action::ManageForces, None, "roster.delete", Some(("shift", &target))).await?;
        let shift = self
            .store
            .shift(id)
            .await?
            .ok_or_else(|| EngineError::NotFound { entity: "shift", key: id.to_string() })?;
        let station = self.forces.read().expect("forces lock").units.get(&shift.unit).map(|u| u.station.clone());
        let place = station.and_then(|s| self.chain_of(&s)).unwrap_or_default();
        self.authorize(caller, Action::ManageForces, Some(&place), "roster.delete", Some(("shift", &target))).await?;
        let _serial = self.admin_writes.lock().await;
        let entry = caller
            .entry(self.now(), "roster.delete", Outcome::Allowed)
            .target("shift", &target)
            .detail(format!("{} on {} from {} to {}", shift.unit, shift.beat, shift.starts_at, shift.ends_at));
        let now = self.now();
        let deleted = Event::ShiftDeleted { id, shift };
        self.store.delete_shift(id, Audited::new(entry, Outbox::new(now, [&deleted]))).await?;
        self.publish(now, deleted);
        Ok(())
    }

    /// The shifts running in `from..to` of the units the caller may see.
    pub async fn roster(
        &self,
        caller: &Caller,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(i64, Shift)>, EngineError> {
        self.authorize(caller, Action::ReadForces, None, "roster.read", None).await?;
        let shifts = self.store.shifts_between(from, to).await?;
        let state = self.forces.read().expect("forces lock");
        Ok(shifts
            .into_iter()
            .filter(|(_, shift)| {
                state.units.get(&shift.unit).is_some_and(|u| self.sees(caller, Action::ReadForces, &u.station))
            })
            .collect())
    }

    /// Coverage of every beat inside `within` (a node in the caller's jurisdiction), hour by
    /// hour from the hour holding `from` to `to` (at most 31 days): minutes with an on-duty
    /// unit inside, against the minutes the roster planned. Where units were comes from the
    /// beat presence their trackers' fixes marked as they arrived (`forces::presence`), not
    /// from their tracks; it runs as a report (bounded pool, time budget).
    pub async fn coverage_report(
        &self,
        caller: &Caller,
        within: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<BeatCoverage>, EngineError> {
        let place = self
            .chain_of(within)
            .ok_or_else(|| EngineError::NotFound { entity: "jurisdiction", key: within.into() })?;
        self.authorize(caller, Action::ReadForces, Some(&place), "coverage.read", None).await?;
        let first = Timestamp::from_millis(from.as_millis().div_euclid(HOUR_MS) * HOUR_MS);
        let hours: Vec<Timestamp> =
            (0..).map(|h| first.plus_millis(h * HOUR_MS)).take_while(|h| *h < to).take(24 * 31).collect();
        let end = hours.last().map_or(first, |h| h.plus_millis(HOUR_MS));
        let scope = self.scope(within)?;
        let beats: Vec<(String, String)> = {
            let state = self.forces.read().expect("forces lock");
            state
                .beats
                .values()
                .filter(|b| self.chain_of(&b.station).is_some_and(|c| scope.covers(&c)))
                .map(|b| (b.code.clone(), b.station.clone()))
                .collect()
        };
        let codes: Vec<String> = beats.iter().map(|(code, _)| code.clone()).collect();
        // Minutes already in the store, those waiting for it, and those of the fixes still
        // open (each device's newest) as far as now.
        let open = self.open_presence(&codes, first, end);
        let read = async {
            let stored = self.store.presence(codes.clone(), first, end).await?;
            let shifts: Vec<Shift> = self.store.shifts_between(first, end).await?.into_iter().map(|(_, s)| s).collect();
            Ok((stored, shifts))
        };
        self.run_report("coverage", read, move |(stored, shifts), budget| {
            let mut presence: BTreeMap<(&str, i64), BTreeMap<&str, u64>> = BTreeMap::new();
            for row in stored.iter().chain(&open) {
                *presence
                    .entry((row.beat.as_str(), row.hour.as_millis()))
                    .or_default()
                    .entry(&row.unit)
                    .or_default() |= row.minutes;
            }
            let mut by_unit: BTreeMap<&str, Vec<&Shift>> = BTreeMap::new();
            let mut by_beat: BTreeMap<&str, Vec<&Shift>> = BTreeMap::new();
            for shift in &shifts {
                by_unit.entry(&shift.unit).or_default().push(shift);
                by_beat.entry(&shift.beat).or_default().push(shift);
            }
            let mut duty: BTreeMap<(&str, i64), u64> = BTreeMap::new();
            let mut report = Vec::with_capacity(beats.len());
            for (beat, station) in &beats {
                budget.check()?;
                let mut rows = Vec::with_capacity(hours.len());
                for hour in &hours {
                    let h = hour.as_millis();
                    let rostered = by_beat.get(beat.as_str()).map_or(0, |list| shift_minutes(list, h));
                    let mut covered = 0u64;
                    if let Some(units) = presence.get(&(beat.as_str(), h)) {
                        for (unit, minutes) in units {
                            let on_duty = *duty
                                .entry((unit, h))
                                .or_insert_with(|| by_unit.get(unit).map_or(0, |list| shift_minutes(list, h)));
                            covered |= minutes & on_duty;
                        }
                    }
                    let coverage =
                        HourCoverage { covered_minutes: covered.count_ones(), rostered_minutes: rostered.count_ones() };
                    rows.push((*hour, coverage));
                }
                report.push(BeatCoverage { beat: beat.clone(), station: station.clone(), hours: rows });
            }
            Ok(report)
        })
        .await
    }

    /// Presence not yet in the store for `beats` in hours `from..to`: marks waiting for the
    /// history writer, and the minutes of each tracker's newest fix, which is still open (it
    /// stands until the next fix or the hold; counted as far as now).
    fn open_presence(&self, beats: &[String], from: Timestamp, to: Timestamp) -> Vec<fangkong_store::Presence> {
        let wanted: std::collections::HashSet<&str> = beats.iter().map(String::as_str).collect();
        let newest = self.newest_fixes();
        let open = newest.iter().filter_map(|live| Some((live.unit.as_deref()?, live.fix.point, live.fix.fixed_at)));
        self.avl.presence.unstored(open, self.now(), &wanted, from, to)
    }

    /// Hotspot cells and the patrol time spent in them: the `top` H3 cells (at the engine's
    /// resolution) with the most incidents created in `from..to` inside `within`, each with
    /// its incident count and the minutes units' trackers spent inside it in that period.
    pub async fn hotspot_coverage(
        &self,
        caller: &Caller,
        within: &str,
        from: Timestamp,
        to: Timestamp,
        top: usize,
    ) -> Result<Vec<HotspotCoverage>, EngineError> {
        let place = self
            .chain_of(within)
            .ok_or_else(|| EngineError::NotFound { entity: "jurisdiction", key: within.into() })?;
        self.authorize(caller, Action::ReadForces, Some(&place), "coverage.hotspots", None).await?;
        if to <= from || to.millis_since(from) > 31 * 86_400_000 {
            return Err(EngineError::Invalid {
                field: "to",
                message: "the period must be positive and at most 31 days".into(),
            });
        }
        let scope = self.scope(within)?;
        let devices: Vec<(String, i64)> = self
            .identity
            .devices
            .read()
            .expect("devices lock")
            .values()
            .filter_map(|d| d.unit.clone().map(|unit| (unit, d.id)))
            .collect();
        let resolution = self.config.h3_resolution;
        // The store reads are the long part: they run within the report's budget and stop
        // when the caller goes.
        let read = async {
            let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
            for incident in self.store.incidents_between(from, to, 5_000_000, false).await? {
                if let Some(cell) = incident.h3.filter(|_| scope.covers(&incident.chain)) {
                    *counts.entry(cell).or_default() += 1;
                }
            }
            let mut ranked: Vec<(u64, u64)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked.truncate(top.clamp(1, 500));
            let mut traces = Vec::with_capacity(devices.len());
            for (unit, device) in devices {
                let hold = -fangkong_core::forces::FIX_HOLD_MS;
                let fixes = self.store.track(device, from.plus_millis(hold), to, 200_000).await?;
                traces.push(Trace { unit, fixes: fixes.into_iter().map(|f| (f.fix.fixed_at, f.fix.point)).collect() });
            }
            Ok((ranked, traces))
        };
        self.run_report("hotspots", read, move |(ranked, traces), budget| {
            budget.check()?;
            let cells: std::collections::HashSet<u64> = ranked.iter().map(|(cell, _)| *cell).collect();
            let time = fangkong_core::forces::time_in_cells(&traces, &cells, resolution, from, to);
            Ok(ranked
                .into_iter()
                .map(|(cell, incidents)| HotspotCoverage {
                    cell,
                    incidents,
                    patrol_minutes: time.get(&cell).copied().unwrap_or(0) as f64 / 60_000.0,
                })
                .collect())
        })
        .await
    }

    // ---- members (personal data) ------------------------------------------------------------

    /// The seals of a member's fields are bound to the member's index and the field.
    fn member_context(index: &[u8], field: &str) -> Vec<u8> {
        [b"force-member:".as_slice(), index, b":", field.as_bytes()].concat()
    }

    /// Re-keys members indexed before the person index was one (a 32-byte HMAC of the
    /// upper-cased number): each gets the person index, and its fields are sealed again
    /// bound to it. Runs when the engine starts; a member already re-keyed is left alone,
    /// so an interrupted run is finished by the next start.
    pub(crate) async fn rekey_members(&self) -> Result<usize, EngineError> {
        let old: Vec<SealedMember> = self
            .store
            .list_members()
            .await?
            .into_iter()
            .filter(|m| m.id_number_index.len() != crate::person::INDEX_BYTES)
            .collect();
        if old.is_empty() {
            return Ok(0);
        }
        let key = self.config.keys.personal_data();
        let mut rekeyed = Vec::with_capacity(old.len());
        for sealed in old {
            let member = self.open_member(&sealed)?;
            let index = self.person_index(&member.id_number).to_vec();
            let seal =
                |field: &str, value: &str| crypto::seal(&key, &Engine::member_context(&index, field), value.as_bytes());
            rekeyed.push(SealedMember {
                name_sealed: seal("name", &member.name),
                id_number_sealed: seal("id_number", &member.id_number),
                phone_sealed: member.phone.as_deref().map(|p| seal("phone", p)),
                id_number_index: index,
                ..sealed
            });
        }
        let count = rekeyed.len();
        self.store.rekey_members(rekeyed).await?;
        tracing::info!(members = count, "force members re-keyed to the person index");
        Ok(count)
    }

    /// Registers a member at a police station in the caller's jurisdiction.
    pub async fn add_member(&self, caller: &Caller, new: NewMember) -> Result<Member, EngineError> {
        check_text("name", &new.name, 32)?;
        let id_number = fangkong_core::documents::check_resident_id(&new.id_number, self.today())
            .map_err(|e| EngineError::Invalid { field: "id_number", message: e.to_string() })?
            .number;
        if let Some(phone) = &new.phone
            && !(phone.len() <= 20 && phone.bytes().all(|b| b.is_ascii_digit() || b == b'+' || b == b'-'))
        {
            return Err(EngineError::Invalid { field: "phone", message: "digits, + and -, at most 20".into() });
        }
        let place = self.station_chain(&new.station)?;
        self.authorize(caller, Action::ManageForces, Some(&place), "member.add", None).await?;
        if let Some(unit) = &new.unit {
            let reference = Reference::new("unit", Record::PoliceUnit(unit), Action::ReadForces).or_not_found("unit");
            self.authorize_reference(caller, Action::ManageForces, "member.add", reference).await?;
        }
        let key = self.config.keys.personal_data();
        let index = self.person_index(&id_number).to_vec();
        let seal =
            |field: &str, value: &str| crypto::seal(&key, &Engine::member_context(&index, field), value.as_bytes());
        let now = self.now();
        let sealed = SealedMember {
            id: 0,
            category: new.category,
            station: new.station.clone(),
            unit: new.unit.clone(),
            name_sealed: seal("name", &new.name),
            id_number_sealed: seal("id_number", &id_number),
            phone_sealed: new.phone.as_deref().map(|p| seal("phone", p)),
            id_number_index: index.clone(),
            active: true,
            created_at: now,
            updated_at: now,
        };
        // The record names the member by category and station, never by name or number.
        let entry = caller.entry(now, "member.add", Outcome::Allowed).detail(format!(
            "{} at {}",
            new.category.as_str(),
            new.station
        ));
        let (category, station, unit) = (new.category, new.station.clone(), new.unit.clone());
        let outbox = Outbox::of_new_rows(now, move |ids| {
            let (station, unit) = (station.clone(), unit.clone());
            vec![Event::MemberChanged { id: ids[0], category, station, unit, active: true }]
        });
        let id = self.store.insert_member(&sealed, Audited::new(entry, outbox)).await?;
        self.publish(
            now,
            Event::MemberChanged {
                id,
                category: new.category,
                station: new.station.clone(),
                unit: new.unit.clone(),
                active: true,
            },
        );
        Ok(Member {
            id,
            category: new.category,
            station: new.station,
            unit: new.unit,
            name: new.name,
            id_number,
            phone: new.phone,
            active: true,
        })
    }

    fn open_member(&self, sealed: &SealedMember) -> Result<Member, EngineError> {
        let key = self.config.keys.personal_data();
        let open = |field: &str, bytes: &[u8]| {
            crypto::open(&key, &Engine::member_context(&sealed.id_number_index, field), bytes)
                .and_then(|plain| String::from_utf8(plain).ok())
                .ok_or_else(|| {
                    EngineError::Store(fangkong_store::StoreError::Corrupt(format!(
                        "member {} {field} does not open",
                        sealed.id
                    )))
                })
        };
        Ok(Member {
            id: sealed.id,
            category: sealed.category,
            station: sealed.station.clone(),
            unit: sealed.unit.clone(),
            name: open("name", &sealed.name_sealed)?,
            id_number: open("id_number", &sealed.id_number_sealed)?,
            phone: sealed.phone_sealed.as_deref().map(|p| open("phone", p)).transpose()?,
            active: sealed.active,
        })
    }

    /// Members at the stations in the caller's jurisdiction (personal data: audited with the
    /// caller's purpose before anything is returned).
    pub async fn members(&self, caller: &Caller, station: Option<&str>) -> Result<Vec<Member>, EngineError> {
        self.authorize(caller, Action::ReadForceMembers, None, "member.list", None).await?;
        let target = station.unwrap_or("*");
        self.audit_personal_read(caller, "member.list", ("station", target), None).await?;
        let sealed = self.store.list_members().await?;
        sealed
            .iter()
            .filter(|m| station.is_none_or(|s| m.station == s))
            .filter(|m| self.sees(caller, Action::ReadForceMembers, &m.station))
            .map(|m| self.open_member(m))
            .collect()
    }

    /// Marks a member as serving or no longer serving (they stay on record).
    pub async fn set_member_active(&self, caller: &Caller, id: i64, active: bool) -> Result<(), EngineError> {
        let target = id.to_string();
        // The role first: a caller who may not change members learns nothing of their ids.
        self.authorize(caller, Action::ManageForces, None, "member.update", Some(("member", &target))).await?;
        let member = self.store.list_members().await?.into_iter().find(|m| m.id == id);
        let member = member.ok_or_else(|| EngineError::NotFound { entity: "member", key: id.to_string() })?;
        let place = self.chain_of(&member.station).unwrap_or_default();
        self.authorize(caller, Action::ManageForces, Some(&place), "member.update", Some(("member", &target))).await?;
        let entry = caller
            .entry(self.now(), "member.update", Outcome::Allowed)
            .target("member", &target)
            .detail(if active { "active" } else { "inactive" }.to_string());
        let now = self.now();
        let (category, station, unit) = (member.category, member.station, member.unit);
        let changed = Event::MemberChanged { id, category, station, unit, active };
        self.store.set_member_active(id, active, now, Audited::new(entry, Outbox::new(now, [&changed]))).await?;
        self.publish(now, changed);
        Ok(())
    }

    /// The member with this identity number, found by its blind index (audited).
    pub async fn member_by_id_number(&self, caller: &Caller, id_number: &str) -> Result<Member, EngineError> {
        self.authorize(caller, Action::ReadForceMembers, None, "member.find", None).await?;
        self.audit_personal_read(caller, "member.find", ("member", "by identity number"), None).await?;
        // The person index: the same normal form as at registration (a 15-digit number
        // finds its 18-digit one), the same index as a resident's.
        let index = self.person_index(id_number).to_vec();
        let sealed = self.store.list_members().await?;
        let found = sealed.iter().find(|m| m.id_number_index == index);
        match found {
            Some(m) if self.sees(caller, Action::ReadForceMembers, &m.station) => self.open_member(m),
            _ => Err(EngineError::NotFound { entity: "member", key: "with this identity number".into() }),
        }
    }
}

#[cfg(test)]
mod tests;
