//! Boundary imports through the engine: the real district files (WGS84 and GCJ-02), the
//! lookups they enable, and refused files that leave no trace.

use fangkong_core::auth::Role;
use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_geo::{Crs, LatLon};

use super::*;
use crate::test_support::{T0, config, start};
use crate::{EngineConfig, clock::ManualClock, keys::KeyRing};

const DISTRICTS_WGS84: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../fangkong-sim/data/shenzhen-districts-wgs84.geojson"));
const DISTRICTS_GCJ02: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../fangkong-sim/data/shenzhen-districts.geojson"));

fn system() -> Caller {
    Caller::system("test")
}

/// An engine whose tree is only the city of Shenzhen.
async fn city_only() -> (std::sync::Arc<Engine>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fk.db").display());
    let engine = start(&url, &ManualClock::new(T0), config(&KeyRing::generate())).await.unwrap();
    let city = Jurisdiction {
        code: "440300".into(),
        kind: JurisdictionKind::City,
        parent: None,
        name_zh: "深圳市".into(),
        name_en: Some("Shenzhen".into()),
    };
    engine.import_jurisdictions(&system(), vec![city]).await.unwrap();
    (engine, dir)
}

fn district_import(crs: Crs) -> BoundaryImport {
    BoundaryImport::new(JurisdictionKind::District, crs)
}

#[tokio::test]
async fn the_real_district_file_imports_and_points_resolve_to_their_district() {
    let (engine, dir) = city_only().await;
    let summary = engine.import_boundaries(&system(), DISTRICTS_WGS84, &district_import(Crs::Wgs84)).await.unwrap();
    assert_eq!((summary.added, summary.updated), (8, 0));
    assert!(summary.vertices > 4000, "{summary:?}");
    // Landmarks (WGS84): Shenzhen Civic Center in Futian, Dongmen in Luohu, Shenzhen Bay
    // Park in Nanshan, Dameisha beach in Yantian.
    for (lat, lon, district) in [
        (22.5431, 114.0579, "440304"),
        (22.5460, 114.1195, "440303"),
        (22.5186, 113.9547, "440305"),
        (22.5942, 114.3065, "440308"),
    ] {
        let location = engine.locate(&system(), LatLon::new(lat, lon).unwrap()).await.unwrap();
        assert_eq!(location.chain.get(JurisdictionKind::District), Some(district), "{lat},{lon}");
        assert_eq!(location.chain.get(JurisdictionKind::City), Some("440300"));
        assert_eq!(location.h3_resolution, 9);
        assert_eq!(location.h3_cell, LatLon::new(lat, lon).unwrap().h3_cell(9).unwrap());
    }
    // Hong Kong (south of the Shenzhen River) is outside the city.
    let hong_kong = LatLon::new(22.3193, 114.1694).unwrap();
    assert!(matches!(engine.locate(&system(), hong_kong).await, Err(EngineError::OutsideCity { .. })));

    // The shapes survive a restart exactly.
    let shapes = engine.atlas().shapes().clone();
    let url = format!("sqlite://{}", dir.path().join("fk.db").display());
    engine.shutdown().await;
    let keys = engine.config.keys.clone();
    let again = start(&url, &ManualClock::new(T0), config(&keys)).await.unwrap();
    assert_eq!(again.atlas().shapes(), &shapes);
}

