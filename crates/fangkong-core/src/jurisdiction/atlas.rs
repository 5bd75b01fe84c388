//! Where a point lies: the shapes of the jurisdictions and the lookup of a point's chain.
//!
//! Two indexes answer most points: one over the *leaves* of the administrative hierarchy
//! (the shaped nodes without shaped children: grids where they exist, else communities…)
//! and one over the leaves of the police hierarchy (police districts). The leaf found names
//! the rest of the chain through its ancestors, so the chain is always consistent (a
//! point's grid always lies in its community, its community in its sub-district…) and a
//! lookup costs two index reads, not one per level.
//!
//! Where no leaf holds the point — a gap that the children of some node leave uncovered,
//! or ground outside the city — the lookup walks down the tree instead: the district
//! holding the point, then that district's sub-district holding it, and so on as far as
//! shapes go, each step asking an index over one parent's children only. Children that
//! tile their parent with shared edges give every point exactly one child (the boundary
//! rule of `fangkong_geo::shape`), in the leaf indexes and in the walk alike.

use std::collections::HashMap;

use fangkong_geo::{Area, AreaIndex, LatLon};

use super::{Chain, JurisdictionKind, JurisdictionTree};

/// Grid cells per child in each index (most lookups then need no polygon test), and at
/// least this many cells per index, so the few large shapes at the top of the tree (eight
/// districts with long, ragged borders) are still answered mostly by one array read.
const CELLS_PER_AREA: usize = 32;
const MIN_CELLS: usize = 2048;

/// The paths the lookup takes below a district.
const ADMIN_PATH: [JurisdictionKind; 3] =
    [JurisdictionKind::Subdistrict, JurisdictionKind::Community, JurisdictionKind::Grid];
const POLICE_PATH: [JurisdictionKind; 2] = [JurisdictionKind::PoliceStation, JurisdictionKind::PoliceDistrict];

/// No node (a `u32` node number that names nothing).
const NONE: u32 = u32::MAX;

#[derive(Debug, Default)]
pub struct Atlas {
    shapes: HashMap<String, Area>,
    /// Node codes by node number (numbers are positions in the tree's code order).
    codes: Vec<String>,
    /// Per node number: the index over its children, one per kind of child that has shapes
    /// (`(kind, index number)`; at most two: a district has sub-districts and stations).
    children: Vec<Vec<(JurisdictionKind, u32)>>,
    indexes: Vec<AreaIndex<u32>>,
    /// Per node number: its parent's number (`NONE` for the city) and its kind.
    parents: Vec<u32>,
    kinds: Vec<JurisdictionKind>,
    /// The leaves of each hierarchy, city-wide.
    admin_leaves: AreaIndex<u32>,
    police_leaves: AreaIndex<u32>,
    city: u32,
}

/// Where a point lies, as node numbers of the atlas (no allocation); [`Placement::chain`]
/// names them.
#[derive(Clone, Copy, Debug)]
pub struct Placement<'a> {
    atlas: &'a Atlas,
    nodes: [u32; 7],
}

impl<'a> Placement<'a> {
    /// The code of the node at `kind`, borrowed from the atlas.
    pub fn get(&self, kind: JurisdictionKind) -> Option<&'a str> {
        match self.nodes[kind.index()] {
            NONE => None,
            node => Some(self.atlas.codes[node as usize].as_str()),
        }
    }

    pub fn chain(&self) -> Chain {
        let mut chain = Chain::default();
        for kind in JurisdictionKind::ALL {
            if let Some(code) = self.get(kind) {
                chain.set(kind, code);
            }
        }
        chain
    }
}

