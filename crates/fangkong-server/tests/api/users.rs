//! `/api/v1/users/…`: what an administrator may do to accounts, and what they learn.

use axum::http::{Method, StatusCode};
use fangkong_core::auth::Role;
use serde_json::json;

use crate::support::{CITY, FUTIAN, LUOHU, PASSWORD, Reply, TestServer};

/// Every `/users/{username}` route, with a body it accepts.
fn user_routes(username: &str) -> Vec<(Method, String, Option<serde_json::Value>)> {
    let path = format!("/api/v1/users/{username}");
    vec![
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"display_name": "改名"}))),
        (Method::POST, format!("{path}/lock"), None),
        (Method::POST, format!("{path}/unlock"), None),
        (Method::POST, format!("{path}/password"), Some(json!({"password": "a decent long passphrase"}))),
    ]
}

async fn call(server: &TestServer, token: &str, method: Method, path: &str, body: Option<serde_json::Value>) -> Reply {
    let mut call = server.request(method, path).token(token).purpose("account review");
    if let Some(body) = body {
        call = call.json(body);
    }
    call.send().await
}

#[tokio::test]
async fn a_district_administrator_cannot_tell_absent_accounts_from_other_districts() {
    let server = TestServer::start().await;
    let futian = server.signed_in("futian-admin", Role::Administrator, FUTIAN).await;
    server.add_user("luohu-clerk", Role::Dispatcher, LUOHU).await;
    for (existing, absent) in user_routes("luohu-clerk").into_iter().zip(user_routes("nobody-at-all")) {
        let (method, path, body) = existing;
        let outside = call(&server, &futian, method.clone(), &path, body).await;
        let (_, absent_path, body) = absent;
        let before = server.audit_head().await;
        let missing = call(&server, &futian, method.clone(), &absent_path, body).await;
        let outside_message = outside.assert_error(StatusCode::FORBIDDEN, "outside_jurisdiction");
        let missing_message = missing.assert_error(StatusCode::FORBIDDEN, "outside_jurisdiction");
        assert_eq!(outside_message, missing_message, "{method} {path}: the same words");
        let denied = server.audit_after(before).await;
        assert!(
            denied.iter().any(|r| r.entry.outcome == fangkong_core::audit::Outcome::Denied
                && r.entry.target_id.as_deref() == Some("nobody-at-all")),
            "{method} {absent_path}: refused and audited like any other refusal"
        );
    }
    // The city's administrator administers every account there can be: for them an
    // absent account is simply not found.
    let city = server.signed_in("city-admin", Role::Administrator, CITY).await;
    for (method, path, body) in user_routes("nobody-at-all") {
        call(&server, &city, method, &path, body).await.assert_error(StatusCode::NOT_FOUND, "user_not_found");
    }
}

#[tokio::test]
async fn administrators_cannot_shut_themselves_out() {
    let server = TestServer::start().await;
    let admin = server.signed_in("root", Role::Administrator, CITY).await;
    let path = "/api/v1/users/root";
    for (method, path, body) in [
        (Method::POST, format!("{path}/lock"), None),
        (Method::PATCH, path.to_string(), Some(json!({"disabled": true}))),
        (Method::PATCH, path.to_string(), Some(json!({"role": "dispatcher"}))),
        (Method::PATCH, path.to_string(), Some(json!({"jurisdiction": FUTIAN}))),
    ] {
        let before = server.audit_head().await;
        let reply = call(&server, &admin, method.clone(), &path, body.clone()).await;
        reply.assert_error(StatusCode::CONFLICT, "own_account");
        let records = server.audit_after(before).await;
        assert!(
            records.iter().any(|r| r.entry.outcome == fangkong_core::audit::Outcome::Denied),
            "{method} {path} {body:?}: the refusal is audited"
        );
    }
    // Still signed in, still an administrator of the city, and free to rename themselves.
    let me = call(&server, &admin, Method::GET, path, None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!((me.json()["role"].as_str(), me.json()["jurisdiction"].as_str()), (Some("administrator"), Some(CITY)));
    assert_eq!(me.json()["disabled"], false);
    let renamed = call(&server, &admin, Method::PATCH, path, Some(json!({"display_name": "系统管理员"}))).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);

    // Another administrator may lock them, and they are locked out.
    let other = server.signed_in("root2", Role::Administrator, CITY).await;
    let locked = call(&server, &other, Method::POST, "/api/v1/users/root/lock", None).await;
    assert_eq!(locked.status, StatusCode::OK, "{}", locked.text);
    let login =
        server.request(Method::POST, "/api/v1/auth/login").json(json!({"username": "root", "password": PASSWORD}));
    login.send().await.assert_error(StatusCode::LOCKED, "account_locked");
}

#[tokio::test]
async fn names_and_notes_refuse_invisible_formatting_characters() {
    let server = TestServer::start().await;
    let admin = server.signed_in("root", Role::Administrator, CITY).await;
    for name in ["\u{202E}伟张", "张\u{200B}伟", "张\u{2066}伟\u{2069}", "\u{FEFF}张伟"] {
        let create = json!({"username": "newcomer", "display_name": name, "role": "dispatcher",
            "jurisdiction": FUTIAN, "password": "a decent long passphrase"});
        let reply = server.request(Method::POST, "/api/v1/users").token(&admin).json(create).send().await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        let rename = call(&server, &admin, Method::PATCH, "/api/v1/users/root", Some(json!({"display_name": name})));
        rename.await.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    }
    // An incident's note, address and description, as the 110 centre types them.
    let dispatcher = server.signed_in("disp", Role::Dispatcher, CITY).await;
    let incident = json!({"source": "110", "type_code": "010301", "lat": 22.55, "lon": 114.05,
        "address": "园岭\u{202E}新村"});
    let reply = server.request(Method::POST, "/api/v1/incidents").token(&dispatcher).json(incident).send().await;
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let incident = json!({"source": "110", "type_code": "010301", "lat": 22.55, "lon": 114.05});
    let created = server.request(Method::POST, "/api/v1/incidents").token(&dispatcher).json(incident).send().await;
    let id = created.json()["id"].as_i64().unwrap();
    let note = json!({"text": "报警人\u{200B}再次来电"});
    let path = format!("/api/v1/incidents/{id}/notes");
    let reply = server.request(Method::POST, &path).token(&dispatcher).json(note).send().await;
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let fine = json!({"text": "报警人再次来电\n称已离开"});
    let reply = server.request(Method::POST, &path).token(&dispatcher).json(fine).send().await;
    assert!(reply.status.is_success(), "{}", reply.text);
}
