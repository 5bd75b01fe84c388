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
