//! Splitting an area into parts by straight cuts, for generating a city's sub-divisions
//! (sub-districts, communities, grids) when only the outer boundary is known.
//!
//! An area is cut along a north–south or east–west line into two pieces of chosen
//! proportions, and each piece again, until there are as many parts as wanted. Every
//! crossing of a cut with a boundary is computed once and used by the pieces on both sides,
//! so neighbours share vertex-identical edges: the parts tile the area exactly, and the
//! boundary rule of [`crate::shape`] puts every point in exactly one of them.

use crate::shape::{Area, BBox, Polygon, Position, signed_area2};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Axis {
    /// Cut along a meridian (x = c).
    Lon,
    /// Cut along a parallel (y = c).
    Lat,
}

fn coord(p: Position, axis: Axis) -> f64 {
    match axis {
        Axis::Lon => p[0],
        Axis::Lat => p[1],
    }
}

/// The point where the edge `a`–`b` meets the cut line (`a` and `b` on opposite sides).
fn crossing(a: Position, b: Position, c: f64, axis: Axis) -> Position {
    match axis {
        Axis::Lon => [c, a[1] + (c - a[0]) * (b[1] - a[1]) / (b[0] - a[0])],
        Axis::Lat => [a[0] + (c - a[1]) * (b[0] - a[0]) / (b[1] - a[1]), c],
    }
}

/// Splits an open ring (no vertex on the cut) into the rings below (`coord < c`) and above.
fn split_ring(ring: &[Position], c: f64, axis: Axis) -> (Vec<Vec<Position>>, Vec<Vec<Position>>) {
    let below = |p: Position| coord(p, axis) < c;
    if ring.iter().all(|&p| below(p)) {
        return (vec![ring.to_vec()], Vec::new());
    }
    if ring.iter().all(|&p| !below(p)) {
        return (Vec::new(), vec![ring.to_vec()]);
    }
    // The ring with crossing nodes inserted; `nodes` holds (index in walk, position along the cut).
    let mut walk: Vec<Position> = Vec::with_capacity(ring.len() + 8);
    let mut nodes: Vec<usize> = Vec::new();
    let n = ring.len();
    for i in 0..n {
        let (a, b) = (ring[i], ring[(i + 1) % n]);
        walk.push(a);
        if below(a) != below(b) {
            nodes.push(walk.len());
            walk.push(crossing(a, b, c, axis));
        }
    }
    // Along the cut, the inside is the stretches between consecutive crossings 0–1, 2–3, …
    let along = |p: Position| match axis {
        Axis::Lon => p[1],
        Axis::Lat => p[0],
    };
    let mut sorted = nodes.clone();
    sorted.sort_by(|&x, &y| along(walk[x]).total_cmp(&along(walk[y])));
    let mut partner = std::collections::HashMap::with_capacity(sorted.len());
    for pair in sorted.chunks(2) {
        if let [x, y] = pair {
            partner.insert(*x, *y);
            partner.insert(*y, *x);
        }
    }
    let next_vertex_below = |node: usize| below(walk[(node + 1) % walk.len()]);
    let trace = |side_below: bool| -> Vec<Vec<Position>> {
        let mut pieces = Vec::new();
        let mut used = vec![false; walk.len()];
        for &start in &nodes {
            // Start where the ring enters this side.
            if used[start] || next_vertex_below(start) != side_below {
                continue;
            }
            let mut piece = Vec::new();
            let mut at = start;
            loop {
                used[at] = true;
                piece.push(walk[at]);
                // Follow the ring on this side up to the next crossing.
                let mut i = (at + 1) % walk.len();
                while !nodes.contains(&i) {
                    piece.push(walk[i]);
                    i = (i + 1) % walk.len();
                }
                used[i] = true;
                piece.push(walk[i]);
                // Then along the cut to the crossing where the ring comes back.
                at = partner[&i];
                if at == start {
                    break;
                }
            }
            pieces.push(piece);
        }
        pieces
    };
    (trace(true), trace(false))
}

fn split_polygon(polygon: &Polygon, c: f64, axis: Axis) -> (Vec<Polygon>, Vec<Polygon>) {
    let (below, above) = split_ring(&polygon.exterior, c, axis);
    let mut below: Vec<Polygon> = below.into_iter().map(|exterior| Polygon { exterior, holes: Vec::new() }).collect();
    let mut above: Vec<Polygon> = above.into_iter().map(|exterior| Polygon { exterior, holes: Vec::new() }).collect();
    // Holes never straddle the cut (the caller moves the cut off them): each goes to the
    // piece of its side that contains it.
    for hole in &polygon.holes {
        let side = if coord(hole[0], axis) < c { &mut below } else { &mut above };
        let probe = hole[0];
        if let Some(piece) = side.iter_mut().find(|p| ring_contains(&p.exterior, probe)) {
            piece.holes.push(hole.clone());
        }
    }
    (below, above)
}

