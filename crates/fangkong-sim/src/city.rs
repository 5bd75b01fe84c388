//! The administrative tree of Shenzhen: the city, its districts, the 74 sub-districts
//! (and 5 special statistical units) and 788 communities, with their official codes and
//! names, from the National Bureau of Statistics lists in `data/` (provenance there).

use std::collections::BTreeMap;

use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};

const SUBDISTRICTS: &str = include_str!("../data/shenzhen-subdistricts.csv");
const COMMUNITIES: &str = include_str!("../data/shenzhen-communities.csv");

/// The code of Shenzhen (GB/T 2260).
pub const CITY_CODE: &str = "440300";

/// A row of one of the CSV files, split on commas (no field contains one).
fn rows(csv: &'static str) -> impl Iterator<Item = BTreeMap<&'static str, &'static str>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    lines.filter(|l| !l.trim().is_empty()).map(move |line| header.iter().copied().zip(line.split(',')).collect())
}

/// City, districts, sub-districts and communities, parents before children.
pub fn administrative_tree() -> Vec<Jurisdiction> {
    let mut nodes = vec![Jurisdiction {
        code: CITY_CODE.into(),
        kind: JurisdictionKind::City,
        parent: None,
        name_zh: "深圳市".into(),
        name_en: Some("Shenzhen".into()),
    }];
    let mut districts: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    let mut subdistricts = Vec::new();
    for row in rows(SUBDISTRICTS) {
        districts.insert(row["district_adcode"], (row["district_zh"], row["district_en"]));
        subdistricts.push(Jurisdiction {
            code: row["code"].into(),
            kind: JurisdictionKind::Subdistrict,
            parent: Some(row["district_adcode"].into()),
            name_zh: row["name_zh"].into(),
            name_en: Some(row["name_en"].into()).filter(|n: &String| !n.is_empty()),
        });
    }
    for (code, (name_zh, name_en)) in districts {
        nodes.push(Jurisdiction {
            code: code.into(),
            kind: JurisdictionKind::District,
            parent: Some(CITY_CODE.into()),
            name_zh: name_zh.into(),
            name_en: Some(format!("{name_en} District")),
        });
    }
    nodes.extend(subdistricts);
    for row in rows(COMMUNITIES) {
        nodes.push(Jurisdiction {
            code: row["code"].into(),
            kind: JurisdictionKind::Community,
            parent: Some(row["subdistrict_code"].into()),
            // "南园社区居委会" / "…居民委员会" is the committee; the community is "南园社区".
            name_zh: row["name_zh"].trim_end_matches("居民委员会").trim_end_matches("居委会").into(),
            name_en: None,
        });
    }
    nodes
}

#[cfg(test)]
mod tests {
    use fangkong_core::jurisdiction::JurisdictionTree;

    use super::*;

    #[test]
    fn the_tree_is_complete_and_valid() {
        let nodes = administrative_tree();
        let count = |kind| nodes.iter().filter(|n| n.kind == kind).count();
        assert_eq!(count(JurisdictionKind::City), 1);
        assert_eq!(count(JurisdictionKind::District), 9, "the 8 district polygons plus Guangming (440311)");
        assert_eq!(count(JurisdictionKind::Subdistrict), 79, "74 sub-districts and 5 special units");
        assert_eq!(count(JurisdictionKind::Community), 788);
        let tree = JurisdictionTree::from_nodes(nodes).expect("a valid tree");
        let futian = tree.get("440304").unwrap();
        assert_eq!((futian.name_zh.as_str(), futian.name_en.as_deref()), ("福田区", Some("Futian District")));
        let community = tree.get("440303001001").unwrap();
        assert_eq!(community.name_zh, "大塘龙社区");
        assert_eq!(tree.get("440304001020").unwrap().name_zh, "南园社区");
        assert!(tree.iter().all(|n| !n.name_zh.ends_with("委员会") && !n.name_zh.ends_with("居委会")));
        assert_eq!(tree.chain_of("440303001001").unwrap().get(JurisdictionKind::District), Some("440303"));
    }
}
