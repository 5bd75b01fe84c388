//! The lookup index: which area (of a set that does not overlap) contains a point.
//!
//! A uniform grid of cells covers the areas' bounding box. A cell that no edge touches lies
//! wholly inside one area (or none), so a point in it is answered by one array read; only
//! cells crossed by boundaries test the few candidate areas whose boxes reach them, with the
//! exact point-in-polygon rule. Exactness at borders therefore never depends on the grid.

use crate::prepared::PreparedArea;
use crate::shape::{Area, BBox};

#[derive(Clone, Copy, Debug)]
enum Cell {
    Outside,
    Inside(u32),
    /// `candidates[start..end]`
    Boundary(u32, u32),
}

/// Areas keyed by `K`, answering "which one contains this point?".
#[derive(Debug)]
pub struct AreaIndex<K> {
    keys: Vec<K>,
    areas: Vec<PreparedArea>,
    bbox: BBox,
    cell_lon: f64,
    cell_lat: f64,
    columns: usize,
    rows: usize,
    cells: Vec<Cell>,
    candidates: Vec<u32>,
}

impl<K> Default for AreaIndex<K> {
    /// An index of nothing.
    fn default() -> AreaIndex<K> {
        AreaIndex::new(Vec::new(), 1)
    }
}

impl<K> AreaIndex<K> {
    /// Builds the index with about `cells_per_area` grid cells per area (16–64 are good
    /// values: most cells then fall wholly inside one area and need no polygon test).
    pub fn new(entries: Vec<(K, &Area)>, cells_per_area: usize) -> AreaIndex<K> {
        let mut keys = Vec::with_capacity(entries.len());
        let mut areas = Vec::with_capacity(entries.len());
        let mut bbox = BBox::EMPTY;
        for (key, area) in entries {
            let prepared = PreparedArea::new(area);
            if prepared.bbox().is_empty() {
                continue;
            }
            bbox = bbox.union(*prepared.bbox());
            keys.push(key);
            areas.push(prepared);
        }
        if areas.is_empty() {
            return AreaIndex {
                keys,
                areas,
                bbox,
                cell_lon: 1.0,
                cell_lat: 1.0,
                columns: 0,
                rows: 0,
                cells: Vec::new(),
                candidates: Vec::new(),
            };
        }
        // Square-ish cells (in degrees) so that the grid has about the wanted count.
        let (width, height) = ((bbox.max_lon - bbox.min_lon).max(1e-9), (bbox.max_lat - bbox.min_lat).max(1e-9));
        let wanted = (areas.len() * cells_per_area.max(1)).clamp(1, 4_000_000) as f64;
        let side = (width * height / wanted).sqrt();
        let columns = ((width / side).ceil() as usize).max(1);
        let rows = ((height / side).ceil() as usize).max(1);
        let (cell_lon, cell_lat) = (width / columns as f64, height / rows as f64);

        // Which areas reach each cell, and which cells some edge touches.
        // The cells a closed box reaches; a box edge within a hair of a cell line reaches the
        // cells on both sides (so rounding never hides a boundary from a cell).
        const HAIR: f64 = 1e-9;
        let cell_range = |b: &BBox| {
            let index = |value: f64, origin: f64, size: f64, count: usize| {
                (((value - origin) / size).floor().max(0.0) as usize).min(count - 1)
            };
            let c0 = index(b.min_lon - cell_lon * HAIR, bbox.min_lon, cell_lon, columns);
            let c1 = index(b.max_lon + cell_lon * HAIR, bbox.min_lon, cell_lon, columns);
            let r0 = index(b.min_lat - cell_lat * HAIR, bbox.min_lat, cell_lat, rows);
            let r1 = index(b.max_lat + cell_lat * HAIR, bbox.min_lat, cell_lat, rows);
            (c0, c1, r0, r1)
        };
        let mut reaching: Vec<Vec<u32>> = vec![Vec::new(); columns * rows];
        let mut touched = vec![false; columns * rows];
        for (index, area) in areas.iter().enumerate() {
            let (c0, c1, r0, r1) = cell_range(area.bbox());
            for row in r0..=r1 {
                for column in c0..=c1 {
                    reaching[row * columns + column].push(index as u32);
                }
            }
            for edge in area.edge_boxes() {
                let (c0, c1, r0, r1) = cell_range(&edge);
                for row in r0..=r1 {
                    for column in c0..=c1 {
                        touched[row * columns + column] = true;
                    }
                }
            }
        }
        let mut cells = Vec::with_capacity(columns * rows);
        let mut candidates = Vec::new();
        for row in 0..rows {
            for column in 0..columns {
                let at = row * columns + column;
                let reach = &reaching[at];
                let cell = if reach.is_empty() {
                    Cell::Outside
                } else if touched[at] {
                    let start = candidates.len() as u32;
                    candidates.extend_from_slice(reach);
                    Cell::Boundary(start, candidates.len() as u32)
                } else {
                    // No boundary in the cell: its centre decides for all of it.
                    let centre_lon = bbox.min_lon + (column as f64 + 0.5) * cell_lon;
                    let centre_lat = bbox.min_lat + (row as f64 + 0.5) * cell_lat;
                    reach
                        .iter()
                        .find(|&&index| areas[index as usize].contains(centre_lon, centre_lat))
                        .map_or(Cell::Outside, |&index| Cell::Inside(index))
                };
                cells.push(cell);
            }
        }
        AreaIndex { keys, areas, bbox, cell_lon, cell_lat, columns, rows, cells, candidates }
    }

