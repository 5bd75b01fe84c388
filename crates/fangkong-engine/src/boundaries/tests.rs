//! Every kind of bad boundary file is refused with the feature and the reason; good files
//! plan the right inserts and updates.

use serde_json::json;

use super::*;

/// A closed counter-clockwise rectangle ring.
fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Value {
    json!([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
}

fn feature(code: &str, name: &str, rings: Value) -> Value {
    json!({"type": "Feature", "properties": {"code": code, "name_zh": name},
           "geometry": {"type": "Polygon", "coordinates": rings}})
}

fn collection(features: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"type": "FeatureCollection", "features": features})).unwrap()
}

fn node(code: &str, kind: JurisdictionKind, parent: Option<&str>) -> Jurisdiction {
    Jurisdiction { code: code.into(), kind, parent: parent.map(Into::into), name_zh: code.into(), name_en: None }
}

fn area(ring: Value) -> Area {
    let ring: Vec<Position> = serde_json::from_value(ring).unwrap();
    Area::from_rings(vec![vec![ring]]).unwrap()
}

/// A city with one district W (0…1 × 0…1, with a shape), an unshaped district E, and a
/// stored sub-district W1 covering the west half of W.
fn tree() -> (JurisdictionTree, HashMap<String, Area>) {
    use JurisdictionKind::*;
    let tree = JurisdictionTree::from_nodes([
        node("C", City, None),
        node("W", District, Some("C")),
        node("E", District, Some("C")),
        node("W1", Subdistrict, Some("W")),
    ])
    .unwrap();
    let shapes = [("W", area(rect(0.0, 0.0, 0.01, 0.01))), ("W1", area(rect(0.0, 0.0, 0.005, 0.01)))]
        .into_iter()
        .map(|(code, area)| (code.to_string(), area))
        .collect();
    (tree, shapes)
}

fn import(file: &[u8], level: JurisdictionKind) -> Result<ImportPlan, Vec<BoundaryFault>> {
    let (tree, shapes) = tree();
    let features = parse_geojson(file, Crs::Wgs84)?;
    plan_import(&tree, &shapes, features, &BoundaryImport::new(level, Crs::Wgs84))
}

/// The one fault of a refused file.
fn refusal(file: &[u8], level: JurisdictionKind) -> BoundaryFault {
    let faults = import(file, level).expect_err("the file should be refused");
    assert_eq!(faults.len(), 1, "{faults:#?}");
    faults.into_iter().next().unwrap()
}

fn assert_refused(file: &[u8], level: JurisdictionKind, feature: &str, reason: &str) {
    let fault = refusal(file, level);
    assert_eq!(fault.feature, feature);
    assert!(fault.reason.contains(reason), "{:?} should contain {reason:?}", fault.reason);
}

const SUB: JurisdictionKind = JurisdictionKind::Subdistrict;

#[test]
fn a_good_file_adds_new_nodes_under_the_parent_holding_them_and_updates_known_ones() {
    let file = collection(vec![
        feature("W2", "东半", json!([rect(0.005, 0.0, 0.01, 0.01)])),
        json!({"type": "Feature", "properties": {"adcode": 1234, "name": "不变"}, "id": "ignored",
               "geometry": {"type": "MultiPolygon", "coordinates": [[rect(0.0, 0.0, 0.005, 0.01)]]}}),
    ]);
    // Feature 2 is new too (code 1234), but overlaps the stored W1: refused.
    assert_refused(&file, SUB, "feature 2 (1234 不变)", "overlaps the stored subdistrict W1 W1");

    let file = collection(vec![
        feature("W2", "东半", json!([rect(0.005, 0.0, 0.01, 0.01)])),
        json!({"type": "Feature", "properties": {"code": "W1", "name_en": "West half"},
               "geometry": {"type": "Polygon", "coordinates": [rect(0.0, 0.0, 0.005, 0.01)]}}),
    ]);
    let plan = import(&file, SUB).unwrap();
    assert_eq!(plan.added.len(), 1);
    assert_eq!(
        plan.added[0].node,
        Jurisdiction { parent: Some("W".into()), name_zh: "东半".into(), ..node("W2", SUB, None) }
    );
    assert_eq!(plan.changed.len(), 1);
    let changed = &plan.changed[0].node;
    assert_eq!(
        (changed.name_zh.as_str(), changed.name_en.as_deref()),
        ("W1", Some("West half")),
        "names kept or replaced"
    );
}

