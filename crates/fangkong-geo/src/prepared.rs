//! An area prepared for fast point-in-polygon: its edges in canonical orientation, bucketed
//! into latitude bands, so a query reads only the edges near its latitude.

use crate::shape::{Area, BBox, Position, canonical, x_at};

#[derive(Clone, Copy, Debug)]
struct Edge {
    lo: Position,
    hi: Position,
}

#[derive(Clone, Debug)]
pub struct PreparedArea {
    bbox: BBox,
    band_origin: f64,
    band_height: f64,
    /// For each band, the range of `band_edges` holding indexes of the edges spanning it.
    band_ranges: Vec<(u32, u32)>,
    band_edges: Vec<u32>,
    edges: Vec<Edge>,
    /// Horizontal edges never cross a ray but are still boundary (for indexes).
    flat: Vec<Edge>,
}

impl PreparedArea {
    pub fn new(area: &Area) -> PreparedArea {
        let bbox = area.bbox();
        let (mut edges, mut flat) = (Vec::new(), Vec::new());
        for ring in area.rings() {
            let n = ring.len();
            for i in 0..n {
                let (lo, hi) = canonical(ring[i], ring[(i + 1) % n]);
                if lo[1] != hi[1] { edges.push(Edge { lo, hi }) } else { flat.push(Edge { lo, hi }) }
            }
        }
        // About two edges per band on average: queries read a handful of edges.
        let bands = (edges.len() / 2).clamp(1, 4096);
        let height = ((bbox.max_lat - bbox.min_lat) / bands as f64).max(f64::MIN_POSITIVE);
        let band_of = |lat: f64| (((lat - bbox.min_lat) / height) as usize).min(bands - 1);
        let mut per_band: Vec<Vec<u32>> = vec![Vec::new(); bands];
        for (index, edge) in edges.iter().enumerate() {
            for band in per_band.iter_mut().take(band_of(edge.hi[1]) + 1).skip(band_of(edge.lo[1])) {
                band.push(index as u32);
            }
        }
        let mut band_ranges = Vec::with_capacity(bands);
        let mut band_edges = Vec::new();
        for band in per_band {
            let start = band_edges.len() as u32;
            band_edges.extend(band);
            band_ranges.push((start, band_edges.len() as u32));
        }
        PreparedArea { bbox, band_origin: bbox.min_lat, band_height: height, band_ranges, band_edges, edges, flat }
    }

    pub fn bbox(&self) -> &BBox {
        &self.bbox
    }

    /// Exact point-in-area under the boundary rule of [`crate::shape`].
    #[inline]
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        if !self.bbox.contains(lon, lat) {
            return false;
        }
        let band = (((lat - self.band_origin) / self.band_height) as usize).min(self.band_ranges.len() - 1);
        let (start, end) = self.band_ranges[band];
        let mut inside = false;
        for &index in &self.band_edges[start as usize..end as usize] {
            let edge = &self.edges[index as usize];
            if lat >= edge.lo[1] && lat < edge.hi[1] && lon < x_at(edge.lo, edge.hi, lat) {
                inside = !inside;
            }
        }
        inside
    }

    /// Each edge's bounding box, horizontal edges included (for building grid indexes).
    pub(crate) fn edge_boxes(&self) -> impl Iterator<Item = BBox> + '_ {
        self.edges.iter().chain(&self.flat).map(|edge| BBox {
            min_lon: edge.lo[0].min(edge.hi[0]),
            max_lon: edge.lo[0].max(edge.hi[0]),
            min_lat: edge.lo[1],
            max_lat: edge.hi[1],
        })
    }
}