    /// The key of the area containing the point, if any.
    #[inline]
    pub fn locate(&self, lon: f64, lat: f64) -> Option<&K> {
        if !self.bbox.contains(lon, lat) || self.cells.is_empty() {
            return None;
        }
        let column = (((lon - self.bbox.min_lon) / self.cell_lon) as usize).min(self.columns - 1);
        let row = (((lat - self.bbox.min_lat) / self.cell_lat) as usize).min(self.rows - 1);
        match self.cells[row * self.columns + column] {
            Cell::Outside => None,
            Cell::Inside(index) => Some(&self.keys[index as usize]),
            Cell::Boundary(start, end) => self.candidates[start as usize..end as usize]
                .iter()
                .find(|&&index| self.areas[index as usize].contains(lon, lat))
                .map(|&index| &self.keys[index as usize]),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Share of cells answered without a point-in-polygon test (for tuning and reports).
    pub fn interior_share(&self) -> f64 {
        let interior = self.cells.iter().filter(|c| !matches!(c, Cell::Boundary(..))).count();
        interior as f64 / self.cells.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::split::partition;

    fn square(x: f64, y: f64, size: f64) -> Area {
        Area::from_rings(vec![vec![vec![[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]]).unwrap()
    }

    #[test]
    fn the_index_answers_like_point_in_polygon_everywhere() {
        let city = square(114.0, 22.4, 0.4);
        let mut n = 0u64;
        let mut jitter = || {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (n >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let parts = partition(&city, 300, 0.4, &mut jitter);
        let index = AreaIndex::new(parts.iter().enumerate().collect(), 32);
        assert_eq!(index.len(), 300);
        assert!(index.interior_share() > 0.5, "most cells need no polygon test: {}", index.interior_share());
        for i in 0..200 {
            for j in 0..200 {
                let (x, y) = (113.99 + i as f64 * 0.0021, 22.39 + j as f64 * 0.0021);
                let expected = parts.iter().position(|p| p.contains(x, y));
                assert_eq!(index.locate(x, y).copied(), expected, "({x}, {y})");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn a_point_in_a_part_is_found_in_that_part(
            parts in 1usize..40,
            probes in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0), 100),
        ) {
            let city = square(113.8, 22.4, 0.5);
            let pieces = partition(&city, parts, 0.0, &mut || 0.0);
            let index = AreaIndex::new(pieces.iter().enumerate().collect(), 4);
            for (u, v) in probes {
                let (x, y) = (113.8 + u * 0.5, 22.4 + v * 0.5);
                let found = index.locate(x, y).copied();
                prop_assert!(found.is_some(), "({}, {}) is in the city", x, y);
                prop_assert!(pieces[found.unwrap()].contains(x, y));
            }
            prop_assert_eq!(index.locate(113.7, 22.3), None);
        }
    }
}
