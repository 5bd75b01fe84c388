use fangkong_core::jurisdiction::JurisdictionTree;

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
