//! Jurisdictions, users, sessions and devices: round trips, typed conflicts, and changes
//! that are written together with their audit record or not at all.

use fangkong_core::audit::{AuditEntry, Outcome};
use fangkong_core::auth::account::{Device, Session, User};
use fangkong_core::auth::lockout::LoginState;
use fangkong_core::auth::{Actor, DeviceKind, Role};
use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_core::time::Timestamp;
use fangkong_geo::Area;
use fangkong_store::{Backend, NodeWrite, StoreError};

use crate::support::TestDb;

conformance!(
    jurisdictions_round_trip_in_code_order,
    a_failed_jurisdiction_batch_writes_neither_nodes_nor_audit,
    jurisdiction_shapes_round_trip_exactly_and_update_in_place,
    an_update_of_a_missing_jurisdiction_writes_nothing,
    a_damaged_shape_is_reported_as_corrupt,
    users_round_trip_every_field,
    a_taken_username_is_a_conflict_and_audits_nothing,
    updating_a_user_can_end_their_sessions,
    sessions_round_trip_touch_and_revoke,
    devices_round_trip_and_conflict,
);

const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

fn system_entry(action: &str) -> AuditEntry {
    AuditEntry::new(T0, &Actor::System { name: "test".into() }, action, Outcome::Allowed)
}

fn node(code: &str, kind: JurisdictionKind, parent: Option<&str>) -> Jurisdiction {
    Jurisdiction {
        code: code.into(),
        kind,
        parent: parent.map(Into::into),
        name_zh: format!("辖区{code}"),
        name_en: Some(format!("Area {code}")),
    }
}

async fn seed_tree(db: &TestDb) {
    let nodes = [
        node("440300", JurisdictionKind::City, None),
        node("440304", JurisdictionKind::District, Some("440300")),
        node("440303", JurisdictionKind::District, Some("440300")),
    ];
    db.store.insert_jurisdictions(&nodes, T0, &system_entry("jurisdiction.import")).await.unwrap();
}

fn user(username: &str) -> User {
    User {
        id: 0,
        username: username.into(),
        display_name: "张伟".into(),
        role: Role::Dispatcher,
        jurisdiction: "440304".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
        password_changed_at: T0,
        totp_secret: Some(vec![1, 2, 3, 4]),
        totp_pending: true,
        totp_last_step: Some(58_809_600),
        login: LoginState { failed_attempts: 2, locked_until: Some(T0.plus_seconds(600)) },
        disabled: false,
        created_at: T0,
        updated_at: T0,
    }
}

async fn audit_count(db: &TestDb) -> i64 {
    db.store.audit_head().await.unwrap().seq
}

async fn jurisdictions_round_trip_in_code_order(db: &TestDb) {
    seed_tree(db).await;
    let stored = db.store.list_jurisdictions().await.unwrap();
    let codes: Vec<&str> = stored.iter().map(|j| j.code.as_str()).collect();
    assert_eq!(codes, ["440300", "440303", "440304"]);
    assert_eq!(stored[2], node("440304", JurisdictionKind::District, Some("440300")));
    assert_eq!(audit_count(db).await, 1, "the import is one audit record");
}

async fn a_failed_jurisdiction_batch_writes_neither_nodes_nor_audit(db: &TestDb) {
    seed_tree(db).await;
    let batch = [
        node("440304001", JurisdictionKind::Subdistrict, Some("440304")),
        node("440304", JurisdictionKind::District, Some("440300")), // exists
    ];
    let result = db.store.insert_jurisdictions(&batch, T0, &system_entry("jurisdiction.import")).await;
    assert!(matches!(result, Err(StoreError::Conflict { entity: "jurisdiction", .. })), "{result:?}");
    assert_eq!(db.store.list_jurisdictions().await.unwrap().len(), 3);
    assert_eq!(audit_count(db).await, 1, "no audit record for a change that did not happen");
}

/// A square with an off-grid corner (so an inexact encoding would show) and a hole.
fn shape(x: f64, y: f64) -> Area {
    let size = 0.031_415_926_535_897_93;
    Area::from_rings(vec![vec![
        vec![[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]],
        vec![
            [x + 0.01, y + 0.01],
            [x + 0.01, y + 0.02],
            [x + 0.02, y + 0.02],
            [x + 0.02, y + 0.01],
            [x + 0.01, y + 0.01],
        ],
    ]])
    .unwrap()
}

fn write(node: Jurisdiction, shape: Option<Area>) -> NodeWrite {
    NodeWrite { node, shape }
}

