//! A server over a fresh engine (SQLite, or PostgreSQL when asked), a small city, and
//! one-line helpers to call it as a signed-in user.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use fangkong_core::auth::Role;
use fangkong_core::auth::account::NewUser;
use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_core::registry::{Building, BuildingKind, HousingUnit, UnitUse};
use fangkong_engine::bus::InProcessBus;
use fangkong_engine::clock::ManualClock;
use fangkong_engine::crypto::PasswordCost;
use fangkong_engine::keys::KeyRing;
use fangkong_engine::{Caller, Engine, EngineConfig, NodeWrite};
use fangkong_geo::Area;
use fangkong_server::AppState;
use fangkong_store::testing::TestDatabase;
use http_body_util::BodyExt;
use tower::ServiceExt;

pub const T0_MILLIS: i64 = 1_764_288_000_000; // 2025-11-28T00:00:00Z
pub const PASSWORD: &str = "correct horse battery staple";
pub const CITY: &str = "440300";
pub const FUTIAN: &str = "440304";
pub const LUOHU: &str = "440303";
/// The scrape token the test server's `/metrics` accepts.
pub const METRICS_TOKEN: &str = "scrape-token-for-the-tests";

pub struct TestServer {
    pub engine: Arc<Engine>,
    pub router: Router,
    pub clock: ManualClock,
    pub keys: KeyRing,
    pub db: TestDatabase,
}

#[derive(Debug)]
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
        let keys: Vec<&str> = error.keys().map(String::as_str).collect();
        assert!(
            matches!(keys.as_slice(), ["code", "message"] | ["code", "details", "message"]),
            "code and message (and details): {body}"
        );
        assert_eq!(error["code"], code, "{body}");
        let message = error["message"].as_str().expect("message is text").to_string();
        assert!(!message.is_empty());
        message
    }
}

/// A request being built: `server.request(Method::GET, "/x").token(&t).send().await`.
pub struct Call<'a> {
    server: &'a TestServer,
    request: axum::http::request::Builder,
    body: Body,
}

impl<'a> Call<'a> {
    pub fn token(mut self, token: &str) -> Call<'a> {
        self.request = self.request.header("authorization", format!("Bearer {token}"));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Call<'a> {
        self.request = self.request.header(name, value);
        self
    }

    pub fn purpose(self, purpose: &str) -> Call<'a> {
        self.header("x-purpose", purpose)
    }

    /// A raw body with its media type.
    pub fn bytes(mut self, content_type: &str, body: Vec<u8>) -> Call<'a> {
        self.request = self.request.header("content-type", content_type);
        self.body = Body::from(body);
        self
    }

    pub fn json(mut self, body: serde_json::Value) -> Call<'a> {
        self.request = self.request.header("content-type", "application/json");
        self.body = Body::from(body.to_string());
        self
    }

    pub async fn send(self) -> Reply {
        self.server.send(self.request.body(self.body).unwrap()).await
    }
}

fn node(code: &str, kind: JurisdictionKind, parent: Option<&str>, name: &str) -> Jurisdiction {
    Jurisdiction { code: code.into(), kind, parent: parent.map(Into::into), name_zh: name.into(), name_en: None }
}

