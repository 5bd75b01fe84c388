use super::*;

fn node(code: &str, kind: JurisdictionKind, parent: Option<&str>) -> Jurisdiction {
    Jurisdiction {
        code: code.into(),
        kind,
        parent: parent.map(Into::into),
        name_zh: format!("节点{code}"),
        name_en: None,
    }
}

/// A small Shenzhen: Futian with one sub-district, one community and a grid; Luohu with
/// one sub-district; one police station in Futian with one police district.
pub(crate) fn small_tree() -> JurisdictionTree {
    use JurisdictionKind::*;
    JurisdictionTree::from_nodes([
        node("440304001001", Community, Some("440304001")),
        node("440300", City, None),
        node("440304", District, Some("440300")),
        node("440303", District, Some("440300")),
        node("440304001", Subdistrict, Some("440304")),
        node("440303001", Subdistrict, Some("440303")),
        node("440304001001G01", Grid, Some("440304001001")),
        node("PS440304-01", PoliceStation, Some("440304")),
        node("PD440304-01-1", PoliceDistrict, Some("PS440304-01")),
    ])
    .expect("fixture tree is valid")
}

#[test]
fn chains_name_every_ancestor() {
    let tree = small_tree();
    let chain = tree.chain_of("440304001001G01").unwrap();
    assert_eq!(chain.get(JurisdictionKind::City), Some("440300"));
    assert_eq!(chain.get(JurisdictionKind::District), Some("440304"));
    assert_eq!(chain.get(JurisdictionKind::Subdistrict), Some("440304001"));
    assert_eq!(chain.get(JurisdictionKind::Community), Some("440304001001"));
    assert_eq!(chain.get(JurisdictionKind::Grid), Some("440304001001G01"));
    assert_eq!(chain.get(JurisdictionKind::PoliceStation), None);
    assert_eq!(chain.most_specific(), Some((JurisdictionKind::Grid, "440304001001G01")));

    let police = tree.chain_of("PD440304-01-1").unwrap();
    assert_eq!(police.get(JurisdictionKind::PoliceStation), Some("PS440304-01"));
    assert_eq!(police.get(JurisdictionKind::District), Some("440304"));
    assert_eq!(tree.chain_of("nope"), None);
}

/// One line per case: the user's node, the target's node, whether the user sees it.
fn check_covers(user: &str, target: &str, expected: bool) {
    let tree = small_tree();
    let scope = tree.scope_of(user).unwrap();
    let chain = tree.chain_of(target).unwrap();
    assert_eq!(scope.covers(&chain), expected, "{user} covers {target}");
}

#[test]
fn scopes_cover_their_subtree_and_nothing_else() {
    check_covers("440300", "440304001001G01", true);
    check_covers("440300", "PD440304-01-1", true);
    check_covers("440304", "440304001001", true);
    check_covers("440304", "PS440304-01", true);
    check_covers("440304", "440303001", false);
    check_covers("440304", "440303", false);
    check_covers("440304001", "440304001001G01", true);
    check_covers("440304001", "440304", false);
    check_covers("440304001", "PS440304-01", false);
    check_covers("440304001001", "440304001001", true);
    check_covers("PS440304-01", "PD440304-01-1", true);
    check_covers("PS440304-01", "440304001001", false);
}

#[test]
fn only_the_whole_city_covers_city_wide_records() {
    let tree = small_tree();
    let city = tree.city_chain();
    assert!(tree.scope_of("440300").unwrap().covers(&city));
    for node in ["440304", "440304001", "PS440304-01", "PD440304-01-1"] {
        assert!(!tree.scope_of(node).unwrap().covers(&city), "{node}");
    }
    assert_eq!(JurisdictionTree::default().city_chain(), Chain::default(), "no city: nobody's scope covers it");
}

/// One line per case: a tree that must be refused, and a fragment of the reason.
fn check_refused(nodes: Vec<Jurisdiction>, fragment: &str) {
    match JurisdictionTree::from_nodes(nodes) {
        Ok(_) => panic!("accepted a tree that should be refused ({fragment})"),
        Err(error) => assert!(error.to_string().contains(fragment), "{error} should mention {fragment:?}"),
    }
}

#[test]
fn malformed_trees_are_refused_with_the_reason() {
    use JurisdictionKind::*;
    let city = || node("440300", City, None);
    check_refused(vec![city(), node("440304", District, None)], "needs a parent of kind city");
    check_refused(vec![city(), node("440304", District, Some("999999"))], "parent 999999 does not exist");
    check_refused(vec![city(), node("440304001", Subdistrict, Some("440300"))], "is a city, expected a district");
    check_refused(vec![city(), node("440301", City, None)], "only one city");
    check_refused(vec![node("440300", City, Some("x"))], "cannot have a parent");
    check_refused(vec![city(), city()], "appears twice");
    check_refused(vec![node("44 03", City, None)], "malformed");
    check_refused(vec![Jurisdiction { name_zh: " ".into(), ..city() }], "empty Chinese name");
}

#[test]
fn inserts_are_checked_against_the_tree() {
    use JurisdictionKind::*;
    let mut tree = small_tree();
    let new = node("440304002", Subdistrict, Some("440304"));
    tree.check_insert(&new).unwrap();
    tree.insert(new);
    assert_eq!(tree.children("440304").count(), 3, "two sub-districts and a police station");
    assert!(tree.check_insert(&node("440304002", Subdistrict, Some("440304"))).is_err());
    assert!(tree.check_insert(&node("440301", City, None)).is_err());
    assert!(matches!(tree.scope_of("missing"), Err(JurisdictionError::Unknown(_))));
}
