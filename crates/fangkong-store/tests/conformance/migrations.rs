//! Migrations: applied once, in order, and never silently over an edited history.

use fangkong_store::{Store, StoreError, migrate};

use crate::support::TestDb;

conformance!(
    a_fresh_database_is_at_the_latest_version,
    migrating_twice_changes_nothing,
    an_edited_migration_is_refused_on_open,
    a_database_from_a_newer_binary_is_refused_on_open,
);

async fn a_fresh_database_is_at_the_latest_version(db: &TestDb) {
    assert!(db.store.pending_migrations().await.unwrap().is_empty());
    let (store, report) = Store::open_and_migrate(&db.url).await.unwrap();
    assert_eq!(report.version as usize, migrate::SQLITE.len());
    store.close().await;
}

async fn migrating_twice_changes_nothing(db: &TestDb) {
    let first = db.store.migrate().await.unwrap();
    let second = db.store.migrate().await.unwrap();
    assert!(first.applied.is_empty() && second.applied.is_empty());
    assert_eq!(first.version, second.version);
}

async fn an_edited_migration_is_refused_on_open(db: &TestDb) {
    db.execute_raw("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1").await;
    let store = Store::open(&db.url).await.unwrap();
    match store.migrate().await {
        Err(StoreError::Migration(message)) => assert!(message.contains("0001_foundation"), "{message}"),
        other => panic!("expected a migration error, got {other:?}"),
    }
    assert!(store.pending_migrations().await.is_err(), "the read-only check refuses it too");
    store.close().await;
}

async fn a_database_from_a_newer_binary_is_refused_on_open(db: &TestDb) {
    db.execute_raw(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'future', 'x', 0)",
    )
    .await;
    let store = Store::open(&db.url).await.unwrap();
    let error = store.migrate().await.unwrap_err().to_string();
    assert!(error.contains("9999") && error.contains("newer"), "{error}");
    store.close().await;
}
