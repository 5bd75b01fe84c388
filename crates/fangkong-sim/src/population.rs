//! The people and places of the synthetic Shenzhen: residents in households, buildings and
//! their units, landlords and tenancies; the integrated force in units of six modes;
//! hotels, special trades, alarm points, checkpoints and informants.
//!
//! Parameters from `../shared/data/synthetic-city.md` ([S] public source, [A] estimate):
//! * residents ~20 M at scale 1.0 [S/A], ~67 % without local hukou [S/A]; household size
//!   ~2.1; sex ratio ~120 men per 100 women; ages 0–14 10 %, 15–64 88 %, 65+ 2 % [S];
//! * rental units ~7.8 M: urban villages 4.9 M, dormitories 1.4 M, other 1.5 M [S]; village
//!   buildings 6–8 floors × 4–8 units [A]; landlord : tenants in villages 1:40–1:80 [S];
//!   tenancies median 6–12 months, 5–10 % of co-residents unregistered [A]; residence
//!   permits for ages 16–60 [S];
//! * the plan's force: 4,000 police, 14,000 security/joint-defence guards, 6,000
//!   internal-unit guards, 26,000 volunteers [S, the seed], in units on foot, in vehicles,
//!   on bicycles, in plain clothes, at fixed posts and at checkpoints;
//! * hotels 8,000–12,000 [A]; per 100,000 residents: pawnshops 1–2, locksmiths 3–5, seal
//!   engravers 1–2, scrap-metal buyers 5–10, second-hand phone shops 10–20, vehicle repair
//!   20–40, bath/massage 10–30 [A]; alarm points 1 per 5,000 residents [A]; informants 1 per
//!   10–20 rental buildings plus some landlords [A]; 16 second-line checkpoints [S] and 8–10
//!   city exits [A].
//!
//! Residents are spread over the districts by their populations in the 2020 census (7th
//! national census, figures recalled, not re-checked: treat them as weights) and within a
//! district by area. Everything is generated grid by grid from a seed derived from the
//! run's seed and the grid's code, so a grid's contents do not depend on the order of
//! generation or on the other grids.
//!
//! Personal data here is synthetic. Identity numbers have the GB 11643 form and check
//! digit, but their region codes use prefecture `99` (or Shenzhen county `9x`), which GB/T
//! 2260 does not assign, so no generated number can be a real person's. Nothing records
//! ethnicity, religion or any group trait.

use std::collections::BTreeMap;

use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_geo::{Area, Position};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::city::CityMap;

mod names;

/// `(year, month, day)` of a Unix day number.
pub fn civil_date(day: i64) -> (i64, u32, u32) {
    names::civil_from_days(day)
}

/// How big and what shape the population is. Figures marked [A] in synthetic-city.md are
/// fields here so a run can vary them.
#[derive(Clone, Debug, PartialEq)]
pub struct PopulationOptions {
    pub seed: u64,
    /// 1.0 is the full city of SYSTEM.md (20 M residents, 50 k force members).
    pub scale: f64,
    pub residents: f64,
    pub non_hukou_share: f64,
    /// Men per 100 women.
    pub sex_ratio: f64,
    /// Shares of ages 0–14 and 65+ (the rest is 15–64).
    pub children_share: f64,
    pub elderly_share: f64,
    /// Share of households that rent.
    pub renting_share: f64,
    /// Rental units of urban villages, dormitories and other housing.
    pub rental_units: [f64; 3],
    pub village_floors: (u32, u32),
    pub village_units_per_floor: (u32, u32),
    /// Tenants per landlord in urban villages.
    pub tenants_per_landlord: (u32, u32),
    /// Tenancy terms in months.
    pub tenancy_months: (u32, u32),
    /// Share of co-residents not registered with their tenancy.
    pub unregistered_share: (f64, f64),
    /// Police, security/joint-defence guards, internal-unit guards, volunteers.
    pub forces: [f64; 4],
    pub hotels: f64,
    /// Per 100,000 residents, for each [`TradeKind`] in order.
    pub trades_per_100k: [(f64, f64); 7],
    pub residents_per_alarm_point: f64,
    /// Rental buildings per informant.
    pub rental_buildings_per_informant: (u32, u32),
    /// Share of landlords who also inform.
    pub informant_landlord_share: f64,
    pub second_line_checkpoints: usize,
    pub city_exit_checkpoints: usize,
    /// The day the registry is "as of" (Unix days): birth dates and tenancies are relative
    /// to it. Fixed by default so a seed always gives the same data.
    pub as_of_day: i64,
}

impl Default for PopulationOptions {
    fn default() -> PopulationOptions {
        PopulationOptions {
            seed: 2003,
            scale: 1.0,
            residents: 20_000_000.0,
            non_hukou_share: 0.67,
            sex_ratio: 120.0,
            children_share: 0.10,
            elderly_share: 0.02,
            renting_share: 0.75,
            rental_units: [4_900_000.0, 1_400_000.0, 1_500_000.0],
            village_floors: (6, 8),
            village_units_per_floor: (4, 8),
            tenants_per_landlord: (40, 80),
            tenancy_months: (3, 24),
            unregistered_share: (0.05, 0.10),
            forces: [4_000.0, 14_000.0, 6_000.0, 26_000.0],
            hotels: 10_000.0,
            trades_per_100k: [
                (1.0, 2.0),
                (3.0, 5.0),
                (1.0, 2.0),
                (5.0, 10.0),
                (10.0, 20.0),
                (20.0, 40.0),
                (10.0, 30.0),
            ],
            residents_per_alarm_point: 5_000.0,
            rental_buildings_per_informant: (10, 20),
            informant_landlord_share: 0.05,
            second_line_checkpoints: 16,
            city_exit_checkpoints: 9,
            // 2026-01-01.
            as_of_day: 20_454,
        }
    }
}