#[test]
fn structure_faults_name_the_feature() {
    assert_refused(b"{not json", SUB, "file", "not JSON");
    assert_refused(br#"{"type": "Polygon", "coordinates": []}"#, SUB, "file", "expected a FeatureCollection");
    assert_refused(&collection(vec![]), SUB, "file", "no features");
    let no_code = json!({"type": "Feature", "properties": {"name": "无码"}, "geometry": {"type": "Polygon", "coordinates": [rect(0.0, 0.0, 0.001, 0.001)]}});
    assert_refused(&collection(vec![no_code]), SUB, "feature 1", "no code");
    let point = json!({"type": "Feature", "properties": {"code": "P"}, "geometry": {"type": "Point", "coordinates": [0.0, 0.0]}});
    assert_refused(&collection(vec![point]), SUB, "feature 1 (P)", "geometry type Some(\"Point\")");
    let bad_position = feature("X", "坏点", json!([[[0.0, 0.0], ["a", 1.0], [0.0, 1.0], [0.0, 0.0]]]));
    assert_refused(&collection(vec![bad_position]), SUB, "feature 1 (X 坏点)", "is not [longitude, latitude]");
    let twice = collection(vec![
        feature("W2", "甲", json!([rect(0.005, 0.0, 0.01, 0.005)])),
        feature("W2", "乙", json!([rect(0.005, 0.005, 0.01, 0.01)])),
    ]);
    assert_refused(&twice, SUB, "feature 2 (W2 乙)", "appears more than once");
    let nameless = json!({"type": "Feature", "properties": {"code": "W3"}, "geometry": {"type": "Polygon", "coordinates": [rect(0.005, 0.0, 0.01, 0.01)]}});
    assert_refused(&collection(vec![nameless]), SUB, "feature 1 (W3)", "needs a name");
}

#[test]
fn ring_faults_unclosed_short_and_wrongly_wound() {
    let unclosed = json!([[[0.005, 0.0], [0.01, 0.0], [0.01, 0.01], [0.005, 0.01]]]);
    assert_refused(&collection(vec![feature("W2", "未闭合", unclosed)]), SUB, "feature 1 (W2 未闭合)", "not closed");
    let short = json!([[[0.005, 0.0], [0.01, 0.0], [0.005, 0.0]]]);
    assert_refused(&collection(vec![feature("W2", "太短", short)]), SUB, "feature 1 (W2 太短)", "at least 4");
    let clockwise = json!([[[0.005, 0.0], [0.005, 0.01], [0.01, 0.01], [0.01, 0.0], [0.005, 0.0]]]);
    assert_refused(&collection(vec![feature("W2", "反向", clockwise)]), SUB, "feature 1 (W2 反向)", "wound clockwise");
    // A hole must wind clockwise.
    let ccw_hole = json!([rect(0.005, 0.0, 0.01, 0.01), rect(0.006, 0.001, 0.007, 0.002)]);
    assert_refused(&collection(vec![feature("W2", "洞反", ccw_hole)]), SUB, "feature 1 (W2 洞反)", "0.hole1 is wound");
}

/// A clockwise copy of a rectangle, for holes.
fn hole(x0: f64, y0: f64, x1: f64, y1: f64) -> Value {
    json!([[x0, y0], [x0, y1], [x1, y1], [x1, y0], [x0, y0]])
}

#[test]
fn self_intersections_and_misplaced_holes_are_invalid_geometry() {
    // A bow tie whose two lobes cancel out (zero net area) is "degenerate"; one with unequal
    // lobes keeps a winding, so it takes the OGC check to find the crossing.
    let bow_tie = json!([[[0.005, 0.0], [0.01, 0.008], [0.01, 0.0], [0.005, 0.01], [0.005, 0.0]]]);
    let fault = refusal(&collection(vec![feature("W2", "蝴蝶", bow_tie)]), SUB);
    assert_eq!(fault.feature, "feature 1 (W2 蝴蝶)");
    assert!(fault.reason.contains("invalid geometry") || fault.reason.contains("wound"), "{}", fault.reason);
    let crossing = json!([[[0.005, 0.0], [0.01, 0.0], [0.006, 0.01], [0.009, 0.01], [0.005, 0.0]]]);
    assert_refused(&collection(vec![feature("W2", "交叉", crossing)]), SUB, "feature 1 (W2 交叉)", "invalid geometry");
    let hole_outside = json!([rect(0.005, 0.0, 0.01, 0.005), hole(0.006, 0.006, 0.007, 0.007)]);
    assert_refused(
        &collection(vec![feature("W2", "洞外", hole_outside)]),
        SUB,
        "feature 1 (W2 洞外)",
        "invalid geometry",
    );
    let hole_crossing = json!([rect(0.005, 0.0, 0.01, 0.005), hole(0.006, 0.001, 0.011, 0.002)]);
    assert_refused(
        &collection(vec![feature("W2", "洞交", hole_crossing)]),
        SUB,
        "feature 1 (W2 洞交)",
        "invalid geometry",
    );
    // A proper hole is fine.
    let good_hole = json!([rect(0.005, 0.0, 0.01, 0.01), hole(0.006, 0.001, 0.007, 0.002)]);
    assert!(import(&collection(vec![feature("W2", "有洞", good_hole)]), SUB).is_ok());
}

#[test]
fn a_child_outside_its_parent_beyond_the_tolerance_is_refused() {
    // W is 0…0.01° square (~1.1 km); 0.0005° × 0.01° sticking out east is ~60,000 m².
    let overhang = collection(vec![feature("W2", "越界", json!([rect(0.005, 0.0, 0.0105, 0.01)]))]);
    assert_refused(&overhang, SUB, "feature 1 (W2 越界)", "lies outside its parent district W W");
    // A sliver of ~0.000005° (~0.5 m × 1.1 km ≈ 600 m²) is within the default tolerance.
    let sliver = collection(vec![feature("W2", "毛边", json!([rect(0.005, 0.0, 0.010005, 0.01)]))]);
    assert!(import(&sliver, SUB).is_ok());
}

#[test]
fn siblings_that_overlap_are_refused_within_the_file_and_against_stored_ones() {
    let file = collection(vec![
        feature("W2", "甲", json!([rect(0.005, 0.0, 0.01, 0.006)])),
        feature("W3", "乙", json!([rect(0.005, 0.005, 0.01, 0.01)])),
    ]);
    assert_refused(&file, SUB, "feature 1 (W2 甲)", "overlaps feature 2 (W3 乙) by");
    let onto_stored = collection(vec![feature("W2", "丙", json!([rect(0.004, 0.0, 0.01, 0.01)]))]);
    assert_refused(&onto_stored, SUB, "feature 1 (W2 丙)", "overlaps the stored subdistrict W1");
    // Sharing an edge is not an overlap.
    let neighbours = collection(vec![
        feature("W2", "甲", json!([rect(0.005, 0.0, 0.01, 0.005)])),
        feature("W3", "乙", json!([rect(0.005, 0.005, 0.01, 0.01)])),
    ]);
    assert_eq!(import(&neighbours, SUB).unwrap().added.len(), 2);
}

#[test]
fn a_new_parent_shape_may_not_leave_its_stored_children_outside() {
    // Shrinking W to its east half would leave W1 (the west half) outside.
    let file = collection(vec![feature("W", "缩小", json!([rect(0.005, 0.0, 0.01, 0.01)]))]);
    assert_refused(&file, JurisdictionKind::District, "feature 1 (W 缩小)", "leave");
}

#[test]
fn parents_come_from_the_feature_the_option_or_the_ground() {
    // Named parent that is of the wrong kind, or missing.
    let mut f = feature("G1", "网格", json!([rect(0.0, 0.0, 0.001, 0.001)]));
    f["properties"]["parent"] = json!("W");
    assert_refused(
        &collection(vec![f.clone()]),
        JurisdictionKind::Community,
        "feature 1 (G1 网格)",
        "its parent W is a district",
    );
    f["properties"]["parent"] = json!({"adcode": "NOPE"});
    assert_refused(&collection(vec![f]), JurisdictionKind::Community, "feature 1 (G1 网格)", "not in the tree");
    // A district needs no parent: the city is the only candidate.
    let district = collection(vec![feature("N", "新区", json!([rect(0.0, 0.02, 0.01, 0.03)]))]);
    let plan = import(&district, JurisdictionKind::District).unwrap();
    assert_eq!(plan.added[0].node.parent.as_deref(), Some("C"));
    // Outside every shaped district and with no parent given: ask for one.
    let stray = collection(vec![feature("S", "飞地", json!([rect(0.0, 0.02, 0.001, 0.021)]))]);
    assert_refused(&stray, SUB, "feature 1 (S 飞地)", "no district with a shape holds it");
    // An existing node keeps its parent; moving it is refused.
    let mut moved = feature("W1", "搬家", json!([rect(0.0, 0.0, 0.005, 0.01)]));
    moved["properties"]["parent"] = json!("E");
    assert_refused(&collection(vec![moved]), SUB, "feature 1 (W1 搬家)", "does not move nodes");
    // A code of another level.
    assert_refused(
        &collection(vec![feature("W", "错级", json!([rect(0.0, 0.0, 0.01, 0.01)]))]),
        SUB,
        "feature 1 (W 错级)",
        "is a district in the tree, not a subdistrict",
    );
}

#[test]
fn every_fault_of_a_file_is_listed_in_feature_order() {
    let file = collection(vec![
        feature("A", "好", json!([rect(0.005, 0.0, 0.01, 0.005)])),
        feature("B", "反", json!([[[0.005, 0.005], [0.005, 0.01], [0.01, 0.01], [0.01, 0.005], [0.005, 0.005]]])),
        json!({"type": "Feature", "properties": {"code": "C2"}, "geometry": null}),
    ]);
    let faults = import(&file, SUB).unwrap_err();
    let features: Vec<&str> = faults.iter().map(|f| f.feature.as_str()).collect();
    assert_eq!(features, ["feature 2 (B 反)", "feature 3 (C2)"]);
}

#[test]
fn gcj02_files_are_converted_to_wgs84() {
    // A small square in Futian, given in GCJ-02.
    let (x, y) = (114.06, 22.54);
    let file = collection(vec![feature("F", "福田", json!([rect(x, y, x + 0.01, y + 0.01)]))]);
    let features = parse_geojson(&file, Crs::Gcj02).unwrap();
    let [lon, lat] = features[0].shape.polygons[0].exterior[0];
    let (back_lon, back_lat) = fangkong_geo::gcj02::wgs84_to_gcj02(lon, lat);
    assert!((back_lon - x).abs() < 1e-9 && (back_lat - y).abs() < 1e-9);
    assert!((lon - x).abs() > 0.003, "a GCJ-02 offset of several hundred metres was removed");
}

/// Property test: boundary files come from survey offices and map exports; whatever shapes
/// they hold (self-crossing, degenerate, out of range, huge), the import plans or refuses
/// naming features, and never panics.
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn coordinate() -> impl Strategy<Value = Value> {
        prop_oneof![
            6 => (-0.005f64..0.015).prop_map(|v| json!(v)),
            1 => proptest::sample::select(vec![0.0, 0.005, 0.01, -180.0, 180.0, 90.0, -91.0, 1e308, -1e308, 5e-324])
                .prop_map(|v| json!(v)),
            1 => Just(json!(null)),
            1 => Just(json!("1")),
        ]
    }

    fn ring() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => proptest::collection::vec((coordinate(), coordinate()), 0..9).prop_map(|points| {
                // Mostly closed, as GeoJSON wants; sometimes not.
                let mut ring: Vec<Value> = points.iter().map(|(x, y)| json!([x, y])).collect();
                if let Some(first) = ring.first().cloned() {
                    ring.push(first);
                }
                Value::Array(ring)
            }),
            1 => proptest::collection::vec((coordinate(), coordinate()), 0..6)
                .prop_map(|points| Value::Array(points.iter().map(|(x, y)| json!([x, y])).collect())),
            1 => (0.0f64..0.01, 0.0f64..0.01, 0.0f64..0.01, 0.0f64..0.01)
                .prop_map(|(a, b, c, d)| rect(a.min(c), b.min(d), a.max(c), b.max(d))),
            1 => Just(json!([[0.0, 0.0]])),
            1 => Just(json!("ring")),
        ]
    }

    fn geometry() -> impl Strategy<Value = Value> {
        prop_oneof![
            3 => proptest::collection::vec(ring(), 0..3).prop_map(|rings| json!({"type": "Polygon", "coordinates": rings})),
            1 => proptest::collection::vec(proptest::collection::vec(ring(), 0..3), 0..3)
                .prop_map(|polygons| json!({"type": "MultiPolygon", "coordinates": polygons})),
            1 => Just(json!({"type": "Point", "coordinates": [0.0, 0.0]})),
            1 => Just(json!(null)),
        ]
    }

    /// Files are planned whole only when every feature is good, so most features are: the
    /// east half of W (new, with a shape jittered inside it) or W1 again (an update).
    fn good_feature() -> impl Strategy<Value = Value> {
        (0.0051f64..0.007, 0.0001f64..0.004, 0.008f64..0.0099, 0.006f64..0.0099, any::<bool>()).prop_map(
            |(x0, y0, x1, y1, new)| {
                if new {
                    super::feature("W2", "东半", json!([rect(x0, y0, x1, y1)]))
                } else {
                    super::feature("W1", "西半", json!([rect(0.0, 0.0, 0.005, 0.01)]))
                }
            },
        )
    }

    fn feature() -> impl Strategy<Value = Value> {
        prop_oneof![4 => good_feature(), 1 => hostile_feature()]
    }

    fn hostile_feature() -> impl Strategy<Value = Value> {
        (
            proptest::sample::select(vec![json!("W1"), json!("W2"), json!("E1"), json!("C"), json!(440304), json!(""), json!(null)]),
            proptest::sample::select(vec![json!("W"), json!("E"), json!("X"), json!(null), json!({"adcode": "W"}), json!([1])]),
            geometry(),
            proptest::sample::select(vec!["Feature", "Feature", "Feature", "Geometry"]),
        )
            .prop_map(|(code, parent, geometry, kind)| {
                json!({"type": kind, "properties": {"code": code, "parent": parent, "name_zh": "街道"}, "geometry": geometry})
            })
    }

    #[test]
    fn any_boundary_file_is_planned_or_refused_naming_features() {
        use proptest::test_runner::{Config, TestRunner};
        let file = (
            proptest::collection::vec(feature(), 0..3),
            proptest::sample::select(vec![
                JurisdictionKind::Subdistrict,
                JurisdictionKind::District,
                JurisdictionKind::Community,
            ]),
        );
        let (planned, refused) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
        let mut runner = TestRunner::new(Config { cases: 1_500, failure_persistence: None, ..Config::default() });
        runner
            .run(&file, |(features, level)| {
                match import(&collection(features.clone()), level) {
                    Ok(plan) => {
                        planned.set(planned.get() + 1);
                        // Every planned node has a shape that passed the checks.
                        for node in plan.added.iter().chain(&plan.changed) {
                            prop_assert!(node.shape.is_some(), "{features:?}");
                        }
                    }
                    Err(faults) => {
                        refused.set(refused.get() + 1);
                        prop_assert!(!faults.is_empty());
                        for fault in faults {
                            prop_assert!(!fault.feature.is_empty() && !fault.reason.is_empty(), "{fault:?}");
                        }
                    }
                }
                Ok(())
            })
            .unwrap();
        // The files reach both ends, or the property says little.
        let (planned, refused) = (planned.get(), refused.get());
        eprintln!("boundary files planned: {planned}, refused: {refused}");
        assert!(planned >= 50 && refused >= 50, "planned {planned}, refused {refused}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_500))]

        #[test]
        fn any_bytes_are_refused_as_a_file_or_read(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Err(faults) = parse_geojson(&bytes, Crs::Gcj02) {
                prop_assert!(faults.iter().all(|f| !f.reason.is_empty()));
            }
        }
    }
}
