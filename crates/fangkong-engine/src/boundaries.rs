//! Boundary files: GeoJSON features → jurisdiction nodes with shapes, and the checks a file
//! passes before any of it is stored.
//!
//! A file holds one level (`--level district`, `grid`, …). Each feature names its node by
//! `properties.code` (or `adcode`, as Chinese official and AMap/DataV files do, or the
//! feature's `id`), its names by `name_zh`/`name` and `name_en`, and optionally its parent
//! by `parent` (a code, or an object with `adcode`/`code`) or `parent_code`. A feature whose
//! code is already in the tree replaces that node's shape and names; a new code adds a node.
//!
//! The checks, each reported with the feature it concerns: the JSON and GeoJSON structure;
//! rings that are unclosed, too short, wound against RFC 7946 (exteriors counter-clockwise,
//! holes clockwise) or empty; self-intersections, holes outside their polygon and crossing
//! rings (OGC validity); a child lying outside its parent beyond the tolerance; siblings
//! overlapping beyond the tolerance (within the file and against siblings already stored);
//! stored children that a new shape would leave outside. Every fault is collected, so one
//! run lists everything wrong with a file.

use std::collections::{BTreeMap, HashMap, HashSet};

use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind, JurisdictionTree};
use fangkong_geo::{Area, Crs, Position};
use fangkong_store::NodeWrite;
use geo::{Area as _, BooleanOps, InteriorPoint, Validation};
use serde_json::Value;

/// Overlap or overhang below this many square metres is drawing noise, not an error
/// (about a 30 m × 30 m patch; boundaries digitised by different hands never match exactly).
pub const DEFAULT_TOLERANCE_M2: f64 = 1_000.0;

/// What a boundary file is and how to read it.
#[derive(Clone, Debug)]
pub struct BoundaryImport {
    /// The level every feature of the file is at.
    pub level: JurisdictionKind,
    /// The datum of the file's coordinates; stored shapes are WGS84.
    pub crs: Crs,
    /// The parent of every new node that does not name its own.
    pub parent: Option<String>,
    /// Allowed overlap between siblings and overhang of a child beyond its parent, in m².
    pub tolerance_m2: f64,
}

impl BoundaryImport {
    pub fn new(level: JurisdictionKind, crs: Crs) -> BoundaryImport {
        BoundaryImport { level, crs, parent: None, tolerance_m2: DEFAULT_TOLERANCE_M2 }
    }
}

/// One feature of a boundary file, parsed (shape in WGS84).
#[derive(Clone, Debug)]
pub struct BoundaryFeature {
    /// 1-based position in the file.
    pub number: usize,
    pub code: String,
    pub name_zh: Option<String>,
    pub name_en: Option<String>,
    pub parent: Option<String>,
    pub shape: Area,
}

impl BoundaryFeature {
    fn label(&self) -> String {
        label(self.number, Some(&self.code), self.name_zh.as_deref())
    }
}

/// Why a feature (or the file) was refused.
#[derive(Clone, PartialEq, Debug)]
pub struct BoundaryFault {
    /// `feature 3 (440304 福田区)`, or `file`.
    pub feature: String,
    pub reason: String,
}

impl std::fmt::Display for BoundaryFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.feature, self.reason)
    }
}

fn label(number: usize, code: Option<&str>, name: Option<&str>) -> String {
    match (code, name) {
        (Some(code), Some(name)) => format!("feature {number} ({code} {name})"),
        (Some(code), None) => format!("feature {number} ({code})"),
        _ => format!("feature {number}"),
    }
}

fn fault(feature: impl Into<String>, reason: impl Into<String>) -> BoundaryFault {
    BoundaryFault { feature: feature.into(), reason: reason.into() }
}

// ---- parsing ------------------------------------------------------------------------------

/// Parses a GeoJSON FeatureCollection (or a single Feature) of Polygon/MultiPolygon
/// features in `crs`. Returns every fault found, not just the first.
pub fn parse_geojson(bytes: &[u8], crs: Crs) -> Result<Vec<BoundaryFeature>, Vec<BoundaryFault>> {
    match parse_features(bytes, crs)? {
        (features, faults) if faults.is_empty() => Ok(features),
        (_, faults) => Err(faults),
    }
}

