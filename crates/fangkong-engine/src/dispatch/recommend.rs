//! The recommendation: the best free units for an incident, ranked from the live index
//! (`live.rs`) and cut to the units the caller may see.

use fangkong_core::auth::Action;
use fangkong_core::dispatch::{Incident, Recommendation};
use fangkong_core::forces::Unit;
use fangkong_geo::LatLon;

use super::live;
use crate::{Caller, Engine, EngineError};

/// A recommended unit, with what a dispatcher needs to choose it.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommended {
    pub unit: Unit,
    pub distance_m: f64,
    /// Estimated seconds to arrive (before any beat bonus).
    pub eta_s: f64,
    /// The place is inside the unit's beat.
    pub owns_beat: bool,
    /// The unit's categories suit the incident type.
    pub suitable: bool,
}

impl Engine {
    /// The best units for an incident now, by estimated arrival (see [`LiveUnits::recommend`]).
    pub async fn recommend(
        &self,
        caller: &Caller,
        id: i64,
        limit: Option<usize>,
    ) -> Result<Vec<Recommended>, EngineError> {
        let incident = self.load_incident(id).await?;
        self.authorize(
            caller,
            Action::ReadIncidents,
            Some(&incident.chain),
            "incident.recommend",
            Some(("incident", &id.to_string())),
        )
        .await?;
        Ok(self.recommendations_for(caller, &incident, limit))
    }

    /// The ranking for an incident, of the units the caller may see; none if the caller
    /// does not read incidents where it is.
    pub(super) fn recommendations_for(
        &self,
        caller: &Caller,
        incident: &Incident,
        limit: Option<usize>,
    ) -> Vec<Recommended> {
        if caller.actor.check_in(Action::ReadIncidents, &incident.chain).is_err() {
            return Vec::new();
        }
        let exclude: Vec<String> =
            incident.assignments.iter().filter(|a| a.is_active()).map(|a| a.unit.clone()).collect();
        let limit = limit.unwrap_or(self.config.dispatch.recommendations).clamp(1, 50);
        // Units the caller may not see (another district's, near a border) are left out
        // after ranking; if that leaves too few, ask again for more.
        let mut fetch = limit;
        loop {
            let ranked = self.recommend_at(incident.point, &incident.type_code, fetch, &exclude);
            let exhausted = ranked.len() < fetch;
            let mut visible: Vec<Recommended> = {
                let units = self.dispatch.units.read().expect("units lock");
                ranked
                    .into_iter()
                    .filter_map(|r| {
                        let unit = &units.get(&r.unit)?.unit;
                        let chain = self.chain_of(&unit.station)?;
                        caller.actor.check_in(Action::ReadIncidents, &chain).is_ok().then(|| Recommended {
                            unit: unit.clone(),
                            distance_m: r.distance_m,
                            eta_s: r.eta_s,
                            owns_beat: r.owns_beat,
                            suitable: r.suitable,
                        })
                    })
                    .collect()
            };
            if visible.len() >= limit || exhausted || fetch >= 400 {
                visible.truncate(limit);
                return visible;
            }
            fetch *= 4;
        }
    }

    /// The recommendation for any point and type, straight from the live index (no
    /// authorisation: for use cases and benchmarks that have authorised their caller).
    pub fn recommend_at(
        &self,
        point: LatLon,
        type_code: &str,
        limit: usize,
        exclude: &[String],
    ) -> Vec<Recommendation> {
        let query = live::Query {
            point,
            capability: self.capability_for(type_code),
            limit,
            fresh_after: self.now().plus_millis(-self.config.dispatch.position_stale_ms),
            exclude,
        };
        self.dispatch.units.read().expect("units lock").recommend(&query, &self.config.dispatch.travel)
    }
}
