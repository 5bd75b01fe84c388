use fangkong_core::auth::Role;
use fangkong_core::codes::{CodeError, CodeKind};
use fangkong_core::event::Event;

use super::*;
use crate::test_support::{Fixture, T0, config, start};

fn robbery_subtype() -> NewCode {
    NewCode {
        kind: CodeKind::IncidentType,
        code: "010303".into(),
        name_zh: "入户抢劫".into(),
        name_en: "Home-invasion robbery".into(),
        priority: Some(1),
    }
}

fn system() -> Caller {
    Caller::system("test")
}

#[test]
fn the_built_in_code_table_is_valid() {
    let entries = defaults::default_codes(T0).unwrap();
    for kind in CodeKind::ALL {
        assert!(entries.iter().any(|e| e.kind == kind), "defaults cover {kind}");
    }
    // The categories named by synthetic-city.md are all present.
    for category in ["010000", "020000", "030000", "040000", "050000", "060000", "080000", "990000"] {
        assert!(entries.iter().any(|e| e.code == category), "category {category}");
    }
}

#[tokio::test]
async fn a_new_database_starts_with_the_default_code_tables() {
    let f = Fixture::bare().await;
    let types = f.engine.codes(&system(), CodeKind::IncidentType).await.unwrap();
    assert_eq!(
        types.len(),
        defaults::default_codes(T0).unwrap().iter().filter(|e| e.kind == CodeKind::IncidentType).count()
    );
    let robbery = f.engine.code_entry(CodeKind::IncidentType, "010301").unwrap();
    assert_eq!((robbery.name_zh.as_str(), robbery.priority, robbery.updated_at), ("抢劫", Some(1), T0));
    assert!(f.engine.code_entry(CodeKind::IncidentSource, "110").is_some());
    assert_eq!(f.engine.schema_version() as usize, fangkong_store::migrate::SQLITE.len());
    let seeding = f.audit().await.into_iter().find(|r| r.entry.action == "code.seed").expect("seeding is audited");
    assert_eq!(seeding.entry.actor_name, "defaults");
}

#[tokio::test]
async fn an_administrators_changes_survive_a_restart() {
    let f = Fixture::bare().await;
    let change = CodeChange { active: Some(false), ..CodeChange::default() };
    f.engine.update_code(&system(), CodeKind::Disposition, "mediated", change).await.unwrap();
    let restarted = f.restart().await;
    assert!(!restarted.code_entry(CodeKind::Disposition, "mediated").unwrap().active, "defaults are not seeded twice");
    restarted.shutdown().await;
}

#[tokio::test]
async fn creating_a_code_stores_it_audits_it_then_announces_it() {
    let f = Fixture::new().await;
    f.add_user("root", Role::Administrator, "440300").await;
    let admin = f.caller("root").await;
    let mut events = f.engine.bus().subscribe();
    f.clock.advance_millis(5_000);
    let created = f.engine.create_code(&admin, robbery_subtype()).await.unwrap();
    assert_eq!(created.updated_at, T0.plus_seconds(5));

    let envelope = events.recv().await.unwrap();
    assert_eq!(envelope.event, Event::CodeCreated(created.clone()));
    let record = f.audit().await.pop().unwrap();
    assert_eq!((record.entry.action.as_str(), record.entry.actor_name.as_str()), ("code.create", "root"));
    assert_eq!(record.entry.target_id.as_deref(), Some("incident_type/010303"));

    let restarted = f.restart().await;
    assert_eq!(restarted.code_entry(CodeKind::IncidentType, "010303"), Some(created));
    restarted.shutdown().await;
}

#[tokio::test]
async fn only_administrators_change_codes_and_refusals_are_audited() {
    let f = Fixture::new().await;
    f.add_user("analyst", Role::Analyst, "440300").await;
    let analyst = f.caller("analyst").await;
    let result = f.engine.create_code(&analyst, robbery_subtype()).await;
    assert!(matches!(result, Err(EngineError::Denied(_))), "{result:?}");
    let record = f.audit().await.pop().unwrap();
    assert_eq!(record.entry.outcome, fangkong_core::audit::Outcome::Denied);
    assert_eq!((record.entry.action.as_str(), record.entry.actor_name.as_str()), ("code.create", "analyst"));
    // Everyone may read them.
    assert!(!f.engine.codes(&analyst, CodeKind::Disposition).await.unwrap().is_empty());
}