/// The features that parsed and the faults of those that did not (so the good ones can
/// still be checked against each other and the tree); `Err` when the file as a whole is
/// not a feature collection.
pub fn parse_features(
    bytes: &[u8],
    crs: Crs,
) -> Result<(Vec<BoundaryFeature>, Vec<BoundaryFault>), Vec<BoundaryFault>> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| vec![fault("file", format!("not JSON: {e}"))])?;
    let features: Vec<&Value> = match root.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => match root.get("features").and_then(Value::as_array) {
            Some(features) => features.iter().collect(),
            None => return Err(vec![fault("file", "a FeatureCollection needs a \"features\" array")]),
        },
        Some("Feature") => vec![&root],
        other => {
            return Err(vec![fault(
                "file",
                format!("GeoJSON type {other:?}; expected a FeatureCollection of Polygon or MultiPolygon features"),
            )]);
        }
    };
    if features.is_empty() {
        return Err(vec![fault("file", "the file has no features")]);
    }
    let mut parsed = Vec::with_capacity(features.len());
    let mut faults = Vec::new();
    for (i, feature) in features.into_iter().enumerate() {
        match parse_feature(i + 1, feature, crs) {
            Ok(feature) => parsed.push(feature),
            Err(f) => faults.push(f),
        }
    }
    Ok((parsed, faults))
}

/// Sorts faults by feature number (the file's own faults first).
pub(crate) fn sort_faults(faults: &mut [BoundaryFault]) {
    faults.sort_by_key(|f| feature_number(&f.feature));
}