/// The GCJ-02 original and its WGS84 conversion land on the same ground.
#[tokio::test]
async fn the_gcj02_and_wgs84_copies_import_to_the_same_geometry() {
    let (wgs, _a) = city_only().await;
    let (gcj, _b) = city_only().await;
    wgs.import_boundaries(&system(), DISTRICTS_WGS84, &district_import(Crs::Wgs84)).await.unwrap();
    gcj.import_boundaries(&system(), DISTRICTS_GCJ02, &district_import(Crs::Gcj02)).await.unwrap();
    let (wgs, gcj) = (wgs.atlas(), gcj.atlas());
    // Each vertex of either copy lies within a few metres of the other's boundary. Bao'an
    // is the exception the data carries: its WGS84 file was repaired for validity after the
    // conversion (see crates/fangkong-sim/data/README.md), which moved a few vertices of the
    // Dongguan-border slivers; there the bulk must still agree.
    for (code, area) in wgs.shapes() {
        let other = gcj.shape(code).unwrap_or_else(|| panic!("{code} missing from the GCJ-02 import"));
        let distances: Vec<f64> =
            vertex_distances_m(area, other).into_iter().chain(vertex_distances_m(other, area)).collect();
        let far = distances.iter().filter(|&&d| d > 3.0).count();
        let area_change = (area.area_m2() - other.area_m2()).abs() / area.area_m2();
        if code == "440306" {
            assert!(far * 100 < distances.len(), "{code}: {far} of {} vertices more than 3 m apart", distances.len());
            assert!(area_change < 1e-4, "{code}: areas differ by {:.4} %", area_change * 100.0);
        } else {
            let worst = distances.iter().copied().fold(0.0, f64::max);
            assert!(worst < 3.0, "{code}: the copies differ by up to {worst:.2} m");
            assert!(area_change < 1e-5, "{code}: areas differ by {:.5} %", area_change * 100.0);
        }
    }
    // And a GCJ-02 file read as if it were WGS84 would be hundreds of metres off.
    let (wrong, _c) = city_only().await;
    wrong.import_boundaries(&system(), DISTRICTS_GCJ02, &district_import(Crs::Wgs84)).await.unwrap();
    let [lon_a, lat_a] = wgs.shape("440304").unwrap().polygons[0].exterior[0];
    let [lon_b, lat_b] = wrong.atlas().shape("440304").unwrap().polygons[0].exterior[0];
    assert!(LatLon::new(lat_a, lon_a).unwrap().distance_m(LatLon::new(lat_b, lon_b).unwrap()) > 300.0);
}

#[tokio::test]
async fn a_refused_file_stores_nothing_audits_nothing_and_changes_no_lookup() {
    let (engine, _dir) = city_only().await;
    engine.import_boundaries(&system(), DISTRICTS_WGS84, &district_import(Crs::Wgs84)).await.unwrap();
    let before_shapes = engine.store.list_jurisdiction_shapes().await.unwrap();
    let before_nodes = engine.store.list_jurisdictions().await.unwrap();
    let before_audit = engine.store.audit_head().await.unwrap().seq;
    let mut events = engine.bus().subscribe();

    // The district file again, but with Futian's first vertex moved to close the ring
    // wrongly: one feature refused, so none of the eight updates may land.
    let mut file: serde_json::Value = serde_json::from_slice(DISTRICTS_WGS84).unwrap();
    let futian = file["features"].as_array_mut().unwrap().iter_mut().find(|f| f["properties"]["adcode"] == "440304");
    futian.unwrap()["geometry"]["coordinates"][0][0] = serde_json::json!([114.0, 22.5]);
    let result =
        engine.import_boundaries(&system(), &serde_json::to_vec(&file).unwrap(), &district_import(Crs::Wgs84)).await;
    let Err(EngineError::Boundaries(faults)) = result else { panic!("{result:?}") };
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0].feature, "feature 2 (440304 福田区)");
    assert!(faults[0].reason.contains("not closed"), "{}", faults[0].reason);

    assert_eq!(engine.store.list_jurisdiction_shapes().await.unwrap(), before_shapes);
    assert_eq!(engine.store.list_jurisdictions().await.unwrap(), before_nodes);
    assert_eq!(engine.store.audit_head().await.unwrap().seq, before_audit);
    assert!(events.try_recv().is_err(), "nothing announced");
    let civic_center = LatLon::new(22.5431, 114.0579).unwrap();
    assert_eq!(engine.place(civic_center).unwrap().chain.get(JurisdictionKind::District), Some("440304"));
}

