//! A grid of moving points searched nearest-first: the live index of where units are.
//!
//! Points sit in square cells of `cell_deg` degrees, each cell's entries stored together
//! with their values (so a search reads memory in runs, not one scattered record per
//! entry). A search visits the centre's cell, then rings of cells around it, and before
//! each ring asks the caller whether a lower bound on the distance of anything further out
//! is already too far — so a query touches the few cells near the point, not every entry.
//! Moving a point within its cell is an update in place; across cells, a swap-remove and a
//! push. Rings never go beyond the cells that have ever held an entry.

use std::collections::HashMap;

use crate::LatLon;

/// Metres per degree of latitude (on the sphere of [`crate::EARTH_RADIUS_M`]).
const METRES_PER_DEGREE: f64 = crate::EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

/// A handle on an entry of a [`PointGrid`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SlotId(u32);

#[derive(Clone, Copy, Debug)]
struct Entry<T> {
    slot: u32,
    point: LatLon,
    value: T,
}

type Cell = (i32, i32);

#[derive(Debug)]
pub struct PointGrid<T> {
    cell_deg: f64,
    cells: HashMap<Cell, Vec<Entry<T>>>,
    /// Where each slot's entry is: its cell and index there.
    slots: Vec<Option<(Cell, u32)>>,
    free: Vec<u32>,
    /// Cells that have ever held an entry: (min x, min y, max x, max y).
    extent: Option<(i32, i32, i32, i32)>,
    len: usize,
}

