//! Areas: polygons with holes and multi-part areas in WGS84 degrees, built from GeoJSON-style
//! rings with their faults named, and the point-in-polygon rule every lookup uses.
//!
//! **The boundary rule.** A point exactly on an edge shared by two areas must belong to
//! exactly one of them. Crossing counting does that when both areas compute the shared
//! edge with the same arithmetic: each edge is put in a canonical orientation (lower
//! endpoint first) before use, edges are half-open in y (lower end included, upper end
//! excluded) and a crossing counts only strictly east of the point. For a partition of the
//! plane whose neighbours share vertex-identical edges, every point is then inside exactly
//! one part — on edges and on vertices where many parts meet.

use std::fmt;

/// `[lon, lat]` in degrees.
pub type Position = [f64; 2];

/// An axis-aligned box in degrees.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct BBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl BBox {
    pub const EMPTY: BBox =
        BBox { min_lon: f64::INFINITY, min_lat: f64::INFINITY, max_lon: f64::NEG_INFINITY, max_lat: f64::NEG_INFINITY };

    pub fn extend(&mut self, [lon, lat]: Position) {
        self.min_lon = self.min_lon.min(lon);
        self.min_lat = self.min_lat.min(lat);
        self.max_lon = self.max_lon.max(lon);
        self.max_lat = self.max_lat.max(lat);
    }

    pub fn union(mut self, other: BBox) -> BBox {
        self.extend([other.min_lon, other.min_lat]);
        self.extend([other.max_lon, other.max_lat]);
        self
    }

    /// Closed containment.
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        lon >= self.min_lon && lon <= self.max_lon && lat >= self.min_lat && lat <= self.max_lat
    }

    /// Whether the closed boxes share any point.
    pub fn intersects(&self, other: &BBox) -> bool {
        self.min_lon <= other.max_lon
            && other.min_lon <= self.max_lon
            && self.min_lat <= other.max_lat
            && other.min_lat <= self.max_lat
    }

    pub fn is_empty(&self) -> bool {
        self.min_lon > self.max_lon
    }
}

/// A polygon: an exterior ring and holes. Rings are stored open (the closing position is
/// not repeated).
#[derive(Clone, PartialEq, Debug)]
pub struct Polygon {
    pub exterior: Vec<Position>,
    pub holes: Vec<Vec<Position>>,
}

/// An area: one or more polygons (a GeoJSON Polygon or MultiPolygon).
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Area {
    pub polygons: Vec<Polygon>,
}

/// Why a ring or area was refused.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("ring {ring} is not closed (its first and last positions differ)")]
    Unclosed { ring: String },
    #[error("ring {ring} has {count} positions; a ring needs at least 4 (the last repeating the first)")]
    TooFewPositions { ring: String, count: usize },
    #[error("ring {ring} has an invalid position {position:?} (not finite, or outside lon −180…180 / lat −90…90)")]
    BadPosition { ring: String, position: Position },
    #[error("ring {ring} is wound {found}; RFC 7946 wants exteriors counter-clockwise and holes clockwise")]
    Winding { ring: String, found: &'static str },
    #[error("ring {ring} encloses no area")]
    Degenerate { ring: String },
    #[error("the geometry has no polygons")]
    Empty,
}

/// Twice the signed planar area of a ring (positive when counter-clockwise), computed
/// relative to its first vertex: shoelace sums of raw longitudes near 114° lose about nine
/// digits to cancellation.
pub fn signed_area2(ring: &[Position]) -> f64 {
    let n = ring.len();
    let Some(&[ox, oy]) = ring.first() else { return 0.0 };
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            (a[0] - ox) * (b[1] - oy) - (b[0] - ox) * (a[1] - oy)
        })
        .sum()
}

fn ring_name(polygon: usize, ring: usize) -> String {
    match ring {
        0 => format!("{polygon}.exterior"),
        hole => format!("{polygon}.hole{hole}"),
    }
}

impl Area {
    /// Builds an area from GeoJSON polygons (each a list of closed rings: exterior then
    /// holes), checking closure, size, coordinates and RFC 7946 winding.
    pub fn from_rings(polygons: Vec<Vec<Vec<Position>>>) -> Result<Area, ShapeError> {
        if polygons.is_empty() {
            return Err(ShapeError::Empty);
        }
        let mut area = Area::default();
        for (p, rings) in polygons.into_iter().enumerate() {
            if rings.is_empty() {
                return Err(ShapeError::Empty);
            }
            let mut open_rings = Vec::with_capacity(rings.len());
            for (r, mut ring) in rings.into_iter().enumerate() {
                let name = ring_name(p, r);
                if ring.len() < 4 {
                    return Err(ShapeError::TooFewPositions { ring: name, count: ring.len() });
                }
                if let Some(&bad) = ring
                    .iter()
                    .find(|[lon, lat]| !lon.is_finite() || !lat.is_finite() || lon.abs() > 180.0 || lat.abs() > 90.0)
                {
                    return Err(ShapeError::BadPosition { ring: name, position: bad });
                }
                if ring.first() != ring.last() {
                    return Err(ShapeError::Unclosed { ring: name });
                }
                ring.pop();
                let signed = signed_area2(&ring);
                if signed == 0.0 {
                    return Err(ShapeError::Degenerate { ring: name });
                }
                let want_ccw = r == 0;
                if (signed > 0.0) != want_ccw {
                    let found = if signed > 0.0 { "counter-clockwise" } else { "clockwise" };
                    return Err(ShapeError::Winding { ring: name, found });
                }
                open_rings.push(ring);
            }
            let mut iter = open_rings.into_iter();
            let exterior = iter.next().expect("at least one ring");
            area.polygons.push(Polygon { exterior, holes: iter.collect() });
        }
        Ok(area)
    }