pub fn test_config(keys: &KeyRing) -> EngineConfig {
    EngineConfig { password_cost: PasswordCost { memory_kib: 256, iterations: 1 }, ..EngineConfig::new(keys.clone()) }
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::on(TestDatabase::sqlite()).await
    }

    /// A server on `db` with a city of two districts (Futian with a community and a police
    /// station; Luohu) and no users.
    pub async fn on(db: TestDatabase) -> TestServer {
        let keys = KeyRing::generate();
        let clock = ManualClock::new(fangkong_core::time::Timestamp::from_millis(T0_MILLIS));
        let engine = start_engine(&db.url, &clock, &keys).await;
        use JurisdictionKind::*;
        let tree = vec![
            node(CITY, City, None, "深圳市"),
            node(FUTIAN, District, Some(CITY), "福田区"),
            node(LUOHU, District, Some(CITY), "罗湖区"),
            node("440304001", Subdistrict, Some(FUTIAN), "园岭街道"),
            node("440304001001", Community, Some("440304001"), "园东社区"),
            node("440303001", Subdistrict, Some(LUOHU), "桂园街道"),
            node("440303001001", Community, Some("440303001"), "桂木园社区"),
            node("440304001001G01", Grid, Some("440304001001"), "园东社区第一网格"),
            node("440303001001G01", Grid, Some("440303001001"), "桂木园社区第一网格"),
            node("PS440304-01", PoliceStation, Some(FUTIAN), "园岭派出所"),
            node("PS440303-01", PoliceStation, Some(LUOHU), "桂园派出所"),
        ];
        // The two districts get rectangles side by side (Futian west of 114.1°E, Luohu east),
        // so lookups and boundary imports have ground to work on.
        let rectangle = |x0: f64, x1: f64| {
            Area::from_rings(vec![vec![vec![[x0, 22.50], [x1, 22.50], [x1, 22.58], [x0, 22.58], [x0, 22.50]]]]).unwrap()
        };
        let tree = tree
            .into_iter()
            .map(|node| {
                let shape = match node.code.as_str() {
                    FUTIAN => Some(rectangle(114.0, 114.1)),
                    LUOHU => Some(rectangle(114.1, 114.2)),
                    _ => None,
                };
                NodeWrite { node, shape }
            })
            .collect();
        engine.add_jurisdictions(&Caller::system("test"), tree).await.unwrap();
        let state = AppState::new(engine.clone()).with_metrics_token(Some(METRICS_TOKEN.into()));
        let router = fangkong_server::router(state);
        TestServer { engine, router, clock, keys, db }
    }

    /// A building with one unit in `grid`.
    pub async fn property(&self, building: &str, unit: &str, grid: &str, landlord: Option<&str>) {
        let b = Building {
            code: building.into(),
            address: format!("{building}号楼"),
            grid: grid.into(),
            community: String::new(),
            lon: 114.05,
            lat: 22.55,
            kind: BuildingKind::UrbanVillage,
            floors: 6,
        };
        let u = HousingUnit {
            code: unit.into(),
            building: building.into(),
            floor: 2,
            area_m2: 40.0,
            rooms: 2,
            usage: UnitUse::Residential,
            rent_yuan: None,
            rental: true,
            landlord: landlord.map(Into::into),
            community: String::new(),
        };
        self.engine.save_property(&Caller::system("test"), b, vec![u]).await.unwrap();
    }

    pub async fn add_user(&self, username: &str, role: Role, jurisdiction: &str) {
        let new = NewUser {
            username: username.into(),
            display_name: format!("用户{username}"),
            role,
            jurisdiction: jurisdiction.into(),
        };
        self.engine.create_user(&Caller::system("test"), new, PASSWORD).await.unwrap();
    }

    /// Signs in through the API and returns the bearer token.
    pub async fn token(&self, username: &str) -> String {
        let reply = self
            .request(Method::POST, "/api/v1/auth/login")
            .json(serde_json::json!({"username": username, "password": PASSWORD}))
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["token"].as_str().unwrap().to_string()
    }

    /// A user of `role` in `jurisdiction`, signed in.
    pub async fn signed_in(&self, username: &str, role: Role, jurisdiction: &str) -> String {
        self.add_user(username, role, jurisdiction).await;
        self.token(username).await
    }

    pub fn request(&self, method: Method, path: &str) -> Call<'_> {
        Call { server: self, request: Request::builder().method(method).uri(path), body: Body::empty() }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path).send().await
    }

    pub async fn get_as(&self, token: &str, path: &str) -> Reply {
        self.request(Method::GET, path).token(token).send().await
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

    /// Audit records numbered after `after_seq`, oldest first (read as the system, not
    /// through the API; the system's own reads are left out).
    pub async fn audit_after(&self, after_seq: i64) -> Vec<fangkong_core::audit::AuditRecord> {
        let system = Caller::system("test");
        let mut records = Vec::new();
        let mut before_seq = None;
        loop {
            let query = fangkong_engine::AuditQuery { before_seq, limit: 1_000, ..Default::default() };
            let page = self.engine.audit_records(&system, &query).await.unwrap();
            let done = page.len() < 1_000 || page.last().is_some_and(|r| r.seq <= after_seq);
            before_seq = page.last().map(|r| r.seq);
            records.extend(page.into_iter().filter(|r| r.seq > after_seq));
            if done {
                break;
            }
        }
        records.retain(|r| !(r.entry.action == "audit.read" && r.entry.actor_name == "test"));
        records.reverse();
        records
    }

    /// Every audit record, oldest first.
    pub async fn audit(&self) -> Vec<fangkong_core::audit::AuditRecord> {
        self.audit_after(0).await
    }

    /// The number of the newest audit record.
    pub async fn audit_head(&self) -> i64 {
        let query = fangkong_engine::AuditQuery { limit: 1, ..Default::default() };
        self.engine.audit_records(&Caller::system("test"), &query).await.unwrap()[0].seq
    }
}

pub async fn start_engine(db_url: &str, clock: &ManualClock, keys: &KeyRing) -> Arc<Engine> {
    let store = fangkong_engine::Store::open(db_url).await.unwrap();
    Engine::start(store, Arc::new(InProcessBus::default()), Arc::new(clock.clone()), test_config(keys)).await.unwrap()
}
