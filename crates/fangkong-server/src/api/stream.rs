//! The live stream: a WebSocket that carries tracker positions (throttled per client) and
//! panic alarms to the console.
//!
//! Browsers cannot set headers on a WebSocket, so the token may come as `?access_token=`
//! instead of `Authorization: Bearer` (the query string is never logged). On connecting the
//! client gets a `snapshot` of every position it may see; then, every `throttle_ms`
//! (default 1,000, at least 100), a `positions` message with the latest fix of each tracker
//! that moved since the last one; and at once, a `panic` message when a tracker it may see
//! raises an alarm. Every message is JSON with a `type`. The stream checks its session
//! every 30 s (without counting that as use) and closes with code 4001 when it has ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use fangkong_core::auth::{Action, Actor};
use fangkong_core::event::Event;
use fangkong_core::jurisdiction::Scope;
use fangkong_engine::avl::LivePosition;
use fangkong_engine::{Caller, Engine};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use crate::AppState;
use crate::api::positions::LivePositionBody;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Query;

const SESSION_CHECK: Duration = Duration::from_secs(30);

/// A signed-in user, by header or by `access_token`.
pub struct StreamSession {
    caller: Caller,
    token: String,
}

impl FromRequestParts<AppState> for StreamSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<StreamSession, ApiError> {
        let meta = RequestMeta::from_request_parts(parts, state).await?;
        let header =
            parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
        let query_token = parts.uri.query().and_then(|query| {
            form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned())
        });
        let token =
            header.map(|t| t.trim().to_string()).or(query_token).filter(|t| !t.is_empty()).ok_or_else(|| {
                ApiError::unauthenticated("sign in first: send Authorization: Bearer <token> or ?access_token=")
            })?;
        let session = state.engine.authenticate(&token)?;
        let caller = Caller { actor: Actor::User(session.actor), ip: meta.ip, purpose: meta.purpose };
        Ok(StreamSession { caller, token })
    }
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The session token, for clients that cannot send `Authorization` (browsers).
    #[allow(dead_code, reason = "documented here for the API reference; StreamSession reads it")]
    pub access_token: Option<String>,
    /// Milliseconds between position messages (default 1,000, at least 100).
    pub throttle_ms: Option<u64>,
    /// Only trackers inside this jurisdiction node (and inside yours).
    pub within: Option<String>,
}

/// The live stream (WebSocket): positions and panic alarms. A plain GET without the
/// WebSocket upgrade, after the checks, is answered `426 upgrade_required`.
#[utoipa::path(
    get,
    path = "/stream",
    tag = "positions",
    security(("bearer" = [])),
    params(StreamQuery),
    responses(
        (status = 101, description = "switching to the WebSocket"),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "your role does not read positions", body = ErrorBody),
        (status = 426, description = "not a WebSocket request (`upgrade_required`)", body = ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    session: StreamSession,
    Query(query): Query<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let throttle = Duration::from_millis(query.throttle_ms.unwrap_or(1_000).max(100));
    // The snapshot also checks the role and `within`.
    let snapshot = state.engine.live_positions(&session.caller, query.within.as_deref()).await?;
    let within = match &query.within {
        Some(code) => Some(state.engine.scope(code)?),
        None => None,
    };
    let Ok(upgrade) = upgrade else {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "this is a WebSocket: connect with Upgrade: websocket",
        ));
    };
    let engine = state.engine.clone();
    Ok(upgrade.on_upgrade(move |socket| run(socket, engine, session, within, throttle, snapshot)).into_response())
}

fn visible(caller: &Caller, within: Option<&Scope>, live: &LivePosition) -> bool {
    caller.actor.check_in(Action::ReadPositions, &live.chain).is_ok()
        && within.is_none_or(|scope| scope.covers(&live.chain))
}

async fn send(socket: &mut WebSocket, message: serde_json::Value) -> bool {
    socket.send(Message::Text(message.to_string().into())).await.is_ok()
}

async fn run(
    mut socket: WebSocket,
    engine: Arc<Engine>,
    session: StreamSession,
    within: Option<Scope>,
    throttle: Duration,
    snapshot: Vec<LivePosition>,
) {
    let mut feed = engine.position_feed();
    let mut events = engine.bus().subscribe();
    let positions: Vec<LivePositionBody> = snapshot.iter().map(LivePositionBody::from).collect();
    if !send(&mut socket, json!({"type": "snapshot", "positions": positions})).await {
        return;
    }
    let mut pending: HashMap<i64, Arc<LivePosition>> = HashMap::new();
    let mut ticks = tokio::time::interval(throttle);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checks = tokio::time::interval(SESSION_CHECK);
    checks.tick().await;
    loop {
        tokio::select! {
            received = feed.recv() => match received {
                Ok(live) => {
                    if visible(&session.caller, within.as_ref(), &live) {
                        pending.insert(live.device_id, live);
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            received = events.recv() => match received {
                Ok(envelope) => {
                    if let Event::PanicAlarm { unique_id, unit, alarm, lat, lon, fixed_at } = &envelope.event {
                        // The alarm's position was just accepted: its chain is in the live index.
                        let shown = engine
                            .live_position_of(&session.caller, unique_id)
                            .is_some_and(|live| visible(&session.caller, within.as_ref(), &live));
                        if shown
                            && !send(&mut socket, json!({"type": "panic", "device": unique_id, "unit": unit, "alarm": alarm,
                                "lat": lat, "lon": lon, "fixed_at": crate::api::rfc3339(*fixed_at)})).await
                        {
                            break;
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            _ = ticks.tick() => {
                if !pending.is_empty() {
                    let mut batch: Vec<Arc<LivePosition>> = pending.drain().map(|(_, live)| live).collect();
                    batch.sort_by_key(|live| live.device_id);
                    let positions: Vec<LivePositionBody> = batch.iter().map(|live| LivePositionBody::from(live.as_ref())).collect();
                    if !send(&mut socket, json!({"type": "positions", "positions": positions})).await {
                        break;
                    }
                }
            }
            _ = checks.tick() => {
                if engine.session_still_open(&session.token).is_err() {
                    let frame = CloseFrame { code: 4001, reason: "the session has ended; sign in again".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
            message = socket.recv() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
