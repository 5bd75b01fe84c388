//! The audit trail: chained in commit order under concurrency, queried by auditors,
//! protected by the database against updates and unsealed deletes, and purged with a seal.

use std::sync::Arc;

use fangkong_core::audit::{AuditEntry, AuditRecord, ChainVerifier, Outcome};
use fangkong_core::auth::Actor;
use fangkong_core::time::Timestamp;
use fangkong_store::{AuditQuery, Store};

use crate::support::{AUDIT_KEY, TestDb};

conformance!(
    concurrent_appends_form_one_unbroken_chain,
    auditors_query_newest_first_with_filters_and_a_cursor,
    the_database_refuses_updates_and_unsealed_deletes,
    a_purge_seals_what_it_removes_and_the_chain_still_verifies,
    records_appended_together_are_consecutive_and_chained,
);

const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

fn entry(n: i64, outcome: Outcome) -> AuditEntry {
    let mut entry = AuditEntry::new(T0.plus_seconds(n), &Actor::Anonymous, "auth.login", outcome);
    entry.actor_name = format!("user{}", n % 3);
    entry.ip = Some("192.0.2.7".into());
    entry
}

async fn all_records(store: &Store) -> Vec<AuditRecord> {
    let mut records = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_page(after, 50).await.unwrap();
        let Some(last) = page.last() else { return records };
        after = last.seq;
        records.extend(page);
    }
}

async fn verify(store: &Store) -> Result<u64, fangkong_core::audit::Broken> {
    let seal = store.latest_audit_seal().await.unwrap();
    let mut verifier = ChainVerifier::new(&AUDIT_KEY, seal.as_ref())?;
    for record in all_records(store).await {
        verifier.check(&record)?;
    }
    let head = store.audit_head().await.unwrap();
    verifier.finish(head.seq, &head.hash, &head.tag)?;
    Ok(verifier.checked())
}

async fn concurrent_appends_form_one_unbroken_chain(db: &TestDb) {
    let store: Arc<Store> = db.store.clone();
    let tasks: Vec<_> = (0..120)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.append_audit(&entry(n, Outcome::Failed)).await.unwrap() })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap().seq);
    }
    seqs.sort();
    assert_eq!(seqs, (1..=120).collect::<Vec<_>>(), "every append got its own number");
    assert_eq!(verify(&store).await, Ok(120));
    let head = store.audit_head().await.unwrap();
    assert_eq!(head.seq, 120);
    assert_eq!(all_records(&store).await.last().unwrap().hash, head.hash);
}

async fn auditors_query_newest_first_with_filters_and_a_cursor(db: &TestDb) {
    for n in 0..10 {
        let outcome = if n % 2 == 0 { Outcome::Failed } else { Outcome::Allowed };
        db.store.append_audit(&entry(n, outcome)).await.unwrap();
    }
    let query = |q: AuditQuery| {
        let store = db.store.clone();
        async move { store.audit_records(&AuditQuery { limit: 100, ..q }).await.unwrap() }
    };
    let all = query(AuditQuery::default()).await;
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=10).rev().collect::<Vec<_>>());

    let failed = query(AuditQuery { outcome: Some(Outcome::Failed), ..Default::default() }).await;
    assert_eq!(failed.len(), 5);
    let user1 = query(AuditQuery { actor_name: Some("user1".into()), ..Default::default() }).await;
    assert_eq!(user1.iter().map(|r| r.seq).collect::<Vec<_>>(), [8, 5, 2]);
    let window =
        query(AuditQuery { from: Some(T0.plus_seconds(3)), to: Some(T0.plus_seconds(6)), ..Default::default() }).await;
    assert_eq!(window.iter().map(|r| r.seq).collect::<Vec<_>>(), [6, 5, 4]);
    let page =
        db.store.audit_records(&AuditQuery { before_seq: Some(8), limit: 3, ..Default::default() }).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [7, 6, 5]);
    assert_eq!(all[9].entry, entry(0, Outcome::Failed), "fields round-trip");
}

async fn the_database_refuses_updates_and_unsealed_deletes(db: &TestDb) {
    db.store.append_audit(&entry(1, Outcome::Failed)).await.unwrap();
    for sql in ["UPDATE audit_log SET actor_name = 'x' WHERE seq = 1", "DELETE FROM audit_log WHERE seq = 1"] {
        let refused = match db.backend() {
            fangkong_store::Backend::Sqlite => {
                let path = db.url.strip_prefix("sqlite://").unwrap();
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch(sql).is_err()
            }
            fangkong_store::Backend::Postgres => {
                let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                client.batch_execute(sql).await.is_err()
            }
        };
        assert!(refused, "{sql} must be refused by the database");
    }
    assert_eq!(verify(&db.store).await, Ok(1));
}

async fn a_purge_seals_what_it_removes_and_the_chain_still_verifies(db: &TestDb) {
    for n in 0..10 {
        db.store.append_audit(&entry(n, Outcome::Failed)).await.unwrap();
    }
    let purge = AuditEntry::new(
        T0.plus_seconds(100),
        &Actor::System { name: "retention".into() },
        "audit.purge",
        Outcome::Allowed,
    );
    // Records at T0+0s … T0+5s are older than the cut-off at T0+6s.
    let seal = db.store.purge_audit(T0.plus_seconds(6), T0.plus_seconds(100), &purge).await.unwrap().unwrap();
    assert_eq!((seal.through_seq, seal.purged), (6, 6));
    let remaining = all_records(&db.store).await;
    assert_eq!(remaining.first().unwrap().seq, 7);
    let last = remaining.last().unwrap();
    assert_eq!((last.seq, last.entry.action.as_str()), (11, "audit.purge"));
    assert_eq!(last.entry.detail.as_deref(), Some("sealed through record 6; removed 6 records"));
    assert_eq!(verify(&db.store).await, Ok(5));

    // Nothing older left: a second purge at the same cut-off does nothing.
    assert_eq!(db.store.purge_audit(T0.plus_seconds(6), T0.plus_seconds(101), &purge).await.unwrap(), None);
    // A later purge seals again and counts only what it removed.
    let seal = db.store.purge_audit(T0.plus_seconds(9), T0.plus_seconds(102), &purge).await.unwrap().unwrap();
    assert_eq!((seal.through_seq, seal.purged), (9, 3));
    assert_eq!(verify(&db.store).await, Ok(3));
}

async fn records_appended_together_are_consecutive_and_chained(db: &TestDb) {
    let store = &db.store;
    store.append_audit(&entry(0, Outcome::Failed)).await.unwrap();
    let together = store.append_audits(&[entry(1, Outcome::Failed), entry(2, Outcome::Failed)]).await.unwrap();
    assert_eq!(together.len(), 2);
    assert_eq!(together[1].seq, together[0].seq + 1);
    assert_eq!(together[1].prev_hash, together[0].hash);
    let names: Vec<String> = all_records(store).await.into_iter().map(|r| r.entry.actor_name).collect();
    assert_eq!(names, ["user0", "user1", "user2"]);
    assert_eq!(verify(store).await.unwrap(), 3);
}
