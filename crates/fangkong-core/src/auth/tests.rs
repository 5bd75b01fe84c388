use super::*;
use crate::jurisdiction::JurisdictionKind;

#[test]
fn every_action_has_exactly_one_row() {
    for action in Action::ALL {
        let rows = PERMISSIONS.iter().filter(|(a, _)| *a == action).count();
        assert_eq!(rows, 1, "{action} must appear once in PERMISSIONS");
    }
    assert_eq!(PERMISSIONS.len(), Action::ALL.len());
}

#[test]
fn names_round_trip() {
    for role in Role::ALL {
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    for kind in DeviceKind::ALL {
        assert_eq!(DeviceKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(DeviceKind::parse("alarm-point"), Some(DeviceKind::AlarmPoint));
    assert_eq!(Role::parse("root"), None);
}

#[test]
fn only_auditors_read_the_audit_trail_and_only_administrators_manage() {
    for role in Role::ALL {
        assert_eq!(role_allows(role, Action::ReadAudit), role == Role::Auditor, "{role}");
        assert_eq!(role_allows(role, Action::ManageUsers), role == Role::Administrator, "{role}");
        assert!(role_allows(role, Action::ManageOwnAccount), "{role}");
    }
}

fn user(role: Role, kind: JurisdictionKind, code: &str) -> Actor {
    Actor::User(UserActor { user_id: 1, username: "u".into(), role, scope: Scope { kind, code: code.into() } })
}

#[test]
fn both_role_and_jurisdiction_must_allow() {
    let mut futian = Chain::default();
    futian.set(JurisdictionKind::City, "440300");
    futian.set(JurisdictionKind::District, "440304");
    let admin_futian = user(Role::Administrator, JurisdictionKind::District, "440304");
    let admin_luohu = user(Role::Administrator, JurisdictionKind::District, "440303");
    let analyst_city = user(Role::Analyst, JurisdictionKind::City, "440300");

    assert_eq!(admin_futian.check_in(Action::ManageUsers, &futian), Ok(()));
    assert_eq!(admin_luohu.check_in(Action::ManageUsers, &futian), Err(Denial::Jurisdiction));
    assert_eq!(
        analyst_city.check_in(Action::ManageUsers, &futian),
        Err(Denial::Role { role: Role::Analyst, action: Action::ManageUsers })
    );
    assert_eq!(Actor::Anonymous.check(Action::ReadCodes), Err(Denial::NotAUser));
    assert_eq!(Actor::System { name: "cli".into() }.check_in(Action::ManageUsers, &futian), Ok(()));
    let device = Actor::Device(DeviceActor { device_id: 1, unique_id: "t1".into(), kind: DeviceKind::Tracker });
    assert_eq!(device.check(Action::ReadCodes), Err(Denial::NotAUser));
}

#[test]
fn nobody_signed_in_manages_auditor_accounts() {
    let admin = user(Role::Administrator, JurisdictionKind::City, "440300");
    let auditor = user(Role::Auditor, JurisdictionKind::City, "440300");
    assert_eq!(check_account_roles(&admin, &[Role::Dispatcher]), Ok(()));
    assert_eq!(check_account_roles(&admin, &[Role::Dispatcher, Role::Auditor]), Err(Denial::SeparationOfDuties));
    assert_eq!(check_account_roles(&auditor, &[Role::Auditor]), Err(Denial::SeparationOfDuties));
    assert_eq!(check_account_roles(&Actor::System { name: "cli".into() }, &[Role::Auditor]), Ok(()));
}

#[test]
fn nobody_shuts_themselves_out_of_their_own_account() {
    let admin = user(Role::Administrator, JurisdictionKind::City, "440300");
    assert_eq!(check_own_account(&admin, "u", true), Err(Denial::OwnAccount));
    assert_eq!(check_own_account(&admin, "u", false), Ok(()), "renaming oneself is fine");
    assert_eq!(check_own_account(&admin, "someone-else", true), Ok(()));
    assert_eq!(check_own_account(&Actor::System { name: "cli".into() }, "u", true), Ok(()), "the terminal may");
}
