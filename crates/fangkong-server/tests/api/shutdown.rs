//! Graceful shutdown with a real listener: in-flight requests finish, their writes are
//! stored, and new connections are refused.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use fangkong_core::codes::CodeKind;
use fangkong_engine::NewCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, oneshot};

use crate::support::{TestServer, start_engine};

async fn http_post(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("POST {path} HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// Serves `router` on a port of its own until the returned sender fires (the "SIGTERM").
async fn serve_in_background(
    router: axum::Router,
    engine: Arc<fangkong_engine::Engine>,
    grace: Duration,
) -> (std::net::SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    (addr, stop, tokio::spawn(fangkong_server::serve(listener, router, engine, shutdown, grace)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_a_write_in_flight_and_stores_it() {
    let server = TestServer::start().await;
    let engine = server.engine.clone();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());

    // A route of the test's own that performs a real engine write once released: it stands
    // for any slow write request that is in flight when the signal arrives.
    let slow_write = {
        let (engine, entered, release) = (engine.clone(), entered.clone(), release.clone());
        post(move || async move {
            entered.notify_one();
            release.notified().await;
            let new = NewCode {
                kind: CodeKind::Disposition,
                code: "written_during_shutdown".into(),
                name_zh: "关停中写入".into(),
                name_en: "Written during shutdown".into(),
                priority: None,
            };
            match engine.create_code(&fangkong_engine::Caller::system("test"), new).await {
                Ok(_) => "stored",
                Err(_) => "failed",
            }
        })
    };
    let router = server.router.clone().route("/test/slow-write", slow_write);
    let (addr, stop, serving) = serve_in_background(router, engine.clone(), Duration::from_secs(10)).await;

    let request = tokio::spawn(async move { http_post(addr, "/test/slow-write").await });
    entered.notified().await;
    stop.send(()).unwrap(); // SIGTERM arrives while the request is in flight
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no new connections while draining");
    release.notify_one();

    let response = request.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("stored"), "{response}");
    serving.await.unwrap().unwrap();

    let reopened = start_engine(&server.db.url, &server.clock, &server.keys).await;
    assert!(reopened.code_entry(CodeKind::Disposition, "written_during_shutdown").is_some(), "the write is durable");
    reopened.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlives_the_grace_period_does_not_hold_shutdown_forever() {
    let server = TestServer::start().await;
    let router = server.router.clone().route("/test/stuck", post(std::future::pending::<&'static str>));
    let (addr, stop, serving) = serve_in_background(router, server.engine.clone(), Duration::from_millis(300)).await;
    let _stuck = tokio::spawn(async move { http_post(addr, "/test/stuck").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), serving).await.expect("shutdown ends").unwrap().unwrap();
    assert!(server.engine.health().await.is_err(), "the store is closed after shutdown");
}
