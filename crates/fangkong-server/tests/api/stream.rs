//! The live stream over a real WebSocket: a snapshot, throttled positions inside the
//! caller's jurisdiction, panic alarms, and refusals before the upgrade.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use fangkong_core::auth::{DeviceKind, Role};
use fangkong_core::avl::Fix;
use fangkong_engine::{Caller, NewDevice};
use fangkong_geo::LatLon;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{FUTIAN, LUOHU, T0_MILLIS, TestServer};

async fn tracker(server: &TestServer, unique_id: &str, jurisdiction: &str) {
    let new = NewDevice {
        unique_id: unique_id.into(),
        kind: DeviceKind::Tracker,
        unit: None,
        jurisdiction: jurisdiction.into(),
        name: None,
        location: None,
    };
    server.engine.add_device(&Caller::system("test"), new).await.unwrap();
}

fn fix(seconds: i64, lat: f64, lon: f64) -> Fix {
    Fix::new(fangkong_core::time::Timestamp::from_millis(T0_MILLIS + seconds * 1000), LatLon::new(lat, lon).unwrap())
}

/// The next JSON message, within two seconds.
async fn next<S>(socket: &mut S) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(2), socket.next()).await.expect("a message in time");
        match message.expect("the stream is open").unwrap() {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_carries_positions_and_alarms_inside_the_callers_jurisdiction() {
    let server = TestServer::start().await;
    tracker(&server, "F1", FUTIAN).await;
    tracker(&server, "L1", LUOHU).await;
    server.engine.ingest_fix("F1", fix(0, 22.55, 114.05)).await.unwrap();
    let token = server.signed_in("disp", Role::Dispatcher, FUTIAN).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = server.router.clone();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });
    let url = format!("ws://{address}/api/v1/stream?access_token={token}&throttle_ms=100");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    let snapshot = next(&mut socket).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["positions"].as_array().unwrap().len(), 1);
    assert_eq!(snapshot["positions"][0]["device"], "F1");

    // Three fixes of F1 within one throttle interval arrive as one message with the last;
    // L1 (in Luohu) never reaches a Futian dispatcher.
    for s in 1..=3 {
        server.engine.ingest_fix("F1", fix(s * 10, 22.55 + s as f64 * 0.0001, 114.05)).await.unwrap();
    }
    server.engine.ingest_fix("L1", fix(10, 22.55, 114.15)).await.unwrap();
    // The messages until F1's last fix: throttled (two at most: the three fixes came within
    // one interval, or straddled one tick), each tracker once per message, never L1.
    let mut messages = 0;
    loop {
        let update = next(&mut socket).await;
        assert_eq!(update["type"], "positions", "{update}");
        messages += 1;
        let positions = update["positions"].as_array().unwrap();
        assert_eq!(positions.len(), 1, "{update}");
        assert_eq!(positions[0]["device"], "F1");
        if positions[0]["fix"]["lat"] == 22.5503 {
            break;
        }
    }
    assert!(messages <= 2, "{messages} messages for three fixes");

    let mut sos = fix(40, 22.5504, 114.05);
    sos.alarm = Some("sos".into());
    server.engine.ingest_fix("F1", sos).await.unwrap();
    let mut alarm = next(&mut socket).await;
    while alarm["type"] == "positions" {
        alarm = next(&mut socket).await;
    }
    assert_eq!(alarm["type"], "panic", "{alarm}");
    assert_eq!((alarm["device"].as_str(), alarm["alarm"].as_str()), (Some("F1"), Some("sos")));
}

#[tokio::test]
async fn the_stream_refuses_before_upgrading() {
    let server = TestServer::start().await;
    server.get("/api/v1/stream").await.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    let clerk = server.signed_in("clerk", Role::HotelClerk, FUTIAN).await;
    server.get(&format!("/api/v1/stream?access_token={clerk}")).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let commander = server.signed_in("cmd", Role::Commander, FUTIAN).await;
    let reply = server.request(Method::GET, "/api/v1/stream").token(&commander).send().await;
    reply.assert_error(StatusCode::UPGRADE_REQUIRED, "upgrade_required");
    server
        .get_as(&commander, "/api/v1/stream?within=nowhere")
        .await
        .assert_error(StatusCode::NOT_FOUND, "jurisdiction_not_found");
}

/// Serves the router on a real listener; returns the address.
async fn listen(server: &TestServer) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = server.router.clone();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });
    address
}

/// The next message that is not a position update.
async fn next_event<S>(socket: &mut S) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = next(socket).await;
        if message["type"] != "positions" {
            return message;
        }
    }
}

