//! Dispatch over HTTP, on every store: the whole lifecycle, merge, cancel, idempotent
//! retries, duplicate flags, jurisdiction, measures and area classes.

use axum::http::{Method, StatusCode};
use fangkong_core::auth::{DeviceKind, Role};
use fangkong_core::avl::Fix;
use fangkong_core::forces::{ForceCategory, PatrolMode, Unit};
use fangkong_engine::{Caller, NewDevice};
use fangkong_geo::LatLon;
use fangkong_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::support::{FUTIAN, LUOHU, TestServer};

const STATION: &str = "PS440304-01";

/// A unit at a station with a tracker at (lat, lon), available.
pub async fn unit_at(server: &TestServer, code: &str, station: &str, mode: PatrolMode, lat: f64, lon: f64) {
    let system = Caller::system("test");
    let unit = Unit {
        code: code.into(),
        call_sign: format!("{code}呼号"),
        station: station.into(),
        category: ForceCategory::Police,
        mode,
        equipment: Vec::new(),
        beat: None,
        capabilities: Vec::new(),
    };
    server.engine.save_unit(&system, unit).await.unwrap();
    let district = if station == STATION { FUTIAN } else { LUOHU };
    let device = NewDevice {
        unique_id: format!("trk-{code}"),
        kind: DeviceKind::Tracker,
        unit: Some(code.into()),
        jurisdiction: district.into(),
        name: None,
        location: None,
    };
    server.engine.add_device(&system, device).await.unwrap();
    let fix = Fix::new(server.engine.now(), LatLon::new(lat, lon).unwrap());
    server.engine.ingest_fix(&format!("trk-{code}"), fix).await.unwrap();
    server.engine.set_unit_status(&system, code, fangkong_core::dispatch::UnitStatus::Available).await.unwrap();
}

pub fn robbery(lat: f64, lon: f64) -> Value {
    json!({"source": "110", "type_code": "010301", "lat": lat, "lon": lon, "address": "红荔路",
        "description": "抢包后往东跑", "caller_name": "王女士", "caller_phone": "13912345678"})
}

async fn post(server: &TestServer, token: &str, path: &str, body: Value) -> crate::support::Reply {
    server.request(Method::POST, path).token(token).json(body).send().await
}

