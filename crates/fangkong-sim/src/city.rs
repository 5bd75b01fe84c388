//! The jurisdictions of the synthetic Shenzhen: real district outlines, real names and
//! codes of sub-districts and communities (National Bureau of Statistics lists), generated
//! shapes below the district level, grids, police stations and police districts.
//!
//! Shapes are made by cutting each district into its sub-districts, each sub-district into
//! its communities and each community into its grids (`fangkong_geo::split`), so every
//! level tiles its parent exactly with vertex-identical shared edges. Police stations group
//! neighbouring communities of one district; each community is one police district (警务区),
//! as synthetic-city.md describes. Deterministic for a seed. Data and licences: `data/README.md`.

use std::collections::BTreeMap;

use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_geo::split::{partition, split_by_latitude};
use fangkong_geo::{Area, Position};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SUBDISTRICTS: &str = include_str!("../data/shenzhen-subdistricts.csv");
const COMMUNITIES: &str = include_str!("../data/shenzhen-communities.csv");
const DISTRICTS_WGS84: &str = include_str!("../data/shenzhen-districts-wgs84.geojson");

/// The code of Shenzhen (GB/T 2260).
pub const CITY_CODE: &str = "440300";
const BAOAN: &str = "440306";
const GUANGMING: &str = "440311";
/// Guangming's share of the old Bao'an (official land areas 155.44 of 552.08 km²).
const GUANGMING_SHARE: f64 = 155.44 / 552.08;

/// How the city is cut up below the district level.
#[derive(Clone, Debug, PartialEq)]
pub struct CityOptions {
    pub seed: u64,
    /// Grids per community, inclusive (synthetic-city.md: 5–15; 8–17 gives the ~10,000
    /// grids of SYSTEM.md).
    pub grids_per_community: (usize, usize),
    /// Police stations in the city (~110).
    pub police_stations: usize,
    /// How far each cut may stray from equal parts (0 = equal).
    pub variation: f64,
}

impl Default for CityOptions {
    fn default() -> CityOptions {
        CityOptions { seed: 2003, grids_per_community: (8, 17), police_stations: 110, variation: 0.35 }
    }
}

/// The generated tree with a shape for every node but the city.
#[derive(Clone, Debug, Default)]
pub struct CityMap {
    /// Parents before children.
    pub nodes: Vec<Jurisdiction>,
    pub areas: BTreeMap<String, Area>,
}

impl CityMap {
    pub fn count(&self, kind: JurisdictionKind) -> usize {
        self.nodes.iter().filter(|n| n.kind == kind).count()
    }
}

/// A row of one of the CSV files, split on commas (no field contains one).
fn rows(csv: &'static str) -> impl Iterator<Item = BTreeMap<&'static str, &'static str>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    lines.filter(|l| !l.trim().is_empty()).map(move |line| header.iter().copied().zip(line.split(',')).collect())
}

fn node(code: &str, kind: JurisdictionKind, parent: &str, name_zh: String, name_en: Option<String>) -> Jurisdiction {
    Jurisdiction { code: code.into(), kind, parent: Some(parent.into()), name_zh, name_en }
}

/// The district outlines from the embedded WGS84 file, by code.
pub fn district_outlines() -> BTreeMap<String, Area> {
    let document: serde_json::Value = serde_json::from_str(DISTRICTS_WGS84).expect("embedded GeoJSON parses");
    let mut outlines = BTreeMap::new();
    for feature in document["features"].as_array().expect("features") {
        let code = feature["properties"]["adcode"].as_str().expect("adcode").to_string();
        let geometry = &feature["geometry"];
        let polygons = match geometry["type"].as_str() {
            Some("Polygon") => vec![geometry["coordinates"].clone()],
            _ => geometry["coordinates"].as_array().expect("multipolygon").clone(),
        };
        let rings: Vec<Vec<Vec<Position>>> = polygons
            .iter()
            .map(|polygon| {
                polygon
                    .as_array()
                    .expect("rings")
                    .iter()
                    .map(|ring| {
                        ring.as_array()
                            .expect("positions")
                            .iter()
                            .map(|p| [p[0].as_f64().expect("lon"), p[1].as_f64().expect("lat")])
                            .collect()
                    })
                    .collect()
            })
            .collect();
        outlines.insert(code, Area::from_rings(rings).expect("the embedded districts are valid"));
    }
    outlines
}

/// The whole tree, names and codes only (no shapes): for a quick start.
pub fn administrative_tree() -> Vec<Jurisdiction> {
    let mut nodes = vec![Jurisdiction {
        code: CITY_CODE.into(),
        kind: JurisdictionKind::City,
        parent: None,
        name_zh: "深圳市".into(),
        name_en: Some("Shenzhen".into()),
    }];
    let mut districts: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    let mut subdistricts = Vec::new();
    for row in rows(SUBDISTRICTS) {
        districts.insert(row["district_adcode"], (row["district_zh"], row["district_en"]));
        subdistricts.push(node(
            row["code"],
            JurisdictionKind::Subdistrict,
            row["district_adcode"],
            row["name_zh"].into(),
            Some(row["name_en"].to_string()).filter(|n| !n.is_empty()),
        ));
    }
    for (code, (name_zh, name_en)) in districts {
        nodes.push(node(
            code,
            JurisdictionKind::District,
            CITY_CODE,
            name_zh.into(),
            Some(format!("{name_en} District")),
        ));
    }
    nodes.extend(subdistricts);
    for row in rows(COMMUNITIES) {
        // "南园社区居委会" / "…居民委员会" is the committee; the community is "南园社区".
        let name = row["name_zh"].trim_end_matches("居民委员会").trim_end_matches("居委会");
        nodes.push(node(row["code"], JurisdictionKind::Community, row["subdistrict_code"], name.into(), None));
    }
    nodes
}

