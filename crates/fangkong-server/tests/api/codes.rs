//! `GET /api/v1/codes/…`

use axum::http::StatusCode;

use crate::support::TestServer;

#[tokio::test]
async fn a_code_table_lists_in_code_order_with_parents() {
    let server = TestServer::start().await;
    let reply = server.get("/api/v1/codes/incident_type").await;
    assert_eq!(reply.status, StatusCode::OK);
    let codes = reply.json();
    let codes = codes.as_array().unwrap();
    let numbers: Vec<&str> = codes.iter().map(|c| c["code"].as_str().unwrap()).collect();
    let mut sorted = numbers.clone();
    sorted.sort();
    assert_eq!(numbers, sorted);
    let robbery = codes.iter().find(|c| c["code"] == "010301").unwrap();
    assert_eq!(
        robbery,
        &serde_json::json!({
            "kind": "incident_type", "code": "010301", "parent": "010300", "name_zh": "抢劫",
            "name_en": "Robbery", "priority": 1, "active": true, "updated_at": "2025-11-28T00:00:00Z"
        })
    );
}

#[tokio::test]
async fn codes_can_be_filtered_by_active() {
    let server = TestServer::start().await;
    let change = fangkong_engine::CodeChange { active: Some(false), ..Default::default() };
    server.engine.update_code(fangkong_core::codes::CodeKind::Disposition, "mediated", change).await.unwrap();
    let all = server.get("/api/v1/codes/disposition").await.json();
    let retired = server.get("/api/v1/codes/disposition?active=false").await.json();
    let active = server.get("/api/v1/codes/disposition?active=true").await.json();
    assert_eq!(retired.as_array().unwrap().len(), 1);
    assert_eq!(retired[0]["code"], "mediated");
    assert_eq!(active.as_array().unwrap().len() + 1, all.as_array().unwrap().len());
}

#[tokio::test]
async fn one_code_or_a_clear_not_found() {
    let server = TestServer::start().await;
    let reply = server.get("/api/v1/codes/incident_source/110").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["name_zh"], "110报警");
    assert_eq!(reply.json()["parent"], serde_json::Value::Null);

    let message =
        server.get("/api/v1/codes/incident_type/010399").await.assert_error(StatusCode::NOT_FOUND, "code_not_found");
    assert!(message.contains("010399"), "{message}");
    let message = server.get("/api/v1/codes/colours").await.assert_error(StatusCode::NOT_FOUND, "unknown_code_kind");
    assert!(message.contains("incident_type"), "the message lists the tables: {message}");
}

#[tokio::test]
async fn a_bad_query_is_a_shaped_400() {
    let server = TestServer::start().await;
    server.get("/api/v1/codes/disposition?active=perhaps").await.assert_error(StatusCode::BAD_REQUEST, "invalid_query");
}