/// A code-like property: a string, or an integer (as `adcode` often is).
fn code_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn text_value(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

fn parse_feature(number: usize, feature: &Value, crs: Crs) -> Result<BoundaryFeature, BoundaryFault> {
    if feature.get("type").and_then(Value::as_str) != Some("Feature") {
        return Err(fault(label(number, None, None), "not a GeoJSON Feature"));
    }
    let empty = serde_json::Map::new();
    let properties = feature.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let code = ["code", "adcode"]
        .iter()
        .find_map(|key| properties.get(*key).and_then(code_value))
        .or_else(|| feature.get("id").and_then(code_value));
    let name_zh = text_value(properties.get("name_zh")).or_else(|| text_value(properties.get("name")));
    let here = label(number, code.as_deref(), name_zh.as_deref());
    let Some(code) = code else {
        return Err(fault(here, "no code: give properties.code (or adcode, or the feature's id)"));
    };
    let parent = match properties.get("parent").or_else(|| properties.get("parent_code")) {
        None | Some(Value::Null) => None,
        Some(Value::Object(object)) => object.get("adcode").or_else(|| object.get("code")).and_then(code_value),
        Some(value) => match code_value(value) {
            Some(code) => Some(code),
            None => return Err(fault(here, "properties.parent must be a code")),
        },
    };
    let geometry = feature.get("geometry").filter(|g| !g.is_null());
    let Some(geometry) = geometry else {
        return Err(fault(here, "no geometry"));
    };
    let coordinates = geometry.get("coordinates");
    let polygons: Vec<Vec<Vec<Position>>> = match (geometry.get("type").and_then(Value::as_str), coordinates) {
        (Some("Polygon"), Some(c)) => vec![rings(c).map_err(|reason| fault(&here, reason))?],
        (Some("MultiPolygon"), Some(Value::Array(polygons))) => {
            polygons.iter().map(rings).collect::<Result<_, _>>().map_err(|reason| fault(&here, reason))?
        }
        (Some(kind @ ("Polygon" | "MultiPolygon")), _) => {
            return Err(fault(here, format!("the {kind} has no coordinates array")));
        }
        (kind, _) => {
            return Err(fault(here, format!("geometry type {kind:?}; a boundary is a Polygon or MultiPolygon")));
        }
    };
    let shape = Area::from_rings(polygons).map_err(|e| fault(&here, e.to_string()))?;
    let shape = match crs {
        Crs::Wgs84 => shape,
        Crs::Gcj02 => shape.map(|position| crs.to_wgs84(position)),
    };
    Ok(BoundaryFeature { number, code, name_zh, name_en: text_value(properties.get("name_en")), parent, shape })
}

fn rings(value: &Value) -> Result<Vec<Vec<Position>>, String> {
    let rings = value.as_array().ok_or("a polygon must be an array of rings")?;
    rings
        .iter()
        .map(|ring| {
            ring.as_array()
                .ok_or("a ring must be an array of positions")?
                .iter()
                .map(|position| match position.as_array().map(Vec::as_slice) {
                    Some([lon, lat, ..]) => match (lon.as_f64(), lat.as_f64()) {
                        (Some(lon), Some(lat)) => Ok([lon, lat]),
                        _ => Err(format!("position {position} is not [longitude, latitude]")),
                    },
                    _ => Err(format!("position {position} is not [longitude, latitude]")),
                })
                .collect()
        })
        .collect()
}

// ---- checking -----------------------------------------------------------------------------

/// What an accepted file changes.
#[derive(Debug, Default)]
pub(crate) struct ImportPlan {
    pub added: Vec<NodeWrite>,
    pub changed: Vec<NodeWrite>,
}

/// Checks `features` against the tree and the stored shapes; all or nothing.
pub(crate) fn plan_import(
    tree: &JurisdictionTree,
    shapes: &HashMap<String, Area>,
    features: Vec<BoundaryFeature>,
    options: &BoundaryImport,
) -> Result<ImportPlan, Vec<BoundaryFault>> {
    let level = options.level;
    let mut children: HashMap<&str, Vec<&Jurisdiction>> = HashMap::new();
    for node in tree.iter() {
        if let Some(parent) = &node.parent {
            children.entry(parent).or_default().push(node);
        }
    }
    let children_of = |code: &str| children.get(code).map(Vec::as_slice).unwrap_or_default();
    let mut faults = Vec::new();
    let mut seen = HashSet::new();
    // Each accepted feature with its resolved parent and the node it becomes.
    let mut accepted: Vec<(BoundaryFeature, Jurisdiction, bool)> = Vec::new();
    for feature in features {
        let here = feature.label();
        if !seen.insert(feature.code.clone()) {
            faults.push(fault(here, format!("code {} appears more than once in the file", feature.code)));
            continue;
        }
        if let Err(reason) = check_validity(&feature.shape) {
            faults.push(fault(&here, reason));
            continue;
        }
        match resolve_node(tree, shapes, &feature, options) {
            Ok((node, existing)) => accepted.push((feature, node, existing)),
            Err(reason) => faults.push(fault(here, reason)),
        }
    }

    // A child against its parent, and stored children against a replaced shape.
    for (feature, node, existing) in &accepted {
        if let Some(parent_shape) = node.parent.as_ref().and_then(|p| shapes.get(p)) {
            let outside = outside_m2(&feature.shape, parent_shape);
            if outside > options.tolerance_m2 {
                faults.push(fault(
                    feature.label(),
                    format!(
                        "{outside:.0} m² lies outside its parent {} (tolerance {:.0} m²)",
                        describe(tree, node.parent.as_deref().unwrap_or_default()),
                        options.tolerance_m2
                    ),
                ));
            }
        }
        if *existing {
            for child in children_of(&node.code) {
                let Some(child_shape) = shapes.get(&child.code) else { continue };
                let outside = outside_m2(child_shape, &feature.shape);
                if outside > options.tolerance_m2 {
                    faults.push(fault(
                        feature.label(),
                        format!(
                            "the new shape would leave {outside:.0} m² of its {} outside it",
                            describe(tree, &child.code)
                        ),
                    ));
                }
            }
        }
    }

    // Siblings: within the file, and against stored siblings the file does not replace.
    let mut families: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, (_, node, _)) in accepted.iter().enumerate() {
        families.entry(node.parent.as_deref()).or_default().push(i);
    }
    for (parent, members) in &families {
        let prepared: Vec<(usize, geo::MultiPolygon<f64>)> =
            members.iter().map(|&i| (i, to_geo(&accepted[i].0.shape))).collect();
        for (a, (i, shape_i)) in prepared.iter().enumerate() {
            let feature_i = &accepted[*i].0;
            for (j, shape_j) in &prepared[a + 1..] {
                let feature_j = &accepted[*j].0;
                if !feature_i.shape.bbox().intersects(&feature_j.shape.bbox()) {
                    continue;
                }
                let overlap = overlap_m2(shape_i, shape_j, &feature_i.shape);
                if overlap > options.tolerance_m2 {
                    faults.push(fault(feature_i.label(), format!("overlaps {} by {overlap:.0} m²", feature_j.label())));
                }
            }
        }
        for sibling in parent.map(children_of).unwrap_or_default() {
            if sibling.kind != level || seen.contains(&sibling.code) {
                continue;
            }
            let Some(sibling_shape) = shapes.get(&sibling.code) else { continue };
            let sibling_geo = to_geo(sibling_shape);
            for (i, shape_i) in &prepared {
                let feature_i = &accepted[*i].0;
                if !feature_i.shape.bbox().intersects(&sibling_shape.bbox()) {
                    continue;
                }
                let overlap = overlap_m2(shape_i, &sibling_geo, &feature_i.shape);
                if overlap > options.tolerance_m2 {
                    faults.push(fault(
                        feature_i.label(),
                        format!("overlaps the stored {} by {overlap:.0} m²", describe(tree, &sibling.code)),
                    ));
                }
            }
        }
    }

    if !faults.is_empty() {
        sort_faults(&mut faults);
        return Err(faults);
    }
    let mut plan = ImportPlan::default();
    for (feature, node, existing) in accepted {
        let write = NodeWrite { node, shape: Some(feature.shape) };
        if existing { plan.changed.push(write) } else { plan.added.push(write) }
    }
    Ok(plan)
}