/// Residents by district in the 2020 census (Longgang including Dapeng), as weights.
const DISTRICT_POPULATION: [(&str, f64); 9] = [
    ("440303", 1_143_801.0),
    ("440304", 1_553_225.0),
    ("440305", 1_795_826.0),
    ("440306", 4_476_554.0),
    ("440307", 4_135_273.0),
    ("440308", 214_225.0),
    ("440309", 2_528_872.0),
    ("440310", 551_333.0),
    ("440311", 1_095_289.0),
];

/// The districts inside the old SEZ line and those outside it (second-line checkpoints sit
/// on the border between the two groups).
const INNER_DISTRICTS: [&str; 4] = ["440303", "440304", "440305", "440308"];
const OUTER_DISTRICTS: [&str; 3] = ["440306", "440307", "440309"];

// ---- records --------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildingKind {
    UrbanVillage,
    Dormitory,
    Commercial,
}

impl BuildingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildingKind::UrbanVillage => "urban_village",
            BuildingKind::Dormitory => "dormitory",
            BuildingKind::Commercial => "commercial",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Building {
    pub id: String,
    pub grid: String,
    pub kind: BuildingKind,
    pub floors: u32,
    pub units: u32,
    pub lon: f64,
    pub lat: f64,
    pub address: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    pub id: String,
    pub building: String,
    pub floor: u32,
    pub rental: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Landlord {
    pub id: String,
    /// The resident who lets, or `None` for a company (a dormitory's operator, a village's
    /// joint-stock company 股份合作公司, a property manager).
    pub resident: Option<String>,
    /// The company's name when `resident` is `None`.
    pub company: Option<String>,
    pub buildings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tenancy {
    pub id: String,
    pub unit: String,
    pub landlord: Option<String>,
    /// The household's members; the first is the lessee.
    pub residents: Vec<String>,
    /// Unix days.
    pub start_day: i64,
    pub months: u32,
    /// Members not registered with the tenancy.
    pub unregistered: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Resident {
    pub id: String,
    pub name: String,
    pub sex: Sex,
    /// Unix days.
    pub birth_day: i64,
    /// 18 characters, GB 11643 form with its check digit; synthetic region codes.
    pub id_number: String,
    pub local_hukou: bool,
    pub unit: String,
    pub grid: String,
    /// Residence permit (居住证) expiry, Unix days, for non-hukou residents aged 16–60.
    pub permit_expires_day: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForceCategory {
    Police,
    SecurityGuard,
    InternalGuard,
    Volunteer,
}

impl ForceCategory {
    pub const ALL: [ForceCategory; 4] =
        [ForceCategory::Police, ForceCategory::SecurityGuard, ForceCategory::InternalGuard, ForceCategory::Volunteer];

    pub fn as_str(self) -> &'static str {
        match self {
            ForceCategory::Police => "police",
            ForceCategory::SecurityGuard => "security_guard",
            ForceCategory::InternalGuard => "internal_guard",
            ForceCategory::Volunteer => "volunteer",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

    pub fn as_str(self) -> &'static str {
        match self {
            PatrolMode::Foot => "foot",
            PatrolMode::Vehicle => "vehicle",
            PatrolMode::Bicycle => "bicycle",
            PatrolMode::PlainClothes => "plain_clothes",
            PatrolMode::FixedPost => "fixed_post",
            PatrolMode::Checkpoint => "checkpoint",
        }
    }

    /// Members per team.
    fn team_size(self) -> (u32, u32) {
        match self {
            PatrolMode::Foot => (2, 3),
            PatrolMode::Vehicle => (2, 4),
            PatrolMode::Bicycle => (2, 2),
            PatrolMode::PlainClothes => (2, 3),
            PatrolMode::FixedPost => (2, 6),
            PatrolMode::Checkpoint => (4, 8),
        }
    }

    /// The modes a category serves in, with weights.
    fn for_category(category: ForceCategory) -> &'static [(PatrolMode, f64)] {
        match category {
            ForceCategory::Police => &[
                (PatrolMode::Vehicle, 0.45),
                (PatrolMode::PlainClothes, 0.2),
                (PatrolMode::Checkpoint, 0.15),
                (PatrolMode::Foot, 0.2),
            ],
            ForceCategory::SecurityGuard => &[
                (PatrolMode::Foot, 0.45),
                (PatrolMode::Bicycle, 0.2),
                (PatrolMode::FixedPost, 0.25),
                (PatrolMode::Checkpoint, 0.1),
            ],
            ForceCategory::InternalGuard => &[(PatrolMode::FixedPost, 0.8), (PatrolMode::Foot, 0.2)],
            ForceCategory::Volunteer => {
                &[(PatrolMode::Foot, 0.7), (PatrolMode::Bicycle, 0.2), (PatrolMode::FixedPost, 0.1)]
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ForceUnit {
    pub id: String,
    pub station: String,
    pub category: ForceCategory,
    pub mode: PatrolMode,
    /// The police district patrolled (its beat).
    pub beat: String,
    pub call_sign: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ForceMember {
    pub id: String,
    pub unit: String,
    pub category: ForceCategory,
    pub name: String,
    pub sex: Sex,
    pub birth_day: i64,
    pub id_number: String,
    /// The tracker the member carries.
    pub device: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradeKind {
    Pawnshop,
    Locksmith,
    SealEngraver,
    ScrapMetal,
    UsedPhones,
    VehicleRepair,
    BathMassage,
}

impl TradeKind {
    pub const ALL: [TradeKind; 7] = [
        TradeKind::Pawnshop,
        TradeKind::Locksmith,
        TradeKind::SealEngraver,
        TradeKind::ScrapMetal,
        TradeKind::UsedPhones,
        TradeKind::VehicleRepair,
        TradeKind::BathMassage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TradeKind::Pawnshop => "pawnshop",
            TradeKind::Locksmith => "locksmith",
            TradeKind::SealEngraver => "seal_engraver",
            TradeKind::ScrapMetal => "scrap_metal",
            TradeKind::UsedPhones => "used_phones",
            TradeKind::VehicleRepair => "vehicle_repair",
            TradeKind::BathMassage => "bath_massage",
        }
    }

    fn name_zh(self) -> &'static str {
        match self {
            TradeKind::Pawnshop => "典当行",
            TradeKind::Locksmith => "开锁店",
            TradeKind::SealEngraver => "刻章店",
            TradeKind::ScrapMetal => "废品收购站",
            TradeKind::UsedPhones => "二手手机店",
            TradeKind::VehicleRepair => "汽车修理厂",
            TradeKind::BathMassage => "沐足按摩店",
        }
    }
}

/// A place of interest with a position: hotel, special trade, alarm point, checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub id: String,
    /// `hotel`, a [`TradeKind`], `alarm_point`, `second_line_checkpoint`, `city_exit_checkpoint`.
    pub kind: &'static str,
    pub name: String,
    /// The grid it was generated in; empty for checkpoints, which sit on borders and are
    /// located by lookup.
    pub grid: String,
    pub lon: f64,
    pub lat: f64,
    /// Rooms for hotels; lanes for checkpoints; 0 otherwise.
    pub capacity: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Informant {
    pub id: String,
    /// The resident who informs.
    pub resident: String,
    pub grid: String,
    /// Whether they are also a landlord.
    pub landlord: bool,
}

/// Everything the generator produces, record by record.
pub trait PopulationSink {
    fn building(&mut self, building: &Building);
    fn unit(&mut self, unit: &Unit);
    fn resident(&mut self, resident: &Resident);
    fn landlord(&mut self, landlord: &Landlord);
    fn tenancy(&mut self, tenancy: &Tenancy);
    fn force_unit(&mut self, unit: &ForceUnit);
    fn force_member(&mut self, member: &ForceMember);
    fn place(&mut self, place: &Place);
    fn informant(&mut self, informant: &Informant);
}

/// How many of each record a run produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub buildings: u64,
    pub units: u64,
    pub rental_units: u64,
    pub residents: u64,
    pub non_hukou_residents: u64,
    pub households: u64,
    pub landlords: u64,
    pub tenancies: u64,
    pub unregistered: u64,
    pub force_units: u64,
    pub force_members: [u64; 4],
    pub hotels: u64,
    pub trades: u64,
    pub alarm_points: u64,
    pub checkpoints: u64,
    pub informants: u64,
}

/// A sink that only counts (what `fangkong sim generate` does without `--out`).
#[derive(Debug, Default)]
pub struct CountingSink {
    pub counts: Counts,
}

impl PopulationSink for CountingSink {
    fn building(&mut self, _: &Building) {
        self.counts.buildings += 1;
    }
    fn unit(&mut self, unit: &Unit) {
        self.counts.units += 1;
        self.counts.rental_units += u64::from(unit.rental);
    }
    fn resident(&mut self, resident: &Resident) {
        self.counts.residents += 1;
        self.counts.non_hukou_residents += u64::from(!resident.local_hukou);
    }
    fn landlord(&mut self, _: &Landlord) {
        self.counts.landlords += 1;
    }
    fn tenancy(&mut self, tenancy: &Tenancy) {
        self.counts.tenancies += 1;
        self.counts.unregistered += tenancy.unregistered.len() as u64;
    }
    fn force_unit(&mut self, _: &ForceUnit) {
        self.counts.force_units += 1;
    }
    fn force_member(&mut self, member: &ForceMember) {
        let index = ForceCategory::ALL.iter().position(|&c| c == member.category).unwrap_or(0);
        self.counts.force_members[index] += 1;
    }
    fn place(&mut self, place: &Place) {
        match place.kind {
            "hotel" => self.counts.hotels += 1,
            "alarm_point" => self.counts.alarm_points += 1,
            "second_line_checkpoint" | "city_exit_checkpoint" => self.counts.checkpoints += 1,
            _ => self.counts.trades += 1,
        }
    }
    fn informant(&mut self, _: &Informant) {
        self.counts.informants += 1;
    }
}

/// Progress: grids done of all grids (for a progress bar).
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub grids_done: usize,
    pub grids: usize,
    pub residents: u64,
}

// ---- generation -------------------------------------------------------------------------------

/// A generator seeded from the run's seed and a label (a grid code, "forces"…).
fn rng_for(seed: u64, label: &str) -> ChaCha8Rng {
    // FNV-1a of the label, mixed with the seed.
    let hash = label.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    ChaCha8Rng::seed_from_u64(seed ^ hash.rotate_left(17))
}

/// A count with expectation `expected`: its whole part plus one with the probability of its
/// fraction (so many small shares add up to the right total).
fn stochastic_round(rng: &mut ChaCha8Rng, expected: f64) -> u64 {
    let whole = expected.floor();
    whole as u64 + u64::from(rng.random::<f64>() < expected - whole)
}

fn mean((low, high): (u32, u32)) -> f64 {
    f64::from(low + high) / 2.0
}

fn between(rng: &mut ChaCha8Rng, (low, high): (u32, u32)) -> u32 {
    rng.random_range(low..=high)
}

/// A point inside `area` (rejection sampling in its box; a box always holds its area).
pub(crate) fn point_in(rng: &mut ChaCha8Rng, area: &Area) -> Position {
    let bbox = area.bbox();
    for _ in 0..1_000 {
        let lon = rng.random_range(bbox.min_lon..=bbox.max_lon);
        let lat = rng.random_range(bbox.min_lat..=bbox.max_lat);
        if area.contains(lon, lat) {
            return [lon, lat];
        }
    }
    // A sliver that sampling keeps missing: its first vertex is on its boundary, which the
    // boundary rule may or may not count as inside; good enough for a synthetic address.
    area.polygons[0].exterior[0]
}

/// One grid's share of the city and what the generator needs to know about it.
struct GridPlan<'a> {
    grid: &'a Jurisdiction,
    area: &'a Area,
    /// Share of all residents.
    weight: f64,
}

/// Generates the population of `city` into `sink`, calling `progress` after each grid.
/// Returns the counts.
pub fn generate(
    city: &CityMap,
    options: &PopulationOptions,
    sink: &mut dyn PopulationSink,
    progress: &mut dyn FnMut(Progress),
) -> Counts {
    let mut counter = Counter {
        inner: sink,
        counts: CountingSink::default(),
        residents: Unique::default(),
        members: Unique::default(),
    };
    let plans = grid_plans(city);
    for (done, plan) in plans.iter().enumerate() {
        counter.counts.counts.households += generate_grid(plan, options, &mut counter);
        if done % 64 == 63 || done + 1 == plans.len() {
            progress(Progress { grids_done: done + 1, grids: plans.len(), residents: counter.counts.counts.residents });
        }
    }
    generate_forces(city, &plans, options, &mut counter);
    generate_checkpoints(city, options, &mut counter);
    counter.counts.counts
}

/// Only the force (units and their members), exactly as [`generate`] makes it.
pub fn generate_force(city: &CityMap, options: &PopulationOptions, sink: &mut dyn PopulationSink) {
    let plans = grid_plans(city);
    let mut counter = Counter {
        inner: sink,
        counts: CountingSink::default(),
        residents: Unique::default(),
        members: Unique::default(),
    };
    generate_forces(city, &plans, options, &mut counter);
}

/// Keeps identity numbers unique, as real ones are: a number drawn before is moved to the
/// next free sequence number of the same sex (same region and birth date), its check
/// character recomputed (500 a day per region and sex: enough at any scale we generate). No random number is drawn for it, so the rest of
/// the grid is generated exactly as without the clash; only the clashing number depends on
/// the grids generated before it.
#[derive(Default)]
struct Unique {
    seen: std::collections::HashSet<u64>,
}

impl Unique {
    fn fix(&mut self, number: &str) -> Option<String> {
        let mut first17: u64 = number.get(..17)?.parse().ok()?;
        if self.seen.insert(first17) {
            return None;
        }
        let (stem, sequence) = (first17 / 1_000, first17 % 1_000);
        for step in 1..500 {
            first17 = stem * 1_000 + (sequence + 2 * step) % 1_000;
            if self.seen.insert(first17) {
                let text = format!("{first17:017}");
                return Some(format!("{text}{}", names::check_digit(&text)));
            }
        }
        None
    }
}

/// Each grid's share of the city's residents: the weights people (and calls) are drawn by.
pub fn grid_weights(city: &CityMap) -> Vec<(String, f64)> {
    grid_plans(city).iter().map(|plan| (plan.grid.code.clone(), plan.weight)).collect()
}

/// Passes records on and counts them.
struct Counter<'a> {
    inner: &'a mut dyn PopulationSink,
    counts: CountingSink,
    residents: Unique,
    members: Unique,
}

impl PopulationSink for Counter<'_> {
    fn building(&mut self, r: &Building) {
        self.counts.building(r);
        self.inner.building(r);
    }
    fn unit(&mut self, r: &Unit) {
        self.counts.unit(r);
        self.inner.unit(r);
    }
    fn resident(&mut self, r: &Resident) {
        self.counts.resident(r);
        match self.residents.fix(&r.id_number) {
            Some(id_number) => self.inner.resident(&Resident { id_number, ..r.clone() }),
            None => self.inner.resident(r),
        }
    }
    fn landlord(&mut self, r: &Landlord) {
        self.counts.landlord(r);
        self.inner.landlord(r);
    }
    fn tenancy(&mut self, r: &Tenancy) {
        self.counts.tenancy(r);
        self.inner.tenancy(r);
    }
    fn force_unit(&mut self, r: &ForceUnit) {
        self.counts.force_unit(r);
        self.inner.force_unit(r);
    }
    fn force_member(&mut self, r: &ForceMember) {
        self.counts.force_member(r);
        match self.members.fix(&r.id_number) {
            Some(id_number) => self.inner.force_member(&ForceMember { id_number, ..r.clone() }),
            None => self.inner.force_member(r),
        }
    }
    fn place(&mut self, r: &Place) {
        self.counts.place(r);
        self.inner.place(r);
    }
    fn informant(&mut self, r: &Informant) {
        self.counts.informant(r);
        self.inner.informant(r);
    }
}

fn grid_plans(city: &CityMap) -> Vec<GridPlan<'_>> {
    let parents: BTreeMap<&str, &str> =
        city.nodes.iter().filter_map(|n| n.parent.as_deref().map(|p| (n.code.as_str(), p))).collect();
    fn district_of<'a>(parents: &BTreeMap<&'a str, &'a str>, mut code: &'a str) -> Option<&'a str> {
        while let Some(&parent) = parents.get(code) {
            if DISTRICT_POPULATION.iter().any(|(d, _)| *d == parent) {
                return Some(parent);
            }
            code = parent;
        }
        None
    }
    let grids: Vec<&Jurisdiction> = city.nodes.iter().filter(|n| n.kind == JurisdictionKind::Grid).collect();
    let mut district_area: BTreeMap<&str, f64> = BTreeMap::new();
    for grid in &grids {
        if let (Some(district), Some(area)) = (district_of(&parents, &grid.code), city.areas.get(&grid.code)) {
            *district_area.entry(district).or_default() += area.area_m2();
        }
    }
    let total: f64 = DISTRICT_POPULATION.iter().map(|(_, p)| p).sum();
    grids
        .into_iter()
        .filter_map(|grid| {
            let area = city.areas.get(&grid.code)?;
            let district = district_of(&parents, &grid.code)?;
            let share = DISTRICT_POPULATION.iter().find(|(d, _)| *d == district).map_or(0.0, |(_, p)| p / total);
            let weight = share * area.area_m2() / district_area[district];
            Some(GridPlan { grid, area, weight })
        })
        .collect()
}

