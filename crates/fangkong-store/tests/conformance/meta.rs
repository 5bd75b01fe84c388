//! The meta key–value table.

use crate::support::TestDb;

conformance!(meta_values_round_trip_and_overwrite);

async fn meta_values_round_trip_and_overwrite(db: &TestDb) {
    assert_eq!(db.store.meta_get("created_at").await.unwrap(), None);
    db.store.meta_set("created_at", "1764288000000").await.unwrap();
    db.store.meta_set("city", "深圳").await.unwrap();
    assert_eq!(db.store.meta_get("created_at").await.unwrap().as_deref(), Some("1764288000000"));
    db.store.meta_set("created_at", "1").await.unwrap();
    assert_eq!(db.store.meta_get("created_at").await.unwrap().as_deref(), Some("1"));
    assert_eq!(db.store.meta_get("city").await.unwrap().as_deref(), Some("深圳"));
}
