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
