//! The event bus: how the rest of the system hears about every change of state.
//!
//! The engine publishes each [`Event`] after the change is durable, wrapped in an
//! [`Envelope`] that gives it a sequence number. Subscribers (the live board's WebSocket,
//! later the NATS bridge to other server nodes) receive envelopes in sequence order, and a
//! subscriber that lost its connection can resume from the last sequence it saw for as
//! long as the bus still holds the envelopes after it.
//!
//! [`InProcessBus`] is the default: a tokio broadcast channel plus a replay buffer. A
//! JetStream adapter implements the same [`EventBus`] trait.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fangkong_core::event::Event;
use fangkong_core::time::Timestamp;
use tokio::sync::broadcast;

/// An event as delivered: the change, when it happened and its place in the order.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Strictly increasing from 1 for the life of the bus.
    pub seq: u64,
    pub at: Timestamp,
    pub event: Event,
}

/// What a subscriber gets when it asks to resume.
#[derive(Debug)]
pub struct Resumed {
    /// Envelopes after the requested sequence, in order, that were published before the
    /// subscription started.
    pub missed: Vec<Arc<Envelope>>,
    /// Everything published from then on.
    pub live: broadcast::Receiver<Arc<Envelope>>,
}

/// The bus cannot deliver everything after the requested sequence: either part of it is no
/// longer held, or the sequence was never issued by this bus (it comes from before a
/// restart). The subscriber must reload its state from the API and subscribe afresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot resume after sequence {requested}: this bus holds {oldest_held}..={last_seq}")]
pub struct CannotResume {
    pub requested: u64,
    pub oldest_held: u64,
    pub last_seq: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusStats {
    pub published: u64,
    pub subscribers: usize,
    pub lagged: u64,
}

pub trait EventBus: Send + Sync + Debug {
    /// Publishes a change that is already durable and returns it as delivered.
    fn publish(&self, at: Timestamp, event: Event) -> Arc<Envelope>;

    /// Receives everything published from now on.
    fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>>;

    /// Receives everything published after `after_seq`: first what was missed, then live.
    fn resume(&self, after_seq: u64) -> Result<Resumed, CannotResume>;

    /// The sequence number of the most recent envelope (0 before the first).
    fn last_seq(&self) -> u64;

    fn stats(&self) -> BusStats;

    /// A subscriber reports that it fell behind and lost `count` envelopes.
    fn record_lag(&self, count: u64);
}

/// Envelopes held for resuming subscribers by default.
pub const DEFAULT_REPLAY: usize = 10_000;
/// Envelopes a slow subscriber may fall behind before it starts losing them.
pub const DEFAULT_CHANNEL: usize = 4_096;

#[derive(Debug)]
pub struct InProcessBus {
    sender: broadcast::Sender<Arc<Envelope>>,
    state: Mutex<ReplayState>,
    replay_capacity: usize,
    lagged: AtomicU64,
}

#[derive(Debug, Default)]
struct ReplayState {
    last_seq: u64,
    recent: VecDeque<Arc<Envelope>>,
}

impl InProcessBus {
    pub fn new(replay_capacity: usize, channel_capacity: usize) -> InProcessBus {
        let (sender, _) = broadcast::channel(channel_capacity.max(1));
        InProcessBus { sender, state: Mutex::default(), replay_capacity, lagged: AtomicU64::new(0) }
    }
}

impl Default for InProcessBus {
    fn default() -> InProcessBus {
        InProcessBus::new(DEFAULT_REPLAY, DEFAULT_CHANNEL)
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, at: Timestamp, event: Event) -> Arc<Envelope> {
        // Numbering and sending under one lock keeps delivery order equal to sequence order
        // when several tasks publish at once.
        let mut state = self.state.lock().expect("bus lock");
        state.last_seq += 1;
        let envelope = Arc::new(Envelope { seq: state.last_seq, at, event });
        if self.replay_capacity > 0 {
            if state.recent.len() == self.replay_capacity {
                state.recent.pop_front();
            }
            state.recent.push_back(envelope.clone());
        }
        // No subscriber is not an error: the change is already stored.
        let _ = self.sender.send(envelope.clone());
        envelope
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.sender.subscribe()
    }

    fn resume(&self, after_seq: u64) -> Result<Resumed, CannotResume> {
        let state = self.state.lock().expect("bus lock");
        let oldest_held = state.recent.front().map_or(state.last_seq + 1, |e| e.seq);
        // Resuming is possible if nothing after `after_seq` has been dropped from the buffer
        // and `after_seq` is a sequence this bus has actually reached.
        let dropped = after_seq.saturating_add(1) < oldest_held && after_seq < state.last_seq;
        if dropped || after_seq > state.last_seq {
            return Err(CannotResume { requested: after_seq, oldest_held, last_seq: state.last_seq });
        }
        let missed = state.recent.iter().filter(|e| e.seq > after_seq).cloned().collect();
        // Subscribing under the lock: nothing can be published between `missed` and `live`.
        Ok(Resumed { missed, live: self.sender.subscribe() })
    }

    fn last_seq(&self) -> u64 {
        self.state.lock().expect("bus lock").last_seq
    }

    fn stats(&self) -> BusStats {
        BusStats {
            published: self.last_seq(),
            subscribers: self.sender.receiver_count(),
            lagged: self.lagged.load(Ordering::Relaxed),
        }
    }

    fn record_lag(&self, count: u64) {
        self.lagged.fetch_add(count, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
