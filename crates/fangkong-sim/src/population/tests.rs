//! The population at a small scale: the plan's proportions, homes for everyone, and the
//! same records for the same seed.

use super::*;
use crate::city::{CityOptions, shenzhen};

fn city() -> &'static CityMap {
    static MAP: std::sync::OnceLock<CityMap> = std::sync::OnceLock::new();
    MAP.get_or_init(|| shenzhen(&CityOptions::default()))
}

/// Keeps every record (a small scale only).
#[derive(Default)]
struct Keep {
    residents: Vec<Resident>,
    units: Vec<Unit>,
    tenancies: Vec<Tenancy>,
    members: Vec<ForceMember>,
    force_units: Vec<ForceUnit>,
    places: Vec<Place>,
    buildings: Vec<Building>,
}

impl PopulationSink for Keep {
    fn building(&mut self, r: &Building) {
        self.buildings.push(r.clone());
    }
    fn unit(&mut self, r: &Unit) {
        self.units.push(r.clone());
    }
    fn resident(&mut self, r: &Resident) {
        self.residents.push(r.clone());
    }
    fn landlord(&mut self, _: &Landlord) {}
    fn tenancy(&mut self, r: &Tenancy) {
        self.tenancies.push(r.clone());
    }
    fn force_unit(&mut self, r: &ForceUnit) {
        self.force_units.push(r.clone());
    }
    fn force_member(&mut self, r: &ForceMember) {
        self.members.push(r.clone());
    }
    fn place(&mut self, r: &Place) {
        self.places.push(r.clone());
    }
    fn informant(&mut self, _: &Informant) {}
}

fn run(scale: f64, seed: u64) -> (Counts, Keep) {
    let mut keep = Keep::default();
    let options = PopulationOptions { scale, seed, ..PopulationOptions::default() };
    let counts = generate(city(), &options, &mut keep, &mut |_| {});
    (counts, keep)
}

fn within(value: f64, expected: f64, tolerance: f64) -> bool {
    (value - expected).abs() <= expected * tolerance
}

#[test]
fn a_small_city_has_the_plans_proportions() {
    let scale = 0.005; // 100,000 residents, 250 force members
    let (counts, keep) = run(scale, 7);
    let residents = counts.residents as f64;
    assert!(within(residents, 20_000_000.0 * scale, 0.1), "{counts:?}");
    let tenants = keep.residents.iter().filter(|r| !r.unit.is_empty()).count() as f64;
    let non_hukou = keep.residents.iter().filter(|r| !r.unit.is_empty() && !r.local_hukou).count() as f64;
    assert!(within(non_hukou / tenants, 0.67, 0.08), "non-hukou share {}", non_hukou / tenants);
    let men = keep.residents.iter().filter(|r| r.sex == Sex::Male).count() as f64;
    assert!(within(men / (residents - men) * 100.0, 120.0, 0.08), "sex ratio");
    let households = keep.tenancies.len() as f64 + (keep.units.iter().filter(|u| !u.rental).count() as f64);
    assert!(within(tenants / households, 2.1, 0.15), "household size {}", tenants / households);
    // Villages come in whole buildings, so at a small scale many grids have none and their
    // renters take "other" rental units instead: at least the target, never far above it.
    let rental = counts.rental_units as f64;
    assert!(rental >= 7_800_000.0 * scale * 0.9 && rental <= 7_800_000.0 * scale * 2.0, "{counts:?}");
    assert_eq!(
        counts.households,
        keep.tenancies.len() as u64 + keep.units.iter().filter(|u| !u.rental).count() as u64,
        "every household has a home"
    );
    // The plan's four categories, within rounding per station.
    for (i, expected) in [4_000.0, 14_000.0, 6_000.0, 26_000.0].into_iter().enumerate() {
        assert!(within(counts.force_members[i] as f64, expected * scale, 0.25), "{i}: {counts:?}");
    }
    let modes: std::collections::BTreeSet<&str> = keep.force_units.iter().map(|u| u.mode.as_str()).collect();
    assert_eq!(modes.len(), 6, "units of all six modes: {modes:?}");
    assert_eq!(counts.checkpoints, 25, "16 second-line checkpoints and 9 city exits");
    assert!(counts.hotels > 0 && counts.trades > 0 && counts.alarm_points > 0 && counts.informants > 0, "{counts:?}");
}

