use proptest::prelude::*;

use super::*;

fn square(x: f64, y: f64, size: f64) -> Area {
    Area::from_rings(vec![vec![vec![[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]]).unwrap()
}

/// A star-shaped (so simple, and often concave) polygon around (114, 22.5).
fn star(radii: &[f64]) -> Area {
    let n = radii.len();
    let mut ring: Vec<Position> = radii
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let angle = std::f64::consts::TAU * i as f64 / n as f64;
            [114.0 + r * angle.cos(), 22.5 + r * angle.sin()]
        })
        .collect();
    ring.push(ring[0]);
    Area::from_rings(vec![vec![ring]]).unwrap()
}

fn no_jitter() -> impl FnMut() -> f64 {
    || 0.0
}

/// Every edge that two parts share (the cut lines), as midpoints and endpoints.
fn shared_edge_points(parts: &[Area]) -> Vec<Position> {
    let mut edges = std::collections::HashMap::<[u64; 4], usize>::new();
    for part in parts {
        for ring in part.rings() {
            for i in 0..ring.len() {
                let (a, b) = canonical(ring[i], ring[(i + 1) % ring.len()]);
                *edges.entry([a[0].to_bits(), a[1].to_bits(), b[0].to_bits(), b[1].to_bits()]).or_default() += 1;
            }
        }
    }
    edges
        .into_iter()
        .filter(|(_, count)| *count >= 2)
        .map(|(k, _)| {
            let (a, b) = ([f64::from_bits(k[0]), f64::from_bits(k[1])], [f64::from_bits(k[2]), f64::from_bits(k[3])]);
            [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]
        })
        .collect()
}

use crate::shape::canonical;

/// OGC validity, by the `geo` crate (a test-only dependency).
fn is_valid(area: &Area) -> bool {
    use geo::Validation;
    let ring = |r: &Vec<Position>| {
        let mut coords: Vec<geo::Coord<f64>> = r.iter().map(|&[x, y]| geo::coord! { x: x, y: y }).collect();
        coords.push(coords[0]);
        geo::LineString::new(coords)
    };
    let multi = geo::MultiPolygon::new(
        area.polygons
            .iter()
            .map(|p| geo::Polygon::new(ring(&p.exterior), p.holes.iter().map(ring).collect()))
            .collect(),
    );
    multi.is_valid()
}

#[test]
fn a_square_splits_into_the_asked_number_of_equal_parts() {
    let block = square(114.0, 22.5, 0.1);
    for parts in 1..=12 {
        let pieces = partition(&block, parts, 0.0, &mut no_jitter());
        assert_eq!(pieces.len(), parts);
        let total: f64 = pieces.iter().map(Area::area_m2).sum();
        assert!((total - block.area_m2()).abs() / block.area_m2() < 1e-6, "{parts} parts keep the area");
        for piece in &pieces {
            let share = piece.area_m2() / block.area_m2();
            assert!((share - 1.0 / parts as f64).abs() < 0.01, "{parts} parts: a piece has {share}");
        }
    }
}

#[test]
fn a_cut_through_a_concave_shape_makes_multi_part_pieces() {
    // A "U": cutting it horizontally below the gap yields one piece, above it two prongs.
    let u = Area::from_rings(vec![vec![vec![
        [0.0, 0.0],
        [3.0, 0.0],
        [3.0, 3.0],
        [2.0, 3.0],
        [2.0, 1.0],
        [1.0, 1.0],
        [1.0, 3.0],
        [0.0, 3.0],
        [0.0, 0.0],
    ]]])
    .unwrap();
    let (below, above) = split_area(&u, 2.0, Axis::Lat);
    assert_eq!(below.polygons.len(), 1);
    assert_eq!(above.polygons.len(), 2, "both prongs");
    for (x, y) in [(0.5, 2.5), (2.5, 2.5), (1.5, 0.5), (1.5, 1.5)] {
        assert_eq!(u.contains(x, y), below.contains(x, y) || above.contains(x, y), "({x}, {y})");
        assert!(!(below.contains(x, y) && above.contains(x, y)));
    }
}

#[test]
fn holes_go_with_the_piece_that_holds_them() {
    let mut hole = vec![[0.2, 0.2], [0.2, 0.3], [0.3, 0.3], [0.3, 0.2], [0.2, 0.2]];
    let with_hole = Area::from_rings(vec![vec![
        vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]],
        std::mem::take(&mut hole),
    ]])
    .unwrap();
    let pieces = partition(&with_hole, 2, 0.0, &mut no_jitter());
    assert_eq!(pieces.iter().map(|p| p.polygons.iter().map(|q| q.holes.len()).sum::<usize>()).sum::<usize>(), 1);
    assert!(pieces.iter().all(|p| !p.contains(0.25, 0.25)), "the hole stays a hole");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The pieces tile the area: a point is in exactly one piece if the area holds it, in
    /// none otherwise — anywhere, and in particular on every edge two pieces share.
    #[test]
    fn pieces_tile_the_area_exactly(
        radii in proptest::collection::vec(0.01f64..0.2, 5..40),
        parts in 2usize..16,
        jitters in proptest::collection::vec(-1.0f64..1.0, 64),
        probes in proptest::collection::vec((-0.25f64..0.25, -0.25f64..0.25), 200),
    ) {
        let area = star(&radii);
        let mut next = jitters.into_iter().cycle();
        let pieces = partition(&area, parts, 0.3, &mut || next.next().unwrap());
        prop_assert_eq!(pieces.len(), parts);
        for (dx, dy) in probes {
            let (x, y) = (114.0 + dx, 22.5 + dy);
            let count = pieces.iter().filter(|p| p.contains(x, y)).count();
            prop_assert_eq!(count, usize::from(area.contains(x, y)), "({}, {})", x, y);
        }
        for [x, y] in shared_edge_points(&pieces) {
            let count = pieces.iter().filter(|p| p.contains(x, y)).count();
            prop_assert_eq!(count, 1, "shared edge point ({}, {}) in {} pieces", x, y, count);
        }
        for piece in &pieces {
            prop_assert!(is_valid(piece), "pieces are valid polygons");
        }
    }
}
