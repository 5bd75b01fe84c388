use std::collections::HashMap;

use fangkong_core::jurisdiction::{Atlas, JurisdictionTree};
use fangkong_geo::LatLon;
use proptest::prelude::{ProptestConfig, any, prop, prop_assert, prop_assert_eq, prop_assume, proptest};

use super::*;

#[test]
fn the_names_tree_is_complete_and_valid() {
    let nodes = administrative_tree();
    let count = |kind| nodes.iter().filter(|n| n.kind == kind).count();
    assert_eq!(count(JurisdictionKind::City), 1);
    assert_eq!(count(JurisdictionKind::District), 9, "the 8 district polygons plus Guangming (440311)");
    assert_eq!(count(JurisdictionKind::Subdistrict), 79, "74 sub-districts and 5 special units");
    assert_eq!(count(JurisdictionKind::Community), 788);
    let tree = JurisdictionTree::from_nodes(nodes).expect("a valid tree");
    let futian = tree.get("440304").unwrap();
    assert_eq!((futian.name_zh.as_str(), futian.name_en.as_deref()), ("福田区", Some("Futian District")));
    assert_eq!(tree.get("440303001001").unwrap().name_zh, "大塘龙社区");
    assert_eq!(tree.get("440304001020").unwrap().name_zh, "南园社区");
    assert!(tree.iter().all(|n| !n.name_zh.ends_with("委员会") && !n.name_zh.ends_with("居委会")));
}

fn generated() -> &'static CityMap {
    static MAP: std::sync::OnceLock<CityMap> = std::sync::OnceLock::new();
    MAP.get_or_init(|| shenzhen(&CityOptions::default()))
}

#[test]
fn the_generated_city_has_every_level_at_full_size() {
    let map = generated();
    assert_eq!(map.count(JurisdictionKind::District), 9);
    assert_eq!(map.count(JurisdictionKind::Subdistrict), 79);
    assert_eq!(map.count(JurisdictionKind::Community), 788);
    let grids = map.count(JurisdictionKind::Grid);
    assert!((9_000..=11_000).contains(&grids), "~10,000 grids, got {grids}");
    let stations = map.count(JurisdictionKind::PoliceStation);
    assert!((100..=120).contains(&stations), "~110 police stations, got {stations}");
    assert_eq!(map.count(JurisdictionKind::PoliceDistrict), 788, "one police district per community");
    let tree = JurisdictionTree::from_nodes(map.nodes.clone()).expect("parents come before children and match");
    for node in tree.iter().filter(|n| n.kind != JurisdictionKind::City) {
        let area = map.areas.get(&node.code).unwrap_or_else(|| panic!("{} has a shape", node.code));
        assert!(area.area_m2() > 1_000.0, "{} {} is not empty", node.code, node.name_zh);
    }
}

#[test]
fn every_level_tiles_its_parent() {
    let map = generated();
    let tree = JurisdictionTree::from_nodes(map.nodes.clone()).unwrap();
    let mut worst: f64 = 0.0;
    for parent in tree.iter().filter(|n| {
        matches!(n.kind, JurisdictionKind::District | JurisdictionKind::Subdistrict | JurisdictionKind::Community)
    }) {
        let children: Vec<&Area> = tree
            .children(&parent.code)
            .filter(|c| c.kind != JurisdictionKind::PoliceStation)
            .map(|c| &map.areas[&c.code])
            .collect();
        let sum: f64 = children.iter().map(|a| a.shoelace_deg2()).sum();
        let whole = map.areas[&parent.code].shoelace_deg2();
        worst = worst.max((sum - whole).abs() / whole);
        assert!((sum - whole).abs() / whole < 1e-9, "{}: children {sum} vs {whole} deg²", parent.code);
    }
    eprintln!("worst relative difference between a parent and its children: {worst:e}");
}

#[test]
fn random_points_fall_in_exactly_one_grid_whose_ancestors_contain_them() {
    let map = generated();
    let tree = JurisdictionTree::from_nodes(map.nodes.clone()).unwrap();
    let grids: Vec<&Jurisdiction> = tree.iter().filter(|n| n.kind == JurisdictionKind::Grid).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut inside_city = 0;
    for _ in 0..300 {
        let (lon, lat) = (rng.random_range(113.75..114.63), rng.random_range(22.40..22.86));
        let holders: Vec<&&Jurisdiction> = grids.iter().filter(|g| map.areas[&g.code].contains(lon, lat)).collect();
        let district = tree
            .iter()
            .filter(|n| n.kind == JurisdictionKind::District)
            .find(|d| map.areas[&d.code].contains(lon, lat));
        match district {
            None => assert!(holders.is_empty(), "({lon}, {lat}) outside every district but in a grid"),
            Some(district) => {
                inside_city += 1;
                assert_eq!(holders.len(), 1, "({lon}, {lat}) in {} grids", holders.len());
                let chain = tree.chain_of(&holders[0].code).unwrap();
                assert_eq!(chain.get(JurisdictionKind::District), Some(district.code.as_str()));
                for kind in [JurisdictionKind::Subdistrict, JurisdictionKind::Community] {
                    assert!(
                        map.areas[chain.get(kind).unwrap()].contains(lon, lat),
                        "{kind} of the grid holds the point"
                    );
                }
            }
        }
    }
    assert!(inside_city > 100, "many random points in the bounding box are in the city ({inside_city})");
}