/// Household sizes 1–6 and their shares (mean ≈ 2.1).
const HOUSEHOLD_SIZES: [(u32, f64); 6] = [(1, 0.38), (2, 0.28), (3, 0.18), (4, 0.11), (5, 0.035), (6, 0.015)];

fn household_size(rng: &mut ChaCha8Rng) -> u32 {
    let mut pick = rng.random::<f64>() * HOUSEHOLD_SIZES.iter().map(|(_, w)| w).sum::<f64>();
    for (size, weight) in HOUSEHOLD_SIZES {
        if pick < weight {
            return size;
        }
        pick -= weight;
    }
    1
}

/// A grid's buildings (and their units), households, residents, landlords, tenancies and
/// places.
fn generate_grid(plan: &GridPlan<'_>, options: &PopulationOptions, sink: &mut dyn PopulationSink) -> u64 {
    let code = &plan.grid.code;
    let mut rng = rng_for(options.seed, code);
    let share = plan.weight * options.scale;
    let residents = stochastic_round(&mut rng, options.residents * share);

    // Households first: how many rent decides how many units are let.
    let mut households: Vec<u32> = Vec::new();
    let mut people = 0u64;
    while people < residents {
        let size = household_size(&mut rng).min((residents - people) as u32);
        households.push(size);
        people += u64::from(size);
    }
    let renting = households.iter().map(|_| rng.random::<f64>() < options.renting_share).collect::<Vec<_>>();

    // Rental units by kind, from the city's totals; owner-occupied units for the rest.
    let mut buildings: Vec<(Building, Vec<Unit>)> = Vec::new();
    let mut rental_units: Vec<(usize, usize)> = Vec::new(); // (building, unit)
    let mut owner_units: Vec<(usize, usize)> = Vec::new();
    let mut next_building = 0u32;
    let mut new_building =
        |rng: &mut ChaCha8Rng, kind: BuildingKind, floors: u32, units: u32, rental: &dyn Fn(u32) -> bool| {
            next_building += 1;
            let id = format!("{code}B{next_building:04}");
            let [lon, lat] = point_in(rng, plan.area);
            let address = format!("{}{}号楼", plan.grid.name_zh, next_building);
            let unit_list = (0..units)
                .map(|n| Unit {
                    id: format!("{id}U{:03}", n + 1),
                    building: id.clone(),
                    floor: 1 + n % floors.max(1),
                    rental: rental(n),
                })
                .collect();
            (Building { id, grid: code.clone(), kind, floors, units, lon, lat, address }, unit_list)
        };
    let [village, dormitory, other] = options.rental_units.map(|u| u * share);
    // Villages and dormitories come in whole buildings, as many as the grid's share of the
    // city's units asks for on average (so a small-scale city still has real buildings).
    let village_buildings =
        stochastic_round(&mut rng, village / mean(options.village_floors) / mean(options.village_units_per_floor));
    for _ in 0..village_buildings {
        let floors = between(&mut rng, options.village_floors);
        let units = floors * between(&mut rng, options.village_units_per_floor);
        buildings.push(new_building(&mut rng, BuildingKind::UrbanVillage, floors, units, &|_| true));
    }
    for _ in 0..stochastic_round(&mut rng, dormitory / 125.0) {
        let units = rng.random_range(50..=200u32);
        let floors = rng.random_range(4..=8);
        buildings.push(new_building(&mut rng, BuildingKind::Dormitory, floors, units, &|_| true));
    }
    let (village, dormitory): (u64, u64) = (
        buildings.iter().filter(|(b, _)| b.kind == BuildingKind::UrbanVillage).map(|(b, _)| u64::from(b.units)).sum(),
        buildings.iter().filter(|(b, _)| b.kind == BuildingKind::Dormitory).map(|(b, _)| u64::from(b.units)).sum(),
    );
    // Renting households beyond the grid's village and dormitory units rent in commercial
    // buildings, so every household has a home.
    let renters = renting.iter().filter(|r| **r).count() as u64;
    let other = stochastic_round(&mut rng, other).max(renters.saturating_sub(village + dormitory));
    // Commercial housing: the "other" rental units and one unit per owner household.
    let owners = renting.iter().filter(|r| !**r).count() as u64;
    let (mut rental_left, mut owner_left) = (other, owners);
    while rental_left + owner_left > 0 {
        let units = rng.random_range(20..=120u32).min((rental_left + owner_left) as u32).max(1);
        let let_here = (rental_left as f64 / (rental_left + owner_left) as f64 * f64::from(units)).round() as u32;
        let let_here = let_here.min(rental_left as u32);
        let floors = rng.random_range(10..=33);
        buildings.push(new_building(&mut rng, BuildingKind::Commercial, floors, units, &|n| n < let_here));
        rental_left -= u64::from(let_here);
        owner_left = owner_left.saturating_sub(u64::from(units - let_here));
    }
    for (b, (_, units)) in buildings.iter().enumerate() {
        for (u, unit) in units.iter().enumerate() {
            if unit.rental { rental_units.push((b, u)) } else { owner_units.push((b, u)) }
        }
    }

    // Landlords: urban-village buildings are owned floor by floor by families, so a building
    // has as many landlords as its tenants need at the 1:40–1:80 ratio; other buildings are
    // let by one owner (a company, for dormitories).
    let mut landlords_by_building: Vec<Vec<String>> = vec![Vec::new(); buildings.len()];
    let mut next_landlord = 0u32;
    let mut landlord_people: Vec<(String, usize)> = Vec::new(); // (landlord id, building)
    for (b, (building, units)) in buildings.iter().enumerate() {
        let rental = units.iter().filter(|u| u.rental).count() as u32;
        if rental == 0 {
            continue;
        }
        let count = match building.kind {
            BuildingKind::UrbanVillage => {
                let per = between(&mut rng, options.tenants_per_landlord);
                (rental * 2).div_ceil(per).clamp(1, building.floors)
            }
            _ => 1,
        };
        for _ in 0..count {
            next_landlord += 1;
            let id = format!("{code}L{next_landlord:04}");
            landlords_by_building[b].push(id.clone());
            landlord_people.push((id, b));
        }
    }

    // Residents, household by household; renting households take a rental unit.
    let mut rental_order: Vec<usize> = (0..rental_units.len()).collect();
    shuffle(&mut rng, &mut rental_order);
    let mut owner_index = 0usize;
    let mut next_resident = 0u32;
    let mut next_tenancy = 0u32;
    let mut adults: Vec<(String, bool)> = Vec::new();
    for (h, &size) in households.iter().enumerate() {
        let slot = if renting[h] && !rental_order.is_empty() {
            rental_order.pop().map(|i| rental_units[i])
        } else if owner_index < owner_units.len() {
            owner_index += 1;
            Some(owner_units[owner_index - 1])
        } else {
            rental_order.pop().map(|i| rental_units[i])
        };
        let Some((b, u)) = slot else { break };
        let unit = &buildings[b].1[u];
        let local = rng.random::<f64>() >= options.non_hukou_share;
        let mut members = Vec::with_capacity(size as usize);
        for m in 0..size {
            next_resident += 1;
            let id = format!("{code}R{next_resident:05}");
            let resident = person(&mut rng, options, id, m == 0, local, &unit.id, code);
            if m == 0 {
                adults.push((resident.id.clone(), local));
            }
            members.push(resident);
        }
        for member in &members {
            sink.resident(member);
        }
        if unit.rental {
            next_tenancy += 1;
            let months = between(&mut rng, options.tenancy_months);
            let start_day = options.as_of_day - i64::from(rng.random_range(0..months.max(1) * 30));
            let unregistered_share = rng.random_range(options.unregistered_share.0..=options.unregistered_share.1);
            let unregistered: Vec<String> = members
                .iter()
                .skip(1)
                .filter(|_| rng.random::<f64>() < unregistered_share)
                .map(|r| r.id.clone())
                .collect();
            let landlords = &landlords_by_building[b];
            let landlord = (!landlords.is_empty()).then(|| landlords[rng.random_range(0..landlords.len())].clone());
            sink.tenancy(&Tenancy {
                id: format!("{code}T{next_tenancy:05}"),
                unit: unit.id.clone(),
                landlord,
                residents: members.iter().map(|r| r.id.clone()).collect(),
                start_day,
                months,
                unregistered,
            });
        }
    }
    for (building, units) in &buildings {
        sink.building(building);
        for unit in units {
            sink.unit(unit);
        }
    }
    // Village buildings are let by villagers (local-hukou adults of the grid) or, where the
    // grid has none left, by the village's joint-stock company (股份合作公司); dormitories
    // and commercial buildings by companies.
    let mut local_adults = adults.iter().filter(|(_, local)| *local).map(|(id, _)| id.clone()).collect::<Vec<_>>();
    shuffle(&mut rng, &mut local_adults);
    let community = plan.grid.name_zh.split('第').next().unwrap_or_default().trim_end_matches("社区");
    for (id, b) in &landlord_people {
        let building = &buildings[*b].0;
        let resident = match building.kind {
            BuildingKind::UrbanVillage => local_adults.pop(),
            _ => None,
        };
        let company = resident.is_none().then(|| match building.kind {
            BuildingKind::UrbanVillage => format!("{community}股份合作公司"),
            BuildingKind::Dormitory => format!("{}{}实业有限公司", community, names::shop_name(&mut rng)),
            BuildingKind::Commercial => format!("{}物业管理有限公司", names::shop_name(&mut rng)),
        });
        sink.landlord(&Landlord {
            id: id.clone(),
            resident: resident.clone(),
            company,
            buildings: vec![building.id.clone()],
        });
        if let Some(resident) = resident
            && rng.random::<f64>() < options.informant_landlord_share
        {
            sink.informant(&Informant { id: format!("{id}I"), resident, grid: code.clone(), landlord: true });
        }
    }
    // Informants among tenants: one per 10–20 rental buildings.
    let rental_buildings = buildings.iter().filter(|(b, _)| b.kind != BuildingKind::Commercial).count() as f64;
    let per = f64::from(between(&mut rng, options.rental_buildings_per_informant));
    for n in 0..stochastic_round(&mut rng, rental_buildings / per) {
        if adults.is_empty() {
            break;
        }
        let resident = adults[rng.random_range(0..adults.len())].0.clone();
        sink.informant(&Informant {
            id: format!("{code}I{:03}", n + 1),
            resident,
            grid: code.clone(),
            landlord: false,
        });
    }
    generate_places(plan, options, &mut rng, residents as f64, sink);
    households.len() as u64
}