#[tokio::test]
async fn an_update_replaces_shapes_and_announces_the_change() {
    let (engine, _dir) = city_only().await;
    engine.import_boundaries(&system(), DISTRICTS_WGS84, &district_import(Crs::Wgs84)).await.unwrap();
    let mut events = engine.bus().subscribe();
    // Re-importing the same file updates all eight in place.
    let summary = engine.import_boundaries(&system(), DISTRICTS_WGS84, &district_import(Crs::Wgs84)).await.unwrap();
    assert_eq!((summary.added, summary.updated), (0, 8));
    let event = events.try_recv().unwrap();
    assert!(matches!(&event.event, Event::JurisdictionsChanged(nodes) if nodes.len() == 8), "{event:?}");
    assert_eq!(engine.stats().jurisdictions, 9);
}

#[tokio::test]
async fn only_administrators_over_the_parent_may_import() {
    let fixture = crate::test_support::Fixture::new().await;
    fixture.add_user("dispatcher", Role::Dispatcher, "440300").await;
    let dispatcher = fixture.caller("dispatcher").await;
    let file = serde_json::to_vec(&serde_json::json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "440304999", "name_zh": "新街道", "parent": "440304"},
         "geometry": {"type": "Polygon", "coordinates": [[[114.0, 22.5], [114.01, 22.5], [114.01, 22.51], [114.0, 22.5]]]}}
    ]}))
    .unwrap();
    let options = BoundaryImport::new(JurisdictionKind::Subdistrict, Crs::Wgs84);
    let refused = fixture.engine.import_boundaries(&dispatcher, &file, &options).await;
    assert!(matches!(refused, Err(EngineError::Denied(_))), "{refused:?}");
    // Luohu's administrator may not add to Futian; Futian's may.
    let luohu = fixture.caller("admin.luohu").await;
    assert!(matches!(fixture.engine.import_boundaries(&luohu, &file, &options).await, Err(EngineError::Denied(_))));
    let futian = fixture.caller("admin.futian").await;
    let summary = fixture.engine.import_boundaries(&futian, &file, &options).await.unwrap();
    assert_eq!(summary.added, 1);
    assert!(fixture.engine.jurisdiction("440304999").is_some());
}

/// The distance from each vertex of `a` to the boundary of `b`, in metres (local
/// equirectangular projection; exact enough over a few metres).
fn vertex_distances_m(a: &Area, b: &Area) -> Vec<f64> {
    let metres_per_degree = fangkong_geo::EARTH_RADIUS_M.to_radians();
    let kx = metres_per_degree * 22.6f64.to_radians().cos();
    let segments: Vec<([f64; 2], [f64; 2])> = b
        .rings()
        .flat_map(|ring| (0..ring.len()).map(move |i| (ring[i], ring[(i + 1) % ring.len()])))
        .map(|(p, q)| ([p[0] * kx, p[1] * metres_per_degree], [q[0] * kx, q[1] * metres_per_degree]))
        .collect();
    a.positions()
        .map(|[lon, lat]| {
            let (x, y) = (lon * kx, lat * metres_per_degree);
            segments
                .iter()
                .map(|&([x0, y0], [x1, y1])| {
                    let (dx, dy) = (x1 - x0, y1 - y0);
                    let t = (((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy).max(1e-12)).clamp(0.0, 1.0);
                    ((x - x0 - t * dx).powi(2) + (y - y0 - t * dy).powi(2)).sqrt()
                })
                .fold(f64::INFINITY, f64::min)
        })
        .collect()
}

#[tokio::test]
async fn the_h3_resolution_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fk.db").display());
    let config = EngineConfig { h3_resolution: 7, ..config(&KeyRing::generate()) };
    let engine = start(&url, &ManualClock::new(T0), config).await.unwrap();
    let city = Jurisdiction {
        code: "440300".into(),
        kind: JurisdictionKind::City,
        parent: None,
        name_zh: "深圳市".into(),
        name_en: None,
    };
    engine.import_jurisdictions(&system(), vec![city]).await.unwrap();
    engine.import_boundaries(&system(), DISTRICTS_WGS84, &district_import(Crs::Wgs84)).await.unwrap();
    let point = LatLon::new(22.5431, 114.0579).unwrap();
    let location = engine.place(point).unwrap();
    assert_eq!((location.h3_resolution, location.h3_cell), (7, point.h3_cell(7).unwrap()));
}
