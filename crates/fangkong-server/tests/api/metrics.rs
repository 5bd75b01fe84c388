//! `GET /metrics`

use axum::http::StatusCode;
use fangkong_core::auth::Role;

use crate::support::{CITY, TestServer};

fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name_and_labels).and_then(|rest| rest.trim().parse().ok()))
}

#[tokio::test]
async fn requests_are_counted_and_timed_by_route_template() {
    let server = TestServer::start().await;
    let token = server.signed_in("disp", Role::Dispatcher, CITY).await;
    for code in ["110", "119", "122"] {
        server.get_as(&token, &format!("/api/v1/codes/incident_source/{code}")).await;
    }
    server.get_as(&token, "/api/v1/codes/incident_type/123456").await; // a 404 on the same route
    server.get("/nowhere").await;

    let reply = server.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = reply.text;
    let route = "route=\"/api/v1/codes/{kind}/{code}\"";
    assert_eq!(
        sample(&text, &format!("fangkong_http_requests_total{{method=\"GET\",{route},status=\"200\"}}")),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("fangkong_http_requests_total{{method=\"GET\",{route},status=\"404\"}}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "fangkong_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("fangkong_http_request_duration_seconds_count{{method=\"GET\",{route}}}")),
        Some(4.0)
    );
    assert!(!text.contains("/110"), "raw paths never become labels");
}

#[tokio::test]
async fn domain_gauges_come_from_the_engine() {
    let server = TestServer::start().await;
    let text = server.get("/metrics").await.text;
    let system = fangkong_engine::Caller::system("test");
    let sources =
        server.engine.codes(&system, fangkong_core::codes::CodeKind::IncidentSource).await.unwrap().len() as f64;
    assert_eq!(sample(&text, "fangkong_code_entries{kind=\"incident_source\"}"), Some(sources), "{text}");
    assert_eq!(
        sample(&text, &format!("fangkong_build_info{{version=\"{}\",backend=\"sqlite\"}}", env!("CARGO_PKG_VERSION"))),
        Some(1.0)
    );
    assert!(sample(&text, "fangkong_events_published").unwrap() > 0.0);
    assert_eq!(sample(&text, "fangkong_jurisdictions"), Some(11.0));
    assert_eq!(sample(&text, "fangkong_users"), Some(0.0));
}

#[tokio::test]
async fn tracker_figures_are_exported() {
    let server = TestServer::start().await;
    let system = fangkong_engine::Caller::system("test");
    let new = fangkong_engine::NewDevice {
        unique_id: "T1".into(),
        kind: fangkong_core::auth::DeviceKind::Tracker,
        unit: None,
        jurisdiction: crate::support::FUTIAN.into(),
        name: None,
        location: None,
    };
    server.engine.add_device(&system, new).await.unwrap();
    let at = fangkong_core::time::Timestamp::from_millis(crate::support::T0_MILLIS);
    let fix = |lat| fangkong_core::avl::Fix::new(at, fangkong_geo::LatLon::new(lat, 114.05).unwrap());
    server.engine.ingest_fix("T1", fix(22.55)).await.unwrap();
    server.engine.ingest_fix("T1", fix(22.5501)).await.unwrap(); // same time: a duplicate
    let _ = server.engine.ingest_fix("stranger", fix(22.55)).await;
    let text = server.get("/metrics").await.text;
    assert_eq!(sample(&text, "fangkong_fixes_accepted"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "fangkong_fixes_refused{reason=\"duplicate\"}"), Some(1.0));
    assert_eq!(sample(&text, "fangkong_fixes_unknown_device"), Some(1.0));
    assert_eq!(sample(&text, "fangkong_live_trackers"), Some(1.0));
}

#[tokio::test]
async fn dispatch_figures_are_exported() {
    let server = TestServer::start().await;
    crate::incidents::unit_at(
        &server,
        "CAR1",
        "PS440304-01",
        fangkong_core::forces::PatrolMode::Vehicle,
        22.55,
        114.05,
    )
    .await;
    crate::incidents::unit_at(
        &server,
        "CAR2",
        "PS440304-01",
        fangkong_core::forces::PatrolMode::Vehicle,
        22.56,
        114.05,
    )
    .await;
    let new = fangkong_engine::NewIncident {
        source: "110".into(),
        type_code: "010301".into(),
        point: Some(fangkong_geo::LatLon::new(22.54, 114.05).unwrap()),
        ..Default::default()
    };
    let system = fangkong_engine::Caller::system("test");
    let incident = server.engine.create_incident(&system, new).await.unwrap().incident;
    server.engine.assign_units(&system, incident.id, &["CAR1".into()]).await.unwrap();
    let text = server.get("/metrics").await.text;
    assert_eq!(sample(&text, "fangkong_open_incidents"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "fangkong_units{status=\"dispatched\"}"), Some(1.0));
    assert_eq!(sample(&text, "fangkong_units{status=\"available\"}"), Some(1.0));
    assert_eq!(sample(&text, "fangkong_units{status=\"off_duty\"}"), Some(0.0));
}
