//! The live stream: a WebSocket that carries the live board to the console — tracker
//! positions (throttled per client), incidents, units' statuses, overdue alerts and panic
//! alarms — each inside the caller's jurisdiction.
//!
//! Browsers cannot set headers on a WebSocket, so the token may come as `?access_token=`
//! instead of `Authorization: Bearer` (the query string is never logged). On connecting the
//! client gets a `snapshot`: every position, open incident and unit it may see, with the
//! bus `epoch` and the `seq` it is current to. Then, at once, `incident`, `unit`,
//! `unit_overdue` and `panic` messages, each with its `seq`; and every `throttle_ms`
//! (default 1,000, at least 100) a `positions` message with the latest fix of each tracker
//! that moved. A client that lost its connection reconnects with `resume_after=SEQ` and
//! `epoch=EPOCH` and gets `resumed` and then everything it missed; if the server cannot
//! replay that (restarted, or too long ago) it gets a fresh `snapshot` with `reload: true`,
//! as it does if it falls behind. Every message is JSON with a `type`. The stream checks
//! its session every 30 s (without counting that as use) and closes with code 4001 when it
//! has ended.

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
use fangkong_core::auth::Actor;
use fangkong_core::event::Event;
use fangkong_engine::avl::LivePosition;
use fangkong_engine::bus::Envelope;
use fangkong_engine::{BoardView, Caller, Engine};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::incidents::{IncidentBody, UnitOnBoardBody, UnitStateBody};
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
    /// Only records inside this jurisdiction node (and inside yours).
    pub within: Option<String>,
    /// Resume after this sequence number (from a message received before a disconnect)…
    pub resume_after: Option<u64>,
    /// …of this bus epoch (from the snapshot).
    pub epoch: Option<String>,
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
        (status = 101, description = "switching to the WebSocket; then `StreamMessage`s, one per text frame"),
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
    // The engine checks the role and `within`, and decides what the view admits.
    let view = state.engine.board_view(&session.caller, query.within.as_deref()).await?;
    let Ok(upgrade) = upgrade else {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "this is a WebSocket: connect with Upgrade: websocket",
        ));
    };
    let engine = state.engine.clone();
    let resume = match (query.resume_after, query.epoch) {
        (Some(seq), Some(epoch)) => Some((seq, epoch)),
        _ => None,
    };
    Ok(upgrade.on_upgrade(move |socket| run(socket, engine, session, view, throttle, resume)).into_response())
}

/// A message on the live stream (JSON, one per WebSocket text frame, named by `type`).
/// Messages that follow an event carry its `seq`; resume after the last one received.
#[derive(Serialize, ToSchema, Debug)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMessage {
    /// Everything the client may see now, current to `seq` of the bus `epoch`; `reload`
    /// when it replaces what the client held (it could not be resumed, or fell behind).
    Snapshot {
        epoch: String,
        seq: u64,
        reload: bool,
        positions: Vec<LivePositionBody>,
        incidents: Vec<IncidentBody>,
        units: Vec<UnitOnBoardBody>,
    },
    /// The stream resumed after `after`: the `missed` events follow (those the client may
    /// see), then live ones.
    Resumed { epoch: String, after: Option<u64>, missed: usize },
    /// An incident was created or changed: its new state.
    Incident { seq: u64, incident: Box<IncidentBody> },
    /// A unit's dispatch status changed.
    Unit { seq: u64, state: UnitStateBody },
    /// A unit has been in its status longer than its limit.
    UnitOverdue {
        seq: u64,
        unit: String,
        /// The status it is overdue in.
        status: &'static str,
        since: String,
        limit_s: i64,
    },
    /// A tracker raised an alarm (`sos`…): someone on patrol needs help at the point. Sent
    /// once the fix is stored.
    Panic { seq: u64, device: String, unit: Option<String>, alarm: String, lat: f64, lon: f64, fixed_at: String },
    /// The latest fix of each tracker that moved since the last such message.
    Positions { positions: Vec<LivePositionBody> },
}

