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
use fangkong_core::auth::{Action, Actor};
use fangkong_core::event::Event;
use fangkong_core::jurisdiction::{Chain, Scope};
use fangkong_engine::avl::LivePosition;
use fangkong_engine::bus::Envelope;
use fangkong_engine::{Caller, Engine};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

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
    let resume = match (query.resume_after, query.epoch) {
        (Some(seq), Some(epoch)) => Some((seq, epoch)),
        _ => None,
    };
    Ok(upgrade
        .on_upgrade(move |socket| run(socket, engine, session, within, throttle, snapshot, resume))
        .into_response())
}

/// Whether a dispatch event concerns the caller, and the message that says it.
fn dispatch_message(
    engine: &Engine,
    caller: &Caller,
    within: Option<&Scope>,
    envelope: &Envelope,
) -> Option<serde_json::Value> {
    let sees = |chain: &Chain| {
        caller.actor.check_in(Action::ReadIncidents, chain).is_ok() && within.is_none_or(|scope| scope.covers(chain))
    };
    let station = |code: &str| engine.chain_of(code).filter(|chain| sees(chain));
    let seq = envelope.seq;
    match &envelope.event {
        Event::IncidentChanged(incident) if sees(&incident.chain) => {
            Some(json!({"type": "incident", "seq": seq, "incident": IncidentBody::from(incident.as_ref())}))
        }
        Event::UnitStatusChanged { state, station: code } if station(code).is_some() => {
            Some(json!({"type": "unit", "seq": seq, "state": UnitStateBody::from(state)}))
        }
        Event::UnitOverdue { unit, station: code, status, since, limit_ms } if station(code).is_some() => Some(json!({
            "type": "unit_overdue", "seq": seq, "unit": unit, "status": status.as_str(),
            "since": crate::api::rfc3339(*since), "limit_s": limit_ms / 1000,
        })),
        _ => None,
    }
}

/// The full picture for a (re)connecting client.
async fn snapshot_message(
    engine: &Engine,
    caller: &Caller,
    within: Option<&Scope>,
    within_code: Option<&str>,
    seq: u64,
    reload: bool,
) -> serde_json::Value {
    let positions: Vec<LivePositionBody> = engine
        .live_positions(caller, within_code)
        .await
        .unwrap_or_default()
        .iter()
        .map(LivePositionBody::from)
        .collect();
    let incidents: Vec<IncidentBody> =
        engine.open_incidents(caller, within_code).await.unwrap_or_default().iter().map(IncidentBody::from).collect();
    let units: Vec<UnitOnBoardBody> = engine
        .unit_board(caller)
        .await
        .unwrap_or_default()
        .iter()
        .filter(|u| within.is_none_or(|scope| engine.chain_of(&u.unit.station).is_some_and(|c| scope.covers(&c))))
        .map(UnitOnBoardBody::from)
        .collect();
    json!({"type": "snapshot", "epoch": engine.epoch(), "seq": seq, "reload": reload,
        "positions": positions, "incidents": incidents, "units": units})
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
    resume: Option<(u64, String)>,
) {
    drop(snapshot); // the checks are done; the snapshot below is taken after subscribing
    let mut feed = engine.position_feed();
    let caller = &session.caller;
    let within_code = within.as_ref().map(|s| s.code.clone());
    // Subscribe before reading the state, so nothing published in between is lost (an
    // event may then repeat what the snapshot shows: its revision tells).
    let resumed = resume
        .as_ref()
        .and_then(|(seq, epoch)| (epoch == engine.epoch()).then(|| engine.bus().resume(*seq).ok()).flatten());
    let mut events = match resumed {
        Some(resumed) => {
            if !send(
                &mut socket,
                json!({"type": "resumed", "epoch": engine.epoch(), "after": resume.as_ref().map(|r| r.0),
                "missed": resumed.missed.len()}),
            )
            .await
            {
                return;
            }
            for envelope in &resumed.missed {
                if let Some(message) = dispatch_message(&engine, caller, within.as_ref(), envelope)
                    && !send(&mut socket, message).await
                {
                    return;
                }
            }
            resumed.live
        }
        None => {
            let live = engine.bus().subscribe();
            let seq = engine.bus().last_seq();
            let message =
                snapshot_message(&engine, caller, within.as_ref(), within_code.as_deref(), seq, resume.is_some()).await;
            if !send(&mut socket, message).await {
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
                    if visible(&session.caller, within.as_ref(), &live) {
                        pending.insert(live.device_id, live);
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            received = events.recv() => match received {
                Ok(envelope) => {
                    if let Some(message) = dispatch_message(&engine, caller, within.as_ref(), &envelope)
                        && !send(&mut socket, message).await
                    {
                        break;
                    }
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
                Err(RecvError::Lagged(count)) => {
                    // Fell behind: start afresh from the current state.
                    engine.bus().record_lag(count);
                    events = events.resubscribe();
                    let seq = engine.bus().last_seq();
                    let message = snapshot_message(&engine, caller, within.as_ref(), within_code.as_deref(), seq, true).await;
                    if !send(&mut socket, message).await {
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
