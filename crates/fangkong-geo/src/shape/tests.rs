use super::*;

fn square(x: f64, y: f64, size: f64) -> Vec<Position> {
    vec![[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
}

fn area(rings: Vec<Vec<Position>>) -> Area {
    Area::from_rings(vec![rings]).unwrap()
}

#[test]
fn faulty_rings_are_named_with_the_rule() {
    let check = |rings: Vec<Vec<Position>>, expected: &str| {
        let error = Area::from_rings(vec![rings]).unwrap_err().to_string();
        assert!(error.contains(expected), "{error} should say {expected}");
    };
    check(vec![vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]], "not closed");
    check(vec![vec![[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]], "at least 4");
    check(vec![vec![[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]], "0.exterior is wound clockwise");
    let mut hole = square(0.2, 0.2, 0.1);
    hole.reverse();
    hole.reverse(); // counter-clockwise: wrong for a hole
    check(vec![square(0.0, 0.0, 1.0), hole], "0.hole1 is wound counter-clockwise");
    check(vec![vec![[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 0.0]]], "encloses no area");
    check(vec![vec![[0.0, 0.0], [181.0, 0.0], [1.0, 1.0], [0.0, 0.0]]], "invalid position");
    check(vec![vec![[0.0, 0.0], [f64::NAN, 0.0], [1.0, 1.0], [0.0, 0.0]]], "invalid position");
    assert!(matches!(Area::from_rings(vec![]), Err(ShapeError::Empty)));
}

#[test]
fn rings_round_trip() {
    let mut hole = square(0.2, 0.2, 0.1);
    hole.reverse();
    let rings = vec![square(0.0, 0.0, 1.0), hole];
    assert_eq!(Area::from_rings(vec![rings.clone()]).unwrap().to_rings(), vec![rings]);
}

#[test]
fn holes_are_not_inside() {
    let mut hole = square(0.25, 0.25, 0.5);
    hole.reverse();
    let donut = area(vec![square(0.0, 0.0, 1.0), hole]);
    assert!(donut.contains(0.1, 0.1));
    assert!(!donut.contains(0.5, 0.5));
    assert!(!donut.contains(1.5, 0.5));
}

#[test]
fn every_point_of_a_tiling_is_in_exactly_one_tile_even_on_edges_and_corners() {
    // A 3×3 tiling of unit squares: probe a fine lattice that hits every edge and corner.
    let tiles: Vec<Area> =
        (0..3).flat_map(|i| (0..3).map(move |j| area(vec![square(i as f64, j as f64, 1.0)]))).collect();
    for i in 1..=11 {
        for j in 1..=11 {
            let (x, y) = (i as f64 * 0.25, j as f64 * 0.25);
            let count = tiles.iter().filter(|t| t.contains(x, y)).count();
            assert_eq!(count, 1, "({x}, {y}) lies in {count} tiles");
        }
    }
}

#[test]
fn areas_are_geodesic_square_metres() {
    // 0.01° × 0.01° at Shenzhen's latitude: ~1,113 m north–south × ~1,028 m east–west.
    let block = area(vec![square(114.0, 22.5, 0.01)]);
    let m2 = block.area_m2();
    assert!((m2 - 1_141_000.0).abs() < 5_000.0, "{m2}");
    assert_eq!(block.vertex_count(), 4);
    assert_eq!(block.bbox(), BBox { min_lon: 114.0, min_lat: 22.5, max_lon: 114.01, max_lat: 22.51 });
}