impl<T: Copy> PointGrid<T> {
    /// A grid of `cell_deg`-degree cells (e.g. 0.005° ≈ 550 m).
    pub fn new(cell_deg: f64) -> PointGrid<T> {
        assert!(cell_deg > 0.0 && cell_deg.is_finite(), "cell size must be positive");
        PointGrid { cell_deg, cells: HashMap::new(), slots: Vec::new(), free: Vec::new(), extent: None, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn cell_of(&self, point: LatLon) -> Cell {
        ((point.lon() / self.cell_deg).floor() as i32, (point.lat() / self.cell_deg).floor() as i32)
    }

    fn place(&mut self, cell: Cell, entry: Entry<T>) {
        let list = self.cells.entry(cell).or_default();
        self.slots[entry.slot as usize] = Some((cell, list.len() as u32));
        list.push(entry);
        self.extent = Some(match self.extent {
            None => (cell.0, cell.1, cell.0, cell.1),
            Some((x0, y0, x1, y1)) => (x0.min(cell.0), y0.min(cell.1), x1.max(cell.0), y1.max(cell.1)),
        });
    }

    /// Takes the entry at `index` of `cell` out, keeping the moved entry's slot right.
    fn unplace(&mut self, cell: Cell, index: u32) -> Entry<T> {
        let list = self.cells.get_mut(&cell).expect("a slot's cell exists");
        let entry = list.swap_remove(index as usize);
        if let Some(moved) = list.get(index as usize) {
            self.slots[moved.slot as usize] = Some((cell, index));
        }
        if list.is_empty() {
            self.cells.remove(&cell);
        }
        entry
    }

    pub fn insert(&mut self, point: LatLon, value: T) -> SlotId {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.place(self.cell_of(point), Entry { slot, point, value });
        self.len += 1;
        SlotId(slot)
    }

    fn entry_mut(&mut self, id: SlotId) -> Option<&mut Entry<T>> {
        let (cell, index) = (*self.slots.get(id.0 as usize)?)?;
        self.cells.get_mut(&cell)?.get_mut(index as usize)
    }

    /// Moves an entry; `false` if the slot is empty.
    pub fn move_to(&mut self, id: SlotId, point: LatLon) -> bool {
        let Some(Some((cell, index))) = self.slots.get(id.0 as usize).copied() else { return false };
        let new_cell = self.cell_of(point);
        if new_cell == cell {
            if let Some(entry) = self.entry_mut(id) {
                entry.point = point;
            }
        } else {
            let entry = self.unplace(cell, index);
            self.place(new_cell, Entry { point, ..entry });
        }
        true
    }

    /// Changes an entry's value in place; `false` if the slot is empty.
    pub fn update(&mut self, id: SlotId, change: impl FnOnce(&mut T)) -> bool {
        match self.entry_mut(id) {
            Some(entry) => {
                change(&mut entry.value);
                true
            }
            None => false,
        }
    }

    pub fn remove(&mut self, id: SlotId) -> Option<T> {
        let (cell, index) = self.slots.get_mut(id.0 as usize)?.take()?;
        let entry = self.unplace(cell, index);
        self.free.push(id.0);
        self.len -= 1;
        Some(entry.value)
    }

    pub fn get(&self, id: SlotId) -> Option<(LatLon, T)> {
        let (cell, index) = (*self.slots.get(id.0 as usize)?)?;
        self.cells.get(&cell)?.get(index as usize).map(|e| (e.point, e.value))
    }

    /// Visits entries nearest-first by rings of cells around `center`. Before ring `r ≥ 1`
    /// it calls `stop(d)`, where `d` is a lower bound (metres) on the distance from
    /// `center` of every entry in that ring and beyond; the search ends when `stop` says so
    /// or when no cell that ever held an entry is left.
    pub fn search(&self, center: LatLon, mut visit: impl FnMut(LatLon, &T), mut stop: impl FnMut(f64) -> bool) {
        let Some((x0, y0, x1, y1)) = self.extent else { return };
        let (cx, cy) = self.cell_of(center);
        let mut visit_cell = |x: i32, y: i32| {
            if let Some(list) = self.cells.get(&(x, y)) {
                for entry in list {
                    visit(entry.point, &entry.value);
                }
            }
        };
        for r in 0i32.. {
            if r > 0 {
                // Every point of ring r is at least r - 1 whole cells away along x or y.
                let lat = (center.lat().abs() + f64::from(r + 1) * self.cell_deg).min(89.0);
                let side_m = self.cell_deg * METRES_PER_DEGREE * lat.to_radians().cos();
                if stop(f64::from(r - 1) * side_m) {
                    return;
                }
            }
            let (rx0, rx1, ry0, ry1) = (cx - r, cx + r, cy - r, cy + r);
            let covers_extent = rx0 <= x0 && rx1 >= x1 && ry0 <= y0 && ry1 >= y1;
            if rx0 > x1 || rx1 < x0 || ry0 > y1 || ry1 < y0 {
                // The centre lies outside the extent and the rings have not reached it yet.
                continue;
            }
            if r == 0 {
                visit_cell(cx, cy);
            } else {
                for y in [ry0, ry1] {
                    if (y0..=y1).contains(&y) {
                        for x in rx0.max(x0)..=rx1.min(x1) {
                            visit_cell(x, y);
                        }
                    }
                }
                for x in [rx0, rx1] {
                    if (x0..=x1).contains(&x) {
                        for y in (ry0 + 1).max(y0)..=(ry1 - 1).min(y1) {
                            visit_cell(x, y);
                        }
                    }
                }
            }
            if covers_extent {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> LatLon {
        LatLon::new(lat, lon).unwrap()
    }

    /// The `k` nearest by the grid (stopping once the bound passes the k-th distance found).
    fn nearest(grid: &PointGrid<u32>, center: LatLon, k: usize) -> Vec<u32> {
        let found: std::cell::RefCell<Vec<(f64, u32)>> = std::cell::RefCell::default();
        grid.search(
            center,
            |point, &v| found.borrow_mut().push((point.distance_m(center), v)),
            |bound| {
                let mut found = found.borrow_mut();
                found.sort_by(|a, b| a.0.total_cmp(&b.0));
                found.len() >= k && found[k - 1].0 < bound
            },
        );
        let mut found = found.into_inner();
        found.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        found.into_iter().take(k).map(|(_, v)| v).collect()
    }

    fn scatter(n: u32) -> (PointGrid<u32>, Vec<(LatLon, u32)>, impl FnMut() -> f64) {
        let mut grid = PointGrid::new(0.005);
        let mut all = Vec::new();
        let mut seed = 12345u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for v in 0..n {
            let point = p(22.45 + next() * 0.36, 113.8 + next() * 0.4);
            grid.insert(point, v);
            all.push((point, v));
        }
        (grid, all, next)
    }

    fn brute(all: &[(LatLon, u32)], center: LatLon, k: usize) -> Vec<u32> {
        let mut brute: Vec<(f64, u32)> = all.iter().map(|(q, v)| (q.distance_m(center), *v)).collect();
        brute.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        brute.iter().take(k).map(|(_, v)| *v).collect()
    }

    #[test]
    fn the_search_finds_the_true_nearest_points() {
        let (grid, all, mut next) = scatter(5_000);
        for _ in 0..200 {
            let center = p(22.4 + next() * 0.46, 113.75 + next() * 0.5);
            assert_eq!(nearest(&grid, center, 5), brute(&all, center, 5), "around {center}");
        }
    }

    #[test]
    fn moves_and_removals_keep_every_entry_findable() {
        // Move and remove many entries across cells (swap-removes shuffle the cells), then
        // compare with brute force.
        let (mut grid, mut all, mut next) = scatter(2_000);
        let ids: Vec<SlotId> = (0..2_000).map(SlotId).collect();
        for round in 0..3 {
            for (i, id) in ids.iter().enumerate() {
                if all[i].1 == u32::MAX {
                    continue;
                }
                if (i + round) % 7 == 0 {
                    assert_eq!(grid.remove(*id), Some(all[i].1));
                    all[i].1 = u32::MAX;
                } else {
                    let point = p(22.45 + next() * 0.36, 113.8 + next() * 0.4);
                    assert!(grid.move_to(*id, point));
                    all[i].0 = point;
                }
            }
        }
        let alive: Vec<(LatLon, u32)> = all.iter().copied().filter(|(_, v)| *v != u32::MAX).collect();
        assert_eq!(grid.len(), alive.len());
        for (point, v) in &alive {
            let id = SlotId(*v);
            assert_eq!(grid.get(id), Some((*point, *v)));
        }
        for _ in 0..100 {
            let center = p(22.45 + next() * 0.36, 113.8 + next() * 0.4);
            assert_eq!(nearest(&grid, center, 5), brute(&alive, center, 5));
        }
    }

    #[test]
    fn entries_move_update_and_leave() {
        let mut grid = PointGrid::new(0.01);
        let a = grid.insert(p(22.5, 114.0), 1u32);
        let b = grid.insert(p(22.6, 114.1), 2u32);
        assert_eq!(nearest(&grid, p(22.5, 114.0), 1), [1]);
        assert!(grid.move_to(a, p(22.7, 114.3)));
        assert_eq!(nearest(&grid, p(22.5, 114.0), 1), [2]);
        assert!(grid.update(b, |v| *v = 20));
        assert_eq!(grid.remove(b), Some(20));
        assert_eq!(grid.len(), 1);
        assert_eq!(nearest(&grid, p(22.5, 114.0), 2), [1], "a far point is still found");
        assert!(grid.remove(b).is_none(), "twice removed");
        assert!(!grid.move_to(b, p(22.0, 114.0)) && !grid.update(b, |_| {}));
        let c = grid.insert(p(22.5, 114.0), 3);
        assert_eq!(grid.get(c).map(|(_, v)| v), Some(3));
        assert_eq!(grid.get(a).map(|(q, _)| q), Some(p(22.7, 114.3)));
        // A search from far outside the extent still ends and finds them.
        assert_eq!(nearest(&grid, p(30.0, 120.0), 2).len(), 2);
        assert!(PointGrid::<u32>::new(0.01).is_empty());
    }
}
