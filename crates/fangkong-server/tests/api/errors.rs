//! Every failure has the same shape, whoever produced it.

use axum::http::{Method, StatusCode};

use crate::support::TestServer;

#[tokio::test]
async fn unknown_routes_are_shaped_404s() {
    let server = TestServer::start().await;
    let message = server.get("/api/v1/no-such-thing").await.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(message.contains("/api/v1/no-such-thing"));
    server.get("/definitely/not/here").await.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn wrong_methods_are_shaped_405s_that_say_what_is_allowed() {
    let server = TestServer::start().await;
    let reply = server.call(Method::DELETE, "/api/v1/codes/disposition", None, "").await;
    reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let allow = reply.headers.get("allow").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(allow.contains("GET"), "Allow header kept: {allow:?}");
    server
        .call(Method::POST, "/healthz", Some("application/json"), "{}")
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let server = TestServer::start().await;
    let ok = server.get("/healthz").await;
    let failed = server.get("/nope").await;
    for reply in [ok, failed] {
        let id = reply.headers.get("x-request-id").expect("x-request-id header");
        assert_eq!(id.to_str().unwrap().len(), 36, "a UUID");
    }
}

#[tokio::test]
async fn a_closed_store_is_a_503_not_a_500() {
    let server = TestServer::start().await;
    server.engine.shutdown().await;
    server.get("/healthz").await.assert_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
}

#[tokio::test]
async fn a_panicking_handler_is_a_shaped_500_without_internals() {
    let mut server = TestServer::start().await;
    server.router = fangkong_server::with_layers(axum::Router::new().route(
        "/test/panic",
        axum::routing::get(|| async {
            if true {
                panic!("secret internal detail");
            }
            "unreachable"
        }),
    ));
    let reply = server.get("/test/panic").await;
    let message = reply.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert!(!reply.text.contains("secret"), "internals never reach the client: {message}");
}
