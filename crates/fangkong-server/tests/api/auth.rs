//! Signing in and out over HTTP: the answers, their codes and headers.

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use fangkong_core::auth::Role;
use serde_json::json;

use crate::support::{CITY, FUTIAN, PASSWORD, TestServer};

async fn login(server: &TestServer, username: &str, password: &str) -> crate::support::Reply {
    server
        .request(Method::POST, "/api/v1/auth/login")
        .json(json!({"username": username, "password": password}))
        .send()
        .await
}

#[tokio::test]
async fn sign_in_returns_a_bearer_token_with_its_lifetimes() {
    let server = TestServer::start().await;
    server.add_user("zhang.wei", Role::Dispatcher, FUTIAN).await;
    let reply = login(&server, "zhang.wei", PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_at"], "2025-11-28T12:00:00Z", "12 hours after sign-in");
    assert_eq!(body["idle_timeout_secs"], 1800);
    assert_eq!(body["user"]["role"], "dispatcher");
    assert!(body["user"].get("password_hash").is_none(), "never the hash");

    let token = body["token"].as_str().unwrap();
    let me = server.get_as(token, "/api/v1/auth/me").await.json();
    assert_eq!(me["user"]["username"], "zhang.wei");
    let permissions: Vec<&str> = me["permissions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(permissions.contains(&"read_codes") && !permissions.contains(&"manage_users"), "{permissions:?}");
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_answer_then_the_same_lock() {
    let server = TestServer::start().await;
    server.add_user("li.na", Role::Dispatcher, FUTIAN).await;
    for username in ["li.na", "nobody.here"] {
        for attempt in 1..=4 {
            let message = login(&server, username, "wrong wrong wrong")
                .await
                .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
            assert_eq!(message, "wrong username or password", "attempt {attempt} for {username}");
        }
        let locked = login(&server, username, "wrong wrong wrong").await;
        locked.assert_error(StatusCode::LOCKED, "account_locked");
        assert_eq!(locked.headers["retry-after"], "600", "{username}");
    }
    // Still locked for the right password; free after ten minutes.
    login(&server, "li.na", PASSWORD).await.assert_error(StatusCode::LOCKED, "account_locked");
    server.clock.advance_millis(10 * 60 * 1000);
    assert_eq!(login(&server, "li.na", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_logged_out_token_is_refused() {
    let server = TestServer::start().await;
    let token = server.signed_in("wang.fang", Role::Analyst, CITY).await;
    assert_eq!(
        server.request(Method::POST, "/api/v1/auth/logout").token(&token).send().await.status,
        StatusCode::NO_CONTENT
    );
    server.get_as(&token, "/api/v1/auth/me").await.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn an_idle_session_answers_session_expired() {
    let server = TestServer::start().await;
    let token = server.signed_in("chen.jie", Role::Analyst, CITY).await;
    server.clock.advance_millis(31 * 60 * 1000);
    let reply = server.get_as(&token, "/api/v1/codes/disposition").await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "session_expired");
    assert!(reply.headers["www-authenticate"].to_str().unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn a_second_factor_is_enrolled_and_then_required() {
    let server = TestServer::start().await;
    let token = server.signed_in("liu.yang", Role::Commander, CITY).await;
    let setup = server.request(Method::POST, "/api/v1/auth/totp").token(&token).send().await.json();
    let secret = fangkong_core::auth::totp::base32_decode(setup["secret"].as_str().unwrap()).unwrap();
    let now = server.engine.now().as_millis() / 1000;
    let code = fangkong_core::auth::totp::code_at(&secret, now);
    let confirm = server
        .request(Method::POST, "/api/v1/auth/totp/confirm")
        .token(&token)
        .json(json!({"code": code}))
        .send()
        .await;
    assert_eq!(confirm.status, StatusCode::NO_CONTENT, "{}", confirm.text);

    login(&server, "liu.yang", PASSWORD).await.assert_error(StatusCode::UNAUTHORIZED, "totp_required");
    server.clock.advance_millis(30_000);
    let code = fangkong_core::auth::totp::code_at(&secret, now + 30);
    let reply = server
        .request(Method::POST, "/api/v1/auth/login")
        .json(json!({"username": "liu.yang", "password": PASSWORD, "totp": code}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn devices_use_their_own_credentials_until_revoked() {
    let server = TestServer::start().await;
    let admin = server.signed_in("admin", Role::Administrator, CITY).await;
    let added = server
        .request(Method::POST, "/api/v1/devices")
        .token(&admin)
        .json(json!({"unique_id": "862118020000001", "kind": "alarm_point", "unit": "ALARM-0001", "jurisdiction": FUTIAN}))
        .send()
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let secret = added.json()["secret"].as_str().unwrap().to_string();
    let basic = |secret: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("862118020000001:{secret}")))
    };
    let heartbeat = |auth: String| {
        server.request(Method::POST, "/api/v1/devices/862118020000001/heartbeat").header("authorization", &auth).send()
    };
    let ok = heartbeat(basic(&secret)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.json()["last_seen_at"], "2025-11-28T00:00:00Z");
    heartbeat(basic("not the secret")).await.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");

    let revoked = server.request(Method::POST, "/api/v1/devices/862118020000001/revoke").token(&admin).send().await;
    assert_eq!(revoked.status, StatusCode::OK);
    heartbeat(basic(&secret)).await.assert_error(StatusCode::UNAUTHORIZED, "device_revoked");
}

#[tokio::test]
async fn account_reads_need_a_stated_purpose() {
    let server = TestServer::start().await;
    let admin = server.signed_in("admin", Role::Administrator, CITY).await;
    server.get_as(&admin, "/api/v1/users").await.assert_error(StatusCode::BAD_REQUEST, "purpose_required");
    let reply = server
        .request(Method::GET, "/api/v1/users")
        .token(&admin)
        .header("x-purpose", "%E5%B9%B4%E5%BA%A6%E6%A0%B8%E6%9F%A5")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let records = server.audit().await;
    let read = records.iter().rev().find(|r| r.entry.action == "user.list").unwrap();
    assert_eq!(read.entry.purpose.as_deref(), Some("年度核查"), "the purpose is recorded decoded");
}

#[tokio::test]
async fn auditors_read_and_verify_the_trail_and_nobody_can_change_it() {
    let server = TestServer::start().await;
    let auditor = server.signed_in("auditor", Role::Auditor, CITY).await;
    let records = server.get_as(&auditor, "/api/v1/audit?limit=5&action=auth.login").await;
    assert_eq!(records.status, StatusCode::OK);
    assert_eq!(records.json()[0]["actor_name"], "auditor");
    let verification = server.get_as(&auditor, "/api/v1/audit/verify").await.json();
    assert_eq!(verification["intact"], true, "{verification}");
    server.get_as(&auditor, "/api/v1/audit?outcome=maybe").await.assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    server
        .get_as(&auditor, "/api/v1/audit?from=yesterday")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let reply = server.request(method.clone(), "/api/v1/audit").token(&auditor).send().await;
        reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

#[tokio::test]
async fn alarm_points_have_a_place_on_the_map_and_show_whether_they_report() {
    let server = TestServer::start().await;
    let admin = server.signed_in("admin", Role::Administrator, CITY).await;
    let add = |body: serde_json::Value| server.request(Method::POST, "/api/v1/devices").token(&admin).json(body).send();
    let base = json!({"unique_id": "AP-1", "kind": "alarm_point", "jurisdiction": FUTIAN, "name": "莲花加油站报警点"});
    let with = |extra: serde_json::Value| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    // Half a place, a place off the globe, a place in the wrong district: each names its field.
    let half = add(with(json!({"lat": 22.54}))).await;
    half.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(half.json()["error"]["details"][0]["at"], "lat/lon");
    add(with(json!({"lat": 122.54, "lon": 114.05})))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let wrong = add(with(json!({"lat": 22.54, "lon": 114.15}))).await;
    let message = wrong.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert!(message.contains("440303"), "{message}");
    assert_eq!(wrong.json()["error"]["details"][0]["at"], "location");

    let added = add(with(json!({"lat": 22.54, "lon": 114.05}))).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(
        (added.json()["device"]["lat"].as_f64(), added.json()["device"]["name"].as_str()),
        (Some(22.54), Some("莲花加油站报警点"))
    );
    let secret = added.json()["secret"].as_str().unwrap().to_string();

    // The board's map: a dispatcher sees it, offline until it reports; a coordinator may not.
    let dispatcher = server.signed_in("dispatcher", Role::Dispatcher, CITY).await;
    let sites = server.get_as(&dispatcher, "/api/v1/sites").await;
    assert_eq!(sites.status, StatusCode::OK, "{}", sites.text);
    assert_eq!(
        sites.json(),
        json!([{"unique_id": "AP-1", "kind": "alarm_point", "name": "莲花加油站报警点", "lat": 22.54, "lon": 114.05,
                "jurisdiction": FUTIAN, "last_seen_at": null, "online": false}])
    );
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("AP-1:{secret}")));
    let beat =
        server.request(Method::POST, "/api/v1/devices/AP-1/heartbeat").header("authorization", &basic).send().await;
    assert_eq!(beat.status, StatusCode::OK, "{}", beat.text);
    assert_eq!(server.get_as(&dispatcher, "/api/v1/sites").await.json()[0]["online"], true);
    let coordinator = server.signed_in("coordinator", Role::HousingCoordinator, FUTIAN).await;
    server.get_as(&coordinator, "/api/v1/sites").await.assert_error(StatusCode::FORBIDDEN, "forbidden");
}
