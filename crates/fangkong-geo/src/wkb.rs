//! Areas as OGC Well-Known Binary (WKB), the form the store keeps them in: compact, exact
//! (every coordinate is the same `f64` after a round trip) and readable by any GIS
//! (`ST_GeomFromWKB` in PostGIS, `shapely.wkb`, GDAL) without Fangkong's code.
//!
//! Written as a little-endian MultiPolygon (type 6) with closed rings; read as a Polygon
//! (3) or MultiPolygon (6) in either byte order, then checked like any incoming shape
//! (`Area::from_rings`), so a damaged blob is an error, never a wrong lookup.

use crate::shape::{Area, Position, ShapeError};

const POLYGON: u32 = 3;
const MULTI_POLYGON: u32 = 6;

#[derive(Clone, PartialEq, Debug, thiserror::Error)]
pub enum WkbError {
    #[error("WKB ends early at byte {0}")]
    Truncated(usize),
    #[error("WKB has {0} bytes after the geometry")]
    Trailing(usize),
    #[error("WKB byte-order mark {0} is neither 0 nor 1")]
    ByteOrder(u8),
    #[error("WKB geometry type {0} is not a Polygon (3) or MultiPolygon (6)")]
    Type(u32),
    #[error("WKB count {0} is larger than the data")]
    Count(u32),
    #[error("WKB shape: {0}")]
    Shape(#[from] ShapeError),
}

impl Area {
    pub fn to_wkb(&self) -> Vec<u8> {
        let rings: usize = self.polygons.iter().map(|p| 1 + p.holes.len()).sum();
        let mut out = Vec::with_capacity(9 + self.polygons.len() * 9 + rings * 4 + (self.vertex_count() + rings) * 16);
        out.push(1);
        out.extend_from_slice(&MULTI_POLYGON.to_le_bytes());
        out.extend_from_slice(&(self.polygons.len() as u32).to_le_bytes());
        for polygon in &self.polygons {
            out.push(1);
            out.extend_from_slice(&POLYGON.to_le_bytes());
            out.extend_from_slice(&(1 + polygon.holes.len() as u32).to_le_bytes());
            for ring in std::iter::once(&polygon.exterior).chain(&polygon.holes) {
                out.extend_from_slice(&(ring.len() as u32 + 1).to_le_bytes());
                for &[lon, lat] in ring.iter().chain(ring.first()) {
                    out.extend_from_slice(&lon.to_le_bytes());
                    out.extend_from_slice(&lat.to_le_bytes());
                }
            }
        }
        out
    }

    pub fn from_wkb(bytes: &[u8]) -> Result<Area, WkbError> {
        let mut reader = Reader { bytes, at: 0, little: true };
        let kind = reader.header()?;
        let polygons = match kind {
            POLYGON => vec![reader.polygon_body()?],
            MULTI_POLYGON => {
                let count = reader.count(9)?;
                (0..count)
                    .map(|_| match reader.header()? {
                        POLYGON => reader.polygon_body(),
                        other => Err(WkbError::Type(other)),
                    })
                    .collect::<Result<_, _>>()?
            }
            other => return Err(WkbError::Type(other)),
        };
        if reader.at != bytes.len() {
            return Err(WkbError::Trailing(bytes.len() - reader.at));
        }
        Ok(Area::from_rings(polygons)?)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    little: bool,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WkbError> {
        let slice = self.bytes.get(self.at..self.at + N).ok_or(WkbError::Truncated(self.at))?;
        self.at += N;
        Ok(slice.try_into().expect("length checked"))
    }

    fn u32(&mut self) -> Result<u32, WkbError> {
        let raw = self.take::<4>()?;
        Ok(if self.little { u32::from_le_bytes(raw) } else { u32::from_be_bytes(raw) })
    }

    fn f64(&mut self) -> Result<f64, WkbError> {
        let raw = self.take::<8>()?;
        Ok(if self.little { f64::from_le_bytes(raw) } else { f64::from_be_bytes(raw) })
    }

    /// A count of items each at least `min_size` bytes long, refused when the rest of the
    /// data could not hold them (so a corrupt count cannot ask for gigabytes).
    fn count(&mut self, min_size: usize) -> Result<usize, WkbError> {
        let count = self.u32()?;
        if (count as usize).saturating_mul(min_size) > self.bytes.len() - self.at {
            return Err(WkbError::Count(count));
        }
        Ok(count as usize)
    }

    fn header(&mut self) -> Result<u32, WkbError> {
        let [order] = self.take::<1>()?;
        self.little = match order {
            0 => false,
            1 => true,
            other => return Err(WkbError::ByteOrder(other)),
        };
        self.u32()
    }

    fn polygon_body(&mut self) -> Result<Vec<Vec<Position>>, WkbError> {
        let rings = self.count(4)?;
        (0..rings)
            .map(|_| {
                let points = self.count(16)?;
                (0..points).map(|_| Ok([self.f64()?, self.f64()?])).collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: f64, y: f64, size: f64) -> Vec<Position> {
        vec![[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    }

    fn sample() -> Area {
        let mut hole = square(114.02, 22.52, 0.01);
        hole.reverse();
        Area::from_rings(vec![vec![square(114.0, 22.5, 0.05), hole], vec![square(114.1, 22.5, 0.01)]]).unwrap()
    }

    #[test]
    fn round_trip_is_exact() {
        let area = sample();
        let bytes = area.to_wkb();
        assert_eq!(Area::from_wkb(&bytes).unwrap(), area);
        // 9 header + 2 × 9 polygon headers + 3 ring counts + 15 points.
        assert_eq!(bytes.len(), 9 + 18 + 12 + 15 * 16);
    }

    /// A big-endian Polygon, as another tool may write it, reads as the same area.
    #[test]
    fn reads_big_endian_polygons() {
        let ring = square(114.0, 22.5, 0.05);
        let mut bytes = vec![0];
        bytes.extend_from_slice(&POLYGON.to_be_bytes());
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&(ring.len() as u32).to_be_bytes());
        for [lon, lat] in &ring {
            bytes.extend_from_slice(&lon.to_be_bytes());
            bytes.extend_from_slice(&lat.to_be_bytes());
        }
        assert_eq!(Area::from_wkb(&bytes).unwrap(), Area::from_rings(vec![vec![ring]]).unwrap());
    }

    #[test]
    fn damaged_blobs_are_errors() {
        let bytes = sample().to_wkb();
        for cut in [0, 1, 5, 9, 20, bytes.len() - 1] {
            assert!(matches!(Area::from_wkb(&bytes[..cut]), Err(WkbError::Truncated(_) | WkbError::Count(_))), "{cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Area::from_wkb(&trailing), Err(WkbError::Trailing(1)));
        let mut order = bytes.clone();
        order[0] = 7;
        assert_eq!(Area::from_wkb(&order), Err(WkbError::ByteOrder(7)));
        let mut point = bytes.clone();
        point[1] = 1;
        assert_eq!(Area::from_wkb(&point), Err(WkbError::Type(1)));
        let mut huge = bytes.clone();
        huge[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Area::from_wkb(&huge), Err(WkbError::Count(u32::MAX)));
        // A moved vertex that unwinds a ring is caught by the shape checks.
        let mut unclosed = bytes;
        let last_x = 9 + 9 + 4 + 4 + 4 * 16;
        unclosed[last_x..last_x + 8].copy_from_slice(&113.0f64.to_le_bytes());
        assert!(matches!(Area::from_wkb(&unclosed), Err(WkbError::Shape(ShapeError::Unclosed { .. }))));
    }
}
