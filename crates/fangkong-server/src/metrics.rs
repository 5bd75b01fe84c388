//! Prometheus metrics at `/metrics` (text format 0.0.4).
//!
//! HTTP: requests by method, route template and status, and their latency by method and
//! route. Every label has a bounded set of values, whatever callers send: the route is the
//! matched template (`/api/v1/codes/{kind}`) or `unmatched`, never the raw path, and a method
//! outside HTTP's standard ones is `other`. Domain gauges are read from the engine at scrape
//! time, so they cost nothing between scrapes.
//!
//! The figures describe the whole operation (open incidents, live sessions, trackers,
//! users), so reading them needs a credential: the configured scrape token as a bearer
//! token, or the session of a user the permission table lets read metrics.

use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fangkong_engine::Engine;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::auth::UserSession;
use crate::error::ApiError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    backend: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s, doubling.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    build_info: Family<BuildLabels, Gauge>,
    uptime_seconds: Gauge,
    code_entries: Family<KindLabels, Gauge>,
    jurisdictions: Gauge,
    users: Gauge,
    live_sessions: Gauge,
    devices: Gauge,
    events_published: Gauge,
    event_subscribers: Gauge,
    events_lagged: Gauge,
    reactions_lost: Gauge,
    fixes_accepted: Gauge,
    fixes_refused: Family<ReasonLabels, Gauge>,
    fixes_stored: Gauge,
    fixes_queued: Gauge,
    fixes_overloaded: Gauge,
    fixes_unknown_device: Gauge,
    history_write_retries: Gauge,
    live_trackers: Gauge,
    open_incidents: Gauge,
    units_by_status: Family<StatusLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fangkong");
        let metrics = Metrics {
            registry: Mutex::new(Registry::default()),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            in_flight: Gauge::default(),
            build_info: Family::default(),
            uptime_seconds: Gauge::default(),
            code_entries: Family::default(),
            jurisdictions: Gauge::default(),
            users: Gauge::default(),
            live_sessions: Gauge::default(),
            devices: Gauge::default(),
            events_published: Gauge::default(),
            event_subscribers: Gauge::default(),
            events_lagged: Gauge::default(),
            reactions_lost: Gauge::default(),
            fixes_accepted: Gauge::default(),
            fixes_refused: Family::default(),
            fixes_stored: Gauge::default(),
            fixes_queued: Gauge::default(),
            fixes_overloaded: Gauge::default(),
            fixes_unknown_device: Gauge::default(),
            history_write_retries: Gauge::default(),
            live_trackers: Gauge::default(),
            open_incidents: Gauge::default(),
            units_by_status: Family::default(),
        };
        registry.register("http_requests", "HTTP requests answered", metrics.requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers",
            metrics.latency.clone(),
        );
        registry.register("http_requests_in_flight", "HTTP requests being handled", metrics.in_flight.clone());
        registry.register("build_info", "Version and store backend of this server", metrics.build_info.clone());
        registry.register("uptime_seconds", "Seconds since the engine started", metrics.uptime_seconds.clone());
        registry.register("code_entries", "Entries in each code table", metrics.code_entries.clone());
        registry.register("jurisdictions", "Nodes of the jurisdiction tree", metrics.jurisdictions.clone());
        registry.register("users", "User accounts", metrics.users.clone());
        registry.register("live_sessions", "Signed-in sessions held in memory", metrics.live_sessions.clone());
        registry.register("devices", "Registered devices", metrics.devices.clone());
        registry.register("events_published", "Events published on the bus", metrics.events_published.clone());
        registry.register("event_subscribers", "Subscribers on the event bus", metrics.event_subscribers.clone());
        registry.register(
            "events_lagged",
            "Events slow subscribers missed because they fell behind",
            metrics.events_lagged.clone(),
        );
        registry.register(
            "reactions_lost",
            "Events the reaction task could not react to because the bus no longer held them",
            metrics.reactions_lost.clone(),
        );
        registry.register("fixes_accepted", "Tracker fixes accepted since start", metrics.fixes_accepted.clone());
        registry.register(
            "fixes_refused",
            "Tracker fixes refused since start, by reason",
            metrics.fixes_refused.clone(),
        );
        registry.register(
            "fixes_stored",
            "Tracker fixes written to the history since start",
            metrics.fixes_stored.clone(),
        );
        registry.register("fixes_queued", "Fixes waiting for the history writer", metrics.fixes_queued.clone());
        registry.register(
            "fixes_overloaded",
            "Fixes answered 503 because the history queue was full",
            metrics.fixes_overloaded.clone(),
        );
        registry.register(
            "fixes_unknown_device",
            "Reports from unregistered tracker ids",
            metrics.fixes_unknown_device.clone(),
        );
        registry.register(
            "history_write_retries",
            "Failed history writes that were retried",
            metrics.history_write_retries.clone(),
        );
        registry.register("live_trackers", "Trackers with a position in the live index", metrics.live_trackers.clone());
        registry.register(
            "open_incidents",
            "Incidents on the board (not closed or cancelled)",
            metrics.open_incidents.clone(),
        );
        registry.register("units", "Units by dispatch status", metrics.units_by_status.clone());
        *metrics.registry.lock().expect("metrics lock") = registry;
        metrics
    }

    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { method: method.into(), route: route.into(), status }).inc();
        self.latency.get_or_create(&RouteLabels { method: method.into(), route: route.into() }).observe(seconds);
    }

    /// Reads the domain figures from the engine and renders everything.
    pub fn render(&self, engine: &Engine) -> String {
        let stats = engine.stats();
        self.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                backend: engine.backend().as_str().into(),
            })
            .set(1);
        self.uptime_seconds.set(engine.now().millis_since(engine.started_at()) / 1000);
        for (kind, count) in stats.codes_by_kind {
            self.code_entries.get_or_create(&KindLabels { kind: kind.as_str().into() }).set(count as i64);
        }
        self.jurisdictions.set(stats.jurisdictions as i64);
        self.users.set(stats.users as i64);
        self.live_sessions.set(stats.live_sessions as i64);
        self.devices.set(stats.devices as i64);
        self.events_published.set(stats.bus.published as i64);
        self.event_subscribers.set(stats.bus.subscribers as i64);
        self.events_lagged.set(stats.bus.lagged as i64);
        self.reactions_lost.set(engine.reactions_lost() as i64);
        let avl = engine.avl_stats();
        self.fixes_accepted.set(avl.accepted as i64);
        for (reason, count) in &avl.rejected {
            self.fixes_refused.get_or_create(&ReasonLabels { reason: reason.as_str().into() }).set(*count as i64);
        }
        self.fixes_stored.set(avl.stored as i64);
        self.fixes_queued.set(avl.queued as i64);
        self.fixes_overloaded.set(avl.overloaded as i64);
        self.fixes_unknown_device.set(avl.unknown_device as i64);
        self.history_write_retries.set(avl.store_retries as i64);
        self.live_trackers.set(avl.live_devices as i64);
        let dispatch = engine.dispatch_stats();
        self.open_incidents.set(dispatch.open_incidents as i64);
        for (status, count) in &dispatch.units_by_status {
            self.units_by_status.get_or_create(&StatusLabels { status: status.as_str().into() }).set(*count as i64);
        }

        let mut text = String::new();
        let registry = self.registry.lock().expect("metrics lock");
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The method as a label: one of HTTP's standard methods, or `other` for any token a
/// caller invents (each would otherwise be a new series, held forever).
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD.iter().find(|standard| *standard == method).map_or("other", Method::as_str)
}

/// Counts and times every request.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    state.metrics.in_flight.inc();
    let response = next.run(request).await;
    state.metrics.in_flight.dec();
    state.metrics.record(method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: for the scrape token, or a signed-in user allowed to read metrics.
pub(crate) async fn get_metrics(State(state): State<AppState>, mut parts: Parts) -> Result<Response, ApiError> {
    let bearer = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    let scraper = state
        .metrics_token
        .as_deref()
        .is_some_and(|token| fangkong_engine::crypto::constant_time_eq(token.as_bytes(), bearer.as_bytes()));
    if !scraper {
        // Not the scrape token: it must be a session whose user may read the figures.
        let session =
            <UserSession as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state)
                .await
                .map_err(|_| {
                    ApiError::unauthenticated(
                        "send Authorization: Bearer with the metrics scrape token or an administrator's session token",
                    )
                })?;
        state.engine.authorize_metrics(&session.caller).await?;
    }
    let text = state.metrics.render(&state.engine);
    Ok(([(CONTENT_TYPE, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)], text).into_response())
}
