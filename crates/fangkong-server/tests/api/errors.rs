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

/// A server on a port of its own; answers raw requests over real connections.
struct OverTcp {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl OverTcp {
    async fn start(server: &TestServer) -> OverTcp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let grace = std::time::Duration::from_secs(5);
        let (router, engine) = (server.router.clone(), server.engine.clone());
        OverTcp { addr, stop, serving: tokio::spawn(fangkong_server::serve(listener, router, engine, shutdown, grace)) }
    }

    /// The raw answer to `request`, read until the server closes the connection.
    async fn send(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        read.expect("the server closes the connection").unwrap();
        String::from_utf8(answer).unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.serving.await.unwrap().unwrap();
    }
}

/// Asserts an answer read off the wire has `status` and the standard error body.
#[track_caller]
fn assert_shaped(answer: &str, status: u16, code: &str) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {answer:?}"));
    assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_cannot_read_get_the_standard_shape_too() {
    let server = TestServer::start().await;
    let tcp = OverTcp::start(&server).await;
    // A request line that is not HTTP, and a header line that is not a header.
    let answer = tcp.send(b"\x16\x03\x01 garbage that is no request line\r\n\r\n").await;
    assert_shaped(&answer, 400, "bad_request");
    let answer = tcp.send(b"GET /healthz HTTP/1.1\r\nbad header line\r\n\r\n").await;
    assert_shaped(&answer, 400, "bad_request");
    // Too many headers (hyper takes at most 100).
    let mut request = String::from("GET /healthz HTTP/1.1\r\nhost: test\r\n");
    for n in 0..200 {
        request.push_str(&format!("x-filler-{n}: {n}\r\n"));
    }
    request.push_str("\r\n");
    assert_shaped(&tcp.send(request.as_bytes()).await, 431, "headers_too_large");
    // Headers too large in bytes.
    let request = format!("GET /healthz HTTP/1.1\r\nhost: test\r\nx-big: {}\r\n\r\n", "a".repeat(1024 * 1024));
    assert_shaped(&tcp.send(request.as_bytes()).await, 431, "headers_too_large");
    // The application's own answers pass as they were.
    let answer = tcp.send(b"GET /nowhere HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").await;
    assert_shaped(&answer, 404, "not_found");
    let answer = tcp.send(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    tcp.stop().await;
}
