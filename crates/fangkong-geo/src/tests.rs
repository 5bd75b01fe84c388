use super::*;

fn check_distance(a: (f64, f64), b: (f64, f64), expected_m: f64, tolerance_m: f64) {
    let a = LatLon::new(a.0, a.1).unwrap();
    let b = LatLon::new(b.0, b.1).unwrap();
    let d = a.distance_m(b);
    assert!((d - expected_m).abs() <= tolerance_m, "distance {a} → {b} = {d} m, expected {expected_m} ± {tolerance_m}");
    assert!((b.distance_m(a) - d).abs() < 1e-9, "distance is symmetric");
}

#[test]
fn distances_match_known_values() {
    check_distance((22.5431, 114.0579), (22.5431, 114.0579), 0.0, 1e-9);
    // One degree of latitude is ~111.2 km on the mean sphere.
    check_distance((22.0, 114.0), (23.0, 114.0), 111_195.0, 5.0);
    // Futian CBD to Luohu railway station: ~6.3 km great-circle.
    check_distance((22.5431, 114.0579), (22.5318, 114.1178), 6_290.0, 60.0);
    // Antipodes: half the circumference.
    check_distance((0.0, 0.0), (0.0, 180.0), std::f64::consts::PI * EARTH_RADIUS_M, 1.0);
}

#[test]
fn invalid_coordinates_are_refused() {
    assert_eq!(LatLon::new(90.5, 0.0), Err(CoordinateError::Latitude(90.5)));
    assert_eq!(LatLon::new(0.0, -180.1), Err(CoordinateError::Longitude(-180.1)));
    assert!(matches!(LatLon::new(f64::NAN, 0.0), Err(CoordinateError::Latitude(_))));
    assert!(matches!(LatLon::new(0.0, f64::INFINITY), Err(CoordinateError::Longitude(_))));
    assert!(LatLon::new(-90.0, 180.0).is_ok());
}

#[test]
fn h3_cells_match_the_reference_library() {
    // Reference values from the H3 reference implementation (PyPI h3 4.5.0, `h3.latlng_to_cell`).
    let check = |lat: f64, lon: f64, resolution: u8, expected: &str| {
        let cell = LatLon::new(lat, lon).unwrap().h3_cell(resolution).unwrap();
        assert_eq!(format!("{cell:x}"), expected, "({lat}, {lon}) at resolution {resolution}");
    };
    check(22.5431, 114.0579, 9, "89411caa05bffff");
    check(22.5431, 114.0579, 7, "87411caa0ffffff");
    check(22.3965, 113.752, 9, "89411dd36dbffff");
    check(0.0, 0.0, 9, "89754e64993ffff");
    assert_eq!(LatLon::new(22.5431, 114.0579).unwrap().h3_cell(16), None);
}
