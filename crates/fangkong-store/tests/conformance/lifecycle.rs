//! Opening, health and closing.

use fangkong_store::{Backend, Store, StoreError};

use crate::support::TestDb;

conformance!(ping_answers_until_closed, backend_is_reported);

async fn ping_answers_until_closed(db: &TestDb) {
    db.store.ping().await.unwrap();
    db.store.close().await;
    assert!(matches!(db.store.ping().await, Err(StoreError::Closed)));
    assert!(matches!(db.store.meta_set("k", "v").await, Err(StoreError::Closed)));
}

async fn backend_is_reported(db: &TestDb) {
    let expected = if db.url.starts_with("sqlite") { Backend::Sqlite } else { Backend::Postgres };
    assert_eq!(db.backend(), expected);
}

#[tokio::test]
async fn unreachable_databases_fail_fast_with_a_reason() {
    let started = std::time::Instant::now();
    let error = Store::open("postgres://nobody@127.0.0.1:1/none").await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("127.0.0.1"), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "fails fast");

    let error = Store::open("sqlite:///nonexistent-dir/for/sure/fk.db").await.unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");

    let error = Store::open("redis://localhost").await.unwrap_err();
    assert!(matches!(error, StoreError::InvalidUrl(_)), "{error:?}");
}
