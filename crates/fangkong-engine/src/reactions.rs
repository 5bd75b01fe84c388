//! Who reacts to what: the one place where a change in one feature reaches another.
//!
//! Features do not call each other. A command stores its change with its events and hands
//! each event to [`Engine::publish`], which first applies it to the live state — the
//! kernel's code tables and every registered feature ([`Engine::features`], each applying
//! the kinds it follows, see `feature.rs`) — in memory, at once, in publishing order, and
//! then puts it on the bus. Positions are telemetry: each accepted fix is applied the same
//! way when it is accepted ([`Engine::apply_position`]), and stored fixes come back as
//! `FixesAccepted` only from the outbox (another node, a replay). A reaction that is
//! another feature's *command* (it stores something) runs on the engine's reaction task, a
//! subscriber of the bus, so that it never runs inside the command that caused it.
//!
//! | what happened | who follows | how |
//! |---|---|---|
//! | `SignedIn`, `SignedOut`, `SessionsEnded` | identity (open sessions) | applied |
//! | `CodeCreated`, `CodeUpdated` | the kernel (code tables) | applied |
//! | `UnitsSaved` | forces (the registry), dispatch (the units it ranks) | applied |
//! | `BeatsSaved` | forces, dispatch (beat lookup), positions (beat presence) | applied |
//! | `IncidentChanged`, `UnitStatusChanged` | dispatch (the board, statuses) | applied |
//! | a tracker's position; `FixesAccepted` | positions (live index), dispatch (the unit's point) | applied |
//! | `PanicAlarm` (its fix stored) | dispatch: an incident, or a note on the open one | reaction task |
//!
//! The reaction task keeps its place in the bus by sequence number: when it falls behind
//! it resumes from the bus's replay buffer. If even that has moved past it, the alarms
//! it missed are logged and counted (`reactions_lost`); a follower of the outbox (issue
//! 27) will let it resume from the store instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use fangkong_core::event::Event;
use fangkong_core::time::Timestamp;
use fangkong_geo::LatLon;
use tokio::sync::{broadcast, watch};

use crate::Engine;
use crate::avl::LivePosition;
use crate::bus::{Envelope, EventBus};

/// The reaction task's progress, for waiting on it and for `/metrics`.
#[derive(Debug)]
pub(crate) struct ReactionState {
    /// The sequence of the last envelope the task has finished with.
    done: watch::Sender<u64>,
    lost: AtomicU64,
}

impl Default for ReactionState {
    fn default() -> ReactionState {
        ReactionState { done: watch::channel(0).0, lost: AtomicU64::new(0) }
    }
}

impl Engine {
    /// Applies an event to the live state of every feature that follows it (memory only):
    /// the one way live state changes, the same for this node's commands, another node's
    /// events and a replay of the outbox (see the table above for what each kind touches).
    pub(crate) fn apply(&self, at: Timestamp, event: &Event) {
        self.kernel.apply(event);
        for feature in self.features() {
            feature.apply(at, event);
        }
    }

    /// Applies an accepted fix to the features that follow positions.
    pub(crate) fn apply_position(&self, live: &LivePosition) {
        for feature in self.features() {
            feature.apply_position(live);
        }
    }

    /// Waits until the reaction task has finished with everything published so far (for
    /// tests, and for anyone who must see a reaction's result before going on).
    pub async fn reactions_settled(&self) {
        let target = self.bus.last_seq();
        let mut done = self.reactions.done.subscribe();
        let _ = done.wait_for(|&seq| seq >= target).await;
    }

    /// Reactions the task could not run because the bus no longer held their events.
    pub fn reactions_lost(&self) -> u64 {
        self.reactions.lost.load(Ordering::Relaxed)
    }

    /// A command of one feature caused by another's event (see the table above).
    async fn react(&self, envelope: &Envelope) {
        if let Event::PanicAlarm { unique_id, unit, alarm, lat, lon, .. } = &envelope.event {
            match LatLon::new(*lat, *lon) {
                Ok(point) => self.raise_panic(unique_id, unit.as_deref(), point, alarm).await,
                Err(error) => tracing::error!(%error, device = unique_id, "a panic alarm without a valid point"),
            }
        }
    }
}

/// Starts the reaction task: it follows the bus from now on, for as long as the engine
/// lives.
pub(crate) fn spawn(engine: &Arc<Engine>) {
    let live = engine.bus.subscribe();
    let after = engine.bus.last_seq();
    engine.reactions.done.send_replace(after);
    tokio::spawn(run(Arc::downgrade(engine), Arc::clone(&engine.bus), live, after));
}

async fn run(
    engine: Weak<Engine>,
    bus: Arc<dyn EventBus>,
    mut live: broadcast::Receiver<Arc<Envelope>>,
    mut after: u64,
) {
    loop {
        let envelope = match live.recv().await {
            Ok(envelope) => envelope,
            Err(broadcast::error::RecvError::Closed) => return,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Behind: take what was missed from the replay buffer, then go on live.
                match bus.resume(after) {
                    Ok(resumed) => {
                        live = resumed.live;
                        for envelope in resumed.missed {
                            let Some(engine) = engine.upgrade() else { return };
                            handle(&engine, &envelope, &mut after).await;
                        }
                    }
                    Err(gap) => {
                        let Some(engine) = engine.upgrade() else { return };
                        let lost = gap.oldest_held.saturating_sub(after + 1);
                        engine.reactions.lost.fetch_add(lost, Ordering::Relaxed);
                        tracing::error!(after, oldest_held = gap.oldest_held, lost, "reactions fell behind the bus");
                        live = bus.subscribe();
                        after = bus.last_seq();
                        engine.reactions.done.send_replace(after);
                    }
                }
                continue;
            }
        };
        let Some(engine) = engine.upgrade() else { return };
        handle(&engine, &envelope, &mut after).await;
    }
}

async fn handle(engine: &Engine, envelope: &Envelope, after: &mut u64) {
    if envelope.seq <= *after {
        return; // already seen (a resume repeats nothing, but a late subscribe may)
    }
    engine.react(envelope).await;
    *after = envelope.seq;
    engine.reactions.done.send_replace(envelope.seq);
}
