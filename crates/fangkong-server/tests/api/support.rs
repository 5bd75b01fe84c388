//! A server over a fresh SQLite engine, and one-line helpers to call it.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use fangkong_engine::Engine;
use fangkong_engine::bus::InProcessBus;
use fangkong_engine::clock::ManualClock;
use fangkong_server::AppState;
use http_body_util::BodyExt;
use tower::ServiceExt;

pub const T0_MILLIS: i64 = 1_764_288_000_000; // 2025-11-28T00:00:00Z

pub struct TestServer {
    pub engine: Arc<Engine>,
    pub router: Router,
    pub db_url: String,
    pub _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts the standard error shape with this status and code; returns the message.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "errors are JSON: {}",
            self.text
        );
        let body = self.json();
        let error = body.get("error").and_then(|e| e.as_object()).unwrap_or_else(|| panic!("no error object: {body}"));
        assert_eq!(error.len(), 2, "exactly code and message: {body}");
        assert_eq!(error["code"], code, "{body}");
        let message = error["message"].as_str().expect("message is text").to_string();
        assert!(!message.is_empty());
        message
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("fk.db").display());
        let engine = Arc::new(start_engine(&db_url).await);
        let router = fangkong_server::router(AppState::new(engine.clone()));
        TestServer { engine, router, db_url, _dir: dir }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap()).await
    }

    pub async fn call(&self, method: Method, path: &str, content_type: Option<&str>, body: &str) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.send(request.body(Body::from(body.to_string())).unwrap()).await
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
    }
}

pub async fn start_engine(db_url: &str) -> Engine {
    let store = fangkong_engine::Store::open(db_url).await.unwrap();
    let clock = ManualClock::new(fangkong_core::time::Timestamp::from_millis(T0_MILLIS));
    Engine::start(store, Arc::new(InProcessBus::default()), Arc::new(clock)).await.unwrap()
}