fn shuffle<T>(rng: &mut ChaCha8Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.random_range(0..=i));
    }
}

/// One resident (or landlord, or force member when `unit` is empty).
fn person(
    rng: &mut ChaCha8Rng,
    options: &PopulationOptions,
    id: String,
    adult: bool,
    local: bool,
    unit: &str,
    grid: &str,
) -> Resident {
    let male = rng.random::<f64>() < options.sex_ratio / (100.0 + options.sex_ratio);
    let sex = if male { Sex::Male } else { Sex::Female };
    let roll = rng.random::<f64>();
    let age_years = if !adult && roll < options.children_share {
        rng.random_range(0..15)
    } else if roll > 1.0 - options.elderly_share {
        rng.random_range(65..90)
    } else {
        rng.random_range(if adult { 18 } else { 15 }..65)
    };
    let birth_day = options.as_of_day - age_years * 365 - rng.random_range(0..365);
    let id_number = names::id_number(rng, local, birth_day, male);
    let permit_expires_day =
        (!local && (16..=60).contains(&age_years)).then(|| options.as_of_day + rng.random_range(30..365));
    Resident {
        id,
        name: names::name(rng, male),
        sex,
        birth_day,
        id_number,
        local_hukou: local,
        unit: unit.to_string(),
        grid: grid.to_string(),
        permit_expires_day,
    }
}