async fn report(server: &TestServer, lat: f64, lon: f64) -> i64 {
    let new = fangkong_engine::NewIncident {
        source: "110".into(),
        type_code: "020100".into(),
        point: Some(LatLon::new(lat, lon).unwrap()),
        ..Default::default()
    };
    server.engine.create_incident(&Caller::system("test"), new).await.unwrap().incident.id
}

async fn stream_resume(db: fangkong_store::testing::TestDatabase) {
    let server = TestServer::on(db).await;
    let token = server.signed_in("disp", Role::Dispatcher, FUTIAN).await;
    crate::incidents::unit_at(
        &server,
        "CAR1",
        "PS440304-01",
        fangkong_core::forces::PatrolMode::Vehicle,
        22.55,
        114.05,
    )
    .await;
    let open = report(&server, 22.54, 114.05).await;
    let address = listen(&server).await;
    let url = format!("ws://{address}/api/v1/stream?access_token={token}");
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let snapshot = next(&mut socket).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["reload"], false);
    assert_eq!(snapshot["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(snapshot["incidents"][0]["id"], open);
    assert_eq!(snapshot["units"][0]["unit"], "CAR1");
    assert_eq!(snapshot["units"][0]["state"]["status"], "available");
    let epoch = snapshot["epoch"].as_str().unwrap().to_string();

    // Live: an incident in Futian arrives with its sequence number; one in Luohu does not.
    report(&server, 22.54, 114.15).await;
    let second = report(&server, 22.53, 114.06).await;
    let message = next_event(&mut socket).await;
    assert_eq!(
        (message["type"].as_str(), message["incident"]["id"].as_i64()),
        (Some("incident"), Some(second)),
        "{message}"
    );
    let seen = message["seq"].as_u64().unwrap();
    drop(socket);

    // While disconnected: the unit is sent and the incident changes, and a patrol officer
    // in Futian raises a panic alarm (one in Luohu too, which is not this board's).
    server.engine.assign_units(&Caller::system("test"), second, &["CAR1".into()]).await.unwrap();
    tracker(&server, "F9", FUTIAN).await;
    tracker(&server, "L9", LUOHU).await;
    for (device, lat, lon) in [("F9", 22.541, 114.05), ("L9", 22.55, 114.15)] {
        let mut sos = fix(50, lat, lon);
        sos.alarm = Some("sos".into());
        server.engine.ingest_fix(device, sos).await.unwrap();
    }
    server.engine.reactions_settled().await; // the alarms' incidents
    let resume = format!("{url}&resume_after={seen}&epoch={epoch}");
    let (mut socket, _) = tokio_tungstenite::connect_async(&resume).await.unwrap();
    let resumed = next(&mut socket).await;
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    let mut missed = Vec::new();
    for _ in 0..4 {
        missed.push(next_event(&mut socket).await);
    }
    let kinds: Vec<&str> = missed.iter().map(|m| m["type"].as_str().unwrap()).collect();
    // The assignment (incident, unit), then the alarm and the incident it became.
    assert_eq!(kinds, ["incident", "unit", "panic", "incident"], "{missed:?}");
    assert_eq!(missed[0]["incident"]["status"], "dispatched");
    assert_eq!(missed[1]["state"]["status"], "dispatched");
    assert!(missed[0]["seq"].as_u64().unwrap() > seen);
    assert_eq!((missed[2]["device"].as_str(), missed[2]["alarm"].as_str()), (Some("F9"), Some("sos")));
    assert!(missed[2]["seq"].as_u64().unwrap() > missed[1]["seq"].as_u64().unwrap());
    assert_eq!(missed[3]["incident"]["description"], "sos: panic alarm from F9", "{}", missed[3]);
    // Nothing of Luohu's alarm follows.
    let more = tokio::time::timeout(Duration::from_millis(500), next_event(&mut socket)).await;
    assert!(more.is_err(), "{more:?}");
    drop(socket);

    // Another epoch (a restarted server) cannot be resumed: a fresh snapshot says reload.
    let stale = format!("{url}&resume_after={seen}&epoch=0000");
    let (mut socket, _) = tokio_tungstenite::connect_async(&stale).await.unwrap();
    let reload = next(&mut socket).await;
    assert_eq!((reload["type"].as_str(), reload["reload"].as_bool()), (Some("snapshot"), Some(true)));
    assert_eq!(reload["incidents"].as_array().unwrap().len(), 3, "two reports and the alarm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_board_resumes_from_its_last_sequence_on_sqlite() {
    stream_resume(fangkong_store::testing::TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_board_resumes_from_its_last_sequence_on_postgres() {
    if let Some(db) = fangkong_store::testing::TestDatabase::postgres().await {
        stream_resume(db).await;
    }
}
