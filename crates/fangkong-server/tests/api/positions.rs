//! Trackers over the OsmAnd protocol and MQTT, into the live index, the history and the
//! positions API.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use fangkong_core::auth::{DeviceKind, Role};
use fangkong_engine::{Caller, NewDevice};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::support::{FUTIAN, LUOHU, T0_MILLIS, TestServer};

async fn tracker(server: &TestServer, unique_id: &str, jurisdiction: &str) {
    let new = NewDevice {
        unique_id: unique_id.into(),
        kind: DeviceKind::Tracker,
        unit: Some(format!("巡逻{unique_id}")),
        jurisdiction: jurisdiction.into(),
        name: None,
        location: None,
    };
    server.engine.add_device(&Caller::system("test"), new).await.unwrap();
}

/// A request to the OsmAnd listener: status, `x-fangkong-refused`, body text.
async fn osmand(
    server: &TestServer,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, Option<String>, String) {
    let app = fangkong_server::osmand::router(server.engine.clone());
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = app.oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = response.status();
    let refused = response.headers().get("x-fangkong-refused").map(|v| v.to_str().unwrap().to_string());
    let text = String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned();
    (status, refused, text)
}

fn seconds(s: i64) -> i64 {
    T0_MILLIS / 1000 + s
}

#[tokio::test]
async fn osmand_reports_in_every_form_reach_the_live_index_and_the_history() {
    let server = TestServer::start().await;
    tracker(&server, "T1", FUTIAN).await;
    tracker(&server, "T2", FUTIAN).await;
    tracker(&server, "T3", FUTIAN).await;
    server.clock.set(fangkong_core::time::Timestamp::from_millis(T0_MILLIS + 3_600_000));

    let query = format!("/?id=T1&lat=22.5431&lon=114.0579&timestamp={}&speed=10&bearing=90&batt=80", seconds(0));
    assert_eq!(osmand(&server, Method::GET, &query, None, "").await.0, StatusCode::OK);
    let form = format!("deviceid=T2&location=22.55,114.06&timestamp={}", seconds(5));
    let (status, _, _) = osmand(&server, Method::POST, "/", Some("application/x-www-form-urlencoded"), &form).await;
    assert_eq!(status, StatusCode::OK);
    let json = serde_json::json!({"device_id": "T3", "location": {"timestamp": "2025-11-28T00:00:10Z",
        "coords": {"latitude": 22.56, "longitude": 114.07, "speed": 1.5}, "battery": {"level": 0.5}}});
    let (status, _, _) = osmand(&server, Method::POST, "/any/path", Some("application/json"), &json.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    // The same fix again: taken (200) but refused as a duplicate, and said so.
    let (status, refused, _) = osmand(&server, Method::GET, &query, None, "").await;
    assert_eq!((status, refused.as_deref()), (StatusCode::OK, Some("duplicate")));

    let token = server.signed_in("disp", Role::Dispatcher, FUTIAN).await;
    let reply = server.get_as(&token, "/api/v1/positions").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let live = reply.json();
    let devices: Vec<&str> = live.as_array().unwrap().iter().map(|p| p["device"].as_str().unwrap()).collect();
    assert_eq!(devices, ["T1", "T2", "T3"]);
    assert_eq!(live[0]["fix"]["speed_kmh"], 18.5, "10 knots");
    assert_eq!(live[0]["fix"]["battery_pct"], 80.0);
    assert_eq!(live[0]["district"], FUTIAN);
    assert_eq!(live[0]["unit"], "巡逻T1");
    assert_eq!(live[2]["fix"]["battery_pct"], 50.0);

    // The history: poll until the writer has stored the fixes.
    let mut fixes = serde_json::Value::Null;
    for _ in 0..100 {
        let reply =
            server.get_as(&token, "/api/v1/devices/T1/track?from=2025-11-27T00:00:00Z&to=2025-11-29T00:00:00Z").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        fixes = reply.json()["fixes"].clone();
        if fixes.as_array().is_some_and(|f| !f.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fixes.as_array().unwrap().len(), 1);
    assert_eq!(fixes[0]["fixed_at"], "2025-11-28T00:00:00Z");
    assert_eq!(fixes[0]["course"], 90.0);
    let refused = server.get_as(&token, "/api/v1/devices/T1/refused").await;
    assert_eq!(refused.json()[0]["reason"], "duplicate", "{}", refused.text);
}

#[tokio::test]
async fn bad_reports_and_unknown_devices_are_refused_and_the_listener_carries_on() {
    let server = TestServer::start().await;
    tracker(&server, "T1", FUTIAN).await;
    let alarm = NewDevice {
        unique_id: "A1".into(),
        kind: DeviceKind::AlarmPoint,
        unit: None,
        jurisdiction: FUTIAN.into(),
        name: None,
        location: None,
    };
    server.engine.add_device(&Caller::system("test"), alarm).await.unwrap();
    for (uri, field) in [
        ("/?id=T1&lat=north&lon=114", "lat"),
        ("/?id=T1&lat=22.5", "lat"),
        ("/?lat=22.5&lon=114", "id"),
        ("/?id=T1&lat=22.5&lon=114&timestamp=someday", "timestamp"),
        ("/?id=T1&lat=22.5&lon=114&speed=fast", "speed"),
        ("/", "id"),
    ] {
        let (status, _, text) = osmand(&server, Method::GET, uri, None, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(text.starts_with(&format!("{field}:")), "{uri}: {text}");
    }
    let (status, _, text) = osmand(&server, Method::POST, "/", Some("application/json"), "{\"device_id\":").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.starts_with("body: not JSON"), "{text}");
    let (status, _, text) = osmand(&server, Method::GET, "/?id=stranger&lat=22.5&lon=114", None, "").await;
    assert_eq!((status, text.trim()), (StatusCode::FORBIDDEN, "unknown device stranger"));
    let (status, _, _) = osmand(&server, Method::GET, "/?id=A1&lat=22.5&lon=114", None, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an alarm point is not a tracker");
    server.engine.revoke_device(&Caller::system("test"), "T1").await.unwrap();
    let (status, _, text) = osmand(&server, Method::GET, "/?id=T1&lat=22.5&lon=114", None, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    // After all that, a good report from another tracker still goes through.
    tracker(&server, "T2", FUTIAN).await;
    assert_eq!(osmand(&server, Method::GET, "/?id=T2&lat=22.55&lon=114.05", None, "").await.0, StatusCode::OK);
    assert_eq!(server.engine.avl_stats().accepted, 1);
    assert_eq!(server.engine.avl_stats().unknown_device, 1);
}

#[tokio::test]
async fn positions_are_seen_inside_the_callers_jurisdiction_only() {
    let server = TestServer::start().await;
    tracker(&server, "F1", FUTIAN).await;
    tracker(&server, "L1", LUOHU).await;
    assert_eq!(osmand(&server, Method::GET, "/?id=F1&lat=22.55&lon=114.05", None, "").await.0, StatusCode::OK);
    assert_eq!(osmand(&server, Method::GET, "/?id=L1&lat=22.55&lon=114.15", None, "").await.0, StatusCode::OK);
    let futian = server.signed_in("cmd.futian", Role::Commander, FUTIAN).await;
    let seen = server.get_as(&futian, "/api/v1/positions").await.json();
    assert_eq!(seen.as_array().unwrap().len(), 1);
    assert_eq!(seen[0]["device"], "F1");
    server
        .get_as(&futian, "/api/v1/devices/L1/track")
        .await
        .assert_error(StatusCode::FORBIDDEN, "outside_jurisdiction");
    server.get_as(&futian, "/api/v1/devices/nope/track").await.assert_error(StatusCode::NOT_FOUND, "device_not_found");
    server
        .get_as(&futian, "/api/v1/devices/F1/track?from=yesterday")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    server
        .get_as(&futian, "/api/v1/devices/F1/track?limit=0")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    let clerk = server.signed_in("clerk", Role::HotelClerk, FUTIAN).await;
    server.get_as(&clerk, "/api/v1/positions").await.assert_error(StatusCode::FORBIDDEN, "forbidden");
}

/// Publishes to the real broker (Mosquitto on 127.0.0.1:1883, or `FANGKONG_TEST_MQTT_URL`)
/// and waits for the fix in the live index and the history. Without a broker the test says
/// it did not run — an error under CI=true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_published_over_mqtt_reaches_the_live_index_and_the_history() {
    let url = std::env::var("FANGKONG_TEST_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into());
    let fangkong_server::mqtt::Broker { host, port, .. } = fangkong_server::mqtt::parse_url(&url).unwrap();
    if tokio::net::TcpStream::connect((host.as_str(), port)).await.is_err() {
        assert!(std::env::var("CI").is_err(), "CI=true but no MQTT broker at {url}");
        eprintln!("note: no MQTT broker at {url}; this MQTT test did not run");
        return;
    }
    let server = TestServer::start().await;
    tracker(&server, "V100", FUTIAN).await;
    let topic_root = format!("fangkong-test/{}/{}", std::process::id(), T0_MILLIS);
    let counters = Arc::new(fangkong_server::mqtt::MqttCounters::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let options = fangkong_server::mqtt::MqttOptions {
        url: url.clone(),
        topic: format!("{topic_root}/#"),
        client_id: format!("fangkong-test-{}", std::process::id()),
    };
    let subscriber =
        tokio::spawn(fangkong_server::mqtt::run(server.engine.clone(), options, counters.clone(), stopped));

    // A publisher of our own, once the subscriber is connected.
    let mut publisher_options =
        rumqttc::MqttOptions::new(format!("fangkong-test-pub-{}", std::process::id()), host, port);
    publisher_options.set_keep_alive(Duration::from_secs(5));
    let (publisher, mut publisher_events) = rumqttc::AsyncClient::new(publisher_options, 16);
    tokio::spawn(async move { while publisher_events.poll().await.is_ok() {} });
    for _ in 0..100 {
        if counters.connected.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The device named by the topic's last level; speed in knots, as OsmAnd.
    let payload = serde_json::json!({"lat": 22.5431, "lon": 114.0579, "timestamp": seconds(0), "speed": 20});
    let mut found = None;
    for _ in 0..100 {
        publisher
            .publish(format!("{topic_root}/V100"), rumqttc::QoS::AtLeastOnce, false, payload.to_string())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        found = server.engine.live_positions(&Caller::system("test"), None).await.unwrap().into_iter().next();
        if found.is_some() {
            break;
        }
    }
    let live = found.expect("the fix reached the live index");
    assert_eq!(live.unique_id, "V100");
    assert_eq!(live.fix.point.lat(), 22.5431);
    let mut track = Vec::new();
    for _ in 0..100 {
        let to = fangkong_core::time::Timestamp::from_millis(T0_MILLIS + 60_000);
        track = server
            .engine
            .track(&Caller::system("test"), "V100", fangkong_core::time::Timestamp::from_millis(T0_MILLIS), to, 10)
            .await
            .unwrap();
        if !track.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(track.len(), 1, "stored once, however often it was published");
    // A bad message is counted, not fatal.
    publisher.publish(format!("{topic_root}/V100"), rumqttc::QoS::AtLeastOnce, false, "not json").await.unwrap();
    for _ in 0..100 {
        if counters.bad.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counters.bad.load(std::sync::atomic::Ordering::Relaxed), 1);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), subscriber).await.unwrap().unwrap();
}

/// The OsmAnd listener on a port of its own with `limits`; its address.
async fn osmand_listener(server: &TestServer, limits: fangkong_server::listener::Limits) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let guarded = fangkong_server::listener::GuardedListener::new(listener, limits);
    tokio::spawn(axum::serve(guarded, fangkong_server::osmand::router(server.engine.clone())).into_future());
    addr
}

/// Sends `bytes` one a second until the server closes the connection; how long that took.
async fn trickle(addr: std::net::SocketAddr, bytes: &[u8]) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    for byte in bytes.iter().cycle() {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        let mut answer = [0u8; 512];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut answer)).await {
            Ok(Ok(0) | Err(_)) => break, // closed
            Ok(Ok(_)) => {}              // an answer (e.g. 408); wait for the close
            Err(_) => {}                 // a second passed
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the connection is still open after 20 s");
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osmand_connections_that_trickle_bytes_are_closed_at_the_deadline() {
    let server = TestServer::start().await;
    let deadline = Duration::from_secs(3);
    let limits = fangkong_server::listener::Limits { max_connections: 16, request_deadline: deadline };
    let addr = osmand_listener(&server, limits).await;
    // Headers a byte a second, and a body a byte a second after complete headers.
    let headers =
        trickle(addr, b"GET /?id=T1&lat=22.5&lon=114.05 HTTP/1.1\r\nhost: t\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaa");
    let body_head = b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 1000\r\n\r\n";
    let body = async {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(body_head).await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        loop {
            if stream.write_all(b"i").await.is_err() {
                break;
            }
            use tokio::io::AsyncReadExt;
            let mut chunk = [0u8; 512];
            match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut chunk)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the connection is still open after 20 s");
        }
        started.elapsed()
    };
    let (headers, body) = tokio::join!(headers, body);
    for (what, took) in [("headers", headers), ("body", body)] {
        assert!(took <= deadline + Duration::from_secs(2), "{what}: closed after {took:?}");
    }
    // A prompt tracker is served as before, and may keep its connection between reports.
    tracker(&server, "T1", FUTIAN).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    for n in 0..2 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let at = (T0_MILLIS / 1000) + n;
        let request = format!("GET /?id=T1&lat=22.55&lon=114.05&timestamp={at} HTTP/1.1\r\nhost: t\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = [0u8; 512];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&answer[..n]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_osmand_listener_serves_a_bounded_number_of_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    tracker(&server, "T1", FUTIAN).await;
    let limits = fangkong_server::listener::Limits { max_connections: 2, request_deadline: Duration::from_secs(30) };
    let addr = osmand_listener(&server, limits).await;
    let idle_one = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _idle_two = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A third connection is not served while two are open…
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET /?id=T1&lat=22.55&lon=114.05&timestamp={} HTTP/1.1\r\nhost: t\r\n\r\n", T0_MILLIS / 1000);
    third.write_all(request.as_bytes()).await.unwrap();
    let mut answer = [0u8; 512];
    let waiting = tokio::time::timeout(Duration::from_millis(700), third.read(&mut answer)).await;
    assert!(waiting.is_err(), "served beyond the limit");
    // …and is once one of them closes.
    drop(idle_one);
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut answer)).await.unwrap().unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&answer[..n]));
}
