//! `GET /healthz` and `GET /api/v1/system`.

use axum::http::StatusCode;

use crate::support::TestServer;

#[tokio::test]
async fn healthz_reports_the_store() {
    let server = TestServer::start().await;
    let reply = server.get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), serde_json::json!({"status": "ok", "store": "sqlite"}));
}

#[tokio::test]
async fn system_info_describes_this_server() {
    let server = TestServer::start().await;
    let info = server.get("/api/v1/system").await.json();
    assert_eq!(info["name"], "fangkong");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["store"], "sqlite");
    assert_eq!(info["schema_version"], fangkong_store_migrations());
    assert_eq!(info["started_at"], "2025-11-28T00:00:00Z");
    assert!(info["last_event_seq"].as_u64().unwrap() > 0, "seeding the defaults published events");
}

fn fangkong_store_migrations() -> u32 {
    let reply = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../fangkong-store/migrations/sqlite")).unwrap();
    reply.count() as u32
}

#[tokio::test]
async fn the_root_serves_the_console_and_its_assets_from_the_binary() {
    let server = TestServer::start().await;
    let page = server.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text.clone();
    // Built by build.rs from web/ (Node.js is on every machine that runs these tests).
    assert!(html.contains("<div id=\"app\""), "{html}");
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    // Every script and style the page names is served, and nothing is loaded from elsewhere.
    let mut assets = 0;
    for part in html.split(['"', '\'']).filter(|p| p.starts_with("/assets/")) {
        let reply = server.get(part).await;
        assert_eq!(reply.status, StatusCode::OK, "{part}");
        assert!(reply.headers["cache-control"].to_str().unwrap().contains("immutable"));
        assets += 1;
    }
    assert!(assets >= 2, "the page names its script and style: {html}");
    for remote in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(!html.contains(remote), "the page loads nothing from elsewhere: {html}");
    }
    let missing = server.get("/assets/nothing.js").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
