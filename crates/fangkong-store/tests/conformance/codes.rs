//! Code tables: round trip, typed conflicts, atomic batches.

use fangkong_core::codes::{CodeEntry, CodeKind};
use fangkong_core::time::Timestamp;
use fangkong_store::StoreError;

use crate::support::TestDb;

conformance!(
    codes_round_trip_every_field,
    duplicate_code_is_a_typed_conflict,
    failed_batch_leaves_no_row_behind,
    updating_a_missing_code_is_not_found,
    concurrent_writers_all_land,
    codes_survive_close_and_reopen,
);

fn entry(kind: CodeKind, code: &str) -> CodeEntry {
    CodeEntry {
        kind,
        code: code.to_string(),
        name_zh: format!("抢劫 {code}"),
        name_en: format!("Robbery {code}"),
        priority: kind.has_priority().then_some(2),
        active: true,
        updated_at: Timestamp::from_millis(1_764_288_000_123),
    }
}

async fn codes_round_trip_every_field(db: &TestDb) {
    let store = &db.store;
    assert!(store.list_codes().await.unwrap().is_empty(), "a fresh store has no codes");

    let category = entry(CodeKind::IncidentType, "010000");
    let source =
        CodeEntry { name_zh: "110报警".into(), name_en: "110 call".into(), ..entry(CodeKind::IncidentSource, "110") };
    let disposition = entry(CodeKind::Disposition, "resolved_on_scene");
    store.insert_code(&disposition).await.unwrap();
    store.insert_code(&category).await.unwrap();
    store.insert_code(&source).await.unwrap();

    assert_eq!(store.get_code(CodeKind::IncidentType, "010000").await.unwrap(), Some(category.clone()));
    assert_eq!(store.get_code(CodeKind::IncidentSource, "110").await.unwrap(), Some(source.clone()));
    assert_eq!(store.get_code(CodeKind::IncidentType, "020000").await.unwrap(), None);
    assert_eq!(store.get_code(CodeKind::Disposition, "010000").await.unwrap(), None, "kind is part of the key");

    // Ordered by kind name, then code.
    assert_eq!(store.list_codes().await.unwrap(), vec![disposition, source, category.clone()]);

    let retired = CodeEntry {
        name_zh: "刑事案件".into(),
        name_en: "Criminal".into(),
        priority: Some(1),
        active: false,
        updated_at: Timestamp::from_millis(1_764_288_999_000),
        ..category
    };
    store.update_code(&retired, None).await.unwrap();
    assert_eq!(store.get_code(CodeKind::IncidentType, "010000").await.unwrap(), Some(retired));
}

async fn duplicate_code_is_a_typed_conflict(db: &TestDb) {
    let first = entry(CodeKind::IncidentType, "010000");
    db.store.insert_code(&first).await.unwrap();
    let second = CodeEntry { name_en: "Another name".into(), ..first.clone() };
    match db.store.insert_code(&second).await {
        Err(StoreError::Conflict { entity: "code", key }) => assert_eq!(key, "incident_type/010000"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(db.store.get_code(CodeKind::IncidentType, "010000").await.unwrap(), Some(first), "first row unchanged");
}

async fn failed_batch_leaves_no_row_behind(db: &TestDb) {
    db.store.insert_code(&entry(CodeKind::IncidentType, "030000")).await.unwrap();
    let batch = [
        entry(CodeKind::IncidentType, "010000"),
        entry(CodeKind::IncidentType, "020000"),
        entry(CodeKind::IncidentType, "030000"), // already stored: the batch fails here
        entry(CodeKind::IncidentType, "040000"),
    ];
    let result = db.store.insert_codes(&batch, None).await;
    assert!(matches!(result, Err(StoreError::Conflict { .. })), "{result:?}");
    let codes: Vec<String> = db.store.list_codes().await.unwrap().into_iter().map(|e| e.code).collect();
    assert_eq!(codes, ["030000"], "the rows before the failure were rolled back");

    // The store is still healthy and the same batch without the duplicate goes in whole.
    db.store.insert_codes(&[batch[0].clone(), batch[1].clone(), batch[3].clone()], None).await.unwrap();
    assert_eq!(db.store.list_codes().await.unwrap().len(), 4);
}

async fn updating_a_missing_code_is_not_found(db: &TestDb) {
    let result = db.store.update_code(&entry(CodeKind::Disposition, "nope"), None).await;
    assert!(matches!(result, Err(StoreError::NotFound { entity: "code", .. })), "{result:?}");
    assert!(db.store.list_codes().await.unwrap().is_empty(), "an update never inserts");
}

async fn concurrent_writers_all_land(db: &TestDb) {
    // Many writers at once: on SQLite they share commits (group commit); on PostgreSQL
    // they use the pool. Either way each gets its own answer, and one writer's conflict
    // does not fail its neighbours.
    let store = db.store.clone();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        // Every tenth writer repeats an earlier code and must get a conflict.
        let n = if i % 10 == 9 { i - 1 } else { i };
        tasks.push(tokio::spawn(async move {
            let code = entry(CodeKind::Disposition, &format!("d{n:03}"));
            (i, store.insert_code(&code).await)
        }));
    }
    // Which of two writers of the same code wins is a race; that exactly one does is not.
    let mut outcomes: std::collections::BTreeMap<usize, (u32, u32)> = Default::default();
    for task in tasks {
        let (i, result) = task.await.unwrap();
        let n = if i % 10 == 9 { i - 1 } else { i };
        let (ok, conflict) = outcomes.entry(n).or_default();
        match result {
            Ok(()) => *ok += 1,
            Err(StoreError::Conflict { .. }) => *conflict += 1,
            other => panic!("writer {i}: {other:?}"),
        }
    }
    assert_eq!(outcomes.len(), 180);
    for (n, (ok, conflict)) in outcomes {
        assert_eq!(ok, 1, "code d{n:03} was stored exactly once");
        assert_eq!(conflict, u32::from(n % 10 == 8), "code d{n:03}: only its second writer conflicts");
    }
    assert_eq!(db.store.list_codes().await.unwrap().len(), 180);
}

async fn codes_survive_close_and_reopen(db: &TestDb) {
    let stored = entry(CodeKind::IncidentType, "080000");
    db.store.insert_code(&stored).await.unwrap();
    db.store.close().await;
    assert!(matches!(db.store.insert_code(&entry(CodeKind::IncidentType, "090000")).await, Err(StoreError::Closed)));
    assert!(matches!(db.store.list_codes().await, Err(StoreError::Closed)));

    let (reopened, report) = fangkong_store::Store::open_and_migrate(&db.url).await.unwrap();
    assert!(report.applied.is_empty(), "an existing database needs no migration");
    assert_eq!(reopened.list_codes().await.unwrap(), vec![stored]);
    reopened.close().await;
}
