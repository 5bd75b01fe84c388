use std::sync::Arc;

use fangkong_core::codes::{CodeError, CodeKind};
use fangkong_core::event::Event;
use fangkong_core::time::Timestamp;

use super::*;
use crate::clock::ManualClock;

const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

struct Fixture {
    engine: Arc<Engine>,
    clock: ManualClock,
    url: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fk.db").display());
    let clock = ManualClock::new(T0);
    let engine = start(&url, &clock).await;
    Fixture { engine: Arc::new(engine), clock, url, _dir: dir }
}

async fn start(url: &str, clock: &ManualClock) -> Engine {
    let store = Store::open(url).await.unwrap();
    Engine::start(store, Arc::new(InProcessBus::default()), Arc::new(clock.clone())).await.unwrap()
}

fn robbery_subtype() -> NewCode {
    NewCode {
        kind: CodeKind::IncidentType,
        code: "010303".into(),
        name_zh: "入户抢劫".into(),
        name_en: "Home-invasion robbery".into(),
        priority: Some(1),
    }
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
    let f = fixture().await;
    let types = f.engine.codes(CodeKind::IncidentType);
    assert_eq!(
        types.len(),
        defaults::default_codes(T0).unwrap().iter().filter(|e| e.kind == CodeKind::IncidentType).count()
    );
    let robbery = f.engine.code(CodeKind::IncidentType, "010301").unwrap();
    assert_eq!((robbery.name_zh.as_str(), robbery.priority, robbery.updated_at), ("抢劫", Some(1), T0));
    assert!(f.engine.code(CodeKind::IncidentSource, "110").is_some());
    assert_eq!(f.engine.schema_version() as usize, fangkong_store::migrate::SQLITE.len());
}

#[tokio::test]
async fn an_administrators_changes_survive_a_restart() {
    let f = fixture().await;
    let change = CodeChange { active: Some(false), ..CodeChange::default() };
    f.engine.update_code(CodeKind::Disposition, "mediated", change).await.unwrap();
    f.engine.shutdown().await;

    let restarted = start(&f.url, &f.clock).await;
    assert!(!restarted.code(CodeKind::Disposition, "mediated").unwrap().active, "defaults are not seeded twice");
    restarted.shutdown().await;
}

#[tokio::test]
async fn creating_a_code_stores_it_then_announces_it() {
    let f = fixture().await;
    let mut events = f.engine.bus().subscribe();
    f.clock.advance_millis(5_000);
    let created = f.engine.create_code(robbery_subtype()).await.unwrap();
    assert_eq!(created.updated_at, T0.plus_seconds(5));
    assert!(created.active);

    let envelope = events.recv().await.unwrap();
    assert_eq!(envelope.event, Event::CodeCreated(created.clone()));
    assert_eq!(envelope.at, created.updated_at);
    assert_eq!(f.engine.code(CodeKind::IncidentType, "010303"), Some(created.clone()));

    // The store has it: a restarted engine sees it.
    f.engine.shutdown().await;
    let restarted = start(&f.url, &f.clock).await;
    assert_eq!(restarted.code(CodeKind::IncidentType, "010303"), Some(created));
    restarted.shutdown().await;
}

#[tokio::test]
async fn refused_changes_store_nothing_and_announce_nothing() {
    let f = fixture().await;
    let mut events = f.engine.bus().subscribe();
    let before = f.engine.stats();

    let duplicate = NewCode { code: "010301".into(), ..robbery_subtype() };
    assert!(matches!(f.engine.create_code(duplicate).await, Err(EngineError::Code(CodeError::Duplicate { .. }))));
    let orphan = NewCode { code: "070101".into(), ..robbery_subtype() };
    assert!(matches!(f.engine.create_code(orphan).await, Err(EngineError::Code(CodeError::MissingParent { .. }))));
    let retire_parent = CodeChange { active: Some(false), ..CodeChange::default() };
    assert!(matches!(
        f.engine.update_code(CodeKind::IncidentType, "010300", retire_parent).await,
        Err(EngineError::Code(CodeError::ActiveChild { .. }))
    ));
    let unknown = f.engine.update_code(CodeKind::Disposition, "nope", CodeChange::default()).await;
    assert!(matches!(unknown, Err(EngineError::Code(CodeError::Unknown { .. }))));

    assert!(events.try_recv().is_err(), "no event for a refused change");
    assert_eq!(f.engine.stats(), before);
}

#[tokio::test]
async fn updates_keep_what_they_do_not_change() {
    let f = fixture().await;
    let change = CodeChange { name_en: Some("Robbery (armed or not)".into()), ..CodeChange::default() };
    let updated = f.engine.update_code(CodeKind::IncidentType, "010301", change).await.unwrap();
    assert_eq!(updated.name_en, "Robbery (armed or not)");
    assert_eq!((updated.name_zh.as_str(), updated.priority, updated.active), ("抢劫", Some(1), true));
}

#[tokio::test]
async fn shutdown_finishes_every_accepted_write() {
    let f = fixture().await;
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
            engine.create_code(new).await
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
    let restarted = start(&f.url, &f.clock).await;
    for entry in &acknowledged {
        assert_eq!(restarted.code(CodeKind::Disposition, &entry.code).as_ref(), Some(entry), "acknowledged ⇒ stored");
    }
    restarted.shutdown().await;
}