/// Hotels, special trades and alarm points of a grid, in proportion to its residents.
fn generate_places(
    plan: &GridPlan<'_>,
    options: &PopulationOptions,
    rng: &mut ChaCha8Rng,
    residents: f64,
    sink: &mut dyn PopulationSink,
) {
    let code = &plan.grid.code;
    let mut place = |rng: &mut ChaCha8Rng, id: String, kind: &'static str, name: String, capacity: u32| {
        let [lon, lat] = point_in(rng, plan.area);
        sink.place(&Place { id, kind, name, grid: code.clone(), lon, lat, capacity });
    };
    let hotels = stochastic_round(rng, options.hotels * plan.weight * options.scale);
    for n in 0..hotels {
        let rooms = rng.random_range(12..=240);
        let name = format!("{}{}", names::hotel_name(rng), if rooms > 80 { "酒店" } else { "宾馆" });
        place(rng, format!("{code}H{:03}", n + 1), "hotel", name, rooms);
    }
    for (k, kind) in TradeKind::ALL.into_iter().enumerate() {
        let (low, high) = options.trades_per_100k[k];
        let per_100k = rng.random_range(low..=high);
        for n in 0..stochastic_round(rng, residents / 100_000.0 * per_100k) {
            let name = format!("{}{}", names::shop_name(rng), kind.name_zh());
            place(rng, format!("{code}S{k}{:03}", n + 1), kind.as_str(), name, 0);
        }
    }
    generate_alarm_points(plan, options, sink);
}