#[test]
fn the_same_seed_gives_the_same_city() {
    let options = CityOptions { grids_per_community: (2, 3), ..CityOptions::default() };
    let (a, b) = (shenzhen(&options), shenzhen(&options));
    assert_eq!(a.nodes, b.nodes);
    assert_eq!(a.areas, b.areas);
    let other = shenzhen(&CityOptions { seed: 9, ..options });
    assert_ne!(a.areas, other.areas);
}

/// The generated city's atlas, as the engine builds it.
fn atlas() -> &'static (JurisdictionTree, Atlas) {
    static ATLAS: std::sync::OnceLock<(JurisdictionTree, Atlas)> = std::sync::OnceLock::new();
    ATLAS.get_or_init(|| {
        let map = generated();
        let tree = JurisdictionTree::from_nodes(map.nodes.clone()).unwrap();
        let shapes: HashMap<String, Area> = map.areas.clone().into_iter().collect();
        let atlas = Atlas::new(&tree, shapes);
        (tree, atlas)
    })
}

fn grid_codes() -> &'static Vec<String> {
    static GRIDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    GRIDS.get_or_init(|| {
        generated().nodes.iter().filter(|n| n.kind == JurisdictionKind::Grid).map(|n| n.code.clone()).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, max_global_rejects: 20_000, ..ProptestConfig::default() })]

    /// A point generated inside a grid resolves to that grid, its ancestors, and the police
    /// district holding it; the fast path and the level-by-level walk agree.
    #[test]
    fn a_point_inside_a_grid_resolves_to_it(pick in any::<prop::sample::Index>(), u in 0.0..1.0f64, v in 0.0..1.0f64) {
        let (tree, atlas) = atlas();
        let map = generated();
        let code = pick.get(grid_codes());
        let bbox = map.areas[code].bbox();
        let (lon, lat) = (bbox.min_lon + u * (bbox.max_lon - bbox.min_lon), bbox.min_lat + v * (bbox.max_lat - bbox.min_lat));
        prop_assume!(map.areas[code].contains(lon, lat));
        let point = LatLon::new(lat, lon).unwrap();
        let chain = atlas.locate(point).expect("inside the city");
        let mut expected = tree.chain_of(code).unwrap();
        let police_district = chain.get(JurisdictionKind::PoliceDistrict).expect("a police district");
        prop_assert!(map.areas[police_district].contains(lon, lat));
        let station = tree.get(police_district).unwrap().parent.clone().unwrap();
        expected.set(JurisdictionKind::PoliceDistrict, police_district);
        expected.set(JurisdictionKind::PoliceStation, station);
        prop_assert_eq!(&chain, &expected);
        prop_assert_eq!(Some(chain), atlas.walk_chain(point));
    }
}

/// Midpoints of edges that two grids share: each belongs to exactly one of them, and the
/// atlas names that one.
#[test]
fn points_on_shared_grid_borders_resolve_to_exactly_one_side() {
    let (_, atlas) = atlas();
    let map = generated();
    let mut edges: HashMap<[u64; 4], Vec<&str>> = HashMap::new();
    for code in grid_codes() {
        for ring in map.areas[code].rings() {
            for i in 0..ring.len() {
                let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
                let (lo, hi) = if (a[1], a[0]) < (b[1], b[0]) { (a, b) } else { (b, a) };
                edges
                    .entry([lo[0].to_bits(), lo[1].to_bits(), hi[0].to_bits(), hi[1].to_bits()])
                    .or_default()
                    .push(code);
            }
        }
    }
    let mut checked = 0;
    for (key, owners) in edges.iter().filter(|(_, owners)| owners.len() == 2).take(5_000) {
        let [x0, y0, x1, y1] = key.map(f64::from_bits);
        let (lon, lat) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let holders: Vec<&&str> = owners.iter().filter(|code| map.areas[**code].contains(lon, lat)).collect();
        assert_eq!(holders.len(), 1, "({lon}, {lat}) on the border of {owners:?} is in {holders:?}");
        let chain = atlas.locate(LatLon::new(lat, lon).unwrap()).expect("inside the city");
        assert_eq!(chain.get(JurisdictionKind::Grid), Some(*holders[0]));
        checked += 1;
    }
    assert!(checked > 4_000, "only {checked} shared edges");
}

/// Random points over the city's box: the leaf indexes and the walk give the same chain.
#[test]
fn the_fast_path_and_the_walk_agree_everywhere() {
    let (_, atlas) = atlas();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut inside = 0;
    for _ in 0..5_000 {
        let point = LatLon::new(rng.random_range(22.39..22.87), rng.random_range(113.74..114.64)).unwrap();
        let chain = atlas.locate(point);
        inside += usize::from(chain.is_some());
        assert_eq!(chain, atlas.walk_chain(point), "{point}");
    }
    assert!(inside > 1_500, "{inside}");
}
