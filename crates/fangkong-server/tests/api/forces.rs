//! The force registry over HTTP: a beat, a unit, a roster, the coverage report, members.

use axum::http::{Method, StatusCode};
use fangkong_core::auth::{DeviceKind, Role};
use fangkong_core::avl::Fix;
use fangkong_engine::{Caller, NewDevice};
use fangkong_geo::LatLon;
use serde_json::json;

use crate::support::{FUTIAN, T0_MILLIS, TestServer};

#[tokio::test]
async fn a_commander_sets_up_a_beat_a_unit_and_a_roster_and_reads_the_coverage() {
    let server = TestServer::start().await;
    let commander = server.signed_in("cmd", Role::Commander, FUTIAN).await;
    let post = |path: &'static str, body: serde_json::Value| {
        let token = commander.clone();
        let server = &server;
        async move { server.request(Method::POST, path).token(&token).json(body).send().await }
    };
    let square = json!({"type": "Polygon", "coordinates": [[[114.0, 22.5], [114.01, 22.5], [114.01, 22.51], [114.0, 22.51], [114.0, 22.5]]]});
    let reply = post(
        "/api/v1/beats",
        json!({"code": "B1", "station": "PS440304-01", "name": "园岭一巡区", "geometry": square}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!((reply.json()["area_km2"].as_f64().unwrap() - 1.14).abs() < 0.02, "{}", reply.text);
    let clockwise = json!({"type": "Polygon", "coordinates": [[[114.0, 22.5], [114.0, 22.51], [114.01, 22.51], [114.01, 22.5], [114.0, 22.5]]]});
    let reply =
        post("/api/v1/beats", json!({"code": "B2", "station": "PS440304-01", "name": "反", "geometry": clockwise}))
            .await;
    let message = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert!(message.contains("wound clockwise"), "{message}");

    let unit = json!({"code": "U1", "call_sign": "园岭巡01", "station": "PS440304-01", "category": "police", "mode": "vehicle",
        "equipment": ["警车", "对讲机"], "beat": "B1"});
    assert_eq!(post("/api/v1/units", unit.clone()).await.status, StatusCode::OK);
    let reply = post(
        "/api/v1/units",
        json!({"code": "U2", "call_sign": "x", "station": "PS440304-01", "category": "police", "mode": "helicopter"}),
    )
    .await;
    assert!(reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").starts_with("mode:"));
    let units = server.get_as(&commander, "/api/v1/units").await.json();
    let mut expected = unit.clone();
    expected["devices"] = json!([]);
    expected["capabilities"] = json!([]);
    assert_eq!(units[0], expected);

    let shift = json!({"shifts": [{"unit": "U1", "beat": "B1", "starts_at": "2025-11-28T00:00:00Z", "ends_at": "2025-11-28T01:00:00Z"}]});
    let reply = post("/api/v1/roster", shift.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    post("/api/v1/roster", shift).await.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let roster =
        server.get_as(&commander, "/api/v1/roster?from=2025-11-28T00:00:00Z&to=2025-11-29T00:00:00Z").await.json();
    assert_eq!(roster.as_array().unwrap().len(), 1);

    // The unit's tracker inside the beat for the first half hour, then gone.
    let device = NewDevice {
        unique_id: "T-U1".into(),
        kind: DeviceKind::Tracker,
        unit: Some("U1".into()),
        jurisdiction: FUTIAN.into(),
        name: None,
        location: None,
    };
    server.engine.add_device(&Caller::system("test"), device).await.unwrap();
    // The clock at 00:29:30: the last fix is not in the future, the session not idle.
    server.clock.set(fangkong_core::time::Timestamp::from_millis(T0_MILLIS + 29 * 60_000 + 30_000));
    for minute in 0..30 {
        let fix = Fix::new(
            fangkong_core::time::Timestamp::from_millis(T0_MILLIS + minute * 60_000),
            LatLon::new(22.505, 114.005).unwrap(),
        );
        server.engine.ingest_fix("T-U1", fix).await.unwrap();
    }
    while server.engine.avl_stats().stored < 30 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Read at 00:40, when the last fix's five minutes are past (minutes still to come are
    // never counted as covered), signed in afresh (the first session is idle by then).
    server.clock.set(fangkong_core::time::Timestamp::from_millis(T0_MILLIS + 40 * 60_000));
    let commander = server.token("cmd").await;
    let reply = server
        .get_as(&commander, "/api/v1/coverage?within=440304&from=2025-11-28T00:00:00Z&to=2025-11-28T02:00:00Z")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let report = reply.json();
    let beat = &report["beats"][0];
    // Fixes for minutes 0–29; the last (at 00:29:00) stands five minutes, so the minutes
    // whose midpoints are 00:30:30 … 00:33:30 count too: 34 covered of 60 rostered.
    assert_eq!((beat["covered_minutes"].as_u64(), beat["rostered_minutes"].as_u64()), (Some(34), Some(60)), "{report}");
    assert_eq!(beat["blank_hours"], json!(["2025-11-28T01:00:00Z"]));
    assert_eq!(report["blank_beats"], json!([]));

    // A shift can be taken off the roster again.
    let id = roster[0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/roster/{id}");
    let reply = server.request(Method::DELETE, &path).token(&commander).send().await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let roster = server.get_as(&commander, "/api/v1/roster?from=2025-11-28T00:00:00Z&to=2025-11-29T00:00:00Z").await;
    assert_eq!(roster.json(), json!([]));
    server
        .request(Method::DELETE, &path)
        .token(&commander)
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn members_are_personal_data() {
    let server = TestServer::start().await;
    let admin = server.signed_in("admin", Role::Administrator, FUTIAN).await;
    let body = json!({"category": "security_guard", "station": "PS440304-01", "name": "陈静", "id_number": "440524188001010014", "phone": "13800138000"});
    let reply = server.request(Method::POST, "/api/v1/members").token(&admin).json(body.clone()).send().await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    server
        .request(Method::POST, "/api/v1/members")
        .token(&admin)
        .json(body)
        .send()
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    let bad = json!({"category": "volunteer", "station": "PS440304-01", "name": "x", "id_number": "123"});
    server
        .request(Method::POST, "/api/v1/members")
        .token(&admin)
        .json(bad)
        .send()
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    server.get_as(&admin, "/api/v1/members").await.assert_error(StatusCode::BAD_REQUEST, "purpose_required");
    let reply = server.request(Method::GET, "/api/v1/members").token(&admin).purpose("排班核对").send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()[0]["name"], "陈静");
    assert_eq!(reply.json()[0]["id_number"], "440524188001010014");
    assert_eq!(reply.json()[0]["active"], true);

    // A member who leaves stays on record, inactive.
    let id = reply.json()[0]["id"].as_i64().unwrap();
    let left = server
        .request(Method::PATCH, &format!("/api/v1/members/{id}"))
        .token(&admin)
        .json(json!({"active": false}))
        .send()
        .await;
    assert_eq!(left.status, StatusCode::NO_CONTENT, "{}", left.text);
    let reply = server.request(Method::GET, "/api/v1/members").token(&admin).purpose("排班核对").send().await;
    assert_eq!(reply.json()[0]["active"], false);
    let missing = server
        .request(Method::PATCH, "/api/v1/members/99999")
        .token(&admin)
        .json(json!({"active": false}))
        .send()
        .await;
    missing.assert_error(StatusCode::NOT_FOUND, "not_found");
}
