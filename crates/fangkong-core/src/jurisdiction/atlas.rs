//! Where a point lies: the shapes of the jurisdictions and the lookup of a point's chain.
//!
//! The lookup walks down the tree: the district holding the point, then that district's
//! sub-district holding it, and so on to the grid; and from the district through the police
//! stations to the police district. Each step asks an index over one parent's children
//! only, so the chain is always consistent (a point's grid always lies in its community,
//! its community in its sub-district…) and each step reads a handful of cells. Children
//! that tile their parent with shared edges give every point exactly one child (the
//! boundary rule of `fangkong_geo::shape`).

use std::collections::HashMap;

use fangkong_geo::{Area, AreaIndex, LatLon};

use super::{Chain, JurisdictionKind, JurisdictionTree};

/// Grid cells per child in each index: most lookups then need no polygon test.
const CELLS_PER_AREA: usize = 32;

#[derive(Debug, Default)]
pub struct Atlas {
    shapes: HashMap<String, Area>,
    /// `(parent, kind of child)` → index over that parent's children of that kind.
    indexes: HashMap<(String, JurisdictionKind), AreaIndex<String>>,
    city: Option<String>,
}

/// The paths the lookup takes below a district.
const ADMIN_PATH: [JurisdictionKind; 3] =
    [JurisdictionKind::Subdistrict, JurisdictionKind::Community, JurisdictionKind::Grid];
const POLICE_PATH: [JurisdictionKind; 2] = [JurisdictionKind::PoliceStation, JurisdictionKind::PoliceDistrict];

impl Atlas {
    /// Indexes `shapes` (by node code) over the tree. Nodes without a shape are not found
    /// by point, nor are their descendants.
    pub fn new(tree: &JurisdictionTree, shapes: HashMap<String, Area>) -> Atlas {
        let mut groups: HashMap<(String, JurisdictionKind), Vec<(String, &Area)>> = HashMap::new();
        for node in tree.iter() {
            if let (Some(parent), Some(shape)) = (&node.parent, shapes.get(&node.code)) {
                groups.entry((parent.clone(), node.kind)).or_default().push((node.code.clone(), shape));
            }
        }
        let indexes =
            groups.into_iter().map(|(key, children)| (key, AreaIndex::new(children, CELLS_PER_AREA))).collect();
        let city = tree.iter().find(|n| n.kind == JurisdictionKind::City).map(|n| n.code.clone());
        Atlas { indexes, city, shapes }
    }

    pub fn shape(&self, code: &str) -> Option<&Area> {
        self.shapes.get(code)
    }

    /// Every shape, by node code.
    pub fn shapes(&self) -> &HashMap<String, Area> {
        &self.shapes
    }

    pub fn shape_count(&self) -> usize {
        self.shapes.len()
    }

    fn child(&self, parent: &str, kind: JurisdictionKind, point: LatLon) -> Option<&String> {
        self.indexes.get(&(parent.to_string(), kind))?.locate(point.lon(), point.lat())
    }

    /// The chain of the point, or `None` outside every district.
    pub fn locate(&self, point: LatLon) -> Option<Chain> {
        let city = self.city.as_ref()?;
        let district = self.child(city, JurisdictionKind::District, point)?;
        let mut chain = Chain::default();
        chain.set(JurisdictionKind::City, city.clone());
        chain.set(JurisdictionKind::District, district.clone());
        for path in [&ADMIN_PATH[..], &POLICE_PATH[..]] {
            let mut parent = district;
            for &kind in path {
                match self.child(parent, kind, point) {
                    Some(code) => {
                        chain.set(kind, code.clone());
                        parent = code;
                    }
                    None => break,
                }
            }
        }
        Some(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jurisdiction::Jurisdiction;

    fn node(code: &str, kind: JurisdictionKind, parent: Option<&str>) -> Jurisdiction {
        Jurisdiction { code: code.into(), kind, parent: parent.map(Into::into), name_zh: code.into(), name_en: None }
    }

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Area {
        Area::from_rings(vec![vec![vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]]).unwrap()
    }

    /// Two districts side by side; the western one with two sub-districts, one community
    /// with two grids, and a police station with one police district.
    fn atlas() -> (JurisdictionTree, Atlas) {
        use JurisdictionKind::*;
        let tree = JurisdictionTree::from_nodes([
            node("C", City, None),
            node("W", District, Some("C")),
            node("E", District, Some("C")),
            node("W1", Subdistrict, Some("W")),
            node("W2", Subdistrict, Some("W")),
            node("W1a", Community, Some("W1")),
            node("W1a-g1", Grid, Some("W1a")),
            node("W1a-g2", Grid, Some("W1a")),
            node("PS", PoliceStation, Some("W")),
            node("PD", PoliceDistrict, Some("PS")),
        ])
        .unwrap();
        let shapes: HashMap<String, Area> = [
            ("W", rect(0.0, 0.0, 1.0, 1.0)),
            ("E", rect(1.0, 0.0, 2.0, 1.0)),
            ("W1", rect(0.0, 0.0, 1.0, 0.5)),
            ("W2", rect(0.0, 0.5, 1.0, 1.0)),
            ("W1a", rect(0.0, 0.0, 1.0, 0.5)),
            ("W1a-g1", rect(0.0, 0.0, 0.5, 0.5)),
            ("W1a-g2", rect(0.5, 0.0, 1.0, 0.5)),
            ("PS", rect(0.0, 0.0, 1.0, 1.0)),
            ("PD", rect(0.0, 0.0, 1.0, 1.0)),
        ]
        .into_iter()
        .map(|(code, area)| (code.to_string(), area))
        .collect();
        let atlas = Atlas::new(&tree, shapes);
        (tree, atlas)
    }

    fn locate(atlas: &Atlas, lon: f64, lat: f64) -> Option<Chain> {
        atlas.locate(LatLon::new(lat, lon).unwrap())
    }

    #[test]
    fn a_point_gets_its_full_chain_in_both_hierarchies() {
        let (tree, atlas) = atlas();
        let chain = locate(&atlas, 0.7, 0.2).unwrap();
        assert_eq!(
            chain,
            tree.chain_of("W1a-g2")
                .map(|mut c| {
                    c.set(JurisdictionKind::PoliceStation, "PS");
                    c.set(JurisdictionKind::PoliceDistrict, "PD");
                    c
                })
                .unwrap()
        );
    }

    #[test]
    fn the_chain_stops_where_shapes_stop_and_outside_is_none() {
        let (_, atlas) = atlas();
        let east = locate(&atlas, 1.5, 0.5).unwrap();
        assert_eq!(east.most_specific(), Some((JurisdictionKind::District, "E")));
        let north = locate(&atlas, 0.5, 0.7).unwrap();
        assert_eq!(north.get(JurisdictionKind::Subdistrict), Some("W2"));
        assert_eq!(north.get(JurisdictionKind::Community), None);
        assert_eq!(locate(&atlas, 5.0, 5.0), None);
    }

    #[test]
    fn a_point_on_a_shared_border_belongs_to_exactly_one_side() {
        let (_, atlas) = atlas();
        // On the district border x = 1: the eastern district under the boundary rule.
        assert_eq!(locate(&atlas, 1.0, 0.25).unwrap().get(JurisdictionKind::District), Some("E"));
        // On the grid border x = 0.5: the eastern grid.
        assert_eq!(locate(&atlas, 0.5, 0.25).unwrap().get(JurisdictionKind::Grid), Some("W1a-g2"));
    }
}
