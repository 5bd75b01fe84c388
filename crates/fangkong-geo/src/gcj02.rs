//! GCJ-02 (the "Mars" datum of Chinese map providers) ⇄ WGS84, at the system's edges.
//!
//! The public forward formula (Krasovsky ellipsoid, a = 6378245 m, e² = 0.00669342162296594323)
//! offsets a WGS84 position by a few hundred metres inside China and leaves positions
//! outside China unchanged, as providers do. The inverse has no closed form; it is solved
//! by fixed-point iteration until the forward image matches to 1e-10° (~0.01 mm), so a
//! round trip is exact to well under the 0.5 m the system requires.

const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943; // 0.00669342162296594323, to f64 precision

/// Whether the standard algorithm treats a position as inside China (a rectangle: the
/// algorithm itself is defined this way, and so are the datasets made with it).
pub fn in_china(lon: f64, lat: f64) -> bool {
    (72.004..=137.8347).contains(&lon) && (0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn transform_lon(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// WGS84 → GCJ-02 (`(lon, lat)` in degrees). Outside China: unchanged.
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if !in_china(lon, lat) {
        return (lon, lat);
    }
    use std::f64::consts::PI;
    let d_lat = transform_lat(lon - 105.0, lat - 35.0);
    let d_lon = transform_lon(lon - 105.0, lat - 35.0);
    let rad_lat = lat / 180.0 * PI;
    let magic = 1.0 - EE * rad_lat.sin() * rad_lat.sin();
    let sqrt_magic = magic.sqrt();
    let d_lat = (d_lat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let d_lon = (d_lon * 180.0) / (A / sqrt_magic * rad_lat.cos() * PI);
    (lon + d_lon, lat + d_lat)
}

/// GCJ-02 → WGS84 (`(lon, lat)` in degrees), by iterating the forward formula. Outside
/// China: unchanged.
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if !in_china(lon, lat) {
        return (lon, lat);
    }
    let (mut wlon, mut wlat) = (lon, lat);
    for _ in 0..30 {
        let (glon, glat) = wgs84_to_gcj02(wlon, wlat);
        let (dlon, dlat) = (glon - lon, glat - lat);
        wlon -= dlon;
        wlat -= dlat;
        if dlon.abs() < 1e-10 && dlat.abs() < 1e-10 {
            break;
        }
    }
    (wlon, wlat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LatLon;

    #[test]
    fn the_offset_in_shenzhen_is_the_known_few_hundred_metres() {
        // The boundary data's build report (an independent Python implementation) gives
        // GCJ − WGS = +0.005108°, −0.002726° for the GCJ-02 point 114.0579, 22.5431.
        let (wlon, wlat) = gcj02_to_wgs84(114.0579, 22.5431);
        assert!(((114.0579 - wlon) - 0.005108).abs() < 1e-6, "{wlon}");
        assert!(((22.5431 - wlat) + 0.002726).abs() < 1e-6, "{wlat}");
    }

    #[test]
    fn round_trips_are_exact_to_well_under_half_a_metre_inside_china() {
        for i in 0..400 {
            let lon = 73.0 + (i as f64 * 0.1612) % 62.0;
            let lat = 18.0 + (i as f64 * 0.0977) % 35.0;
            let (glon, glat) = wgs84_to_gcj02(lon, lat);
            let (wlon, wlat) = gcj02_to_wgs84(glon, glat);
            let error = LatLon::new(lat, lon).unwrap().distance_m(LatLon::new(wlat, wlon).unwrap());
            assert!(error < 0.001, "({lon}, {lat}) round trip off by {error} m");
            let moved = LatLon::new(lat, lon).unwrap().distance_m(LatLon::new(glat, glon).unwrap());
            assert!(moved > 1.0, "GCJ-02 moves points inside China ({lon}, {lat})");
        }
    }

    #[test]
    fn outside_china_nothing_moves() {
        for (lon, lat) in [(2.35, 48.85), (-74.0, 40.7), (139.7, 35.7), (151.2, -33.9)] {
            assert_eq!(wgs84_to_gcj02(lon, lat), (lon, lat));
            assert_eq!(gcj02_to_wgs84(lon, lat), (lon, lat));
        }
    }
}
