use super::*;

fn incident_type(code: &str, priority: u8) -> CodeEntry {
    CodeEntry {
        kind: CodeKind::IncidentType,
        code: code.to_string(),
        name_zh: format!("类别{code}"),
        name_en: format!("type {code}"),
        priority: Some(priority),
        active: true,
        updated_at: Timestamp::from_millis(0),
    }
}

fn source(code: &str) -> CodeEntry {
    CodeEntry { kind: CodeKind::IncidentSource, priority: None, ..incident_type(code, 1) }
}

fn table(codes: &[&str]) -> CodeTable {
    CodeTable::from_entries(codes.iter().map(|code| incident_type(code, 2))).expect("fixture table is valid")
}

/// One line per case: the code, and the level it must have (or `None` if malformed).
fn check_level(code: &str, expected: Option<CodeLevel>) {
    assert_eq!(incident_type_level(code), expected, "level of {code:?}");
}

#[test]
fn incident_type_levels_follow_the_digits() {
    check_level("010000", Some(CodeLevel::Category));
    check_level("010300", Some(CodeLevel::Type));
    check_level("010301", Some(CodeLevel::Subtype));
    check_level("999999", Some(CodeLevel::Subtype));
    check_level("990000", Some(CodeLevel::Category));
    check_level("000000", None);
    check_level("000100", None);
    check_level("010001", None);
    check_level("01030", None);
    check_level("0103011", None);
    check_level("01a301", None);
    check_level("０１０３０１", None);
    check_level("", None);
}

#[test]
fn parents_are_read_from_the_code() {
    assert_eq!(incident_type("010301", 1).parent_code().as_deref(), Some("010300"));
    assert_eq!(incident_type("010300", 1).parent_code().as_deref(), Some("010000"));
    assert_eq!(incident_type("010000", 1).parent_code(), None);
    assert_eq!(source("110").parent_code(), None);
}

/// One line per case: a mutation of a valid entry, and the field named by the error.
fn check_field_error(mutate: impl FnOnce(&mut CodeEntry), field: &str) {
    let mut entry = incident_type("010300", 2);
    mutate(&mut entry);
    match validate_entry(&entry) {
        Err(CodeError::BadField { field: got, .. }) => assert_eq!(got, field, "{entry:?}"),
        other => panic!("expected a {field} error for {entry:?}, got {other:?}"),
    }
}

#[test]
fn field_rules_name_the_field() {
    check_field_error(|e| e.name_zh = String::new(), "name_zh");
    check_field_error(|e| e.name_en = "  ".into(), "name_en");
    check_field_error(|e| e.name_en = " robbery".into(), "name_en");
    check_field_error(|e| e.name_zh = "抢".repeat(65), "name_zh");
    check_field_error(|e| e.name_en = "a\u{7}b".into(), "name_en");
    check_field_error(|e| e.priority = None, "priority");
    check_field_error(|e| e.priority = Some(0), "priority");
    check_field_error(|e| e.priority = Some(5), "priority");
    assert!(validate_entry(&incident_type("010300", 4)).is_ok());
    assert!(validate_entry(&CodeEntry { name_zh: "抢".repeat(64), ..incident_type("010300", 1) }).is_ok());
}

#[test]
fn flat_codes_have_no_priority_and_a_plain_alphabet() {
    assert!(validate_entry(&source("110")).is_ok());
    assert!(validate_entry(&source("alarm_point")).is_ok());
    assert!(matches!(
        validate_entry(&CodeEntry { priority: Some(1), ..source("110") }),
        Err(CodeError::BadField { field: "priority", .. })
    ));
    for bad in ["", "has space", "中文", &"x".repeat(33)] {
        assert!(matches!(validate_entry(&source(bad)), Err(CodeError::Malformed { .. })), "{bad:?}");
    }
}

#[test]
fn a_table_needs_every_parent() {
    assert!(CodeTable::from_entries([incident_type("010301", 1), incident_type("010300", 1)]).is_err());
    let table = table(&["010000", "010300", "010301"]);
    assert_eq!(table.len(), 3);
    assert_eq!(
        table.check_insert(&incident_type("020100", 2)),
        Err(CodeError::MissingParent { kind: CodeKind::IncidentType, code: "020100".into(), parent: "020000".into() })
    );
    assert!(table.check_insert(&incident_type("010302", 2)).is_ok());
}

#[test]
fn duplicates_and_unknown_codes_are_refused() {
    let table = table(&["010000"]);
    assert!(matches!(table.check_insert(&incident_type("010000", 1)), Err(CodeError::Duplicate { .. })));
    assert!(matches!(table.check_update(&incident_type("020000", 1)), Err(CodeError::Unknown { .. })));
    assert!(table.check_update(&incident_type("010000", 1)).is_ok());
    let twice = CodeTable::from_entries([incident_type("010000", 1), incident_type("010000", 2)]);
    assert!(matches!(twice, Err(CodeError::Duplicate { .. })));
}

#[test]
fn retiring_respects_the_hierarchy() {
    let mut table = table(&["010000", "010300", "010301"]);
    // A parent cannot be retired under an active child …
    let retired_type = CodeEntry { active: false, ..incident_type("010300", 2) };
    assert!(
        matches!(table.check_update(&retired_type), Err(CodeError::ActiveChild { child, .. }) if child == "010301")
    );
    // … but can once the child is retired, after which the child cannot come back alone.
    let retired_subtype = CodeEntry { active: false, ..incident_type("010301", 2) };
    table.check_update(&retired_subtype).unwrap();
    table.apply(retired_subtype);
    table.check_update(&retired_type).unwrap();
    table.apply(retired_type);
    assert!(!table.is_usable(CodeKind::IncidentType, "010300"));
    assert!(table.is_usable(CodeKind::IncidentType, "010000"));
    assert!(matches!(
        table.check_update(&incident_type("010301", 2)),
        Err(CodeError::RetiredParent { parent, .. }) if parent == "010300"
    ));
    assert!(matches!(table.check_insert(&incident_type("010302", 2)), Err(CodeError::RetiredParent { .. })));
}

#[test]
fn kinds_round_trip_through_their_names() {
    for kind in CodeKind::ALL {
        assert_eq!(CodeKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(CodeKind::parse("Incident_Type"), None);
}