/// A grid's alarm points (报警点: 24-hour petrol stations, convenience stores, fast-food
/// shops, newsstands), in proportion to its expected residents, on their own random stream:
/// [`generate_sites`] makes exactly the same ones without generating the population.
fn generate_alarm_points(plan: &GridPlan<'_>, options: &PopulationOptions, sink: &mut dyn PopulationSink) {
    let code = &plan.grid.code;
    let mut rng = rng_for(options.seed, &format!("alarm-points/{code}"));
    let expected = options.residents * plan.weight * options.scale / options.residents_per_alarm_point;
    for n in 0..stochastic_round(&mut rng, expected) {
        let host = ["加油站", "便利店", "快餐店", "报刊亭"][rng.random_range(0..4)];
        let name = format!("{}{host}报警点", names::shop_name(&mut rng));
        let [lon, lat] = point_in(&mut rng, plan.area);
        let id = format!("{code}A{:03}", n + 1);
        sink.place(&Place { id, kind: "alarm_point", name, grid: code.clone(), lon, lat, capacity: 0 });
    }
}

/// Only the fixed sites linked to the 110 centre — the alarm points of every grid and the
/// checkpoints — exactly as [`generate`] makes them.
pub fn generate_sites(city: &CityMap, options: &PopulationOptions, sink: &mut dyn PopulationSink) {
    for plan in grid_plans(city) {
        generate_alarm_points(&plan, options, sink);
    }
    generate_checkpoints(city, options, sink);
}