/// The message for an event the view admitted (the engine decided it may be seen).
fn event_message(envelope: &Envelope) -> Option<StreamMessage> {
    let seq = envelope.seq;
    match &envelope.event {
        Event::IncidentChanged(incident) => {
            Some(StreamMessage::Incident { seq, incident: Box::new(IncidentBody::from(incident.as_ref())) })
        }
        Event::UnitStatusChanged { state, .. } => Some(StreamMessage::Unit { seq, state: UnitStateBody::from(state) }),
        Event::UnitOverdue { unit, status, since, limit_ms, .. } => Some(StreamMessage::UnitOverdue {
            seq,
            unit: unit.clone(),
            status: status.as_str(),
            since: crate::api::rfc3339(*since),
            limit_s: limit_ms / 1000,
        }),
        Event::PanicAlarm { unique_id, unit, alarm, lat, lon, fixed_at, .. } => Some(StreamMessage::Panic {
            seq,
            device: unique_id.clone(),
            unit: unit.clone(),
            alarm: alarm.clone(),
            lat: *lat,
            lon: *lon,
            fixed_at: crate::api::rfc3339(*fixed_at),
        }),
        _ => None,
    }
}

/// The full picture for a (re)connecting client.
async fn snapshot_message(engine: &Engine, view: &BoardView, reload: bool) -> StreamMessage {
    let snapshot = engine.board_snapshot(view).await;
    StreamMessage::Snapshot {
        epoch: snapshot.epoch,
        seq: snapshot.seq,
        reload,
        positions: snapshot.positions.iter().map(LivePositionBody::from).collect(),
        incidents: snapshot.incidents.iter().map(IncidentBody::from).collect(),
        units: snapshot.units.iter().map(UnitOnBoardBody::from).collect(),
    }
}

async fn send(socket: &mut WebSocket, message: StreamMessage) -> bool {
    let text = serde_json::to_string(&message).expect("stream messages always serialise");
    socket.send(Message::Text(text.into())).await.is_ok()
}

/// Sends an event if the view admits it; false when the socket is gone.
async fn relay(socket: &mut WebSocket, engine: &Engine, view: &BoardView, envelope: &Envelope) -> bool {
    match engine.board_admits(view, envelope).then(|| event_message(envelope)).flatten() {
        Some(message) => send(socket, message).await,
        None => true,
    }
}

async fn run(
    mut socket: WebSocket,
    engine: Arc<Engine>,
    session: StreamSession,
    view: BoardView,
    throttle: Duration,
    resume: Option<(u64, String)>,
) {
    let mut feed = engine.position_feed();
    // Subscribe before reading the state, so nothing published in between is lost (an
    // event may then repeat what the snapshot shows: its revision tells).
    let resumed = resume
        .as_ref()
        .and_then(|(seq, epoch)| (epoch == engine.epoch()).then(|| engine.bus().resume(*seq).ok()).flatten());
    let mut events = match resumed {
        Some(resumed) => {
            let message = StreamMessage::Resumed {
                epoch: engine.epoch().to_string(),
                after: resume.as_ref().map(|r| r.0),
                missed: resumed.missed.len(),
            };
            if !send(&mut socket, message).await {
                return;
            }
            for envelope in &resumed.missed {
                if !relay(&mut socket, &engine, &view, envelope).await {
                    return;
                }
            }
            resumed.live
        }
        None => {
            let live = engine.bus().subscribe();
            if !send(&mut socket, snapshot_message(&engine, &view, resume.is_some()).await).await {
                return;
            }
            live
        }
    };
    let mut pending: HashMap<i64, Arc<LivePosition>> = HashMap::new();
    let mut ticks = tokio::time::interval(throttle);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checks = tokio::time::interval(SESSION_CHECK);
    checks.tick().await;
    loop {
        tokio::select! {
            received = feed.recv() => match received {
                Ok(live) => {
                    if view.admits_position(&live) {
                        pending.insert(live.device_id, live);
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            received = events.recv() => match received {
                Ok(envelope) => {
                    if !relay(&mut socket, &engine, &view, &envelope).await {
                        break;
                    }
                }
                Err(RecvError::Lagged(count)) => {
                    // Fell behind: start afresh from the current state.
                    engine.bus().record_lag(count);
                    events = events.resubscribe();
                    if !send(&mut socket, snapshot_message(&engine, &view, true).await).await {
                        break;
                    }
                }
                Err(RecvError::Closed) => break,
            },
            _ = ticks.tick() => {
                if !pending.is_empty() {
                    let mut batch: Vec<Arc<LivePosition>> = pending.drain().map(|(_, live)| live).collect();
                    batch.sort_by_key(|live| live.device_id);
                    let positions: Vec<LivePositionBody> = batch.iter().map(|live| LivePositionBody::from(live.as_ref())).collect();
                    if !send(&mut socket, StreamMessage::Positions { positions }).await {
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
