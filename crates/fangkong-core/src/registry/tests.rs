use super::*;
use crate::documents::check_resident_id;

fn day(text: &str) -> Day {
    parse_date(text).unwrap()
}

#[test]
fn dates_parse_in_the_forms_spreadsheets_write_and_round_trip() {
    assert_eq!(parse_date("1970-01-01"), Some(0));
    assert_eq!(parse_date("2024/02/29"), parse_date("20240229"));
    assert_eq!(format_date(day("2024-02-29")), "2024-02-29");
    assert_eq!(format_date(day("1899-12-31")), "1899-12-31");
    for bad in ["2023-02-29", "2024-13-01", "24-01-01", "2024-01", "2024-01-01-01", "", "abcd-ef-gh", "2024-1-"] {
        assert_eq!(parse_date(bad), None, "{bad}");
    }
}

#[test]
fn a_stated_birth_date_and_sex_must_match_the_identity_number() {
    let today = day("2026-12-01");
    // 11010519491231002X: born 1949-12-31, sequence 002 (even: a woman).
    let document = check_resident_id("11010519491231002X", today).unwrap();
    assert_eq!(check_person(&document, None, None, today), Ok((day("1949-12-31"), Sex::Female)));
    assert_eq!(
        check_person(&document, Some(day("1949-12-31")), Some(Sex::Female), today).map(|p| p.1),
        Ok(Sex::Female)
    );
    let error = check_person(&document, Some(day("1950-01-01")), None, today).unwrap_err();
    assert_eq!(error.field, "birth_date");
    assert!(error.rule.contains("1949-12-31"), "{error}");
    let error = check_person(&document, None, Some(Sex::Male), today).unwrap_err();
    assert_eq!(error.field, "sex");
    // A passport encodes neither: both must be stated.
    let passport = crate::documents::check_document(DocumentKind::ChinesePassport, "E12345678", today).unwrap();
    assert_eq!(check_person(&passport, None, Some(Sex::Male), today).unwrap_err().field, "birth_date");
    assert_eq!(check_person(&passport, Some(day("1990-01-01")), None, today).unwrap_err().field, "sex");
    assert_eq!(
        check_person(&passport, Some(day("2027-01-01")), Some(Sex::Male), today).unwrap_err().field,
        "birth_date"
    );
}

#[test]
fn move_out_must_follow_move_in_and_neither_lies_ahead() {
    let today = day("2026-12-01");
    assert!(check_tenancy_dates(day("2026-01-01"), None, today).is_ok());
    assert!(check_tenancy_dates(day("2026-01-01"), Some(day("2026-01-01")), today).is_ok());
    let error = check_tenancy_dates(day("2026-03-01"), Some(day("2026-02-28")), today).unwrap_err();
    assert_eq!(error.field, "move_out");
    assert!(error.rule.contains("before move-in"), "{error}");
    assert_eq!(check_tenancy_dates(day("2027-01-01"), None, today).unwrap_err().field, "move_in");
    assert_eq!(check_tenancy_dates(day("2026-01-01"), Some(day("2026-12-02")), today).unwrap_err().field, "move_out");
}

#[test]
fn permits_expire_after_they_are_issued_and_are_endorsed_in_between() {
    let today = day("2026-12-01");
    assert!(check_permit_dates(day("2026-01-01"), day("2027-01-01"), Some(day("2026-07-01")), today).is_ok());
    assert_eq!(check_permit_dates(day("2026-01-01"), day("2026-01-01"), None, today).unwrap_err().field, "expires");
    assert_eq!(check_permit_dates(day("2027-01-01"), day("2028-01-01"), None, today).unwrap_err().field, "issued");
    let endorsed_early = check_permit_dates(day("2026-01-01"), day("2027-01-01"), Some(day("2025-12-31")), today);
    assert_eq!(endorsed_early.unwrap_err().field, "endorsed");
}

#[test]
fn occupancy_limits_count_area_per_person_and_persons_per_room() {
    let limits = OccupancyLimits { min_area_per_person_m2: 5.0, max_persons_per_room: 4 };
    assert_eq!(limits.exceeded(20.0, 1, 4), None, "5 m² each is enough");
    assert!(limits.exceeded(20.0, 1, 5).unwrap().contains("4.0 m² each"));
    assert!(limits.exceeded(100.0, 2, 9).unwrap().contains("9 persons in 2 rooms"));
    assert_eq!(limits.exceeded(100.0, 2, 8), None);
    assert_eq!(limits.exceeded(10.0, 1, 0), None, "an empty unit");
    let off = OccupancyLimits { min_area_per_person_m2: 0.0, max_persons_per_room: 0 };
    assert_eq!(off.exceeded(1.0, 1, 50), None);
}

#[test]
fn permits_and_pledges_raise_alerts_when_due() {
    let today = day("2026-12-01");
    let permit = |expires: &str| Permit {
        resident: "R1".into(),
        kind: PermitKind::ResidencePermit,
        issued: day("2025-12-01"),
        expires: day(expires),
        endorsed: None,
        community: "C1".into(),
    };
    assert_eq!(permit_alert(&permit("2026-11-30"), today, 30).map(|a| a.kind), Some(AlertKind::PermitExpired));
    assert_eq!(permit_alert(&permit("2026-12-31"), today, 30).map(|a| a.kind), Some(AlertKind::PermitExpiring));
    assert_eq!(permit_alert(&permit("2026-12-01"), today, 30).map(|a| a.kind), Some(AlertKind::PermitExpiring));
    assert_eq!(permit_alert(&permit("2027-01-01"), today, 30), None);
    let landlord = |expires: Option<&str>| Landlord {
        code: "L1".into(),
        kind: LandlordKind::Person,
        name: "王某".into(),
        phone: None,
        safety_person: "王某".into(),
        safety_phone: None,
        pledge_signed: None,
        pledge_expires: expires.map(day),
        community: "C1".into(),
    };
    assert_eq!(pledge_alert(&landlord(Some("2026-12-01")), today), None);
    let lapsed = pledge_alert(&landlord(Some("2026-11-30")), today).unwrap();
    assert!(lapsed.detail.contains("lapsed on 2026-11-30") && !lapsed.detail.contains("王"));
    assert!(pledge_alert(&landlord(None), today).unwrap().detail.contains("no safety pledge"));
}

#[test]
fn masks_keep_only_what_a_reader_without_need_may_see() {
    assert_eq!(mask_id_number("11010519491231002X"), "110***********002X");
    assert_eq!(mask_id_number("E12345678"), "E12**5678");
    assert_eq!(mask_id_number("ABC"), "***");
    assert_eq!(mask_phone("+8613812345678"), "***5678");
}

#[test]
fn codes_and_texts_name_their_field() {
    assert!(check_code("code", "440304001020B0001U001").is_ok());
    assert_eq!(check_code("unit", "a b").unwrap_err().field, "unit");
    assert_eq!(check_text("name", " ", 10, true).unwrap_err().rule, "required");
    assert!(check_text("note", "", 10, false).is_ok());
    assert!(check_text("name", "a\u{7}", 10, true).is_err());
    assert!(BuildingKind::words().contains("urban_village"));
    assert_eq!(Sex::parse("F"), Some(Sex::Female));
}