async fn jurisdiction_shapes_round_trip_exactly_and_update_in_place(db: &TestDb) {
    let entry = system_entry("jurisdiction.import");
    let added = [
        write(node("440300", JurisdictionKind::City, None), None),
        write(node("440304", JurisdictionKind::District, Some("440300")), Some(shape(114.05, 22.52))),
        write(node("440303", JurisdictionKind::District, Some("440300")), Some(shape(114.12, 22.55))),
    ];
    db.store.save_jurisdictions(&added, &[], T0, &entry).await.unwrap();
    let shapes = db.store.list_jurisdiction_shapes().await.unwrap();
    assert_eq!(shapes, vec![("440303".into(), shape(114.12, 22.55)), ("440304".into(), shape(114.05, 22.52))]);

    // A new shape and name for one district; a rename without a shape keeps the other's.
    let mut renamed = node("440304", JurisdictionKind::District, Some("440300"));
    renamed.name_zh = "福田区".into();
    let mut untouched = node("440303", JurisdictionKind::District, Some("440300"));
    untouched.name_en = None;
    let changed = [write(renamed.clone(), Some(shape(114.0, 22.5))), write(untouched.clone(), None)];
    db.store.save_jurisdictions(&[], &changed, T0.plus_seconds(1), &entry).await.unwrap();
    let shapes = db.store.list_jurisdiction_shapes().await.unwrap();
    assert_eq!(shapes, vec![("440303".into(), shape(114.12, 22.55)), ("440304".into(), shape(114.0, 22.5))]);
    let nodes = db.store.list_jurisdictions().await.unwrap();
    assert_eq!(nodes[1], untouched);
    assert_eq!(nodes[2], renamed);
    assert_eq!(audit_count(db).await, 2);
}

async fn an_update_of_a_missing_jurisdiction_writes_nothing(db: &TestDb) {
    seed_tree(db).await;
    let added = [write(node("440304001", JurisdictionKind::Subdistrict, Some("440304")), Some(shape(114.05, 22.52)))];
    let changed = [
        write(node("440304", JurisdictionKind::District, Some("440300")), Some(shape(114.0, 22.5))),
        write(node("440399", JurisdictionKind::District, Some("440300")), Some(shape(114.0, 22.5))),
    ];
    let result = db.store.save_jurisdictions(&added, &changed, T0, &system_entry("jurisdiction.import")).await;
    assert!(
        matches!(&result, Err(StoreError::NotFound { entity: "jurisdiction", key }) if key == "440399"),
        "{result:?}"
    );
    assert_eq!(db.store.list_jurisdictions().await.unwrap().len(), 3, "the new node was rolled back");
    assert!(db.store.list_jurisdiction_shapes().await.unwrap().is_empty(), "the shape change was rolled back");
    assert_eq!(audit_count(db).await, 1);
}

async fn a_damaged_shape_is_reported_as_corrupt(db: &TestDb) {
    seed_tree(db).await;
    let blob = match db.backend() {
        Backend::Sqlite => "X'0106000000'",
        Backend::Postgres => "'\\x0106000000'::bytea",
    };
    db.execute_raw(&format!("UPDATE jurisdictions SET shape = {blob} WHERE code = '440303'")).await;
    let result = db.store.list_jurisdiction_shapes().await;
    assert!(matches!(&result, Err(StoreError::Corrupt(message)) if message.contains("440303")), "{result:?}");
}

async fn users_round_trip_every_field(db: &TestDb) {
    seed_tree(db).await;
    let stored = db.store.insert_user(&user("zhang.wei"), &system_entry("user.create")).await.unwrap();
    assert!(stored.id > 0);
    assert_eq!(User { id: 0, ..stored.clone() }, user("zhang.wei"));
    assert_eq!(db.store.get_user_by_username("zhang.wei").await.unwrap(), Some(stored.clone()));
    assert_eq!(db.store.get_user_by_username("nobody").await.unwrap(), None);

    let changed = User {
        display_name: "张伟 (调度)".into(),
        role: Role::Commander,
        jurisdiction: "440303".into(),
        totp_secret: None,
        totp_pending: false,
        totp_last_step: None,
        login: LoginState::default(),
        disabled: true,
        updated_at: T0.plus_seconds(1),
        ..stored.clone()
    };
    db.store.update_user(&changed, stored.updated_at, None, &[], Default::default()).await.unwrap();
    assert_eq!(db.store.list_users().await.unwrap(), vec![changed.clone()]);

    // A change decided on the row as it was before is refused, not applied over the newer one,
    // and leaves no audit record.
    let before = audit_count(db).await;
    let stale = User { display_name: "旧数据".into(), updated_at: T0.plus_seconds(2), ..stored };
    let result = db.store.update_user(&stale, T0, None, &[system_entry("user.update")], Default::default()).await;
    assert!(matches!(result, Err(StoreError::Conflict { entity: "user", .. })), "{result:?}");
    assert_eq!(db.store.list_users().await.unwrap(), vec![changed]);
    assert_eq!(audit_count(db).await, before);
}

async fn a_taken_username_is_a_conflict_and_audits_nothing(db: &TestDb) {
    seed_tree(db).await;
    db.store.insert_user(&user("li.na"), &system_entry("user.create")).await.unwrap();
    let before = audit_count(db).await;
    let result = db.store.insert_user(&user("li.na"), &system_entry("user.create")).await;
    assert!(matches!(result, Err(StoreError::Conflict { entity: "user", ref key }) if key == "li.na"), "{result:?}");
    assert_eq!(audit_count(db).await, before);
    let missing = User { id: 9_999, ..user("ghost") };
    assert!(matches!(
        db.store.update_user(&missing, T0, None, &[], Default::default()).await,
        Err(StoreError::NotFound { .. })
    ));
}