impl Atlas {
    /// Indexes `shapes` (by node code) over the tree. Nodes without a shape are not found
    /// by point, nor are their descendants.
    pub fn new(tree: &JurisdictionTree, shapes: HashMap<String, Area>) -> Atlas {
        let codes: Vec<String> = tree.iter().map(|n| n.code.clone()).collect();
        let number: HashMap<&str, u32> = codes.iter().enumerate().map(|(i, c)| (c.as_str(), i as u32)).collect();
        let mut groups: HashMap<(u32, JurisdictionKind), Vec<(u32, &Area)>> = HashMap::new();
        for node in tree.iter() {
            if let (Some(parent), Some(shape)) = (&node.parent, shapes.get(&node.code)) {
                let parent = number[parent.as_str()];
                groups.entry((parent, node.kind)).or_default().push((number[node.code.as_str()], shape));
            }
        }
        let mut children = vec![Vec::new(); codes.len()];
        let mut indexes = Vec::with_capacity(groups.len());
        for ((parent, kind), members) in groups {
            let cells_per_area = CELLS_PER_AREA.max(MIN_CELLS / members.len().max(1));
            children[parent as usize].push((kind, indexes.len() as u32));
            indexes.push(AreaIndex::new(members, cells_per_area));
        }
        let city = tree.iter().position(|n| n.kind == JurisdictionKind::City).map_or(NONE, |i| i as u32);
        let parents: Vec<u32> =
            tree.iter().map(|n| n.parent.as_deref().and_then(|p| number.get(p).copied()).unwrap_or(NONE)).collect();
        let kinds: Vec<JurisdictionKind> = tree.iter().map(|n| n.kind).collect();
        // A leaf: a shaped node of a hierarchy's lower levels no shaped child of which is
        // of that hierarchy, and whose ancestors all have shapes (else the walk could not
        // reach it either).
        let mut has_shaped_child = vec![false; codes.len()];
        for node in tree.iter() {
            if let Some(parent) = &node.parent
                && shapes.contains_key(&node.code)
            {
                has_shaped_child[number[parent.as_str()] as usize] = true;
            }
        }
        let reachable = |mut node: u32| loop {
            match kinds[node as usize] {
                JurisdictionKind::City => return true,
                _ if !shapes.contains_key(&codes[node as usize]) => return false,
                _ => node = parents[node as usize],
            }
            if node == NONE {
                return false;
            }
        };
        let leaves = |path: &[JurisdictionKind]| {
            let members: Vec<(u32, &Area)> = tree
                .iter()
                .enumerate()
                .filter(|&(i, n)| path.contains(&n.kind) && !has_shaped_child[i] && reachable(i as u32))
                .filter_map(|(i, n)| shapes.get(&n.code).map(|shape| (i as u32, shape)))
                .collect();
            AreaIndex::new(members, CELLS_PER_AREA)
        };
        let admin_leaves = leaves(&[JurisdictionKind::District, ADMIN_PATH[0], ADMIN_PATH[1], ADMIN_PATH[2]]);
        let police_leaves = leaves(&POLICE_PATH);
        Atlas { shapes, codes, children, indexes, parents, kinds, admin_leaves, police_leaves, city }
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

    #[inline]
    fn child(&self, parent: u32, kind: JurisdictionKind, point: LatLon) -> Option<u32> {
        let &(_, index) = self.children[parent as usize].iter().find(|(k, _)| *k == kind)?;
        self.indexes[index as usize].locate(point.lon(), point.lat()).copied()
    }

    /// Where the point lies, without naming it (the fast path for bulk work); `None`
    /// outside every district.
    #[inline]
    pub fn place(&self, point: LatLon) -> Option<Placement<'_>> {
        if self.city == NONE {
            return None;
        }
        let mut nodes = [NONE; 7];
        match self.admin_leaves.locate(point.lon(), point.lat()) {
            Some(&leaf) => self.fill_ancestors(&mut nodes, leaf),
            None => {
                let district = self.child(self.city, JurisdictionKind::District, point)?;
                nodes[JurisdictionKind::City.index()] = self.city;
                nodes[JurisdictionKind::District.index()] = district;
                self.walk(&mut nodes, district, &ADMIN_PATH, point);
            }
        }
        let district = nodes[JurisdictionKind::District.index()];
        match self.police_leaves.locate(point.lon(), point.lat()) {
            // The police leaf names the station; district and city stay the ground's.
            Some(&leaf) => {
                let mut node = leaf;
                while node != NONE && self.kinds[node as usize] != JurisdictionKind::District {
                    nodes[self.kinds[node as usize].index()] = node;
                    node = self.parents[node as usize];
                }
            }
            None => self.walk(&mut nodes, district, &POLICE_PATH, point),
        }
        Some(Placement { atlas: self, nodes })
    }