fn feature_number(label: &str) -> usize {
    label.strip_prefix("feature ").and_then(|rest| rest.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// `district 440304 福田区`.
fn describe(tree: &JurisdictionTree, code: &str) -> String {
    match tree.get(code) {
        Some(node) => format!("{} {} {}", node.kind, node.code, node.name_zh),
        None => code.to_string(),
    }
}

/// The node a feature becomes (names from the file, or kept from the tree) and whether it
/// exists already.
fn resolve_node(
    tree: &JurisdictionTree,
    shapes: &HashMap<String, Area>,
    feature: &BoundaryFeature,
    options: &BoundaryImport,
) -> Result<(Jurisdiction, bool), String> {
    let level = options.level;
    if let Some(existing) = tree.get(&feature.code) {
        if existing.kind != level {
            return Err(format!("{} is a {} in the tree, not a {level}", feature.code, existing.kind));
        }
        if let Some(parent) = &feature.parent
            && existing.parent.as_ref() != Some(parent)
        {
            return Err(format!(
                "the tree has it under {}; an import does not move nodes",
                existing.parent.as_deref().unwrap_or("nothing")
            ));
        }
        let node = Jurisdiction {
            name_zh: feature.name_zh.clone().unwrap_or_else(|| existing.name_zh.clone()),
            name_en: feature.name_en.clone().or_else(|| existing.name_en.clone()),
            ..existing.clone()
        };
        return Ok((node, true));
    }
    let Some(name_zh) = feature.name_zh.clone() else {
        return Err("a new node needs a name: give properties.name_zh (or name)".into());
    };
    let parent = match level.parent_kind() {
        None => {
            if let Some(city) = tree.iter().find(|n| n.kind == JurisdictionKind::City) {
                return Err(format!(
                    "the tree already has the city {} {}; a tree has one city",
                    city.code, city.name_zh
                ));
            }
            None
        }
        Some(parent_kind) => {
            let parent = match feature.parent.clone().or_else(|| options.parent.clone()) {
                Some(code) => code,
                None => spatial_parent(tree, shapes, &feature.shape, parent_kind)?,
            };
            match tree.get(&parent) {
                None => return Err(format!("its parent {parent} is not in the tree")),
                Some(node) if node.kind != parent_kind => {
                    return Err(format!(
                        "its parent {parent} is a {}; a {level} belongs to a {parent_kind}",
                        node.kind
                    ));
                }
                Some(_) => Some(parent),
            }
        }
    };
    let node =
        Jurisdiction { code: feature.code.clone(), kind: level, parent, name_zh, name_en: feature.name_en.clone() };
    tree.check_insert(&node).map_err(|e| e.to_string())?;
    Ok((node, false))
}

/// The one node of `kind` holding the shape's interior point; the only node of that kind
/// when there is just one (the city).
fn spatial_parent(
    tree: &JurisdictionTree,
    shapes: &HashMap<String, Area>,
    shape: &Area,
    kind: JurisdictionKind,
) -> Result<String, String> {
    let candidates: Vec<&Jurisdiction> = tree.iter().filter(|n| n.kind == kind).collect();
    match candidates.as_slice() {
        [] => return Err(format!("the tree has no {kind} yet: import the {kind} level first (--level {kind})")),
        [only] => return Ok(only.code.clone()),
        _ => {}
    }
    let point = to_geo(shape).interior_point().ok_or("the shape has no interior point")?;
    let holders: Vec<&str> = candidates
        .iter()
        .filter(|n| shapes.get(&n.code).is_some_and(|s| s.contains(point.x(), point.y())))
        .map(|n| n.code.as_str())
        .collect();
    match holders.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(format!("no {kind} with a shape holds it; name its parent (properties.parent or --parent)")),
        many => Err(format!("{} {kind}s hold it ({}); name its parent", many.len(), many.join(", "))),
    }
}

// ---- geometry through the `geo` crate --------------------------------------------------------

pub(crate) fn to_geo(area: &Area) -> geo::MultiPolygon<f64> {
    let ring = |positions: &Vec<Position>| {
        geo::LineString::from(positions.iter().chain(positions.first()).map(|&[x, y]| (x, y)).collect::<Vec<_>>())
    };
    geo::MultiPolygon(
        area.polygons
            .iter()
            .map(|p| geo::Polygon::new(ring(&p.exterior), p.holes.iter().map(ring).collect()))
            .collect(),
    )
}

/// An area from the `geo` crate's output (e.g. a union), with RFC 7946 winding.
pub(crate) fn from_geo(shape: &geo::MultiPolygon<f64>) -> Result<Area, String> {
    let ring = |line: &geo::LineString<f64>, counter_clockwise: bool| {
        let mut positions: Vec<Position> = line.coords().map(|c| [c.x, c.y]).collect();
        if positions.first() != positions.last()
            && let Some(&first) = positions.first()
        {
            positions.push(first);
        }
        let open = &positions[..positions.len().saturating_sub(1)];
        if (fangkong_geo::shape::signed_area2(open) > 0.0) != counter_clockwise {
            positions.reverse();
        }
        positions
    };
    let polygons = shape
        .0
        .iter()
        .map(|p| {
            std::iter::once(ring(p.exterior(), true)).chain(p.interiors().iter().map(|h| ring(h, false))).collect()
        })
        .collect();
    Area::from_rings(polygons).map_err(|e| e.to_string())
}

/// [`check_validity`] for other use cases' shapes (beats).
pub(crate) fn check_area(area: &Area) -> Result<(), String> {
    check_validity(area)
}

/// Self-intersections, holes outside their polygon, crossing rings, overlapping parts.
fn check_validity(area: &Area) -> Result<(), String> {
    match to_geo(area).validation_errors().into_iter().next() {
        None => Ok(()),
        Some(problem) => Err(format!("invalid geometry: {problem}")),
    }
}

/// Square metres per square degree at a latitude: planar areas of pieces a few kilometres
/// across, converted to within a fraction of a percent.
fn m2_per_degree2(lat: f64) -> f64 {
    let metres_per_degree = fangkong_geo::EARTH_RADIUS_M.to_radians();
    metres_per_degree * metres_per_degree * lat.to_radians().cos()
}

fn mid_lat(area: &Area) -> f64 {
    let bbox = area.bbox();
    (bbox.min_lat + bbox.max_lat) / 2.0
}

/// The area of `child` outside `parent`, in m².
fn outside_m2(child: &Area, parent: &Area) -> f64 {
    to_geo(child).difference(&to_geo(parent)).unsigned_area() * m2_per_degree2(mid_lat(child))
}

/// The area `a` and `b` share, in m² (`near` gives the latitude).
fn overlap_m2(a: &geo::MultiPolygon<f64>, b: &geo::MultiPolygon<f64>, near: &Area) -> f64 {
    a.intersection(b).unsigned_area() * m2_per_degree2(mid_lat(near))
}

#[cfg(test)]
mod tests;