    /// The area's rings closed again, GeoJSON-style: polygons of rings of positions.
    pub fn to_rings(&self) -> Vec<Vec<Vec<Position>>> {
        self.polygons
            .iter()
            .map(|polygon| {
                std::iter::once(&polygon.exterior)
                    .chain(&polygon.holes)
                    .map(|ring| {
                        let mut closed = ring.clone();
                        closed.push(ring[0]);
                        closed
                    })
                    .collect()
            })
            .collect()
    }

    pub fn bbox(&self) -> BBox {
        let mut bbox = BBox::EMPTY;
        for position in self.positions() {
            bbox.extend(position);
        }
        bbox
    }

    /// Every position of every ring.
    pub fn positions(&self) -> impl Iterator<Item = Position> + '_ {
        self.polygons.iter().flat_map(|p| std::iter::once(&p.exterior).chain(&p.holes)).flatten().copied()
    }

    /// Every ring (exteriors and holes).
    pub fn rings(&self) -> impl Iterator<Item = &Vec<Position>> + '_ {
        self.polygons.iter().flat_map(|p| std::iter::once(&p.exterior).chain(&p.holes))
    }

    pub fn vertex_count(&self) -> usize {
        self.rings().map(Vec::len).sum()
    }

    /// The same area with every position mapped (e.g. GCJ-02 → WGS84).
    pub fn map(&self, f: impl Fn(Position) -> Position) -> Area {
        Area {
            polygons: self
                .polygons
                .iter()
                .map(|p| Polygon {
                    exterior: p.exterior.iter().map(|&q| f(q)).collect(),
                    holes: p.holes.iter().map(|h| h.iter().map(|&q| f(q)).collect()).collect(),
                })
                .collect(),
        }
    }

    /// Area in m² on the mean-radius sphere (Chamberlain & Duquette's formula): within
    /// ~0.3 % of the ellipsoidal area, far finer than boundaries drawn on a 100 m grid. Not
    /// exactly additive when an area is cut (parts may differ from the whole by ~1e-5);
    /// use [`Area::shoelace_deg2`] to check tilings.
    pub fn area_m2(&self) -> f64 {
        let ring_area = |ring: &Vec<Position>| -> f64 {
            let n = ring.len();
            let sum: f64 = (0..n)
                .map(|i| {
                    let (a, b) = (ring[i], ring[(i + 1) % n]);
                    (b[0] - a[0]).to_radians() * (2.0 + a[1].to_radians().sin() + b[1].to_radians().sin())
                })
                .sum();
            (sum * crate::EARTH_RADIUS_M * crate::EARTH_RADIUS_M / 2.0).abs()
        };
        self.polygons.iter().map(|p| ring_area(&p.exterior) - p.holes.iter().map(ring_area).sum::<f64>()).sum()
    }

    /// Plain shoelace area in square degrees. Not a physical area, but exactly additive:
    /// the parts of a cut area sum to the whole (for checking tilings).
    pub fn shoelace_deg2(&self) -> f64 {
        self.polygons
            .iter()
            .map(|p| (signed_area2(&p.exterior) + p.holes.iter().map(|h| signed_area2(h)).sum::<f64>()) / 2.0)
            .sum()
    }

    /// Exact point-in-area by crossing counting over every ring (see the boundary rule).
    /// The slow reference; lookups use [`crate::PreparedArea`].
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        let mut inside = false;
        for ring in self.rings() {
            let n = ring.len();
            for i in 0..n {
                if crosses(ring[i], ring[(i + 1) % n], lon, lat) {
                    inside = !inside;
                }
            }
        }
        inside
    }
}

/// Whether the edge `a`–`b` crosses the ray going east from `(x, y)`, under the boundary
/// rule: canonical orientation, half-open in y, strictly east.
#[inline]
pub(crate) fn crosses(a: Position, b: Position, x: f64, y: f64) -> bool {
    let (lo, hi) = canonical(a, b);
    if lo[1] == hi[1] || y < lo[1] || y >= hi[1] {
        return false;
    }
    x < x_at(lo, hi, y)
}

/// The edge's endpoints, lower (then western) first.
#[inline]
pub(crate) fn canonical(a: Position, b: Position) -> (Position, Position) {
    if (a[1], a[0]) <= (b[1], b[0]) { (a, b) } else { (b, a) }
}

/// Where a canonical, non-horizontal edge crosses latitude `y`.
#[inline]
pub(crate) fn x_at(lo: Position, hi: Position, y: f64) -> f64 {
    lo[0] + (y - lo[1]) * (hi[0] - lo[0]) / (hi[1] - lo[1])
}

impl fmt::Display for BBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:.6}, {:.6}, {:.6}, {:.6}]", self.min_lon, self.min_lat, self.max_lon, self.max_lat)
    }
}

#[cfg(test)]
mod tests;