fn session(n: u8, user_id: i64, created_at: Timestamp) -> Session {
    Session {
        token_hash: [n; 32],
        user_id,
        created_at,
        last_used_at: created_at,
        revoked_at: None,
        ip: Some("10.1.2.3".into()),
    }
}

async fn updating_a_user_can_end_their_sessions(db: &TestDb) {
    seed_tree(db).await;
    let stored = db.store.insert_user(&user("wang.fang"), &system_entry("user.create")).await.unwrap();
    for n in 1..=3 {
        db.store.insert_session(&session(n, stored.id, T0), &system_entry("auth.login")).await.unwrap();
    }
    let locked = User {
        login: LoginState { failed_attempts: 0, locked_until: Some(T0.plus_seconds(60)) },
        updated_at: T0.plus_seconds(1),
        ..stored
    };
    db.store
        .update_user(&locked, T0, Some(T0.plus_seconds(1)), &[system_entry("user.lock")], Default::default())
        .await
        .unwrap();
    assert!(db.store.list_live_sessions(Timestamp::UNIX_EPOCH).await.unwrap().is_empty());
}

async fn sessions_round_trip_touch_and_revoke(db: &TestDb) {
    seed_tree(db).await;
    let stored = db.store.insert_user(&user("chen.jie"), &system_entry("user.create")).await.unwrap();
    let old = session(1, stored.id, T0);
    let new = session(2, stored.id, T0.plus_seconds(3600));
    db.store.insert_session(&old, &system_entry("auth.login")).await.unwrap();
    db.store.insert_session(&new, &system_entry("auth.login")).await.unwrap();
    assert_eq!(db.store.list_live_sessions(T0).await.unwrap(), vec![new.clone()], "created after the cut-off only");

    // A touch only moves time forward.
    let later = T0.plus_seconds(4000);
    db.store.touch_sessions(&[(new.token_hash, later), (new.token_hash, T0)]).await.unwrap();
    let live = db.store.list_live_sessions(T0).await.unwrap();
    assert_eq!(live[0].last_used_at, later);

    db.store.revoke_session(new.token_hash, later, &system_entry("auth.logout")).await.unwrap();
    assert!(db.store.list_live_sessions(T0).await.unwrap().is_empty());
}

fn device(unique_id: &str) -> Device {
    Device {
        id: 0,
        unique_id: unique_id.into(),
        kind: DeviceKind::AlarmPoint,
        unit: Some("ALARM-0001".into()),
        jurisdiction: "440304".into(),
        name: Some("福田加油站报警点".into()),
        location: Some(fangkong_geo::LatLon::new(22.5431, 114.0579).unwrap()),
        secret_hash: [7; 32],
        created_at: T0,
        revoked_at: None,
        last_seen_at: None,
    }
}

async fn devices_round_trip_and_conflict(db: &TestDb) {
    seed_tree(db).await;
    let stored = db.store.insert_device(&device("862118020000001"), &system_entry("device.add")).await.unwrap();
    assert_eq!(Device { id: 0, ..stored.clone() }, device("862118020000001"));
    let again = db.store.insert_device(&device("862118020000001"), &system_entry("device.add")).await;
    assert!(matches!(again, Err(StoreError::Conflict { entity: "device", .. })), "{again:?}");

    // A trackers' row has neither name nor location; a site moved keeps its new place.
    let tracker = Device { kind: DeviceKind::Tracker, name: None, location: None, ..device("T-1") };
    let tracker = db.store.insert_device(&tracker, &system_entry("device.add")).await.unwrap();
    assert_eq!(db.store.list_devices().await.unwrap()[1], tracker);
    let moved = Device { location: Some(fangkong_geo::LatLon::new(22.55, 114.06).unwrap()), ..stored };
    db.store.update_device(&moved, None).await.unwrap();
    assert_eq!(db.store.list_devices().await.unwrap()[0], moved);
    let revoked = Device { revoked_at: Some(T0.plus_seconds(5)), last_seen_at: Some(T0.plus_seconds(4)), ..moved };
    db.store.update_device(&revoked, Some(system_entry("device.revoke").into())).await.unwrap();
    assert_eq!(db.store.list_devices().await.unwrap(), vec![revoked.clone(), tracker]);
    // A touch moves only the last-seen time, and only forward.
    db.store.touch_device(revoked.id, T0.plus_seconds(9)).await.unwrap();
    db.store.touch_device(revoked.id, T0.plus_seconds(2)).await.unwrap();
    let touched = db.store.list_devices().await.unwrap().remove(0);
    assert_eq!(touched, Device { last_seen_at: Some(T0.plus_seconds(9)), ..revoked });
}
