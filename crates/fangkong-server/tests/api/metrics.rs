//! `GET /metrics`

use axum::http::StatusCode;
use fangkong_core::auth::Role;

use axum::http::Method;

use crate::support::{CITY, FUTIAN, METRICS_TOKEN, TestServer};

/// The figures, as the scraper reads them.
async fn scrape(server: &TestServer) -> String {
    let reply = server.request(Method::GET, "/metrics").token(METRICS_TOKEN).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.text
}

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

    let reply = server.request(Method::GET, "/metrics").token(METRICS_TOKEN).send().await;
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
    let text = scrape(&server).await;
    let system = fangkong_engine::Caller::system("test");
    let sources =
        server.engine.codes(&system, fangkong_core::codes::CodeKind::IncidentSource).await.unwrap().len() as f64;
    assert_eq!(sample(&text, "fangkong_code_entries{kind=\"incident_source\"}"), Some(sources), "{text}");
    assert_eq!(
        sample(&text, &format!("fangkong_build_info{{version=\"{}\",backend=\"sqlite\"}}", env!("CARGO_PKG_VERSION"))),
        Some(1.0)
    );
    assert!(sample(&text, "fangkong_events_published").unwrap() > 0.0);
    assert_eq!(sample(&text, "fangkong_reactions_lost"), Some(0.0), "every reaction ran");
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
    let text = scrape(&server).await;
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
    let text = scrape(&server).await;
    assert_eq!(sample(&text, "fangkong_open_incidents"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "fangkong_units{status=\"dispatched\"}"), Some(1.0));
    assert_eq!(sample(&text, "fangkong_units{status=\"available\"}"), Some(1.0));
    assert_eq!(sample(&text, "fangkong_units{status=\"off_duty\"}"), Some(0.0));
}

#[tokio::test]
async fn metrics_need_the_scrape_token_or_an_administrator() {
    let server = TestServer::start().await;
    // No credential, a wrong token: 401 in the standard shape, and no figures.
    let reply = server.get("/metrics").await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(!reply.text.contains("fangkong_open_incidents"));
    let reply = server.request(Method::GET, "/metrics").token("not-the-scrape-token").send().await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    // A signed-in user who is not an administrator: 403, audited.
    let dispatcher = server.signed_in("disp", Role::Dispatcher, CITY).await;
    let before = server.audit_head().await;
    let reply = server.request(Method::GET, "/metrics").token(&dispatcher).send().await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let records = server.audit_after(before).await;
    assert!(
        records
            .iter()
            .any(|r| r.entry.action == "metrics.read" && r.entry.outcome == fangkong_core::audit::Outcome::Denied),
        "the refusal is audited: {records:?}"
    );
    // An administrator's session, and the scraper's token.
    let admin = server.signed_in("root", Role::Administrator, FUTIAN).await;
    let reply = server.request(Method::GET, "/metrics").token(&admin).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.text.contains("fangkong_open_incidents"));
    assert!(scrape(&server).await.contains("fangkong_open_incidents"));
}

#[tokio::test]
async fn without_a_configured_token_no_bearer_token_opens_the_metrics() {
    let server = TestServer::start().await;
    let open = fangkong_server::router(
        fangkong_server::AppState::new(server.engine.clone()).with_metrics_token(Some(" ".into())),
    );
    let request = |token: &str| {
        axum::http::Request::get("/metrics")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    use tower::ServiceExt;
    for token in ["", " "] {
        let response = open.clone().oneshot(request(token)).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
    }
}

#[tokio::test]
async fn invented_methods_and_paths_share_one_series_each() {
    let server = TestServer::start().await;
    for n in 0..50 {
        let method = Method::from_bytes(format!("BREW{n}").as_bytes()).unwrap();
        server.request(method.clone(), "/api/v1/codes/incident_type").send().await;
        server.request(method, &format!("/nowhere/{n}")).send().await;
        server.get(&format!("/random/{n}")).await;
    }
    let text = scrape(&server).await;
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with("fangkong_http_requests_total{")).collect();
    assert!(!text.contains("BREW"), "invented methods never become labels: {series:?}");
    assert!(!text.contains("/nowhere") && !text.contains("/random"), "raw paths never become labels");
    assert!(series.iter().any(|l| l.contains("method=\"other\"")), "{series:?}");
    assert!(series.len() <= 4, "a handful of series for 150 odd requests: {series:?}");
}
