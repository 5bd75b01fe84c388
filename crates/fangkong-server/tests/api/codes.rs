//! `GET /api/v1/codes/…`

use axum::http::{Method, StatusCode};
use fangkong_core::auth::Role;
use serde_json::json;

use crate::support::{CITY, TestServer};

#[tokio::test]
async fn a_code_table_lists_in_code_order_with_parents() {
    let server = TestServer::start().await;
    let token = server.signed_in("disp", Role::Dispatcher, CITY).await;
    let reply = server.get_as(&token, "/api/v1/codes/incident_type").await;
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
    let admin = server.signed_in("admin", Role::Administrator, CITY).await;
    let retire = server
        .request(Method::PATCH, "/api/v1/codes/disposition/mediated")
        .token(&admin)
        .json(json!({"active": false}));
    assert_eq!(retire.send().await.status, StatusCode::OK);
    let all = server.get_as(&admin, "/api/v1/codes/disposition").await.json();
    let retired = server.get_as(&admin, "/api/v1/codes/disposition?active=false").await.json();
    let active = server.get_as(&admin, "/api/v1/codes/disposition?active=true").await.json();
    assert_eq!(retired.as_array().unwrap().len(), 1);
    assert_eq!(retired[0]["code"], "mediated");
    assert_eq!(active.as_array().unwrap().len() + 1, all.as_array().unwrap().len());
}

#[tokio::test]
async fn one_code_or_a_clear_not_found() {
    let server = TestServer::start().await;
    let token = server.signed_in("disp", Role::Dispatcher, CITY).await;
    let reply = server.get_as(&token, "/api/v1/codes/incident_source/110").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["name_zh"], "110报警");
    assert_eq!(reply.json()["parent"], serde_json::Value::Null);

    let message = server
        .get_as(&token, "/api/v1/codes/incident_type/010399")
        .await
        .assert_error(StatusCode::NOT_FOUND, "code_not_found");
    assert!(message.contains("010399"), "{message}");
    let message =
        server.get_as(&token, "/api/v1/codes/colours").await.assert_error(StatusCode::NOT_FOUND, "unknown_code_kind");
    assert!(message.contains("incident_type"), "the message lists the tables: {message}");
}

#[tokio::test]
async fn a_bad_query_is_a_shaped_400() {
    let server = TestServer::start().await;
    let token = server.signed_in("disp", Role::Dispatcher, CITY).await;
    server
        .get_as(&token, "/api/v1/codes/disposition?active=perhaps")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
}

#[tokio::test]
async fn codes_need_a_signed_in_user() {
    let server = TestServer::start().await;
    let reply = server.get("/api/v1/codes/disposition").await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(reply.headers["www-authenticate"], "Bearer realm=\"fangkong\"");
}

#[tokio::test]
async fn administrators_add_and_retire_codes_with_the_rules_named() {
    let server = TestServer::start().await;
    let admin = server.signed_in("admin", Role::Administrator, CITY).await;
    let add = |body: serde_json::Value| {
        server.request(Method::POST, "/api/v1/codes/incident_type").token(&admin).json(body).send()
    };
    let created =
        add(json!({"code": "010303", "name_zh": "入户抢劫", "name_en": "Home-invasion robbery", "priority": 1})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json()["parent"], "010300");
    add(json!({"code": "010303", "name_zh": "x", "name_en": "x", "priority": 1}))
        .await
        .assert_error(StatusCode::CONFLICT, "code_exists");
    add(json!({"code": "070101", "name_zh": "x", "name_en": "x", "priority": 1}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "parent_code_missing");
    add(json!({"code": "01030", "name_zh": "x", "name_en": "x", "priority": 1}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "malformed_code");
    let message = add(json!({"code": "010304", "name_zh": "x", "name_en": "x"}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert!(message.contains("priority"), "{message}");
    add(json!({"code": "010305", "name_zh": "x", "name_en": "x", "priority": 1, "colour": "red"}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    server
        .request(Method::PATCH, "/api/v1/codes/incident_type/010300")
        .token(&admin)
        .json(json!({"active": false}))
        .send()
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "active_child_codes");
}

#[tokio::test]
async fn only_the_city_administrator_changes_the_city_wide_code_tables() {
    let server = TestServer::start().await;
    let district = server.signed_in("futian-admin", Role::Administrator, crate::support::FUTIAN).await;
    let city = server.signed_in("city-admin", Role::Administrator, CITY).await;
    let create = json!({"code": "handed_to_community", "name_zh": "移交社区", "name_en": "Handed to the community"});
    let change = json!({"name_en": "Settled by mediation"});

    // A district's administrator: refused for both, audited, and nothing changes.
    let before = server.audit_head().await;
    let reply = server.request(Method::POST, "/api/v1/codes/disposition").token(&district).json(create.clone()).send();
    reply.await.assert_error(StatusCode::FORBIDDEN, "outside_jurisdiction");
    let reply = server
        .request(Method::PATCH, "/api/v1/codes/disposition/mediated")
        .token(&district)
        .json(change.clone())
        .send();
    reply.await.assert_error(StatusCode::FORBIDDEN, "outside_jurisdiction");
    let denied: Vec<String> = server
        .audit_after(before)
        .await
        .into_iter()
        .filter(|r| r.entry.outcome == fangkong_core::audit::Outcome::Denied && r.entry.actor_name == "futian-admin")
        .map(|r| r.entry.action)
        .collect();
    assert_eq!(denied, ["code.create", "code.update"], "both refusals are audited");
    let mediated = server.get_as(&city, "/api/v1/codes/disposition/mediated").await.json();
    assert_ne!(mediated["name_en"], "Settled by mediation");
    server
        .get_as(&city, "/api/v1/codes/disposition/handed_to_community")
        .await
        .assert_error(StatusCode::NOT_FOUND, "code_not_found");

    // The city's administrator may.
    let reply = server.request(Method::POST, "/api/v1/codes/disposition").token(&city).json(create).send().await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let reply = server.request(Method::PATCH, "/api/v1/codes/disposition/mediated").token(&city).json(change).send();
    assert_eq!(reply.await.json()["name_en"], "Settled by mediation");
}