#[tokio::test]
async fn refused_changes_store_nothing_and_announce_nothing() {
    let f = Fixture::bare().await;
    let mut events = f.engine.bus().subscribe();
    let before = f.engine.stats();
    let audit_before = f.audit().await.len();

    let duplicate = NewCode { code: "010301".into(), ..robbery_subtype() };
    assert!(matches!(
        f.engine.create_code(&system(), duplicate).await,
        Err(EngineError::Code(CodeError::Duplicate { .. }))
    ));
    let orphan = NewCode { code: "070101".into(), ..robbery_subtype() };
    assert!(matches!(
        f.engine.create_code(&system(), orphan).await,
        Err(EngineError::Code(CodeError::MissingParent { .. }))
    ));
    let retire_parent = CodeChange { active: Some(false), ..CodeChange::default() };
    assert!(matches!(
        f.engine.update_code(&system(), CodeKind::IncidentType, "010300", retire_parent).await,
        Err(EngineError::Code(CodeError::ActiveChild { .. }))
    ));
    let unknown = f.engine.update_code(&system(), CodeKind::Disposition, "nope", CodeChange::default()).await;
    assert!(matches!(unknown, Err(EngineError::Code(CodeError::Unknown { .. }))));

    assert!(events.try_recv().is_err(), "no event for a refused change");
    assert_eq!(f.engine.stats(), before);
    assert_eq!(f.audit().await.len(), audit_before, "nothing happened, so nothing is recorded");
}

#[tokio::test]
async fn updates_keep_what_they_do_not_change() {
    let f = Fixture::bare().await;
    let change = CodeChange { name_en: Some("Robbery (armed or not)".into()), ..CodeChange::default() };
    let updated = f.engine.update_code(&system(), CodeKind::IncidentType, "010301", change).await.unwrap();
    assert_eq!(updated.name_en, "Robbery (armed or not)");
    assert_eq!((updated.name_zh.as_str(), updated.priority, updated.active), ("抢劫", Some(1), true));
}

#[tokio::test]
async fn shutdown_finishes_every_accepted_write() {
    let f = Fixture::bare().await;
    let mut tasks = Vec::new();
    for n in 0..50 {
        let engine = f.engine.clone();
        tasks.push(tokio::spawn(async move {
            let new = NewCode {
                kind: CodeKind::Disposition,
                code: format!("extra_{n}"),
                name_zh: "其他".into(),
                name_en: "Other".into(),
                priority: None,
            };
            engine.create_code(&system(), new).await
        }));
    }
    tokio::task::yield_now().await;
    f.engine.shutdown().await;
    let mut acknowledged = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(entry) => acknowledged.push(entry),
            Err(EngineError::Store(StoreError::Closed)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(!acknowledged.is_empty(), "the write that reached the store before shutdown was finished");
    let restarted = start(&f.url, &f.clock, config(&f.keys)).await.unwrap();
    for entry in &acknowledged {
        assert_eq!(
            restarted.code_entry(CodeKind::Disposition, &entry.code).as_ref(),
            Some(entry),
            "acknowledged ⇒ stored"
        );
    }
    restarted.shutdown().await;
}

#[tokio::test]
async fn a_database_refuses_a_key_it_was_not_written_with() {
    let f = Fixture::bare().await;
    f.engine.shutdown().await;
    let other = crate::keys::KeyRing::generate();
    let result = start(&f.url, &f.clock, config(&other)).await;
    assert!(matches!(result, Err(EngineError::WrongKey { .. })), "{result:?}");
    let restarted = start(&f.url, &f.clock, config(&f.keys)).await.unwrap();
    restarted.shutdown().await;
}