#[test]
fn everyone_lives_in_a_unit_of_their_grid_and_places_lie_in_their_grid() {
    let (_, keep) = run(0.002, 3);
    let units: std::collections::HashMap<&str, &Unit> = keep.units.iter().map(|u| (u.id.as_str(), u)).collect();
    let buildings: std::collections::HashMap<&str, &Building> =
        keep.buildings.iter().map(|b| (b.id.as_str(), b)).collect();
    for resident in keep.residents.iter().filter(|r| !r.unit.is_empty()) {
        let unit = units.get(resident.unit.as_str()).unwrap_or_else(|| panic!("{} has no unit", resident.id));
        assert_eq!(buildings[unit.building.as_str()].grid, resident.grid);
    }
    for building in &keep.buildings {
        assert!(city().areas[&building.grid].contains(building.lon, building.lat), "{}", building.id);
    }
    for place in keep.places.iter().filter(|p| !p.grid.is_empty()) {
        assert!(city().areas[&place.grid].contains(place.lon, place.lat), "{}", place.id);
    }
    // Co-residents, not lessees, may be unregistered.
    for tenancy in &keep.tenancies {
        assert!(!tenancy.unregistered.contains(&tenancy.residents[0]));
    }
}

#[test]
fn the_same_seed_gives_the_same_people() {
    let (a, keep_a) = run(0.001, 11);
    let (b, keep_b) = run(0.001, 11);
    assert_eq!(a, b);
    assert_eq!(keep_a.residents, keep_b.residents);
    let (c, _) = run(0.001, 12);
    assert_ne!(a, c);
}

#[test]
fn identity_numbers_are_unique_across_the_city() {
    struct Numbers(std::collections::HashSet<String>, u64);
    impl PopulationSink for Numbers {
        fn building(&mut self, _: &Building) {}
        fn unit(&mut self, _: &Unit) {}
        fn resident(&mut self, r: &Resident) {
            self.1 += 1;
            assert!(self.0.insert(r.id_number.clone()), "{} twice", r.id_number);
            let check = fangkong_core::documents::check_resident_id(&r.id_number, 20_454);
            assert!(check.is_ok(), "{}: {check:?}", r.id_number);
        }
        fn landlord(&mut self, _: &Landlord) {}
        fn tenancy(&mut self, _: &Tenancy) {}
        fn force_unit(&mut self, _: &ForceUnit) {}
        fn force_member(&mut self, _: &ForceMember) {}
        fn place(&mut self, _: &Place) {}
        fn informant(&mut self, _: &Informant) {}
    }
    let city = crate::city::shenzhen(&crate::city::CityOptions::default());
    // At 1 % of the city (200,000 people) clashes are certain without the fix.
    let options = PopulationOptions { scale: 0.01, ..PopulationOptions::default() };
    let mut numbers = Numbers(std::collections::HashSet::new(), 0);
    generate(&city, &options, &mut numbers, &mut |_| {});
    assert!(numbers.1 > 150_000, "{}", numbers.1);
}

#[test]
fn the_sites_alone_are_the_sites_of_the_whole_population() {
    let options = PopulationOptions { seed: 5, scale: 0.002, ..PopulationOptions::default() };
    let mut whole = Keep::default();
    generate(city(), &options, &mut whole, &mut |_| {});
    let mut sites = Keep::default();
    generate_sites(city(), &options, &mut sites);
    let fixed = |places: &[Place]| -> Vec<Place> {
        places.iter().filter(|p| p.kind == "alarm_point" || p.kind.ends_with("checkpoint")).cloned().collect()
    };
    assert!(fixed(&whole.places).iter().filter(|p| p.kind == "alarm_point").count() > 0);
    assert_eq!(fixed(&sites.places), fixed(&whole.places));
    assert_eq!(sites.places.len(), fixed(&sites.places).len(), "nothing but alarm points and checkpoints");
}