/// Shenzhen with shapes for every level, grids, police stations and police districts.
pub fn shenzhen(options: &CityOptions) -> CityMap {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut jitter = || rng.random_range(-1.0..1.0);
    let tree = administrative_tree();
    let mut outlines = district_outlines();
    // The source predates Guangming (2018): carve it out of Bao'an's north.
    if let Some(baoan) = outlines.remove(BAOAN) {
        let (south, north) = split_by_latitude(&baoan, 1.0 - GUANGMING_SHARE);
        outlines.insert(BAOAN.into(), south);
        outlines.insert(GUANGMING.into(), north);
    }
    let children = |parent: &str| tree.iter().filter(move |n| n.parent.as_deref() == Some(parent)).collect::<Vec<_>>();

    let mut map = CityMap::default();
    map.nodes.push(tree[0].clone());
    let mut communities_by_district: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for district in children(CITY_CODE) {
        let outline = outlines.get(&district.code).cloned().unwrap_or_default();
        map.nodes.push(district.clone());
        map.areas.insert(district.code.clone(), outline.clone());
        let subdistricts = children(&district.code);
        let pieces = partition(&outline, subdistricts.len(), options.variation, &mut jitter);
        for (subdistrict, piece) in subdistricts.into_iter().zip(pieces) {
            map.nodes.push(subdistrict.clone());
            let communities = children(&subdistrict.code);
            let community_pieces = partition(&piece, communities.len(), options.variation, &mut jitter);
            map.areas.insert(subdistrict.code.clone(), piece);
            for (community, community_piece) in communities.into_iter().zip(community_pieces) {
                map.nodes.push(community.clone());
                communities_by_district.entry(district.code.clone()).or_default().push(community.code.clone());
                let (low, high) = options.grids_per_community;
                let grids = rng_count(&mut jitter, low, high);
                for (n, grid_piece) in
                    partition(&community_piece, grids, options.variation, &mut jitter).into_iter().enumerate()
                {
                    let code = format!("{}{:03}", community.code, n + 1);
                    map.nodes.push(node(
                        &code,
                        JurisdictionKind::Grid,
                        &community.code,
                        format!("{}第{}网格", community.name_zh, n + 1),
                        Some(format!("Grid {}", n + 1)),
                    ));
                    map.areas.insert(code, grid_piece);
                }
                map.areas.insert(community.code.clone(), community_piece);
            }
        }
    }
    add_police(&mut map, &communities_by_district, options.police_stations);
    map
}

/// A whole number in `low..=high` from the jitter stream (which yields −1…1).
fn rng_count(jitter: &mut dyn FnMut() -> f64, low: usize, high: usize) -> usize {
    let unit = (jitter() + 1.0) / 2.0;
    (low + (unit * (high - low + 1) as f64) as usize).min(high)
}

/// Police stations group consecutive communities of a district (neighbours, since the cuts
/// keep neighbours together); each community is one police district with its shape.
fn add_police(map: &mut CityMap, communities_by_district: &BTreeMap<String, Vec<String>>, stations: usize) {
    let total: usize = communities_by_district.values().map(Vec::len).sum();
    let names: BTreeMap<String, Jurisdiction> = map.nodes.iter().map(|n| (n.code.clone(), n.clone())).collect();
    let mut police = Vec::new();
    for (district, communities) in communities_by_district {
        let count = ((stations as f64 * communities.len() as f64 / total.max(1) as f64).round() as usize)
            .clamp(1, communities.len());
        let per_station = communities.len().div_ceil(count);
        let mut used_names: BTreeMap<String, usize> = BTreeMap::new();
        for (n, group) in communities.chunks(per_station).enumerate() {
            let code = format!("{district}5{:02}", n + 1);
            // Named after the sub-district of its first community, as stations usually are.
            let subdistrict = names[&group[0]].parent.clone().unwrap_or_default();
            let base_zh = names[&subdistrict].name_zh.trim_end_matches("街道").to_string();
            let base_en =
                names[&subdistrict].name_en.clone().unwrap_or_default().trim_end_matches(" Subdistrict").to_string();
            let seen = used_names.entry(base_zh.clone()).or_default();
            *seen += 1;
            let (name_zh, name_en) = match *seen {
                1 => (format!("{base_zh}派出所"), format!("{base_en} Police Station")),
                k => (format!("{base_zh}第{k}派出所"), format!("{base_en} Police Station {k}")),
            };
            police.push(node(&code, JurisdictionKind::PoliceStation, district, name_zh, Some(name_en)));
            let mut station_area = Area::default();
            for community in group {
                let area = map.areas[community].clone();
                station_area.polygons.extend(area.polygons.iter().cloned());
                let district_code = format!("{community}J");
                let community_name = &names[community].name_zh;
                police.push(node(
                    &district_code,
                    JurisdictionKind::PoliceDistrict,
                    &code,
                    format!("{community_name}警务区"),
                    None,
                ));
                map.areas.insert(district_code, area);
            }
            map.areas.insert(code, station_area);
        }
    }
    // Stations after every district, police districts after their station (parents first).
    let (stations, districts): (Vec<_>, Vec<_>) =
        police.into_iter().partition(|n| n.kind == JurisdictionKind::PoliceStation);
    map.nodes.extend(stations);
    map.nodes.extend(districts);
}

#[cfg(test)]
mod tests;
