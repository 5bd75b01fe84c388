//! Fangkong's server: the HTTP API over the engine.
//!
//! * `/api/v1/…` — the API (JSON), documented at `/api/v1/openapi.json` (OpenAPI 3.1) and
//!   explorable at `/api/docs` (Swagger UI, compiled in: no internet needed).
//! * `/healthz` — liveness and store health; `/metrics` — Prometheus text, for the configured
//!   scrape token or a signed-in administrator.
//!
//! Following mini-redis, [`serve`] takes its listener and its shutdown signal as
//! arguments, so tests run a real server on `127.0.0.1:0` and stop it when they choose.
//! Shutdown is graceful: the listener closes, requests in flight finish, then the engine
//! closes the store after the last accepted write is durable.

mod api;
mod auth;
pub mod console;
mod error;
mod extract;
mod health;
pub mod listener;
mod metrics;
mod middleware;
pub mod mqtt;
pub mod osmand;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request};
use fangkong_engine::Engine;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ErrorBody};
pub use metrics::Metrics;
pub use routes::openapi;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    /// A MapLibre style URL for the console's base map (a deployment's own tile server);
    /// `None`: the console draws only its own boundary layers.
    pub map_style_url: Option<Arc<str>>,
    /// The bearer token a Prometheus scraper sends for `/metrics`; `None`: only a signed-in
    /// administrator may read them.
    pub metrics_token: Option<Arc<str>>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>) -> AppState {
        AppState { engine, metrics: Arc::new(Metrics::new()), map_style_url: None, metrics_token: None }
    }

    /// The base map the console offers (see [`AppState::map_style_url`]).
    pub fn with_map_style_url(mut self, url: Option<String>) -> AppState {
        self.map_style_url = url.map(Arc::from);
        self
    }

    /// The scrape token `/metrics` accepts (see [`AppState::metrics_token`]); an empty one
    /// counts as none, so a blank setting never opens the figures to everyone.
    pub fn with_metrics_token(mut self, token: Option<String>) -> AppState {
        self.metrics_token = token.filter(|t| !t.trim().is_empty()).map(Arc::from);
        self
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The complete application: routes, state and the layers every request passes.
pub fn router(state: AppState) -> Router {
    use axum::handler::Handler;
    let track = || axum::middleware::from_fn_with_state(state.clone(), metrics::track);
    // `route_layer` sees the matched route template; the fallback is tracked as "unmatched".
    let routes = routes::all().route_layer(track()).fallback(routes::not_found.layer(track())).with_state(state);
    with_layers(routes)
}

/// Wraps routes in the layers every response passes: request ids, tracing, panic
/// recovery and the error shape. Routes added to the result afterwards are not wrapped.
pub fn with_layers(routes: Router) -> Router {
    routes
        .layer(axum::middleware::from_fn(middleware::shape_errors))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// The listeners and subscriptions beside the API that feed the engine.
#[derive(Debug, Default)]
pub struct Edges {
    /// The OsmAnd tracker protocol ([`osmand`]).
    pub osmand: Option<TcpListener>,
    /// Bounds on the OsmAnd listener's connections (see [`listener::GuardedListener`]).
    pub osmand_limits: listener::Limits,
    /// An MQTT subscription for positions ([`mqtt`]).
    pub mqtt: Option<mqtt::MqttOptions>,
}

/// Serves `router` on `listener` until `shutdown` resolves, then shuts down gracefully:
/// no new connections, requests in flight run to completion (for at most `grace`), and the
/// engine closes the store once every accepted write is durable.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    serve_with_edges(listener, Edges::default(), router, engine, shutdown, grace).await
}

/// [`serve`], with the tracker listeners of `edges` started beside the API and stopped
/// with it (before the engine closes, so their last fixes are stored).
pub async fn serve_with_edges(
    listener: TcpListener,
    edges: Edges,
    router: Router,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    // `tap_io` changes nothing; it is how axum hands a listener of our own's peer address to
    // `ConnectInfo<SocketAddr>`.
    use axum::serve::ListenerExt as _;
    let shaped = listener::ShapedListener(listener).tap_io(|_| {});
    let api = axum::serve(shaped, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let osmand = edges.osmand.map(|listener| {
        let app = osmand::router(engine.clone()).layer(TraceLayer::new_for_http());
        let guarded = listener::GuardedListener::new(listener, edges.osmand_limits);
        tokio::spawn(axum::serve(guarded, app).with_graceful_shutdown(stopped(stop_rx.clone())).into_future())
    });
    let mqtt = edges.mqtt.map(|options| {
        tokio::spawn(mqtt::run(engine.clone(), options, Arc::new(mqtt::MqttCounters::default()), stop_rx.clone()))
    });
    let maintenance = tokio::spawn(maintain_periodically(engine.clone()));
    let timers = tokio::spawn(check_timers_periodically(engine.clone()));
    let deadline = {
        let stop = stop_rx.clone();
        async move {
            stopped(stop).await;
            tokio::time::sleep(grace).await;
        }
    };
    tokio::select! {
        result = api => result?,
        () = deadline => tracing::warn!(?grace, "requests still running after the grace period; closing them"),
    }
    if let Some(task) = osmand {
        match tokio::time::timeout(grace, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "the OsmAnd listener failed"),
            Ok(Err(error)) => tracing::warn!(%error, "the OsmAnd listener panicked"),
            Err(_) => tracing::warn!("the OsmAnd listener did not stop within the grace period"),
        }
    }
    if let Some(task) = mqtt
        && tokio::time::timeout(grace, task).await.is_err()
    {
        tracing::warn!("the MQTT subscriber did not stop within the grace period");
    }
    maintenance.abort();
    timers.abort();
    engine.shutdown().await;
    Ok(())
}

/// How often the engine's upkeep runs (session use, audit retention).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// How often units' status timers are checked (overdue alerts).
const TIMER_INTERVAL: Duration = Duration::from_secs(5);

async fn check_timers_periodically(engine: Arc<Engine>) {
    let mut ticks = tokio::time::interval(TIMER_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        engine.check_timers();
    }
}

async fn maintain_periodically(engine: Arc<Engine>) {
    let mut ticks = tokio::time::interval(MAINTENANCE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = engine.maintain().await {
            tracing::warn!(%error, "engine upkeep failed; will retry");
        }
    }
}