async fn lifecycle(db: TestDatabase) {
    let server = TestServer::on(db).await;
    let token = server.signed_in("dispatcher", Role::Dispatcher, FUTIAN).await;
    unit_at(&server, "CAR1", STATION, PatrolMode::Vehicle, 22.56, 114.05).await;
    unit_at(&server, "FOOT1", STATION, PatrolMode::Foot, 22.545, 114.05).await;

    let created = post(&server, &token, "/api/v1/incidents", robbery(22.54, 114.05)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let incident = created.json();
    let id = incident["id"].as_i64().unwrap();
    assert_eq!(incident["status"], "new");
    assert_eq!(incident["priority"], 1);
    assert_eq!(incident["jurisdiction"]["district"], FUTIAN);
    assert_eq!(incident["caller_phone_masked"], "*******5678");
    assert!(incident.get("caller_phone").is_none() && !created.text.contains("13912345678"), "no phone on the board");
    assert_eq!(incident["response"]["arrival_target_s"], 300);
    assert_eq!(incident["recommendations"][0]["unit"], "CAR1", "recommended when created: {incident}");

    let ranked = server.get_as(&token, &format!("/api/v1/incidents/{id}/recommendations")).await.json();
    assert_eq!(ranked[0]["unit"], "CAR1", "{ranked}");
    assert_eq!(ranked[0]["mode"], "vehicle");
    assert!(ranked[0]["eta_s"].as_f64().unwrap() < ranked[1]["eta_s"].as_f64().unwrap());

    server.clock.advance_millis(30_000);
    let sent = post(&server, &token, &format!("/api/v1/incidents/{id}/assign"), json!({"units": ["CAR1"]})).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    assert_eq!(sent.json()["status"], "dispatched");
    let twice = post(&server, &token, &format!("/api/v1/incidents/{id}/assign"), json!({"units": ["CAR1"]})).await;
    twice.assert_error(StatusCode::CONFLICT, "invalid_transition");
    let nobody = post(&server, &token, &format!("/api/v1/incidents/{id}/assign"), json!({"units": ["NOPE"]})).await;
    nobody.assert_error(StatusCode::NOT_FOUND, "unit_not_found");

    for (seconds, status) in [(20_000, "en_route"), (180_000, "on_scene")] {
        server.clock.advance_millis(seconds);
        let reply = post(&server, &token, "/api/v1/units/CAR1/status", json!({"status": status})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json()["status"], status);
    }
    let bad = post(&server, &token, "/api/v1/units/CAR1/status", json!({"status": "asleep"})).await;
    bad.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let on_scene = server.get_as(&token, &format!("/api/v1/incidents/{id}")).await.json();
    assert_eq!(on_scene["status"], "on_scene");
    assert_eq!(on_scene["response"]["call_to_dispatch_s"], 30.0);
    assert_eq!(on_scene["response"]["dispatch_to_arrival_s"], 200.0);
    assert_eq!(on_scene["response"]["call_to_arrival_s"], 230.0);
    assert_eq!(on_scene["response"]["within_target"], true);
    assert_eq!(on_scene["units"][0]["status"], "on_scene");

    let board = server.get_as(&token, "/api/v1/dispatch/units").await.json();
    let car = board.as_array().unwrap().iter().find(|u| u["unit"] == "CAR1").unwrap();
    assert_eq!((car["state"]["status"].as_str(), car["state"]["incident"].as_i64()), (Some("on_scene"), Some(id)));

    let resolved = post(&server, &token, &format!("/api/v1/incidents/{id}/resolve"), json!({})).await;
    assert_eq!(resolved.json()["status"], "resolved", "{}", resolved.text);
    let no_code = post(&server, &token, &format!("/api/v1/incidents/{id}/close"), json!({})).await;
    no_code.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "disposition_required");
    let closed =
        post(&server, &token, &format!("/api/v1/incidents/{id}/close"), json!({"disposition": "suspect_detained"}))
            .await;
    assert_eq!(closed.json()["status"], "closed", "{}", closed.text);
    assert_eq!(closed.json()["disposition"], "suspect_detained");
    assert_eq!(server.get_as(&token, "/api/v1/incidents").await.json(), json!([]), "closed incidents leave the board");
    let all = server.get_as(&token, "/api/v1/incidents?status=all&from=2025-11-27T00:00:00Z").await.json();
    assert_eq!(all.as_array().unwrap().len(), 1);

    let timeline = server.get_as(&token, &format!("/api/v1/incidents/{id}/timeline")).await.json();
    let kinds: Vec<&str> = timeline.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "dispatched", "unit_status", "unit_status", "resolved", "closed"]);
    assert!(timeline.as_array().unwrap().iter().all(|e| e["actor"] == "dispatcher"));

    // The caller's details need a purpose, and the read is audited.
    let path = format!("/api/v1/incidents/{id}/caller");
    server
        .request(Method::GET, &path)
        .token(&token)
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "purpose_required");
    let before = server.audit_head().await;
    let details = server.request(Method::GET, &path).token(&token).purpose("回拨报警人").send().await;
    assert_eq!(details.json(), json!({"name": "王女士", "phone": "13912345678"}));
    let audited = server.audit_after(before).await;
    assert!(
        audited.iter().any(|r| r.entry.action == "incident.caller" && r.entry.purpose.as_deref() == Some("回拨报警人"))
    );

    let reopened = post(&server, &token, &format!("/api/v1/incidents/{id}/reopen"), json!({})).await;
    assert_eq!(reopened.json()["status"], "new");
    let invalid =
        post(&server, &token, &format!("/api/v1/incidents/{id}/close"), json!({"disposition": "invalid_call"})).await;
    assert_eq!(invalid.json()["disposition"], "invalid_call", "a prank call is closed from new, not deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_on_sqlite() {
    lifecycle(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_on_postgres() {
    if let Some(db) = TestDatabase::postgres().await {
        lifecycle(db).await;
    }
}

async fn safeguards(db: TestDatabase) {
    let server = TestServer::on(db).await;
    let token = server.signed_in("dispatcher", Role::Dispatcher, FUTIAN).await;
    unit_at(&server, "CAR1", STATION, PatrolMode::Vehicle, 22.55, 114.05).await;

    // A retried POST with the same key returns the first incident.
    let keyed = |body: Value| {
        server.request(Method::POST, "/api/v1/incidents").token(&token).header("idempotency-key", "abc-1").json(body)
    };
    let first = keyed(robbery(22.54, 114.05)).send().await;
    assert_eq!(first.status, StatusCode::CREATED);
    let retry = keyed(robbery(22.54, 114.05)).send().await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!(retry.json()["id"], first.json()["id"]);
    keyed(robbery(22.5, 114.05)).send().await.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    assert_eq!(server.get_as(&token, "/api/v1/incidents").await.json().as_array().unwrap().len(), 1);
    let original = first.json()["id"].as_i64().unwrap();

    // A second call from nearby is flagged; merged, its unit moves to the original.
    server.clock.advance_millis(60_000);
    let repeat = post(&server, &token, "/api/v1/incidents", robbery(22.5405, 114.0505)).await.json();
    assert_eq!(repeat["possible_duplicates"], json!([original]));
    let repeat_id = repeat["id"].as_i64().unwrap();
    post(&server, &token, &format!("/api/v1/incidents/{repeat_id}/assign"), json!({"units": ["CAR1"]})).await;
    let merged =
        post(&server, &token, &format!("/api/v1/incidents/{repeat_id}/merge"), json!({"into": original})).await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.text);
    assert_eq!(
        (merged.json()["status"].as_str(), merged.json()["merged_into"].as_i64()),
        (Some("closed"), Some(original))
    );
    let target = server.get_as(&token, &format!("/api/v1/incidents/{original}")).await.json();
    assert_eq!(target["status"], "dispatched");
    assert_eq!(target["units"][0]["unit"], "CAR1");
    let history = server.get_as(&token, &format!("/api/v1/incidents/{original}/history")).await.json();
    assert_eq!(history, json!([]), "nothing before the first call here");

    // Keep: a flagged incident stays its own.
    let third = post(&server, &token, "/api/v1/incidents", robbery(22.5402, 114.05)).await.json();
    let third_id = third["id"].as_i64().unwrap();
    assert_eq!(third["possible_duplicates"], json!([original]));
    let kept = post(&server, &token, &format!("/api/v1/incidents/{third_id}/keep"), json!({})).await;
    assert_eq!(kept.json()["possible_duplicates"], json!([]));
    let history = server.get_as(&token, &format!("/api/v1/incidents/{third_id}/history")).await.json();
    let prior: Vec<i64> = history.as_array().unwrap().iter().map(|p| p["incident"]["id"].as_i64().unwrap()).collect();
    assert_eq!(prior, [repeat_id, original], "prior history near the spot, newest first");

    // Cancel recalls the unit.
    let cancelled = post(
        &server,
        &token,
        &format!("/api/v1/incidents/{original}/cancel"),
        json!({"disposition": "cancelled_by_caller"}),
    )
    .await;
    assert_eq!(cancelled.json()["status"], "cancelled", "{}", cancelled.text);
    let board = server.get_as(&token, "/api/v1/dispatch/units").await.json();
    assert_eq!(board[0]["state"]["status"], "available");
    let note =
        post(&server, &token, &format!("/api/v1/incidents/{third_id}/notes"), json!({"text": "报警人再次来电"})).await;
    assert_eq!(note.status, StatusCode::OK);

    // Bad input: codes, places, priorities; outside the jurisdiction.
    let bad_type = post(
        &server,
        &token,
        "/api/v1/incidents",
        json!({"source": "110", "type_code": "123456", "lat": 22.54, "lon": 114.05}),
    )
    .await;
    bad_type.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let outside = post(
        &server,
        &token,
        "/api/v1/incidents",
        json!({"source": "110", "type_code": "010301", "lat": 30.0, "lon": 120.0}),
    )
    .await;
    outside.assert_error(StatusCode::NOT_FOUND, "outside_city");
    let priority = post(
        &server,
        &token,
        "/api/v1/incidents",
        json!({"source": "110", "type_code": "010301", "priority": 9, "lat": 22.54, "lon": 114.05}),
    )
    .await;
    priority.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let luohu = post(&server, &token, "/api/v1/incidents", robbery(22.54, 114.15)).await;
    luohu.assert_error(StatusCode::FORBIDDEN, "outside_jurisdiction");
    let luohu_token = server.signed_in("luohu", Role::Dispatcher, LUOHU).await;
    server
        .get_as(&luohu_token, &format!("/api/v1/incidents/{third_id}"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "outside_jurisdiction");
    let theirs = server.get_as(&luohu_token, "/api/v1/incidents").await.json();
    assert_eq!(theirs, json!([]), "a Luohu dispatcher does not see Futian's board");
    let grab =
        post(&server, &luohu_token, &format!("/api/v1/incidents/{third_id}/assign"), json!({"units": ["CAR1"]})).await;
    grab.assert_error(StatusCode::FORBIDDEN, "outside_jurisdiction");
    server.get_as(&token, "/api/v1/incidents/99999").await.assert_error(StatusCode::NOT_FOUND, "incident_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_duplicates_merge_cancel_and_jurisdiction_on_sqlite() {
    safeguards(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_duplicates_merge_cancel_and_jurisdiction_on_postgres() {
    if let Some(db) = TestDatabase::postgres().await {
        safeguards(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measures_follow_the_area_class_that_administrators_set() {
    let server = TestServer::start().await;
    let admin = server.signed_in("administrator", Role::Administrator, "440300").await;
    let chief = server.signed_in("commander", Role::Commander, "440300").await;
    let set = server
        .request(Method::PUT, &format!("/api/v1/jurisdictions/{LUOHU}/area-class"))
        .token(&admin)
        .json(json!({"area_class": "suburban"}))
        .send()
        .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.text);
    let classes = server.get_as(&chief, "/api/v1/area-classes").await.json();
    assert_eq!(classes, json!([{"jurisdiction": LUOHU, "area_class": "suburban"}]));
    let refused = server
        .request(Method::PUT, &format!("/api/v1/jurisdictions/{LUOHU}/area-class"))
        .token(&chief)
        .json(json!({"area_class": "urban"}))
        .send()
        .await;
    refused.assert_error(StatusCode::FORBIDDEN, "forbidden");

    unit_at(&server, "L1", "PS440303-01", PatrolMode::Vehicle, 22.55, 114.15).await;
    let incident = post(&server, &chief, "/api/v1/incidents", robbery(22.54, 114.15)).await.json();
    assert_eq!(incident["area_class"], "suburban");
    assert_eq!(incident["response"]["arrival_target_s"], 600);
    let id = incident["id"].as_i64().unwrap();
    post(&server, &chief, &format!("/api/v1/incidents/{id}/assign"), json!({"units": ["L1"]})).await;
    server.clock.advance_millis(420_000);
    post(&server, &chief, "/api/v1/units/L1/status", json!({"status": "on_scene"})).await;
    let report = server
        .get_as(&chief, "/api/v1/measures/response?within=440300&from=2025-11-27T00:00:00Z&to=2025-11-29T00:00:00Z")
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    let report = report.json();
    assert_eq!(report["total"]["incidents"], 1);
    assert_eq!(report["total"]["share_within_target"], 1.0, "7 minutes is within a suburban 10");
    assert_eq!(report["parts"][0]["jurisdiction"], LUOHU);
    let long = server
        .get_as(&chief, "/api/v1/measures/response?within=440300&from=2024-01-01T00:00:00Z&to=2025-11-29T00:00:00Z")
        .await;
    long.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
}
