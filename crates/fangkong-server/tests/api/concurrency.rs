//! Two servers on one database (optimistic concurrency): a unit is never sent to two
//! incidents, whichever server is asked. Neither server hears of the other's changes (no
//! bus between them here), so only the store's revision check keeps them apart.

use fangkong_core::forces::PatrolMode;
use fangkong_engine::{Caller, EngineError, NewIncident, StoreError};
use fangkong_geo::LatLon;
use fangkong_store::testing::TestDatabase;
use tokio::task::JoinSet;

use crate::incidents::unit_at;
use crate::support::{TestServer, start_engine};

async fn a_unit_is_sent_once_by_two_servers(db: TestDatabase) {
    let server = TestServer::on(db).await;
    unit_at(&server, "CAR1", "PS440304-01", PatrolMode::Vehicle, 22.55, 114.05).await;
    let system = Caller::system("test");
    let mut incidents = Vec::new();
    for i in 0..100 {
        let new = NewIncident {
            source: "110".into(),
            type_code: "020100".into(),
            point: Some(LatLon::new(22.53 + f64::from(i) * 0.0002, 114.05).unwrap()),
            ..NewIncident::default()
        };
        incidents.push(server.engine.create_incident(&system, new).await.unwrap().incident.id);
    }
    // The second server starts on the same database: it loads the free unit and the open
    // incidents from the store.
    let other = start_engine(&server.db.url, &server.clock, &server.keys).await;
    let engines = [server.engine.clone(), other.clone()];
    let mut attempts = JoinSet::new();
    for (n, id) in incidents.iter().copied().enumerate() {
        let engine = engines[n % 2].clone();
        attempts.spawn(async move {
            let sent = engine.assign_units(&Caller::system("race"), id, &["CAR1".into()]).await;
            (id, sent.map(|_| ()))
        });
    }
    let (mut sent, mut stale, mut busy) = (Vec::new(), 0, 0);
    while let Some(attempt) = attempts.join_next().await {
        match attempt.unwrap() {
            (id, Ok(())) => sent.push(id),
            (_, Err(EngineError::Store(StoreError::Stale { entity: "unit" | "incident", .. }))) => stale += 1,
            // The server that already holds the unit as busy refuses without writing.
            (_, Err(EngineError::Dispatch(_))) => busy += 1,
            (_, Err(other)) => panic!("unexpected refusal: {other}"),
        }
    }
    assert_eq!(sent.len(), 1, "exactly one attempt sends the unit: {sent:?}");
    // The server that lost had read the unit as free: its first attempt met the store's
    // revision check.
    assert!(stale >= 1, "the losing server's write was refused as stale ({busy} busy)");
    assert_eq!(sent.len() + stale + busy, 100);

    // The record agrees: a third server started afresh sees the unit on the one incident.
    let fresh = start_engine(&server.db.url, &server.clock, &server.keys).await;
    let board = fresh.unit_board(&system).await.unwrap();
    let car = board.iter().find(|u| u.unit.code == "CAR1").unwrap();
    assert_eq!(car.state.incident, Some(sent[0]));
    let open = fresh.open_incidents(&system, None).await.unwrap();
    let holding: Vec<i64> = open.iter().filter(|i| !i.assignments.is_empty()).map(|i| i.id).collect();
    assert_eq!(holding, sent);
    // The losing server took the stored state when it was refused: it now says busy too.
    for engine in &engines {
        let board = engine.unit_board(&system).await.unwrap();
        assert_eq!(board.iter().find(|u| u.unit.code == "CAR1").unwrap().state.incident, Some(sent[0]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgres_never_send_one_unit_twice() {
    if let Some(db) = TestDatabase::postgres().await {
        a_unit_is_sent_once_by_two_servers(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_sqlite_never_send_one_unit_twice() {
    a_unit_is_sent_once_by_two_servers(TestDatabase::sqlite()).await;
}
