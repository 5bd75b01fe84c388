//! Geometry for Fangkong: WGS84 coordinates and distances, GCJ-02 conversion, areas
//! (polygons with holes, multi-part), the point → area lookup index, splitting areas into
//! parts, H3 cells, and areas as Well-Known Binary for storage.
//!
//! Everything inside Fangkong is WGS84 longitude/latitude in degrees; GCJ-02 is converted at
//! the edges ([`gcj02`]). This crate is pure (no IO, no clock, no randomness: generators
//! pass their random numbers in), so every rule can be tested and benchmarked alone.

pub mod gcj02;
pub mod index;
pub mod points;
pub mod prepared;
pub mod shape;
pub mod split;
pub mod wkb;

use std::fmt;

pub use index::AreaIndex;
pub use points::{PointGrid, SlotId};
pub use prepared::PreparedArea;
pub use shape::{Area, BBox, Polygon, Position, ShapeError};
pub use wkb::WkbError;

/// The centre `(lat, lon)` of an H3 cell given as its 64-bit index.
pub fn h3_centre(cell: u64) -> Option<(f64, f64)> {
    let cell = h3o::CellIndex::try_from(cell).ok()?;
    let centre = h3o::LatLng::from(cell);
    Some((centre.lat(), centre.lng()))
}

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

    /// The position's H3 cell at `resolution` (0–15), as its 64-bit index.
    pub fn h3_cell(self, resolution: u8) -> Option<u64> {
        let resolution = h3o::Resolution::try_from(resolution).ok()?;
        let point = h3o::LatLng::new(self.lat, self.lon).ok()?;
        Some(u64::from(point.to_cell(resolution)))
    }

    /// The H3 cells at `resolution` that may hold a point within `radius_m` of this one:
    /// the disk of rings around its cell wide enough to contain the circle.
    pub fn h3_cells_within(self, resolution: u8, radius_m: f64) -> Vec<u64> {
        let Some(cell) = self.h3_cell(resolution).and_then(|c| h3o::CellIndex::try_from(c).ok()) else {
            return Vec::new();
        };
        // Neighbouring centres are √3 edges apart; a point may sit an edge from its centre.
        let edge_m = cell.resolution().edge_length_m().max(1.0);
        let rings = ((radius_m.max(0.0) + 2.0 * edge_m) / (1.5 * edge_m)).ceil() as u32;
        cell.grid_disk::<Vec<_>>(rings.min(64)).into_iter().map(u64::from).collect()
    }

    /// From GCJ-02 (Chinese map providers' datum) to WGS84.
    pub fn from_gcj02(lat: f64, lon: f64) -> Result<LatLon, CoordinateError> {
        let (wlon, wlat) = gcj02::gcj02_to_wgs84(lon, lat);
        LatLon::new(wlat, wlon)
    }

    /// This position in GCJ-02 `(lat, lon)`.
    pub fn to_gcj02(self) -> (f64, f64) {
        let (glon, glat) = gcj02::wgs84_to_gcj02(self.lon, self.lat);
        (glat, glon)
    }
}

impl fmt::Display for LatLon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6},{:.6}", self.lat, self.lon)
    }
}

#[cfg(test)]
mod tests;

/// The datum of coordinates arriving at or leaving the system's edges.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Crs {
    /// True GPS coordinates; what Fangkong keeps inside.
    #[default]
    Wgs84,
    /// The datum of Chinese map providers (AMap, Tencent); converted at the edge.
    Gcj02,
}

impl Crs {
    pub fn parse(text: &str) -> Option<Crs> {
        match text.to_ascii_lowercase().as_str() {
            "wgs84" | "wgs-84" | "epsg:4326" => Some(Crs::Wgs84),
            "gcj02" | "gcj-02" => Some(Crs::Gcj02),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Crs::Wgs84 => "wgs84",
            Crs::Gcj02 => "gcj02",
        }
    }

    /// A `[lon, lat]` position in this datum, in WGS84.
    pub fn to_wgs84(self, [lon, lat]: Position) -> Position {
        match self {
            Crs::Wgs84 => [lon, lat],
            Crs::Gcj02 => {
                let (lon, lat) = gcj02::gcj02_to_wgs84(lon, lat);
                [lon, lat]
            }
        }
    }

    /// A WGS84 `[lon, lat]` position in this datum.
    pub fn from_wgs84(self, [lon, lat]: Position) -> Position {
        match self {
            Crs::Wgs84 => [lon, lat],
            Crs::Gcj02 => {
                let (lon, lat) = gcj02::wgs84_to_gcj02(lon, lat);
                [lon, lat]
            }
        }
    }
}