fn ring_contains(ring: &[Position], p: Position) -> bool {
    let n = ring.len();
    (0..n).filter(|&i| crate::shape::crosses(ring[i], ring[(i + 1) % n], p[0], p[1])).count() % 2 == 1
}

/// Splits an area along the line `axis = c`.
fn split_area(area: &Area, c: f64, axis: Axis) -> (Area, Area) {
    let (mut below, mut above) = (Area::default(), Area::default());
    for polygon in &area.polygons {
        let (b, a) = split_polygon(polygon, c, axis);
        below.polygons.extend(b);
        above.polygons.extend(a);
    }
    (below, above)
}

/// Planar area in degrees², with longitudes scaled by the cosine of the latitude (good for
/// proportions within a city).
fn planar_area(area: &Area, cos_lat: f64) -> f64 {
    area.polygons
        .iter()
        .map(|p| {
            (signed_area2(&p.exterior) - p.holes.iter().map(|h| -signed_area2(h)).sum::<f64>()).abs() * cos_lat / 2.0
        })
        .sum()
}

/// Moves `c` off every vertex and out of every hole's extent, so the split is clean.
fn clear_cut(area: &Area, mut c: f64, axis: Axis, span: f64) -> f64 {
    let nudge = span * 1e-7;
    for _ in 0..64 {
        let mut moved = false;
        for polygon in &area.polygons {
            for hole in &polygon.holes {
                let (lo, hi) = hole.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &p| {
                    (lo.min(coord(p, axis)), hi.max(coord(p, axis)))
                });
                if c >= lo && c <= hi {
                    c = if c - lo < hi - c { lo - nudge } else { hi + nudge };
                    moved = true;
                }
            }
        }
        if area.positions().any(|p| coord(p, axis) == c) {
            c += nudge;
            moved = true;
        }
        if !moved {
            break;
        }
    }
    c
}

/// Cuts `area` in two along a parallel, so that the part south of the cut holds `share` of
/// the area (for carving a district out of another, as Guangming was out of Bao'an).
pub fn split_by_latitude(area: &Area, share: f64) -> (Area, Area) {
    let bbox = area.bbox();
    let cos_lat = ((bbox.min_lat + bbox.max_lat) / 2.0).to_radians().cos();
    let total = planar_area(area, cos_lat);
    let (mut a, mut b) = (bbox.min_lat, bbox.max_lat);
    for _ in 0..48 {
        let c = (a + b) / 2.0;
        if planar_area(&split_area(area, c, Axis::Lat).0, cos_lat) < share.clamp(0.0, 1.0) * total {
            a = c;
        } else {
            b = c;
        }
    }
    let c = clear_cut(area, (a + b) / 2.0, Axis::Lat, bbox.max_lat - bbox.min_lat);
    split_area(area, c, Axis::Lat)
}

/// Cuts `area` into `parts` pieces of roughly equal size. `jitter` returns numbers in
/// −1…1 (from the caller's seeded generator) that vary each cut's proportion by up to
/// ±`variation`, so the pieces look less regular. Deterministic for a given jitter sequence.
pub fn partition(area: &Area, parts: usize, variation: f64, jitter: &mut dyn FnMut() -> f64) -> Vec<Area> {
    if parts <= 1 || area.polygons.is_empty() {
        return vec![area.clone()];
    }
    let bbox: BBox = area.bbox();
    let mid_lat = (bbox.min_lat + bbox.max_lat) / 2.0;
    let cos_lat = mid_lat.to_radians().cos();
    let axis =
        if (bbox.max_lon - bbox.min_lon) * cos_lat >= bbox.max_lat - bbox.min_lat { Axis::Lon } else { Axis::Lat };
    let (lo, hi) = match axis {
        Axis::Lon => (bbox.min_lon, bbox.max_lon),
        Axis::Lat => (bbox.min_lat, bbox.max_lat),
    };
    let below_parts = parts / 2;
    let target = (below_parts as f64 / parts as f64 * (1.0 + variation * jitter().clamp(-1.0, 1.0))).clamp(0.05, 0.95);
    let total = planar_area(area, cos_lat);
    // Bisection on the cut position for the wanted share below it.
    let (mut a, mut b) = (lo, hi);
    for _ in 0..48 {
        let c = (a + b) / 2.0;
        let (below, _) = split_area(area, c, axis);
        if planar_area(&below, cos_lat) < target * total {
            a = c;
        } else {
            b = c;
        }
    }
    let c = clear_cut(area, (a + b) / 2.0, axis, hi - lo);
    let (below, above) = split_area(area, c, axis);
    if below.polygons.is_empty() || above.polygons.is_empty() {
        // Nothing to cut (a sliver); keep the area whole rather than make an empty part.
        let mut pieces = partition(area, parts - 1, variation, jitter);
        pieces.push(Area::default());
        return pieces;
    }
    let mut pieces = partition(&below, below_parts, variation, jitter);
    pieces.extend(partition(&above, parts - below_parts, variation, jitter));
    pieces
}

#[cfg(test)]
mod tests;