/// The integrated force: members of the four categories in teams, teams at police stations
/// in proportion to the residents of their police districts, each with a beat.
fn generate_forces(city: &CityMap, plans: &[GridPlan<'_>], options: &PopulationOptions, sink: &mut dyn PopulationSink) {
    let mut rng = rng_for(options.seed, "forces");
    // A police district is a community's ground: its weight is its grids' weights.
    let mut community_weight: BTreeMap<&str, f64> = BTreeMap::new();
    for plan in plans {
        if let Some(community) = plan.grid.parent.as_deref() {
            *community_weight.entry(community).or_default() += plan.weight;
        }
    }
    let mut stations: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
    for node in city.nodes.iter().filter(|n| n.kind == JurisdictionKind::PoliceDistrict) {
        let community = node.code.trim_end_matches('J');
        let weight = community_weight.get(community).copied().unwrap_or(0.0);
        if let Some(station) = node.parent.as_deref() {
            stations.entry(station).or_default().push((node.code.as_str(), weight));
        }
    }
    let mut next_unit = 0u32;
    let mut next_member = 0u32;
    for (category_index, category) in ForceCategory::ALL.into_iter().enumerate() {
        let total = options.forces[category_index] * options.scale;
        for (station, beats) in &stations {
            let station_weight: f64 = beats.iter().map(|(_, w)| w).sum();
            let mut members = stochastic_round(&mut rng, total * station_weight);
            while members > 0 {
                let modes = PatrolMode::for_category(category);
                let mut pick = rng.random::<f64>() * modes.iter().map(|(_, w)| w).sum::<f64>();
                let mode = modes
                    .iter()
                    .find(|(_, w)| {
                        let hit = pick < *w;
                        pick -= w;
                        hit
                    })
                    .map_or(modes[0].0, |(m, _)| *m);
                let size = u64::from(between(&mut rng, mode.team_size())).min(members);
                next_unit += 1;
                let beat = beats[rng.random_range(0..beats.len())].0;
                let unit = ForceUnit {
                    id: format!("U{next_unit:06}"),
                    station: station.to_string(),
                    category,
                    mode,
                    beat: beat.to_string(),
                    call_sign: format!("{}-{}-{next_unit}", &station[station.len() - 3..], mode.as_str()),
                };
                sink.force_unit(&unit);
                for _ in 0..size {
                    next_member += 1;
                    let local = rng.random::<f64>() < 0.5;
                    let person = person(&mut rng, options, String::new(), true, local, "", beat);
                    sink.force_member(&ForceMember {
                        id: format!("M{next_member:06}"),
                        unit: unit.id.clone(),
                        category,
                        name: person.name,
                        sex: person.sex,
                        birth_day: person.birth_day,
                        id_number: person.id_number,
                        device: format!("TRK{next_member:06}"),
                    });
                }
                members -= size;
            }
        }
    }
}

/// Second-line checkpoints on the old SEZ border (between the inner and outer districts) and
/// city exits on the northern land border, spread evenly along each.
fn generate_checkpoints(city: &CityMap, options: &PopulationOptions, sink: &mut dyn PopulationSink) {
    let district_edges = |codes: &[&str]| -> Vec<(Position, Position)> {
        codes
            .iter()
            .filter_map(|code| city.areas.get(*code))
            .flat_map(|area| {
                area.rings()
                    .flat_map(|ring| (0..ring.len()).map(move |i| canonical(ring[i], ring[(i + 1) % ring.len()])))
            })
            .collect()
    };
    let inner: std::collections::BTreeSet<_> = district_edges(&INNER_DISTRICTS).into_iter().map(key).collect();
    let all_districts: Vec<&str> = DISTRICT_POPULATION.iter().map(|(d, _)| *d).collect();
    let mut edge_count: BTreeMap<[u64; 4], u32> = BTreeMap::new();
    for edge in district_edges(&all_districts) {
        *edge_count.entry(key(edge)).or_default() += 1;
    }
    let second_line: Vec<(Position, Position)> =
        district_edges(&OUTER_DISTRICTS).into_iter().filter(|e| inner.contains(&key(*e))).collect();
    // The land border: district edges no other district shares, in the north (the coast is
    // to the south).
    let exits: Vec<(Position, Position)> = district_edges(&all_districts)
        .into_iter()
        .filter(|e| edge_count[&key(*e)] == 1 && (e.0[1] + e.1[1]) / 2.0 > 22.66)
        .collect();
    for (kind, edges, count, prefix) in [
        ("second_line_checkpoint", second_line, options.second_line_checkpoints, "二线检查站"),
        ("city_exit_checkpoint", exits, options.city_exit_checkpoints, "出市检查站"),
    ] {
        if edges.is_empty() {
            continue;
        }
        let mut edges = edges;
        edges.sort_by(|a, b| (a.0[0] + a.1[0]).total_cmp(&(b.0[0] + b.1[0])));
        for n in 0..count {
            let (a, b) =
                edges[(n * edges.len() / count.max(1) + edges.len() / (2 * count.max(1))).min(edges.len() - 1)];
            let (lon, lat) = ((a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0);
            sink.place(&Place {
                id: format!("{}{:02}", if kind.starts_with("second") { "CP2L" } else { "CPEX" }, n + 1),
                kind,
                name: format!("{}{}号", prefix, n + 1),
                grid: String::new(),
                lon,
                lat,
                capacity: 4 + (n as u32 % 5) * 2,
            });
        }
    }
}

fn canonical(a: Position, b: Position) -> (Position, Position) {
    if (a[1], a[0]) <= (b[1], b[0]) { (a, b) } else { (b, a) }
}

fn key((a, b): (Position, Position)) -> [u64; 4] {
    [a[0].to_bits(), a[1].to_bits(), b[0].to_bits(), b[1].to_bits()]
}

#[cfg(test)]
mod tests;
