//! Geometry for Fangkong: WGS84 coordinates and great-circle distances.
//!
//! Everything inside Fangkong is WGS84 longitude/latitude in degrees. This crate is pure
//! (no IO, no clock): the spatial indexes of later features (jurisdiction lookup, nearest
//! unit) live here too, so that they can be tested and benchmarked without a server.

use std::fmt;

/// Mean Earth radius in metres (IUGG), the radius used by the haversine formula.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS84 position in degrees. Constructed only through [`LatLon::new`], so a value of this
/// type is always finite and inside the valid ranges.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct LatLon {
    lat: f64,
    lon: f64,
}

/// Why a coordinate pair was refused.
#[derive(Clone, Copy, PartialEq, Debug, thiserror::Error)]
pub enum CoordinateError {
    #[error("latitude {0} is not a finite number between -90 and 90")]
    Latitude(f64),
    #[error("longitude {0} is not a finite number between -180 and 180")]
    Longitude(f64),
}

impl LatLon {
    pub fn new(lat: f64, lon: f64) -> Result<LatLon, CoordinateError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(CoordinateError::Latitude(lat));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(CoordinateError::Longitude(lon));
        }
        Ok(LatLon { lat, lon })
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lon(self) -> f64 {
        self.lon
    }

    /// Great-circle distance in metres (haversine on a sphere). Good to ~0.3 % against the
    /// ellipsoid, which is far below the error of a phone's GPS fix or of a road factor.
    pub fn distance_m(self, other: LatLon) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let d_phi = phi2 - phi1;
        let d_lambda = (other.lon - self.lon).to_radians();
        let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }
}

impl fmt::Display for LatLon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6},{:.6}", self.lat, self.lon)
    }
}

#[cfg(test)]
mod tests;