    /// The chain by walking down the tree alone, level by level (the path taken for gaps),
    /// for checking the leaf indexes against it.
    pub fn walk_chain(&self, point: LatLon) -> Option<Chain> {
        if self.city == NONE {
            return None;
        }
        let mut nodes = [NONE; 7];
        let district = self.child(self.city, JurisdictionKind::District, point)?;
        nodes[JurisdictionKind::City.index()] = self.city;
        nodes[JurisdictionKind::District.index()] = district;
        self.walk(&mut nodes, district, &ADMIN_PATH, point);
        self.walk(&mut nodes, district, &POLICE_PATH, point);
        Some(Placement { atlas: self, nodes }.chain())
    }

    /// Sets `node` and every ancestor in `nodes`.
    #[inline]
    fn fill_ancestors(&self, nodes: &mut [u32; 7], mut node: u32) {
        while node != NONE {
            nodes[self.kinds[node as usize].index()] = node;
            node = self.parents[node as usize];
        }
    }

    /// Walks down `path` from `parent` as far as shapes hold the point.
    fn walk(&self, nodes: &mut [u32; 7], mut parent: u32, path: &[JurisdictionKind], point: LatLon) {
        for &kind in path {
            match self.child(parent, kind, point) {
                Some(node) => {
                    nodes[kind.index()] = node;
                    parent = node;
                }
                None => break,
            }
        }
    }

    /// The chain of the point, or `None` outside every district.
    pub fn locate(&self, point: LatLon) -> Option<Chain> {
        self.place(point).map(|placement| placement.chain())
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

    /// Grids covering only part of their community: a point in the uncovered part gets the
    /// chain down to the community, by the walk; a point in a grid gets the grid.
    #[test]
    fn gaps_between_children_fall_back_to_the_parent() {
        use JurisdictionKind::*;
        let tree = JurisdictionTree::from_nodes([
            node("C", City, None),
            node("W", District, Some("C")),
            node("W1", Subdistrict, Some("W")),
            node("W1a", Community, Some("W1")),
            node("W1a-g1", Grid, Some("W1a")),
        ])
        .unwrap();
        let shapes: HashMap<String, Area> = [
            ("W", rect(0.0, 0.0, 1.0, 1.0)),
            ("W1", rect(0.0, 0.0, 1.0, 1.0)),
            ("W1a", rect(0.0, 0.0, 1.0, 1.0)),
            ("W1a-g1", rect(0.0, 0.0, 0.5, 1.0)),
        ]
        .into_iter()
        .map(|(code, area)| (code.to_string(), area))
        .collect();
        let atlas = Atlas::new(&tree, shapes);
        let in_grid = locate(&atlas, 0.25, 0.5).unwrap();
        assert_eq!(in_grid.get(Grid), Some("W1a-g1"));
        let in_gap = locate(&atlas, 0.75, 0.5).unwrap();
        assert_eq!(in_gap.most_specific(), Some((Community, "W1a")));
        for (lon, lat) in [(0.25, 0.5), (0.75, 0.5), (1.5, 0.5)] {
            let point = LatLon::new(lat, lon).unwrap();
            assert_eq!(atlas.locate(point), atlas.walk_chain(point), "{lon},{lat}");
        }
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
