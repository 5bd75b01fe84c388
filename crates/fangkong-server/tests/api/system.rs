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
async fn the_root_leads_to_the_api_page() {
    let server = TestServer::start().await;
    let reply = server.get("/").await;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(reply.headers["location"], "/api/docs/");
}
